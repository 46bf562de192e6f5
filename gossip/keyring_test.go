package gossip

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/test/testutil"
)

// outsiderWindow is how long a refused member is watched for: it must not
// show up in anyone's member list in that time. Memberlist gossips every
// 100 ms and pushes its full state every 5 s here, so a refusal that only
// delayed a join would show within it.
const outsiderWindow = 6 * time.Second

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// encrypted returns a config callback that gives a pool key, its keyring
// file in dir (none when dir is ""), and a log that also goes to logs.
func encrypted(t *testing.T, key []byte, dir string, logs io.Writer) func(*Config) {
	return func(c *Config) {
		c.Encryption.Key = key
		if dir != "" {
			c.Encryption.KeyringFile = filepath.Join(dir, KeyringFileName)
		}
		if logs != nil {
			c.Logger = hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug,
				Output: io.MultiWriter(logs, testLogWriter{t})})
		}
	}
}

// testLogWriter sends log lines to t.Log, until the test ends.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a line logged after the test ended
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// neverMember checks, for the whole of outsiderWindow, that none of pools
// lists name.
func neverMember(t *testing.T, name string, pools ...*testPool) {
	t.Helper()
	deadline := time.Now().Add(outsiderWindow)
	for time.Now().Before(deadline) {
		for _, p := range pools {
			if m, ok := member(p, name); ok {
				t.Fatalf("%s lists the outsider %s (%s)", p.name, name, m.Status)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEncryptedPoolRefusesOutsiders starts a pool of two encrypting
// members, then a member without the key and one with a wrong key. Neither
// joins, neither is ever listed by the pool, and the pool's log shows the
// refusals.
func TestEncryptedPoolRefusesOutsiders(t *testing.T) {
	t.Parallel()
	key := testKey(1)
	logs := &logCapture{}
	a := newTestPool(t, "a", encrypted(t, key, "", logs))
	b := newTestPool(t, "b", encrypted(t, key, "", nil))
	join(t, b, a)
	waitForMember(t, a, "b", hasStatus(StatusAlive))
	if !a.EncryptionEnabled() {
		t.Fatal("EncryptionEnabled() = false on a pool with a key")
	}

	plain := newTestPool(t, "plain", nil)
	if n, err := plain.Join([]string{addrOf(a)}); err == nil || n != 0 {
		t.Errorf("plain.Join(a) = %d, %v; want 0 and an error", n, err)
	}
	wrong := newTestPool(t, "wrong", encrypted(t, testKey(2), "", nil))
	if n, err := wrong.Join([]string{addrOf(a)}); err == nil || n != 0 {
		t.Errorf("wrong.Join(a) = %d, %v; want 0 and an error", n, err)
	}
	neverMember(t, "plain", a, b)
	neverMember(t, "wrong", a, b)
	for _, p := range []*testPool{plain, wrong} {
		if got := len(p.Members()); got != 1 {
			t.Errorf("%s knows %d members, want 1 (itself)", p.name, got)
		}
	}
	for _, want := range []string{"encryption is configured but remote state is not encrypted", "no installed keys could decrypt the message"} {
		if !logs.contains(want) {
			t.Errorf("a's log lacks %q", want)
		}
	}
}

// TestKeyRotation rotates the primary key of a live pool of three, as an
// operator does: install the new key, use it, remove the old one. No member
// is lost at any step, every keyring file follows, only the new key admits
// a newcomer, and no key appears in any log line.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := testKey(3), testKey(4)
	logs := &logCapture{}
	var pools []*testPool
	var dirs []string
	for _, name := range []string{"a", "b", "c"} {
		dir := t.TempDir()
		dirs = append(dirs, dir)
		pools = append(pools, newTestPool(t, name, encrypted(t, oldKey, dir, logs)))
	}
	join(t, pools[1], pools[0])
	join(t, pools[2], pools[0])
	allAlive := func(step string) {
		t.Helper()
		for _, p := range pools {
			for _, o := range pools {
				if m, ok := member(p, o.name); !ok || m.Status != StatusAlive {
					t.Fatalf("after %s: %s sees %s as %v (known %v), want alive", step, p.name, o.name, m.Status, ok)
				}
			}
		}
	}
	for _, p := range pools {
		for _, o := range pools {
			waitForMember(t, p, o.name, hasStatus(StatusAlive))
		}
	}

	list := func(step string, wantKeys, wantPrimary map[string]int) {
		t.Helper()
		resp, err := pools[1].ListKeys()
		if err != nil {
			t.Fatalf("after %s: ListKeys() error = %v", step, err)
		}
		if diff := cmp.Diff(wantKeys, resp.Keys); diff != "" {
			t.Errorf("after %s: ListKeys().Keys mismatch (-want +got):\n%s", step, diff)
		}
		if diff := cmp.Diff(wantPrimary, resp.PrimaryKeys); diff != "" {
			t.Errorf("after %s: ListKeys().PrimaryKeys mismatch (-want +got):\n%s", step, diff)
		}
		if resp.NumNodes != 3 || resp.NumResp != 3 || resp.NumErr != 0 {
			t.Errorf("after %s: ListKeys() nodes, answers, errors = %d, %d, %d; want 3, 3, 0", step, resp.NumNodes, resp.NumResp, resp.NumErr)
		}
	}
	list("start", map[string]int{b64(oldKey): 3}, map[string]int{b64(oldKey): 3})

	if _, err := pools[0].InstallKey(b64(newKey)); err != nil {
		t.Fatalf("InstallKey(new) error = %v", err)
	}
	list("install", map[string]int{b64(oldKey): 3, b64(newKey): 3}, map[string]int{b64(oldKey): 3})
	allAlive("install")

	if _, err := pools[2].UseKey(b64(newKey)); err != nil {
		t.Fatalf("UseKey(new) error = %v", err)
	}
	list("use", map[string]int{b64(oldKey): 3, b64(newKey): 3}, map[string]int{b64(newKey): 3})
	allAlive("use")

	// The primary key cannot be removed: every member refuses.
	if _, err := pools[0].RemoveKey(b64(newKey)); err == nil || !strings.Contains(err.Error(), "3/3 nodes reported failure") {
		t.Errorf("RemoveKey(primary) error = %v, want every member's refusal", err)
	}
	if _, err := pools[0].RemoveKey(b64(oldKey)); err != nil {
		t.Fatalf("RemoveKey(old) error = %v", err)
	}
	list("remove", map[string]int{b64(newKey): 3}, map[string]int{b64(newKey): 3})
	// Members keep gossiping with the new key alone: still alive after
	// a few probe rounds and a push-pull.
	time.Sleep(outsiderWindow)
	allAlive("remove")

	for i, dir := range dirs {
		got, err := readKeyringFile(filepath.Join(dir, KeyringFileName))
		if err != nil || len(got) != 1 || !bytes.Equal(got[0], newKey) {
			t.Errorf("%s's keyring file = %d keys, %v; want the new key alone", pools[i].name, len(got), err)
		}
	}

	stale := newTestPool(t, "stale", encrypted(t, oldKey, "", nil))
	if _, err := stale.Join([]string{addrOf(pools[0])}); err == nil {
		t.Error("a member with the removed key joined")
	}
	fresh := newTestPool(t, "fresh", encrypted(t, newKey, "", nil))
	join(t, fresh, pools[0])
	waitForMember(t, pools[2], "fresh", hasStatus(StatusAlive))

	for _, k := range [][]byte{oldKey, newKey} {
		for _, form := range []string{b64(k), hex.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k), fmt.Sprint(k)} {
			if logs.contains(form) {
				t.Errorf("a log line contains a key (%s)", form)
			}
		}
	}
}

// TestKeyringFile checks Consul's rules for data_dir/serf/local.keyring:
// made from encrypt on the first start (0600, Consul's JSON), and the
// winner over encrypt afterwards, with a warning that names it.
func TestKeyringFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, KeyringFileName)
	first := testKey(5)
	a := newTestPool(t, "a", encrypted(t, first, dir, nil))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read keyring file: %v", err)
	}
	var keys []string
	if err := json.Unmarshal(data, &keys); err != nil || len(keys) != 1 || keys[0] != b64(first) {
		t.Errorf("keyring file = %s, want [%q]", data, b64(first))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("keyring file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}

	// Restarted with another encrypt: the file wins, with a warning.
	logs := &logCapture{}
	b := newTestPool(t, "b", encrypted(t, testKey(6), dir, logs))
	if !logs.contains("loaded keyring file; the encrypt key is ignored") || !logs.contains(path) {
		t.Errorf("no warning naming %s that the encrypt key is ignored", path)
	}
	c := newTestPool(t, "c", encrypted(t, first, "", nil))
	join(t, c, b)
	waitForMember(t, b, "c", hasStatus(StatusAlive))

	// Without encrypt, an existing keyring file still turns encryption on.
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	d := newTestPool(t, "d", encrypted(t, nil, dir, nil))
	if !d.EncryptionEnabled() {
		t.Error("a pool with a keyring file and no encrypt does not encrypt")
	}

	// Without a keyring file, nothing is written.
	memDir := t.TempDir()
	newTestPool(t, "e", func(c *Config) { c.Encryption.Key = first; c.SnapshotDir = memDir })
	if _, err := os.Stat(filepath.Join(memDir, KeyringFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat keyring file of an in-memory keyring: %v, want not exist", err)
	}
}

// TestKeyringFileDamaged checks that a damaged keyring file stops the pool
// with an error that names the file, says what is wrong, and shows no key.
func TestKeyringFileDamaged(t *testing.T) {
	t.Parallel()
	secret := b64(testKey(7))
	tests := []struct{ name, content, want string }{
		{"not JSON", secret, "is damaged: it is not a JSON list of base64 keys"},
		{"empty list", "[]", "has no keys"},
		{"bad key", `["` + secret + `", "` + secret[:21] + `"]`, "in key 2 of 2, the key is not valid base64"},
		{"short key", `["` + b64([]byte("0123456789")) + `"]`, "the key is 10 bytes once decoded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), KeyringFileName)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(Config{NodeName: "x", BindAddr: "127.0.0.1", AdvertiseAddr: "127.0.0.1", Local: true,
				Encryption: Encryption{KeyringFile: path}})
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() error = %v, want one naming %s and saying %q", err, path, tc.want)
			}
			if strings.Contains(err.Error(), secret[:20]) {
				t.Errorf("New() error shows key material: %v", err)
			}
		})
	}
}

