// Package config turns configuration files, command-line flags and dev mode
// into one validated *Config.
//
// # Load order
//
// Load builds a Config in layers; each layer replaces, key by key, what the
// layers before it set:
//
//  1. Defaults: Default(), or Dev() when the -dev flag is given.
//  2. Files, in the order of LoadOptions.Paths. A directory contributes its
//     *.hcl and *.json files in lexical order, without descending into
//     subdirectories, as consul's -config-dir does.
//  3. Flags (see Flags and Flags.AddTo).
//
// Scalars are replaced. Lists are replaced too: a file or the -retry-join
// flags that set retry_join replace the whole list set before (Consul
// appends instead). Replacing keeps one rule for every key, lets a later
// file or the command line point an agent somewhere else, and lets
// "retry_join = []" clear the list. Blocks are not replaced as a whole:
// "ports { http = 0 }" changes the HTTP port and keeps the others. The
// tls block has one more layer, Consul's: tls.internal_rpc and tls.https
// each inherit from tls.defaults every key they leave out, once every
// source is applied.
//
// # File format
//
// A file whose name ends in ".json" is HCL's JSON syntax; any other file is
// native HCL2. Both have the same schema and use Consul's key names:
//
//	node_name        = "server-1"
//	datacenter       = "dc1"
//	data_dir         = "/var/lib/conclave"
//	server           = true
//	bootstrap_expect = 3
//	bind_addr        = "{{ GetPrivateIP }}"
//	client_addr      = "127.0.0.1"
//	retry_join       = ["10.0.0.1", "provider=aws tag_key=role tag_value=server"]
//	retry_interval   = "30s"
//	log_level        = "info"
//
//	ports {
//	  http     = 8500
//	  serf_lan = 8301
//	  server   = 8300
//	}
//
//	performance {
//	  raft_multiplier = 2
//	}
//
//	tls {
//	  defaults {
//	    ca_file   = "conclave-agent-ca.pem"
//	    cert_file = "dc1-server-conclave-0.pem"
//	    key_file  = "dc1-server-conclave-0-key.pem"
//	  }
//	  internal_rpc {
//	    verify_server_hostname = true
//	  }
//	}
//
//	raft_logstore {
//	  backend = "wal" # or "boltdb"; left out: the data_dir's, wal when new
//	  verification {
//	    enabled  = true
//	    interval = "60s"
//	  }
//	  wal {
//	    segment_size_mb = 64 # preallocated per segment file
//	  }
//	}
//
// Values are decoded into unexported raw structs whose fields are pointers,
// so that a key left out differs from a key set to its zero value; a key
// set to null counts as left out. HCL's usual conversions apply ("true" is a
// bool, "3" a number), but a string is not a list: retry_join = "a" is an
// error. Durations are strings such as "30s" or "1m30s".
//
// # Validation and errors
//
// Decoding reports syntax errors, unknown keys (with a suggestion when one
// is close), values of the wrong type, bad durations, an explicit
// bootstrap_expect below 1, and an encrypt that is not the base64 of a 16,
// 24 or 32-byte key (the error never repeats the value). When every file decodes, Load merges the layers
// and calls Validate, which checks the result as a whole: bootstrap settings
// on a client or used together, data_dir for servers, port ranges and
// collisions, names, log level, the Raft multiplier, raft_logstore (the
// backend's name, a positive verification interval, a segment size of 1 to
// 1024 MiB; whether the backend matches the data_dir is checked when the
// server opens it), and the tls block
// (its certificate, key and CA files are read and parsed, and its
// verify_* settings must have the CA and certificate they need). It also resolves the
// go-sockaddr templates in bind_addr, advertise_addr and client_addr, and
// creates data_dir if it is missing.
//
// Every problem is an *Error that says where the value came from: a file,
// line and column, or a flag. Load returns all of them joined with
// errors.Join, so the first line of the message is the first problem:
//
//	server.hcl:3:1: Unsupported argument; An argument named "bootstrap_expec" is not expected here. Did you mean "bootstrap_expect"?
//	client.hcl:2:1: Server-only setting; bootstrap_expect is only valid on servers, and this agent is a client; set server = true or remove bootstrap_expect.
//
// Settings that are valid but unwise, such as an even bootstrap_expect, are
// returned as LoadResult.Warnings for the caller to show.
//
// # Consul settings
//
// A file written for Consul loads as it is. Consul's keys that Conclave does
// not implement (the Consul settings table of website/configuration.md lists
// every one with its reason) are not reported as unknown keys but as what
// they are, at their file:line:column: a warning where ignoring them changes
// nothing Conclave does, an error where it would:
//
//	server.hcl:21:1: Consul setting "ui_config" is not supported by Conclave; Conclave has no web UI. The setting is ignored.
//	server.hcl:2:1: Consul setting "acl" is not supported by this Conclave version yet; Without ACLs every request would be allowed, which is not what an acl block asks for. Remove the setting until Conclave supports it.
package config
