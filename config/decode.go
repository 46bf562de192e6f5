package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// rawConfig is the schema of a configuration file. Every field is a pointer
// so that a key that is absent (nil) differs from one set to its zero value.
// A key set to null counts as absent.
type rawConfig struct {
	NodeName             *string         `hcl:"node_name"`
	Datacenter           *string         `hcl:"datacenter"`
	DataDir              *string         `hcl:"data_dir"`
	Server               *bool           `hcl:"server"`
	BootstrapExpect      *int            `hcl:"bootstrap_expect"`
	Bootstrap            *bool           `hcl:"bootstrap"`
	BindAddr             *string         `hcl:"bind_addr"`
	AdvertiseAddr        *string         `hcl:"advertise_addr"`
	ClientAddr           *string         `hcl:"client_addr"`
	Ports                *rawPorts       `hcl:"ports,block"`
	RetryJoin            *[]string       `hcl:"retry_join"`
	RetryInterval        *string         `hcl:"retry_interval"`
	RetryMax             *int            `hcl:"retry_max"`
	LeaveOnTerminate     *bool           `hcl:"leave_on_terminate"`
	SkipLeaveOnInterrupt *bool           `hcl:"skip_leave_on_interrupt"`
	LogLevel             *string         `hcl:"log_level"`
	LogJSON              *bool           `hcl:"log_json"`
	Performance          *rawPerformance `hcl:"performance,block"`
	KVMaxValueSize       *int            `hcl:"kv_max_value_size"`
	EnableDebug          *bool           `hcl:"enable_debug"`
	Encrypt              *string         `hcl:"encrypt"`
	EncryptVerifyIn      *bool           `hcl:"encrypt_verify_incoming"`
	EncryptVerifyOut     *bool           `hcl:"encrypt_verify_outgoing"`
	DisableKeyringFile   *bool           `hcl:"disable_keyring_file"`
	TLS                  *rawTLS         `hcl:"tls,block"`
	Limits               *rawLimits      `hcl:"limits,block"`
	RaftLogStore         *rawLogStore    `hcl:"raft_logstore,block"`
}

// rawPorts is the schema of the ports block.
type rawPorts struct {
	HTTP    *int `hcl:"http"`
	HTTPS   *int `hcl:"https"`
	SerfLAN *int `hcl:"serf_lan"`
	Server  *int `hcl:"server"`
}

// rawPerformance is the schema of the performance block.
type rawPerformance struct {
	RaftMultiplier *int `hcl:"raft_multiplier"`
}

// rawLogStore is the schema of the raft_logstore block (Consul's keys).
type rawLogStore struct {
	Backend      *string          `hcl:"backend"`
	Verification *rawVerification `hcl:"verification,block"`
	WAL          *rawWAL          `hcl:"wal,block"`
}

// rawVerification is the schema of raft_logstore.verification.
type rawVerification struct {
	Enabled  *bool   `hcl:"enabled"`
	Interval *string `hcl:"interval"`
}

// rawWAL is the schema of raft_logstore.wal.
type rawWAL struct {
	SegmentSizeMB *int `hcl:"segment_size_mb"`
}

// file is one decoded configuration file.
type file struct {
	raw rawConfig

	// attrs holds the attributes that were set, by dotted key such as
	// "ports.http", so that later errors can point at them.
	attrs map[string]*hcl.Attribute
}

// origin returns where key was set in f.
func (f *file) origin(key string) origin {
	a := f.attrs[key]
	if a == nil {
		// Cannot happen for a key gohcl decoded, but a missing position
		// must not hide the error it is attached to.
		return origin{}
	}
	return origin{attr: a.Range, value: a.Expr.Range()}
}

// parseFile parses and decodes one configuration file. Files whose name ends
// in ".json" are read as HCL's JSON syntax, all others as native HCL. It
// returns a nil file if there are errors.
func parseFile(filename string, src []byte) (f *file, diags hcl.Diagnostics) {
	defer func() {
		// gohcl and cty panic when they reach a state they take for a
		// programming error. A configuration file is user input: whatever
		// gets them there is reported, not allowed to crash the agent.
		if r := recover(); r != nil {
			f = nil
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Internal error",
				Detail:   panicDetail(r),
			})
		}
	}()

	parser := hclparse.NewParser()
	var hf *hcl.File
	if strings.HasSuffix(filename, ".json") {
		hf, diags = parser.ParseJSON(src, filename)
	} else {
		hf, diags = parser.ParseHCL(src, filename)
	}
	if diags.HasErrors() {
		// Decoding a partly parsed body only adds confusing follow-on errors.
		return nil, diags
	}

	f = &file{attrs: make(map[string]*hcl.Attribute)}
	decodeDiags := gohcl.DecodeBody(hf.Body, nil, &f.raw)
	decodeDiags = consulDiagnostics(hf.Body, decodeDiags)
	collectAttrs(hf.Body, &rawConfig{}, "", f.attrs)
	decodeDiags = nameTypeErrors(decodeDiags, f.attrs)
	// gohcl reports in the order of the struct fields; report in the order
	// of the file instead, so that the first error is the first one in it.
	// (The parsers already report in order, the real error first.)
	slices.SortStableFunc(decodeDiags, func(a, b *hcl.Diagnostic) int {
		return cmp.Compare(diagOffset(a), diagOffset(b))
	})
	diags = append(diags, decodeDiags...)
	if diags.HasErrors() {
		return nil, diags
	}
	return f, diags
}

