package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// consulVerdict is what the loader does with a Consul setting that Conclave
// does not implement.
type consulVerdict int

const (
	// consulIgnore is a warning: Conclave ignores the setting, and that
	// changes nothing Conclave does.
	consulIgnore consulVerdict = iota
	// consulRefuse is an error: ignoring the setting would make Conclave
	// do something other than what it asks.
	consulRefuse
	// consulNotYet is an error for a setting Conclave plans to implement.
	consulNotYet
)

// consulSetting is one row of the table of Consul settings.
type consulSetting struct {
	key     string // dotted: "ui_config", "ports.grpc"
	verdict consulVerdict
	reason  string // one sentence, also the table's Reason column
}

// consulSettings are Consul's configuration keys (agent/config/config.go's
// Config, with its deprecated keys and the nested keys of the blocks
// Conclave has) that Conclave does not implement, sorted by key.
// website/configuration.md shows the same table; TestConsulSettingsDocumented
// keeps the two equal.
//
// The raft_logstore and raft_boltdb keys are left out: Conclave implements
// raft_logstore itself.
var consulSettings = []consulSetting{
	{"acl", consulNotYet, "Without ACLs every request would be allowed, which is not what an acl block asks for."},
	{"acl_agent_master_token", consulNotYet, "A legacy ACL key; see acl."},
	{"acl_agent_token", consulNotYet, "A legacy ACL key; see acl."},
	{"acl_datacenter", consulNotYet, "A legacy ACL key that turns ACLs on; see acl."},
	{"acl_default_policy", consulNotYet, "A legacy ACL key; see acl."},
	{"acl_down_policy", consulNotYet, "A legacy ACL key; see acl."},
	{"acl_enable_key_list_policy", consulNotYet, "A legacy ACL key; see acl."},
	{"acl_master_token", consulNotYet, "A legacy ACL key; see acl."},
	{"acl_replication_token", consulNotYet, "A legacy ACL key; see acl."},
	{"acl_token", consulNotYet, "A legacy ACL key; see acl."},
	{"acl_ttl", consulNotYet, "A legacy ACL key; see acl."},
	{"addresses", consulIgnore, "Conclave has no DNS or gRPC listener; its HTTP API binds to client_addr."},
	{"addresses.dns", consulIgnore, "Conclave has no DNS interface."},
	{"addresses.grpc", consulIgnore, "Conclave has no gRPC listener."},
	{"addresses.grpc_tls", consulIgnore, "Conclave has no gRPC listener."},
	{"addresses.http", consulRefuse, "The HTTP API would bind to client_addr instead; set client_addr to this address."},
	{"addresses.https", consulRefuse, "The HTTPS API would bind to client_addr instead; set client_addr to this address."},
	{"advertise_addr_ipv4", consulRefuse, "Other nodes would be told a different address; set advertise_addr instead."},
	{"advertise_addr_ipv6", consulRefuse, "Other nodes would be told a different address; set advertise_addr instead."},
	{"advertise_addr_wan", consulIgnore, "Conclave has no WAN gossip pool."},
	{"advertise_addr_wan_ipv4", consulIgnore, "Conclave has no WAN gossip pool."},
	{"advertise_addr_wan_ipv6", consulIgnore, "Conclave has no WAN gossip pool."},
	{"advertise_reconnect_timeout", consulRefuse, "Failed members would be reaped on Conclave's schedule, not this one."},
	{"ae_interval", consulIgnore, "Conclave has no anti-entropy of a catalog."},
	{"alt_domain", consulIgnore, "Conclave has no DNS interface."},
	{"audit", consulRefuse, "Requests would not be audited as this asks."},
	{"auto_config", consulRefuse, "The agent would not fetch the configuration, tokens and gossip key this asks for."},
	{"auto_encrypt", consulRefuse, "The agent would run without the TLS certificates this asks for."},
	{"auto_reload_config", consulIgnore, "Conclave reloads its configuration on SIGHUP only."},
	{"autopilot", consulRefuse, "Conclave's autopilot settings are fixed, so these values would not apply."},
	{"build_date", consulIgnore, "An internal Consul value."},
	{"ca_file", consulRefuse, "A legacy TLS key that Conclave does not read; set tls.defaults.ca_file instead."},
	{"ca_path", consulRefuse, "A legacy TLS key that Conclave does not read; set tls.defaults.ca_path instead."},
	{"cache", consulIgnore, "Conclave has no agent cache."},
	{"cert_file", consulRefuse, "A legacy TLS key that Conclave does not read; set tls.defaults.cert_file instead."},
	{"check", consulIgnore, "Conclave has no health checks."},
	{"check_deregister_interval_min", consulIgnore, "Conclave has no health checks."},
	{"check_output_max_size", consulIgnore, "Conclave has no health checks."},
	{"check_reap_interval", consulIgnore, "Conclave has no health checks."},
	{"check_update_interval", consulIgnore, "Conclave has no health checks."},
	{"checks", consulIgnore, "Conclave has no health checks."},
	{"cloud", consulIgnore, "Conclave does not link to HCP."},
	{"config_entries", consulIgnore, "Conclave has no service mesh to configure."},
	{"connect", consulIgnore, "Conclave has no service catalog, so there is no service for Connect to secure."},
	{"consul", consulIgnore, "Internal Consul tuning; Conclave derives its Raft timing from performance.raft_multiplier."},
	{"default_query_time", consulIgnore, "Conclave holds a blocking query 5 minutes by default, as Consul does."},
	{"disable_anonymous_signature", consulIgnore, "Conclave never checks for updates."},
	{"disable_coordinates", consulIgnore, "Conclave has no network coordinates."},
	{"disable_host_node_id", consulIgnore, "Conclave never derives the node ID from the host; it keeps a random one in data_dir."},
	{"disable_http_unprintable_char_filter", consulIgnore, "Conclave's HTTP API has no such filter to turn off."},
	{"disable_remote_exec", consulIgnore, "Conclave has no remote exec."},
	{"disable_update_check", consulIgnore, "Conclave never checks for updates."},
	{"discard_check_output", consulIgnore, "Conclave has no health checks."},
	{"discovery_max_stale", consulIgnore, "Conclave has no DNS interface."},
	{"dns_config", consulIgnore, "Conclave has no DNS interface."},
	{"domain", consulIgnore, "Conclave has no DNS interface."},
	{"enable_acl_replication", consulNotYet, "A legacy ACL key; see acl."},
	{"enable_agent_tls_for_checks", consulIgnore, "Conclave has no health checks."},
	{"enable_central_service_config", consulIgnore, "Conclave has no service catalog."},
	{"enable_local_script_checks", consulIgnore, "Conclave has no health checks, so it runs no scripts."},
	{"enable_script_checks", consulIgnore, "Conclave has no health checks, so it runs no scripts."},
	{"enable_syslog", consulIgnore, "Logs go to stdout; let the service manager forward them."},
	{"gossip_lan", consulIgnore, "Conclave tunes gossip with its own timing profile."},
	{"gossip_wan", consulIgnore, "Conclave has no WAN gossip pool."},
	{"http_config", consulIgnore, "Conclave's HTTP API has no such options."},
	{"http_config.allow_write_http_from", consulRefuse, "Writes would be allowed from every address."},
	{"http_config.response_headers", consulIgnore, "Conclave's answers would lack the extra headers."},
	{"key_file", consulRefuse, "A legacy TLS key that Conclave does not read; set tls.defaults.key_file instead."},
	{"license_path", consulIgnore, "Conclave needs no license."},
	{"limits.https_handshake_timeout", consulIgnore, "Conclave bounds the TLS handshake by its 10 s header timeout."},
	{"limits.request_limits", consulRefuse, "Conclave has no request rate limiter; requests would not be limited as this asks."},
	{"limits.rpc_client_timeout", consulIgnore, "Conclave's forwarded requests time out after 30 s."},
	{"limits.rpc_handshake_timeout", consulIgnore, "The server port gives a connection 5 s to say which protocol it speaks."},
	{"limits.rpc_max_burst", consulRefuse, "Conclave has no rate limit on forwarded requests; they would not be limited as this asks."},
	{"limits.rpc_max_conns_per_client", consulRefuse, "The server port does not limit connections per client; they would not be limited as this asks."},
	{"limits.rpc_rate", consulRefuse, "Conclave has no rate limit on forwarded requests; they would not be limited as this asks."},
	{"locality", consulIgnore, "Conclave has no locality-aware routing."},
	{"log_file", consulIgnore, "Logs go to stdout; let the service manager write them to a file."},
	{"log_rotate_bytes", consulIgnore, "Logs go to stdout; see log_file."},
	{"log_rotate_duration", consulIgnore, "Logs go to stdout; see log_file."},
	{"log_rotate_max_files", consulIgnore, "Logs go to stdout; see log_file."},
	{"log_sublevels", consulIgnore, "Conclave has one log level for all subsystems."},
	{"max_query_time", consulIgnore, "Conclave caps a blocking query at 10 minutes, as Consul does."},
	{"node_id", consulRefuse, "Conclave would use the ID it keeps in data_dir, not this one."},
	{"node_meta", consulIgnore, "Conclave has no node metadata."},
	{"partition", consulRefuse, "Conclave has no admin partitions; the agent would join the only one."},
	{"peering", consulIgnore, "Conclave has no cluster peering."},
	{"performance.grpc_keepalive_interval", consulIgnore, "Conclave has no gRPC listener."},
	{"performance.grpc_keepalive_timeout", consulIgnore, "Conclave has no gRPC listener."},
	{"performance.leave_drain_time", consulIgnore, "Conclave has no client connections to drain on leave."},
	{"performance.rpc_hold_timeout", consulIgnore, "Conclave does not hold requests while a leader is elected."},
	{"pid_file", consulIgnore, "Let the service manager track the process."},
	{"ports.dns", consulIgnore, "Conclave has no DNS interface."},
	{"ports.expose_max_port", consulIgnore, "Conclave has no service mesh."},
	{"ports.expose_min_port", consulIgnore, "Conclave has no service mesh."},
	{"ports.grpc", consulIgnore, "Conclave has no gRPC listener."},
	{"ports.grpc_tls", consulIgnore, "Conclave has no gRPC listener."},
	{"ports.proxy_max_port", consulIgnore, "Conclave has no service mesh."},
	{"ports.proxy_min_port", consulIgnore, "Conclave has no service mesh."},
	{"ports.serf_wan", consulIgnore, "Conclave has no WAN gossip pool."},
	{"ports.sidecar_max_port", consulIgnore, "Conclave has no service mesh."},
	{"ports.sidecar_min_port", consulIgnore, "Conclave has no service mesh."},
	{"primary_datacenter", consulRefuse, "Conclave has no federation; every datacenter would act as its own primary."},
	{"primary_gateways", consulRefuse, "Conclave has no federation, so the gateways would never be used."},
	{"primary_gateways_interval", consulIgnore, "Conclave has no federation."},
	{"protocol", consulIgnore, "Conclave has a single RPC protocol."},
	{"raft_protocol", consulIgnore, "Conclave always speaks Raft protocol 3."},
	{"raft_snapshot_interval", consulIgnore, "Conclave uses its own Raft snapshot schedule."},
	{"raft_snapshot_threshold", consulIgnore, "Conclave uses its own Raft snapshot schedule."},
	{"raft_trailing_logs", consulIgnore, "Conclave uses its own Raft snapshot schedule."},
	{"read_replica", consulRefuse, "The server would become a voter, which changes the quorum."},
	{"reconnect_timeout", consulRefuse, "Failed members would be reaped on Conclave's schedule, not this one."},
	{"reconnect_timeout_wan", consulIgnore, "Conclave has no WAN gossip pool."},
	{"recursors", consulIgnore, "Conclave has no DNS interface."},
	{"rejoin_after_leave", consulRefuse, "Conclave would not rejoin as this asks after a leave."},
	{"reporting", consulIgnore, "Conclave needs no license reporting."},
	{"retry_interval_wan", consulIgnore, "Conclave has no WAN gossip pool."},
	{"retry_join_wan", consulRefuse, "Conclave has no WAN federation, so these servers would never be joined."},
	{"retry_max_wan", consulIgnore, "Conclave has no WAN gossip pool."},
	{"revision", consulIgnore, "An internal Consul value."},
	{"rpc", consulIgnore, "Conclave has no such RPC options."},
	{"segment", consulRefuse, "Conclave has no network segments; the agent would join the only pool."},
	{"segment_limit", consulIgnore, "An internal Consul value."},
	{"segment_name_limit", consulIgnore, "An internal Consul value."},
	{"segments", consulRefuse, "Conclave has no network segments; the servers would not listen on them."},
	{"serf_lan", consulRefuse, "Gossip would bind to bind_addr instead; set bind_addr to this address."},
	{"serf_lan_allowed_cidrs", consulRefuse, "Gossip would be accepted from every address."},
	{"serf_wan", consulIgnore, "Conclave has no WAN gossip pool."},
	{"serf_wan_allowed_cidrs", consulIgnore, "Conclave has no WAN gossip pool."},
	{"server_name", consulRefuse, "Conclave checks server certificates for server.<datacenter>.conclave (tls.internal_rpc.verify_server_hostname) and would not use this name."},
	{"service", consulIgnore, "Conclave has no service catalog."},
	{"services", consulIgnore, "Conclave has no service catalog."},
	{"session_ttl_min", consulIgnore, "Conclave has no sessions."},
	{"snapshot_agent", consulIgnore, "Consul ignores it too: it configures the separate snapshot agent."},
	{"start_join", consulRefuse, "The agent would not join these addresses; use retry_join."},
	{"start_join_wan", consulRefuse, "Conclave has no WAN federation, so these servers would never be joined."},
	{"sync_coordinate_interval_min", consulIgnore, "Conclave has no network coordinates."},
	{"sync_coordinate_rate_target", consulIgnore, "Conclave has no network coordinates."},
	{"syslog_facility", consulIgnore, "Logs go to stdout; see enable_syslog."},
	{"tagged_addresses", consulIgnore, "Conclave has no service catalog."},
	{"telemetry", consulIgnore, "Conclave sends no metrics to external sinks."},
	{"tls.grpc", consulIgnore, "Conclave has no gRPC listener."},
	{"tls_cipher_suites", consulRefuse, "A legacy TLS key that Conclave does not read; set tls.defaults.tls_cipher_suites instead."},
	{"tls_min_version", consulRefuse, "A legacy TLS key that Conclave does not read; set tls.defaults.tls_min_version instead."},
	{"tls_prefer_server_cipher_suites", consulIgnore, "Consul ignores it too."},
	{"translate_wan_addrs", consulRefuse, "Conclave has no WAN addresses, so answers would carry other addresses than this asks."},
	{"ui", consulIgnore, "Conclave has no web UI."},
	{"ui_config", consulIgnore, "Conclave has no web UI."},
	{"ui_content_path", consulIgnore, "Conclave has no web UI."},
	{"ui_dir", consulIgnore, "Conclave has no web UI."},
	{"unix_sockets", consulIgnore, "Conclave has no Unix socket listener."},
	{"use_streaming_backend", consulIgnore, "Conclave has no streaming backend."},
	{"verify_incoming", consulRefuse, "A legacy TLS key that Conclave does not read; set tls.defaults.verify_incoming instead."},
	{"verify_incoming_https", consulRefuse, "A legacy TLS key that Conclave does not read; set tls.https.verify_incoming instead."},
	{"verify_incoming_rpc", consulRefuse, "A legacy TLS key that Conclave does not read; set tls.internal_rpc.verify_incoming instead."},
	{"verify_outgoing", consulRefuse, "A legacy TLS key that Conclave does not read; set tls.defaults.verify_outgoing instead."},
	{"verify_server_hostname", consulRefuse, "A legacy TLS key that Conclave does not read; set tls.internal_rpc.verify_server_hostname instead."},
	{"version", consulIgnore, "An internal Consul value."},
	{"version_metadata", consulIgnore, "An internal Consul value."},
	{"version_prerelease", consulIgnore, "An internal Consul value."},
	{"watches", consulRefuse, "Conclave runs no watch handlers, so they would never fire; run consul watch against it instead."},
	{"xds", consulIgnore, "Conclave has no service mesh."},
}

