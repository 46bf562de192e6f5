package config

import (
	"encoding/base64"
	"fmt"
)

// GossipKey is a gossip encryption key (encrypt), decoded. It prints and
// marshals as "[redacted]", so that a Config printed for debugging, or
// logged, never shows it.
type GossipKey []byte

// String returns "[redacted]", or "" when there is no key.
func (k GossipKey) String() string {
	if len(k) == 0 {
		return ""
	}
	return "[redacted]"
}

// GoString is String, for %#v.
func (k GossipKey) GoString() string { return k.String() }

// MarshalText is String, for JSON and other encoders.
func (k GossipKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// ParseGossipKey decodes the base64 of a gossip key and checks its size
// (16, 24 or 32 bytes, AES-128, -192 or -256), as Consul's encrypt does.
// Its error says what is wrong without repeating the key; gossipKeyRule
// says what is right.
func ParseGossipKey(s string) (GossipKey, error) {
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("the value is not standard base64 with padding (%d characters)", len(s))
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("the value decodes to %d bytes", n)
	}
	return GossipKey(key), nil
}

// gossipKeyRule is what a valid encrypt is, for error details.
const gossipKeyRule = "encrypt must be a 16, 24 or 32-byte key in base64, as conclave keygen prints it"

// checkEncrypt warns about gossip that still accepts or sends plaintext
// while there is a key: right during the rolling restarts that turn
// encryption on, unwise once they are over.
func (v *validator) checkEncrypt() {
	c := v.c
	if len(c.Encrypt) == 0 {
		return
	}
	for _, s := range []struct {
		key    string
		verify bool
		what   string
	}{
		{"encrypt_verify_incoming", c.EncryptVerifyIncoming, "accepts plaintext gossip, so an agent without the key can still join"},
		{"encrypt_verify_outgoing", c.EncryptVerifyOutgoing, "sends gossip in plaintext"},
	} {
		if !s.verify {
			v.warn(s.key, "Gossip not fully encrypted", fmt.Sprintf(
				"%s = false: this agent %s. Set it back to true once every agent has the key (see the rolling restarts in website/security.md).", s.key, s.what))
		}
	}
}