// collectAttrs records the attributes of body that match the schema of
// schemaOf (a pointer to a raw struct) into attrs, keyed by prefix + name,
// and recurses into the known blocks. Diagnostics are ignored: gohcl has
// already reported them.
func collectAttrs(body hcl.Body, schemaOf any, prefix string, attrs map[string]*hcl.Attribute) {
	schema, _ := gohcl.ImpliedBodySchema(schemaOf)
	content, _, _ := body.PartialContent(schema)
	if content == nil {
		return
	}
	for name, a := range content.Attributes {
		attrs[prefix+name] = a
	}
	seen := make(map[string]bool)
	for _, blk := range content.Blocks {
		if seen[blk.Type] {
			continue // a duplicate block is an error gohcl reports
		}
		seen[blk.Type] = true
		switch key := prefix + blk.Type; key {
		case "ports":
			collectAttrs(blk.Body, &rawPorts{}, "ports.", attrs)
		case "performance":
			collectAttrs(blk.Body, &rawPerformance{}, "performance.", attrs)
		case "limits":
			collectAttrs(blk.Body, &rawLimits{}, "limits.", attrs)
		case "tls":
			collectAttrs(blk.Body, &rawTLS{}, "tls.", attrs)
		case "tls.defaults", "tls.internal_rpc", "tls.https":
			collectAttrs(blk.Body, &rawTLSConfig{}, key+".", attrs)
		case "raft_logstore":
			collectAttrs(blk.Body, &rawLogStore{}, "raft_logstore.", attrs)
		case "raft_logstore.verification":
			collectAttrs(blk.Body, &rawVerification{}, key+".", attrs)
		case "raft_logstore.wal":
			collectAttrs(blk.Body, &rawWAL{}, key+".", attrs)
		}
	}
}

// nameTypeErrors rewrites gohcl's type errors, which say "Unsuitable value:
// bool required" without naming the key, into the wording hcldec uses:
// `Inappropriate value for attribute "server": bool required.` It also drops
// a type error on a value that already has an error of its own (a variable
// reference, say), which would only repeat it.
func nameTypeErrors(diags hcl.Diagnostics, attrs map[string]*hcl.Attribute) hcl.Diagnostics {
	const summary, prefix = "Unsuitable value type", "Unsuitable value: "

	var out hcl.Diagnostics
	for _, d := range diags {
		if d.Summary != summary || d.Subject == nil {
			out = append(out, d)
			continue
		}
		key := attrAt(attrs, *d.Subject)
		if key == "" {
			out = append(out, d)
			continue
		}
		if hasErrorIn(diags, attrs[key].Expr.Range(), summary) {
			continue
		}
		nd := *d
		// gohcl points inside a quoted string; point at the value as a
		// whole, as the other value errors do.
		nd.Subject = attrs[key].Expr.Range().Ptr()
		nd.Summary = "Incorrect attribute value type"
		nd.Detail = fmt.Sprintf("Inappropriate value for attribute %q: %s.", key, strings.TrimPrefix(d.Detail, prefix))
		out = append(out, &nd)
	}
	return out
}

// attrAt returns the key of the attribute whose value contains rng.
func attrAt(attrs map[string]*hcl.Attribute, rng hcl.Range) string {
	for key, a := range attrs {
		r := a.Expr.Range()
		if r.Filename == rng.Filename && r.ContainsOffset(rng.Start.Byte) {
			return key
		}
	}
	return ""
}

// hasErrorIn reports whether diags has an error inside rng other than one
// with the given summary.
func hasErrorIn(diags hcl.Diagnostics, rng hcl.Range, summary string) bool {
	for _, d := range diags {
		if d.Severity == hcl.DiagError && d.Summary != summary && d.Subject != nil &&
			d.Subject.Filename == rng.Filename && rng.ContainsOffset(d.Subject.Start.Byte) {
			return true
		}
	}
	return false
}

// diagOffset is the byte offset a diagnostic points at, or -1 when it has
// no range, so that file-wide problems sort first.
func diagOffset(d *hcl.Diagnostic) int {
	if d.Subject == nil {
		return -1
	}
	return d.Subject.Start.Byte
}
