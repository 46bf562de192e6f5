package config

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
)

// TLS is the configuration of the tls block, as in Consul: a defaults
// block, and one block per listener that inherits each key it leaves out
// from defaults. Load resolves that inheritance, so InternalRPC and HTTPS
// hold the values that apply.
type TLS struct {
	// InternalRPC secures the server port (ports.server): Raft, bootstrap
	// claims and forwarded requests, both the connections this agent
	// accepts and those it makes. Keys: tls.internal_rpc.*, falling back
	// to tls.defaults.*.
	InternalRPC TLSConfig

	// HTTPS secures the HTTPS listener (ports.https). VerifyServerHostname
	// is always false. Keys: tls.https.*, falling back to tls.defaults.*.
	HTTPS TLSConfig
}

// TLSConfig is the TLS configuration of one listener. Validate reads and
// checks every file it names; agent/tlsutil reads them again to build the
// listener's *tls.Config, and again on each reload.
type TLSConfig struct {
	// CAFile is a PEM file of the certificate authorities a peer's
	// certificate must be signed by. Default none. Key: ca_file.
	CAFile string

	// CAPath is a directory whose files, every regular file directly in
	// it, are PEM certificates added to CAFile's authorities. Consul also
	// reads subdirectories; Conclave does not. Default none. Key: ca_path.
	CAPath string

	// CertFile is the PEM certificate this agent presents, with its
	// intermediates after it. Requires KeyFile. Default none. Key: cert_file.
	CertFile string

	// KeyFile is the PEM private key of CertFile. Default none. Key: key_file.
	KeyFile string

	// VerifyIncoming requires every client to present a certificate signed
	// by CAFile or CAPath. Requires a CA and a certificate. Default false.
	// Key: verify_incoming.
	VerifyIncoming bool

	// VerifyOutgoing makes the agent speak TLS on the connections it opens
	// and verify the peer's certificate against the CA. Requires a CA.
	// Default false. Key: verify_outgoing.
	VerifyOutgoing bool

	// VerifyServerHostname, on the server port only, requires the peer
	// server's certificate to be for server.<datacenter>.conclave, so that
	// a client agent's certificate cannot pose as a server. Requires
	// VerifyOutgoing. Default false. Key: tls.internal_rpc.verify_server_hostname.
	VerifyServerHostname bool

	// MinVersion is the lowest TLS version accepted, tls.VersionTLS12 or
	// tls.VersionTLS13; Validate turns 0 into tls.VersionTLS12. Default
	// tls.VersionTLS12. Key: tls_min_version, "TLSv1_2" or "TLSv1_3" as in
	// Consul.
	MinVersion uint16

	// CipherSuites are the TLS 1.2 cipher suites allowed, by ID; empty
	// means Go's default list. TLS 1.3 suites are not configurable. Key:
	// tls_cipher_suites, a comma-separated list of Go's names such as
	// "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", as in Consul.
	CipherSuites []uint16
}

// Enabled reports whether the listener has a certificate to serve.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

// rawTLS is the schema of the tls block.
type rawTLS struct {
	Defaults    *rawTLSConfig `hcl:"defaults,block"`
	InternalRPC *rawTLSConfig `hcl:"internal_rpc,block"`
	HTTPS       *rawTLSConfig `hcl:"https,block"`
}

// rawTLSConfig is the schema of the tls.defaults, tls.internal_rpc and
// tls.https blocks. verify_server_hostname is accepted in internal_rpc
// only; applyTLS refuses it elsewhere.
type rawTLSConfig struct {
	CAFile               *string `hcl:"ca_file"`
	CAPath               *string `hcl:"ca_path"`
	CertFile             *string `hcl:"cert_file"`
	KeyFile              *string `hcl:"key_file"`
	VerifyIncoming       *bool   `hcl:"verify_incoming"`
	VerifyOutgoing       *bool   `hcl:"verify_outgoing"`
	VerifyServerHostname *bool   `hcl:"verify_server_hostname"`
	MinVersion           *string `hcl:"tls_min_version"`
	CipherSuites         *string `hcl:"tls_cipher_suites"`
}

// tlsVersions are the values of tls_min_version, Consul's names.
var tlsVersions = map[string]uint16{
	"TLSv1_2": tls.VersionTLS12,
	"TLSv1_3": tls.VersionTLS13,
}

// defaultTLSConfig is the TLS configuration of a listener before any file.
func defaultTLSConfig() TLSConfig {
	return TLSConfig{MinVersion: tls.VersionTLS12}
}

