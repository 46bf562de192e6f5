package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEncrypt loads the gossip encryption keys: the key decoded, the
// verify settings default to true, and each can be turned off.
func TestEncrypt(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	b64 := base64.StdEncoding.EncodeToString(key)
	path := filepath.Join(t.TempDir(), "client.hcl")
	src := fmt.Sprintf("node_name = \"a\"\nencrypt = %q\nencrypt_verify_incoming = false\ndisable_keyring_file = true\n", b64)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Load(LoadOptions{Paths: []string{path}})
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	c := res.Config
	want := []string{path + ":3:1: Gossip not fully encrypted; encrypt_verify_incoming = false: this agent accepts plaintext gossip, so an agent without the key can still join. Set it back to true once every agent has the key (see the rolling restarts in website/security.md)."}
	if fmt.Sprint(res.Warnings) != fmt.Sprint(want) {
		t.Errorf("Load() warnings = %q, want %q", res.Warnings, want)
	}
	if !bytes.Equal(c.Encrypt, key) {
		t.Errorf("Encrypt = %x, want %x", []byte(c.Encrypt), key)
	}
	if c.EncryptVerifyIncoming || !c.EncryptVerifyOutgoing || !c.DisableKeyringFile {
		t.Errorf("EncryptVerifyIncoming, EncryptVerifyOutgoing, DisableKeyringFile = %v, %v, %v, want false, true, true",
			c.EncryptVerifyIncoming, c.EncryptVerifyOutgoing, c.DisableKeyringFile)
	}
	// The key never shows when the Config is printed.
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(verb, *c); strings.Contains(out, b64) || strings.Contains(out, fmt.Sprintf("%v", key)) {
			t.Errorf("Sprintf(%q, config) shows the key: %s", verb, out)
		}
	}
	if d := Default(); !d.EncryptVerifyIncoming || !d.EncryptVerifyOutgoing || d.Encrypt != nil {
		t.Errorf("Default() encryption = %v, %v, %v, want true, true, no key", d.EncryptVerifyIncoming, d.EncryptVerifyOutgoing, d.Encrypt)
	}
}

// TestEncryptErrors checks that a bad encrypt is reported at its value
// with what is wrong, and never repeats the value.
func TestEncryptErrors(t *testing.T) {
	tests := []struct {
		name, file, src, value, want string
	}{
		{
			name:  "not base64",
			file:  "server.hcl",
			src:   "node_name = \"a\"\nencrypt   = \"not!base64@@secretvalue\"\n",
			value: "not!base64@@secretvalue",
			want:  `server.hcl:2:13: Invalid encrypt; encrypt must be a 16, 24 or 32-byte key in base64, as conclave keygen prints it; the value is not standard base64 with padding (23 characters).`,
		},
		{
			name:  "wrong size",
			file:  "server.hcl",
			src:   "node_name = \"a\"\n  encrypt = \"c2VjcmV0c2VjcmV0c2Vj\"\n",
			value: "c2VjcmV0c2VjcmV0c2Vj",
			want:  `server.hcl:2:13: Invalid encrypt; encrypt must be a 16, 24 or 32-byte key in base64, as conclave keygen prints it; the value decodes to 15 bytes.`,
		},
		{
			name:  "JSON, unpadded",
			file:  "server.json",
			src:   "{\n  \"encrypt\": \"pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s\"\n}\n",
			value: "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s",
			want:  `server.json:2:14: Invalid encrypt; encrypt must be a 16, 24 or 32-byte key in base64, as conclave keygen prints it; the value is not standard base64 with padding (43 characters).`,
		},
		{
			name:  "not a string",
			file:  "server.hcl",
			src:   "encrypt = [\"pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=\"]\n",
			value: "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=",
			want:  `server.hcl:1:11: Incorrect attribute value type; Inappropriate value for attribute "encrypt": string required, but have tuple.`,
		},
		{
			name: "verify not a bool",
			file: "server.hcl",
			src:  "encrypt_verify_outgoing = \"sometimes\"\n",
			want: `server.hcl:1:27: Incorrect attribute value type; Inappropriate value for attribute "encrypt_verify_outgoing": a bool is required.`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(path, []byte(tc.src), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(LoadOptions{Paths: []string{path}})
			if err == nil {
				t.Fatalf("Load() error = nil, want %q", tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load() error = %#v, want a *Error", err)
			}
			ce.Filename = filepath.Base(ce.Filename)
			if got := ce.Error(); got != tc.want {
				t.Errorf("Load() first error =\n%s\nwant\n%s", got, tc.want)
			}
			if tc.value != "" && strings.Contains(err.Error(), tc.value) {
				t.Errorf("Load() error repeats the key: %v", err)
			}
		})
	}
}