// TestKeyringOpsRefused checks the keyring operations of a pool without
// encryption, and with a key that is not one.
func TestKeyringOpsRefused(t *testing.T) {
	t.Parallel()
	plain := newTestPool(t, "plain", nil)
	if _, err := plain.ListKeys(); !errors.Is(err, ErrEncryptionDisabled) {
		t.Errorf("ListKeys() on a plaintext pool error = %v, want ErrEncryptionDisabled", err)
	}
	if _, err := plain.InstallKey(b64(testKey(8))); !errors.Is(err, ErrEncryptionDisabled) {
		t.Errorf("InstallKey() on a plaintext pool error = %v, want ErrEncryptionDisabled", err)
	}
	enc := newTestPool(t, "enc", encrypted(t, testKey(8), "", nil))
	for _, bad := range []string{"not-base64!", b64([]byte("short")), ""} {
		if _, err := enc.InstallKey(bad); !errors.Is(err, ErrInvalidKey) || (bad != "" && strings.Contains(err.Error(), bad)) {
			t.Errorf("InstallKey(%q) error = %v, want ErrInvalidKey without the key", bad, err)
		}
	}
}

// TestEnableEncryptionRolling turns encryption on in a running plaintext
// pool of three without losing a member, by Consul's procedure: a rolling
// restart with the key and both verify settings off, then one with
// outgoing on, then one with incoming on. After each restart every member
// sees every other alive.
func TestEnableEncryptionRolling(t *testing.T) {
	t.Parallel()
	key := testKey(9)
	names := []string{"a", "b", "c"}
	ports := testutil.Ports(t, len(names))
	start := func(i int, enc Encryption) *Pool {
		p, err := New(Config{NodeName: names[i], NodeID: names[i] + "-id", BindAddr: "127.0.0.1", BindPort: ports[i],
			AdvertiseAddr: "127.0.0.1", Tags: serverTags(names[i]), Local: true, Logger: testutil.Logger(t), Encryption: enc})
		if err != nil {
			t.Fatalf("New(%s): %v", names[i], err)
		}
		go func() { // drain events
			for range p.Events() {
			}
		}()
		return p
	}
	pools := make([]*Pool, len(names))
	for i := range names {
		pools[i] = start(i, Encryption{})
	}
	t.Cleanup(func() {
		for _, p := range pools {
			p.Shutdown()
		}
	})
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	allAlive := func(step string) {
		t.Helper()
		testutil.WaitFor(t, waitTimeout, func() error {
			for i, p := range pools {
				alive := 0
				for _, m := range p.Members() {
					if m.Status == StatusAlive {
						alive++
					}
				}
				if alive != len(names) {
					return fmt.Errorf("%s: %s sees %d alive members, want %d", step, names[i], alive, len(names))
				}
			}
			return nil
		})
	}
	for i := 1; i < len(names); i++ {
		if _, err := pools[i].Join([]string{addr(0)}); err != nil {
			t.Fatalf("join %s: %v", names[i], err)
		}
	}
	allAlive("plaintext")

	for _, stage := range []struct {
		name string
		enc  Encryption
	}{
		{"key, verify off", Encryption{Key: key, AcceptPlaintext: true, SendPlaintext: true}},
		{"verify outgoing", Encryption{Key: key, AcceptPlaintext: true}},
		{"verify incoming", Encryption{Key: key}},
	} {
		for i := range names {
			if err := pools[i].Leave(); err != nil {
				t.Fatalf("%s: leave %s: %v", stage.name, names[i], err)
			}
			pools[i].Shutdown()
			pools[i] = start(i, stage.enc)
			peer := addr((i + 1) % len(names))
			testutil.WaitFor(t, waitTimeout, func() error {
				_, err := pools[i].Join([]string{peer})
				return err
			})
			allAlive(fmt.Sprintf("%s, %s restarted", stage.name, names[i]))
		}
	}
	// The pool now refuses plaintext.
	plain := newTestPool(t, "plain", nil)
	if _, err := plain.Join([]string{addr(0)}); err == nil {
		t.Error("a plaintext member joined the encrypted pool")
	}
}
