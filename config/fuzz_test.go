package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load, as HCL and as JSON. Load must not
// panic, and every error must say something.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		"",
		"server = true\nbootstrap_expect = 3\n",
		"node_name = \"n1\"\ndatacenter = \"dc1\"\ndata_dir = \"d\"\nserver = true\nbootstrap = true\n",
		"bind_addr = \"{{ GetPrivateIP }}\"\nadvertise_addr = \"{{ GetInterfaceIP \\\"eth0\\\" }}\"\nclient_addr = \"0.0.0.0\"\n",
		"ports {\n  http = 0\n  serf_lan = 8301\n  server = 8300\n}\nperformance {\n  raft_multiplier = 10\n}\n",
		"retry_join = [\"a\", \"provider=aws tag_key=k tag_value=v\"]\nretry_interval = \"1m30s\"\nretry_max = 3\n",
		"leave_on_terminate = true\nskip_leave_on_interrupt = false\nlog_level = \"DEBUG\"\nlog_json = true\n",
		"server = 3\nbootstrap_expec = 3\nretry_join = \"a\"\nports { htp = 1 }\n",
		"bootstrap_expect = 2.5\nports = { http = 1 }\nnode_name = \"${x}\"\nretry_interval = \"5 parsecs\"\n",
		"ports {}\nports {}\nbootstrap_expect = -1\nserver = null\n",
		"retry_join = [\"a\", null, [\"b\"]]\nlog_level = 1e400\n",
		"x = <<EOT\nhello\nEOT\n%{ if true }",
		`{"server": true, "bootstrap_expect": 3, "ports": {"http": 0}, "performance": {"raft_multiplier": 1}}`,
		`{"server": 3, "bootstrap_expec": 3, "retry_join": "a", "ports": {"htp": 1}}`,
		`[{"server": true}, {"data_dir": "d"}, {"ports": [{"http": 1}, {"http": 2}]}]`,
		`{"server": null, "retry_join": null, "ports": null, "//": "comment"}`,
		`{"server": true,}`,
		`{"bootstrap_expect": 1e100, "retry_max": -1e-100, "node_name": "${a.b[0]}"}`,
		"\xff\xfe\x00",
		"ui_config {\n  enabled = true\n}\nports {\n  grpc = 8502\n  https = 8501\n}\naddresses {\n  http = \"0.0.0.0\"\n  grpc = \"127.0.0.1\"\n}\nacl {}\n",
		"addresses = { http = \"a\", (\"dns\") = \"b\", 1 = 2 }\ntelemetry = 3\nui = true\n",
		`{"addresses": {"http": "0.0.0.0", "dns": null}, "ports": {"grpc": 8502}, "tls": {}, "connect": [1]}`,
		"ports {\n  http = -1\n  https = 8501\n}\ntls {\n  defaults {\n    ca_file = \"ca.pem\"\n    cert_file = \"c.pem\"\n    key_file = \"k.pem\"\n    verify_incoming = true\n    verify_outgoing = true\n    tls_min_version = \"TLSv1_3\"\n  }\n  internal_rpc {\n    verify_server_hostname = true\n  }\n  https {\n    verify_incoming = false\n  }\n  grpc {}\n}\n",
		"tls {\n  defaults {\n    tls_cipher_suites = \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,,TLS_RSA_WITH_RC4_128_SHA\"\n    ca_path = \"/\"\n  }\n  https {\n    verify_server_hostname = true\n    tls_min_version = \"TLSv1_0\"\n  }\n}\ntls {}\nverify_incoming = true\n",
		`{"tls": {"defaults": {"verify_outgoing": "yes"}, "internal_rpc": [{"ca_file": null}], "https": {"tls_cipher_suites": ["a"]}}, "ports": {"https": -2}}`,
	} {
		f.Add(seed)
	}
	old := privateIPTemplate
	privateIPTemplate = `{{ "192.0.2.10" }}`
	f.Cleanup(func() { privateIPTemplate = old })

	f.Fuzz(func(t *testing.T, src string) {
		dir := t.TempDir()
		// Flags override files: keep whatever data_dir the input names from
		// being created outside the test's directory.
		dataDir := filepath.Join(dir, "data")
		for _, name := range []string{"fuzz.hcl", "fuzz.json"} {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			res, err := Load(LoadOptions{Paths: []string{path}, Flags: &Flags{DataDir: &dataDir}})
			if err == nil {
				if res == nil || res.Config == nil {
					t.Fatalf("Load(%s) = %v, nil; want a Config", name, res)
				}
				continue
			}
			if err.Error() == "" {
				t.Fatalf("Load(%s) returned an error with an empty message", name)
			}
			errs := []error{err}
			if joined, ok := err.(interface{ Unwrap() []error }); ok {
				errs = joined.Unwrap()
			}
			for _, e := range errs {
				var ce *Error
				if !errors.As(e, &ce) || ce.Summary == "" {
					t.Fatalf("Load(%s) error %#v is not a *Error with a summary", name, e)
				}
			}
		}
	})
}