// applyTLS merges one file's tls block into the three layers of b.
func (b *builder) applyTLS(f *file, r *rawTLS) (errs []error) {
	layers := []struct {
		name string
		raw  *rawTLSConfig
		dst  *TLSConfig
	}{
		{"defaults", r.Defaults, &b.tlsDefaults},
		{"internal_rpc", r.InternalRPC, &b.cfg.TLS.InternalRPC},
		{"https", r.HTTPS, &b.cfg.TLS.HTTPS},
	}
	for _, l := range layers {
		raw, dst, p := l.raw, l.dst, "tls."+l.name+"."
		if raw == nil {
			continue
		}
		fromFile(b, f, p+"ca_file", raw.CAFile, &dst.CAFile)
		fromFile(b, f, p+"ca_path", raw.CAPath, &dst.CAPath)
		fromFile(b, f, p+"cert_file", raw.CertFile, &dst.CertFile)
		fromFile(b, f, p+"key_file", raw.KeyFile, &dst.KeyFile)
		fromFile(b, f, p+"verify_incoming", raw.VerifyIncoming, &dst.VerifyIncoming)
		fromFile(b, f, p+"verify_outgoing", raw.VerifyOutgoing, &dst.VerifyOutgoing)
		if raw.VerifyServerHostname != nil {
			if l.name != "internal_rpc" {
				errs = append(errs, f.origin(p+"verify_server_hostname").error(false, "Invalid "+p+"verify_server_hostname",
					"verify_server_hostname applies to the server port only; set it in tls.internal_rpc."))
			} else {
				fromFile(b, f, p+"verify_server_hostname", raw.VerifyServerHostname, &dst.VerifyServerHostname)
			}
		}
		if raw.MinVersion != nil {
			v, problem := parseTLSVersion(*raw.MinVersion)
			if problem != "" {
				errs = append(errs, f.origin(p+"tls_min_version").error(true, "Invalid "+p+"tls_min_version", problem))
			} else {
				fromFile(b, f, p+"tls_min_version", &v, &dst.MinVersion)
			}
		}
		if raw.CipherSuites != nil {
			ids, problem := parseCipherSuites(*raw.CipherSuites)
			if problem != "" {
				errs = append(errs, f.origin(p+"tls_cipher_suites").error(true, "Invalid "+p+"tls_cipher_suites", problem))
			} else {
				fromFile(b, f, p+"tls_cipher_suites", &ids, &dst.CipherSuites)
			}
		}
	}
	return errs
}

// resolveTLS fills in each key a listener's block left out with the value
// of tls.defaults, and records that the value comes from there, so that a
// problem is reported where the value was written.
func (b *builder) resolveTLS() {
	for _, proto := range []struct {
		name string
		dst  *TLSConfig
	}{{"internal_rpc", &b.cfg.TLS.InternalRPC}, {"https", &b.cfg.TLS.HTTPS}} {
		d, dst := b.tlsDefaults, proto.dst
		inherit := func(key string, copyValue func()) {
			if _, set := b.origins["tls."+proto.name+"."+key]; set {
				return
			}
			copyValue()
			if o, ok := b.origins["tls.defaults."+key]; ok {
				b.tlsInherited["tls."+proto.name+"."+key] = "tls.defaults." + key
				b.origins["tls."+proto.name+"."+key] = o
			}
		}
		inherit("ca_file", func() { dst.CAFile = d.CAFile })
		inherit("ca_path", func() { dst.CAPath = d.CAPath })
		inherit("cert_file", func() { dst.CertFile = d.CertFile })
		inherit("key_file", func() { dst.KeyFile = d.KeyFile })
		inherit("verify_incoming", func() { dst.VerifyIncoming = d.VerifyIncoming })
		inherit("verify_outgoing", func() { dst.VerifyOutgoing = d.VerifyOutgoing })
		inherit("tls_min_version", func() { dst.MinVersion = d.MinVersion })
		inherit("tls_cipher_suites", func() { dst.CipherSuites = slices.Clone(d.CipherSuites) })
	}
}

// parseTLSVersion parses a tls_min_version value. It returns a
// description of the problem, or "".
func parseTLSVersion(s string) (uint16, string) {
	if v, ok := tlsVersions[s]; ok {
		return v, ""
	}
	switch s {
	case "TLSv1_0", "TLSv1_1", "tls10", "tls11":
		return 0, fmt.Sprintf("TLS 1.0 and 1.1 are deprecated (RFC 8996) and refused; use \"TLSv1_2\" or \"TLSv1_3\", got %s.", quote(s))
	}
	return 0, fmt.Sprintf("tls_min_version must be \"TLSv1_2\" or \"TLSv1_3\", got %s.", quote(s))
}

// parseCipherSuites parses a tls_cipher_suites value: Go's names of TLS 1.2
// suites, separated by commas. It returns a description of the problem,
// or "".
func parseCipherSuites(s string) ([]uint16, string) {
	var ids []uint16
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, "tls_cipher_suites has an empty name; give Go's names separated by commas, such as \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\"."
		}
		id, problem := cipherSuite(name)
		if problem != "" {
			return nil, problem
		}
		ids = append(ids, id)
	}
	return ids, ""
}

// cipherSuite returns the ID of the TLS 1.2 cipher suite Go names name, or
// a description of the problem.
func cipherSuite(name string) (uint16, string) {
	for _, cs := range tls.CipherSuites() {
		if cs.Name != name {
			continue
		}
		if !slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			return 0, fmt.Sprintf("cipher suite %s is a TLS 1.3 suite, and TLS 1.3 suites are not configurable; leave it out.", name)
		}
		return cs.ID, ""
	}
	for _, cs := range tls.InsecureCipherSuites() {
		if cs.Name == name {
			return 0, fmt.Sprintf("cipher suite %s is insecure and refused.", name)
		}
	}
	return 0, fmt.Sprintf("unknown cipher suite %s; use Go's names, such as \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\".", quote(name))
}
