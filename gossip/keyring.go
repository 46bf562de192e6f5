package gossip

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// KeyringFileName is the keyring's file in the Serf directory, Consul's
// data_dir/serf/local.keyring.
const KeyringFileName = "local.keyring"

// Errors of the keyring operations; match them with errors.Is.
var (
	// ErrEncryptionDisabled is returned by the keyring operations of a
	// pool that does not encrypt gossip: it has no keyring to list or
	// change.
	ErrEncryptionDisabled = errors.New("gossip encryption is not enabled")
	// ErrInvalidKey is wrapped by the error of a keyring operation given a
	// key that is not base64 of 16, 24 or 32 bytes.
	ErrInvalidKey = errors.New("invalid gossip key")
)

// Encryption configures gossip encryption, through memberlist's keyring.
// The zero value is no encryption.
type Encryption struct {
	// Key is the key set by encrypt: 16, 24 or 32 bytes (AES-128, -192 or
	// -256). It is the keyring's only, primary, key when there is no
	// keyring file yet. Nil: no key.
	Key []byte
	// KeyringFile is where the keyring is kept: Serf's KeyringFile, in
	// Consul's format (a JSON list of base64 keys, the primary first,
	// mode 0600). Serf rewrites it after every keyring change. When the
	// file exists it wins over Key, with a warning. Empty: the keyring
	// lives in memory only (dev mode, an agent without a data_dir, or
	// disable_keyring_file).
	KeyringFile string
	// AcceptPlaintext accepts gossip that is not encrypted
	// (encrypt_verify_incoming = false); SendPlaintext sends gossip
	// unencrypted (encrypt_verify_outgoing = false). Both are for turning
	// encryption on in a running cluster; both false by default.
	AcceptPlaintext, SendPlaintext bool
}

// ParseKey decodes a gossip key given in base64, as encrypt and the
// keyring operations take it, and checks its size. Its errors never
// contain the key.
func ParseKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("the key is not valid base64 (standard encoding, with padding)")
	}
	if err := memberlist.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("the key is %d bytes once decoded; a gossip key must be 16, 24 or 32 bytes", len(key))
	}
	return key, nil
}

// setupEncryption puts the keyring enc asks for into sc, creating the
// keyring file from enc.Key the first time.
func setupEncryption(sc *serf.Config, enc Encryption, logger hclog.Logger) error {
	mc := sc.MemberlistConfig
	mc.GossipVerifyIncoming = !enc.AcceptPlaintext
	mc.GossipVerifyOutgoing = !enc.SendPlaintext
	var keys [][]byte
	switch {
	case enc.KeyringFile == "":
		if len(enc.Key) > 0 {
			keys = [][]byte{enc.Key}
		}
	default:
		var err error
		keys, err = readKeyringFile(enc.KeyringFile)
		switch {
		case errors.Is(err, fs.ErrNotExist) && len(enc.Key) == 0:
			return nil
		case errors.Is(err, fs.ErrNotExist):
			if err := writeKeyringFile(enc.KeyringFile, enc.Key); err != nil {
				return err
			}
			keys = [][]byte{enc.Key}
		case err != nil:
			return err
		case len(enc.Key) > 0:
			// Consul's rule: after the first start the keyring, which
			// keyring operations change, is the truth; encrypt only seeds it.
			logger.Warn("loaded keyring file; the encrypt key is ignored (change keys with conclave keyring)",
				"file", enc.KeyringFile, "keyring_has_encrypt_key", slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, enc.Key) }))
		}
		sc.KeyringFile = enc.KeyringFile
	}
	if len(keys) == 0 {
		return nil
	}
	ring, err := memberlist.NewKeyring(keys, keys[0])
	if err != nil {
		return fmt.Errorf("build gossip keyring: %w", err)
	}
	mc.Keyring = ring
	return nil
}

// readKeyringFile reads a keyring file: a JSON list of base64 keys, the
// primary first. Its errors name the file and never contain a key.
func readKeyringFile(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read gossip keyring file: %w", err)
	}
	var encoded []string
	if err := json.Unmarshal(data, &encoded); err != nil {
		return nil, fmt.Errorf("gossip keyring file %s is damaged: it is not a JSON list of base64 keys; restore it from another agent's data_dir/serf, or remove it to start again from encrypt", path)
	}
	if len(encoded) == 0 {
		return nil, fmt.Errorf("gossip keyring file %s has no keys; restore it from another agent's data_dir/serf, or remove it to start again from encrypt", path)
	}
	keys := make([][]byte, len(encoded))
	for i, s := range encoded {
		k, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("gossip keyring file %s is damaged: in key %d of %d, %v; restore it from another agent's data_dir/serf", path, i+1, len(encoded), err)
		}
		keys[i] = k
	}
	return keys, nil
}

