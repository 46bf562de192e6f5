package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/test/testutil"
)

// intruderWindow is how long an agent without the gossip key is watched:
// in that time no member of the cluster may list it. The agent retries its
// join every 200 ms and memberlist pushes its full state every 5 s, so a
// refusal that only delayed the join would show within it.
const intruderWindow = 8 * time.Second

// keygen runs conclave keygen and returns the key it printed.
func keygen(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(Binary, "keygen").Output()
	if err != nil {
		t.Fatalf("conclave keygen: %v", err)
	}
	key := strings.TrimSpace(string(out))
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 32 {
		t.Fatalf("conclave keygen printed %q, want the base64 of 32 bytes", key)
	}
	return key
}

// aliveMembers returns the names of the members n lists as alive, and of
// all it lists.
func aliveMembers(n *Node) (alive, all []string, err error) {
	var ms []api.Member
	if err := n.Get("/v1/agent/members", &ms); err != nil {
		return nil, nil, err
	}
	for _, m := range ms {
		all = append(all, m.Name)
		if m.Status == api.MemberStatusAlive {
			alive = append(alive, m.Name)
		}
	}
	return alive, all, nil
}

// allAlive checks that every node lists every node as alive.
func allAlive(nodes ...*Node) error {
	for _, n := range nodes {
		alive, _, err := aliveMembers(n)
		if err != nil {
			return fmt.Errorf("%s: %v", n.Name, err)
		}
		for _, o := range nodes {
			if !contains(alive, o.Name) {
				return fmt.Errorf("%s does not list %s as alive (alive: %v)", n.Name, o.Name, alive)
			}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// allLogs returns every run's log of n.
func allLogs(n *Node) string {
	var b strings.Builder
	for i := 1; i <= n.starts; i++ {
		data, _ := os.ReadFile(filepath.Join(filepath.Dir(n.Dir), fmt.Sprintf("%s.%d.log", n.Name, i)))
		b.Write(data)
	}
	return b.String()
}

// checkNoKeyInLogs fails if any log line of nodes shows one of keys, in
// base64 (standard, raw, URL), hex or as Go prints a byte slice.
func checkNoKeyInLogs(t *testing.T, keys []string, nodes ...*Node) {
	t.Helper()
	for _, k := range keys {
		raw, _ := base64.StdEncoding.DecodeString(k)
		forms := []string{k, base64.RawStdEncoding.EncodeToString(raw), base64.URLEncoding.EncodeToString(raw),
			hex.EncodeToString(raw), strings.ToUpper(hex.EncodeToString(raw)), fmt.Sprint(raw), string(raw)}
		for _, n := range nodes {
			logs := allLogs(n)
			if logs == "" {
				t.Fatalf("%s has no log to check", n.Name)
			}
			for _, f := range forms {
				if strings.Contains(logs, f) {
					t.Errorf("%s's log shows a gossip key (as %q)", n.Name, f)
				}
			}
		}
	}
}

// watchIntruders checks, for intruderWindow, that no node lists any of the
// intruders, and that each intruder lists only itself.
func watchIntruders(t *testing.T, nodes []*Node, intruders ...*Node) {
	t.Helper()
	deadline := time.Now().Add(intruderWindow)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			_, all, err := aliveMembers(n)
			if err != nil {
				t.Fatalf("%s: %v", n.Name, err)
			}
			for _, in := range intruders {
				if contains(all, in.Name) {
					t.Fatalf("%s lists the intruder %s: %v", n.Name, in.Name, all)
				}
			}
		}
		for _, in := range intruders {
			if _, all, err := aliveMembers(in); err == nil && len(all) != 1 {
				t.Fatalf("intruder %s lists %v, want itself alone", in.Name, all)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestGossipKeyRotation starts a 3-server cluster that encrypts gossip with
// a key from conclave keygen. A server without the key and one with a
// wrong key never become members. Then the primary key is rotated with
// conclave keyring (install, use, remove) while KV writes go on: no member
// is lost, every acknowledged write reads back, the keyring files hold the
// new key alone, a restart with the old encrypt keeps the file's key (with
// a warning), and no log line shows a key.
func TestGossipKeyRotation(t *testing.T) {
	key1, key2, wrongKey := keygen(t), keygen(t), keygen(t)
	dir := t.TempDir()
	nodes := NewServersIn(t, dir, "gk", 3, 3)
	for _, n := range nodes {
		n.Extra = fmt.Sprintf("encrypt = %q\n", key1)
		n.Start()
	}
	WaitForCluster(t, 30*time.Second, nodes...)

	noKey := NewNodeIn(t, dir, "nokey", 0)
	wrong := NewNodeIn(t, dir, "wrongkey", 0)
	wrong.Extra = fmt.Sprintf("encrypt = %q\n", wrongKey)
	for _, in := range []*Node{noKey, wrong} {
		in.Join = []string{nodes[0].SerfAddr(), nodes[1].SerfAddr()}
		in.Start()
	}
	watchIntruders(t, nodes, noKey, wrong)
	if err := ClusterFormed(nodes...); err != nil {
		t.Errorf("after the intruders: %v", err)
	}
	for in, want := range map[*Node]string{
		noKey: "remote state is encrypted and encryption is not configured",
		wrong: "no installed keys could decrypt the message",
	} {
		if logs := allLogs(in); !strings.Contains(logs, want) {
			t.Errorf("%s's log lacks the refusal %q", in.Name, want)
		}
	}
	noKey.Kill()
	wrong.Kill()

	// Writes through every server, during the whole rotation.
	kv := NewKVClient(5*time.Second, 4)
	defer kv.Close()
	var (
		mu     sync.Mutex
		acked  []string
		failed []string
	)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("rotation/%05d", i)
			ok, err := kv.Put(nodes[i%len(nodes)], key, []byte(key), "")
			mu.Lock()
			if err == nil && ok {
				acked = append(acked, key)
			} else {
				failed = append(failed, fmt.Sprintf("%s: %v %v", key, ok, err))
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()

	keyring := func(args ...string) string {
		t.Helper()
		stdout, stderr, code := nodes[1].CLI(append([]string{"keyring"}, args...)...)
		if code != 0 {
			t.Fatalf("conclave keyring %s = %d: %s", args[0], code, stderr)
		}
		if err := allAlive(nodes...); err != nil {
			t.Fatalf("after keyring %s: %v", args[0], err)
		}
		return stdout
	}
	if out := keyring("-list"); !strings.Contains(out, "dc1 (LAN):\n  "+key1+" [3/3]") {
		t.Errorf("keyring -list at start =\n%s\nwant %s [3/3]", out, key1)
	}
	keyring("-install", key2)
	keyring("-use", key2)
	if out := keyring("-list-primary"); !strings.Contains(out, "  "+key2+" [3/3]") || strings.Contains(out, key1) {
		t.Errorf("keyring -list-primary after -use =\n%s\nwant only %s [3/3]", out, key2)
	}
	keyring("-remove", key1)
	// A few gossip rounds and a push/pull with the new key alone.
	time.Sleep(6 * time.Second)
	if err := allAlive(nodes...); err != nil {
		t.Errorf("after the rotation: %v", err)
	}
	if out := keyring("-list"); !strings.Contains(out, "  "+key2+" [3/3]") || strings.Contains(out, key1) {
		t.Errorf("keyring -list after the rotation =\n%s\nwant only %s [3/3]", out, key2)
	}
	close(stop)
	<-done

	mu.Lock()
	if len(failed) > 0 {
		t.Errorf("%d of %d writes failed during the rotation, first: %s", len(failed), len(failed)+len(acked), failed[0])
	}
	if len(acked) < 50 {
		t.Errorf("only %d writes acknowledged during the rotation", len(acked))
	}
	for _, key := range acked {
		p, _, err := kv.Get(nodes[0], key, "")
		if err != nil || p == nil || string(p.Value) != key {
			t.Fatalf("read back %s: %v, %v", key, p, err)
		}
	}
	mu.Unlock()

	for _, n := range nodes {
		data, err := os.ReadFile(filepath.Join(n.Dir, "serf", "local.keyring"))
		var keys []string
		if err != nil || json.Unmarshal(data, &keys) != nil || len(keys) != 1 || keys[0] != key2 {
			t.Errorf("%s's keyring file = %d keys (%v), want the new key alone", n.Name, len(keys), err)
		}
		if fi, err := os.Stat(filepath.Join(n.Dir, "serf", "local.keyring")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s's keyring file mode = %v, %v; want 0600", n.Name, fi.Mode().Perm(), err)
		}
	}

	// A restart with the old key still in encrypt: the keyring file wins.
	r := nodes[2]
	r.Stop()
	r.Start()
	WaitForCluster(t, 30*time.Second, nodes...)
	testutil.WaitFor(t, 20*time.Second, func() error { return allAlive(nodes...) })
	if logs := r.Logs(); !strings.Contains(logs, "loaded keyring file; the encrypt key is ignored") || !strings.Contains(logs, filepath.Join(r.Dir, "serf", "local.keyring")) {
		t.Errorf("%s's log lacks the warning that the keyring file wins over encrypt", r.Name)
	}

	// agent/self shows no key either.
	var self bytes.Buffer
	resp, err := httpClient.Get("http://" + nodes[0].HTTPAddr() + "/v1/agent/self")
	if err == nil {
		self.ReadFrom(resp.Body)
		resp.Body.Close()
	}
	if strings.Contains(self.String(), key1) || strings.Contains(self.String(), key2) {
		t.Error("agent/self shows a gossip key")
	}
	checkNoKeyInLogs(t, []string{key1, key2, wrongKey}, append(nodes, noKey, wrong)...)
}

// TestGossipEncryptionEnabledOnARunningCluster turns gossip encryption on
// in a running plaintext 3-server cluster without losing a member, by
// Consul's procedure: a rolling restart with encrypt and both
// encrypt_verify_* false, one with encrypt_verify_outgoing true, and one
// with both true. After each restart every server lists every other as
// alive and the Raft configuration is whole; at the end a plaintext agent
// cannot join.
func TestGossipEncryptionEnabledOnARunningCluster(t *testing.T) {
	key := keygen(t)
	dir := t.TempDir()
	nodes := NewServersIn(t, dir, "ge", 3, 3)
	for _, n := range nodes {
		n.Start()
	}
	WaitForCluster(t, 30*time.Second, nodes...)
	for _, stage := range []struct{ name, extra string }{
		{"encrypt, verify off", fmt.Sprintf("encrypt = %q\nencrypt_verify_incoming = false\nencrypt_verify_outgoing = false\n", key)},
		{"verify outgoing", fmt.Sprintf("encrypt = %q\nencrypt_verify_incoming = false\n", key)},
		{"verify incoming", fmt.Sprintf("encrypt = %q\n", key)},
	} {
		for _, n := range nodes {
			n.Stop()
			n.Extra = stage.extra
			n.Start()
			testutil.WaitFor(t, 30*time.Second, func() error {
				if err := allAlive(nodes...); err != nil {
					return err
				}
				return ClusterFormed(nodes...)
			})
			t.Logf("%s: %s restarted; every member alive", stage.name, n.Name)
		}
	}
	plain := NewNodeIn(t, dir, "plain", 0)
	plain.Join = []string{nodes[0].SerfAddr()}
	plain.Start()
	watchIntruders(t, nodes, plain)
	checkNoKeyInLogs(t, []string{key}, nodes...)
}