// lookupConsul returns the row of consulSettings for key.
func lookupConsul(key string) (consulSetting, bool) {
	for _, s := range consulSettings {
		if s.key == key {
			return s, true
		}
	}
	return consulSetting{}, false
}

// hasConsulChildren reports whether some rows are about keys inside key,
// so that the loader looks inside the block: addresses.http is an error
// while addresses.grpc is a warning.
func hasConsulChildren(key string) bool {
	for _, s := range consulSettings {
		if strings.HasPrefix(s.key, key+".") {
			return true
		}
	}
	return false
}

// diagnostic returns what the loader reports for the setting, at subject.
func (s consulSetting) diagnostic(subject hcl.Range) *hcl.Diagnostic {
	d := &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Consul setting %q is not supported by Conclave", s.key),
		Subject:  subject.Ptr(),
	}
	switch s.verdict {
	case consulIgnore:
		d.Severity = hcl.DiagWarning
		d.Detail = s.reason + " The setting is ignored."
	case consulRefuse:
		d.Detail = s.reason + " Remove the setting."
	case consulNotYet:
		d.Summary = fmt.Sprintf("Consul setting %q is not supported by this Conclave version yet", s.key)
		d.Detail = s.reason + " Remove the setting until Conclave supports it."
	}
	return d
}