// writeKeyringFile creates the keyring file with key as its only key, as
// Consul does on the first start with encrypt: mode 0600, and never over
// an existing file.
func writeKeyringFile(path string, key []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create gossip keyring dir: %w", err)
	}
	data, err := json.Marshal([]string{base64.StdEncoding.EncodeToString(key)})
	if err != nil {
		return fmt.Errorf("encode gossip keyring: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create gossip keyring file: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// A partial file would stop the next start as damaged; without
		// one, the next start makes it again from encrypt.
		os.Remove(path)
		return fmt.Errorf("write gossip keyring file %s: %w", path, err)
	}
	return nil
}

// KeyringResponse is what the members of the pool answered to a keyring
// operation (Serf's KeyResponse).
type KeyringResponse struct {
	// Keys counts, for each key (base64), the members that have it;
	// PrimaryKeys counts the members that use it as their primary key.
	// Only a list fills them.
	Keys, PrimaryKeys map[string]int
	// Messages holds, by member name, the error a member reported.
	Messages map[string]string
	// NumNodes is the number of members asked, NumResp the number that
	// answered, NumErr the number that reported an error.
	NumNodes, NumResp, NumErr int
}

// EncryptionEnabled reports whether this member encrypts gossip.
func (p *Pool) EncryptionEnabled() bool { return p.serf.EncryptionEnabled() }

// ListKeys asks every member for the keys it has.
func (p *Pool) ListKeys() (KeyringResponse, error) {
	return p.keyOp("", false, func(km *serf.KeyManager, _ string) (*serf.KeyResponse, error) { return km.ListKeys() })
}

// InstallKey adds key (base64) to every member's keyring; messages can
// then be decrypted with it, but none is encrypted with it yet.
func (p *Pool) InstallKey(key string) (KeyringResponse, error) {
	return p.keyOp(key, true, (*serf.KeyManager).InstallKey)
}

// UseKey makes key (base64), already installed, every member's primary
// key: the one it encrypts with.
func (p *Pool) UseKey(key string) (KeyringResponse, error) {
	return p.keyOp(key, true, (*serf.KeyManager).UseKey)
}

// RemoveKey removes key (base64) from every member's keyring. A member
// refuses to remove its primary key.
func (p *Pool) RemoveKey(key string) (KeyringResponse, error) {
	return p.keyOp(key, true, (*serf.KeyManager).RemoveKey)
}

// keyOp runs one of Serf's key manager operations across the pool. When
// the operation takes a key (hasKey), it checks the key first, so that an invalid key is refused here with a
// reason rather than by every member. The error, when some members
// failed or did not answer, names them with their messages.
func (p *Pool) keyOp(key string, hasKey bool, op func(*serf.KeyManager, string) (*serf.KeyResponse, error)) (KeyringResponse, error) {
	if !p.serf.EncryptionEnabled() {
		return KeyringResponse{}, ErrEncryptionDisabled
	}
	if hasKey {
		if _, err := ParseKey(key); err != nil {
			return KeyringResponse{}, fmt.Errorf("%w: %v", ErrInvalidKey, err)
		}
	}
	sr, err := op(p.serf.KeyManager(), key)
	if sr == nil {
		sr = &serf.KeyResponse{}
	}
	resp := KeyringResponse{
		Keys: sr.Keys, PrimaryKeys: sr.PrimaryKeys, Messages: sr.Messages,
		NumNodes: sr.NumNodes, NumResp: sr.NumResp, NumErr: sr.NumErr,
	}
	if err != nil {
		names := make([]string, 0, len(sr.Messages))
		for name := range sr.Messages {
			names = append(names, name)
		}
		sort.Strings(names)
		var b strings.Builder
		b.WriteString(err.Error())
		for _, name := range names {
			fmt.Fprintf(&b, "; %s: %s", name, sr.Messages[name])
		}
		return resp, errors.New(b.String())
	}
	return resp, nil
}