// keyName is a key of a configuration file and where its name is.
type keyName struct {
	key   string // dotted, as in consulSettings
	rng   hcl.Range
	value hcl.Expression // nil for a block
	body  hcl.Body       // nil for an attribute
}

// consulDiagnostics replaces, in the diagnostics of decoding body, each
// "unknown key" error about one of consulSettings by what that row says:
// a warning that the setting is ignored, or an error that says why it
// cannot be. It recognises an unknown key by position: gohcl reports it at
// the key's name, and a key gohcl does not know can have no other error.
func consulDiagnostics(body hcl.Body, diags hcl.Diagnostics) hcl.Diagnostics {
	names := make(map[hcl.Pos]keyName)
	for _, k := range keyNames(body, "") {
		names[k.rng.Start] = k
	}
	for _, blk := range knownBlocks(body) {
		for _, k := range keyNames(blk.Body, blk.Type+".") {
			names[k.rng.Start] = k
		}
	}

	out := make(hcl.Diagnostics, 0, len(diags))
	for _, d := range diags {
		var (
			k     keyName
			found bool
		)
		if d.Severity == hcl.DiagError && d.Subject != nil {
			k, found = names[d.Subject.Start]
			found = found && k.rng.Filename == d.Subject.Filename
		}
		s, known := lookupConsul(k.key)
		if !found || !known {
			out = append(out, d)
			continue
		}
		if !hasConsulChildren(k.key) {
			out = append(out, s.diagnostic(k.rng))
			continue
		}
		inner := innerKeys(k)
		if len(inner) == 0 {
			out = append(out, s.diagnostic(k.rng))
		}
		for _, ik := range inner {
			is, ok := lookupConsul(ik.key)
			if !ok {
				is = s
			}
			out = append(out, is.diagnostic(ik.rng))
		}
	}
	return out
}

// knownBlocks returns the blocks of body that Conclave's schema has, such
// as ports, whose keys may include Consul keys such as ports.grpc.
func knownBlocks(body hcl.Body) []*hcl.Block {
	schema := &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "ports"}, {Type: "performance"}, {Type: "tls"}, {Type: "limits"}}}
	content, _, _ := body.PartialContent(schema)
	if content == nil {
		return nil
	}
	return content.Blocks
}

// keyNames returns the keys set directly in body, prefixed by prefix, that
// may be Consul settings. Diagnostics are ignored: decoding has reported
// them already.
func keyNames(body hcl.Body, prefix string) []keyName {
	var keys []keyName
	if sb, ok := body.(*hclsyntax.Body); ok {
		for name, a := range sb.Attributes {
			keys = append(keys, keyName{key: prefix + name, rng: a.NameRange, value: a.Expr})
		}
		for _, b := range sb.Blocks {
			keys = append(keys, keyName{key: prefix + b.Type, rng: b.TypeRange, body: b.Body})
		}
		return keys
	}
	// JSON: asking for the keys by name also finds them in a file that is
	// an array of objects, which JustAttributes refuses.
	schema := &hcl.BodySchema{}
	for _, s := range consulSettings {
		name, ok := strings.CutPrefix(s.key, prefix)
		if ok && !strings.Contains(name, ".") {
			schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: name})
		}
	}
	content, _, _ := body.PartialContent(schema)
	if content == nil {
		return nil
	}
	for name, a := range content.Attributes {
		keys = append(keys, keyName{key: prefix + name, rng: a.NameRange, value: a.Expr})
	}
	return keys
}

// innerKeys returns the keys set inside k, a block or an object, prefixed
// by k's key.
func innerKeys(k keyName) []keyName {
	if k.body != nil {
		return keyNames(k.body, k.key+".")
	}
	var keys []keyName
	pairs, diags := hcl.ExprMap(k.value)
	if diags.HasErrors() {
		return nil
	}
	for _, p := range pairs {
		name := hcl.ExprAsKeyword(p.Key)
		if name == "" && gohcl.DecodeExpression(p.Key, nil, &name).HasErrors() {
			continue
		}
		keys = append(keys, keyName{key: k.key + "." + name, rng: p.Key.Range(), value: p.Value})
	}
	return keys
}
