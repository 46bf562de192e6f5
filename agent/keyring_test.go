package agent

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/test/testutil"
)

// TestKeyringThroughConsulClient drives /v1/operator/keyring with Consul's
// own Go client (api.Operator().Keyring…) on a server and a client agent
// that encrypt gossip: list, install, use, remove, each seen by both.
func TestKeyringThroughConsulClient(t *testing.T) {
	key1, key2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	k1, k2 := base64.StdEncoding.EncodeToString(key1), base64.StdEncoding.EncodeToString(key2)
	encrypt := func(c *config.Config) {
		c.Encrypt = key1
		c.EncryptVerifyIncoming, c.EncryptVerifyOutgoing = true, true
	}
	s := testAgent(t, "s1", func(c *config.Config) { encrypt(c); c.Bootstrap = true })
	ip, port := s.pool.Addr()
	cl := testAgent(t, "c1", func(c *config.Config) {
		encrypt(c)
		c.Server = false
		c.RetryJoin = []string{net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))}
	})
	testutil.WaitFor(t, 15*time.Second, func() error {
		if n := len(s.pool.Members()); n != 2 {
			return fmt.Errorf("s1 knows %d members, want 2", n)
		}
		return nil
	})

	client, err := consul.NewClient(&consul.Config{Address: cl.HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	op := client.Operator()
	list := func(step string, wantKeys, wantPrimary map[string]int) {
		t.Helper()
		pools, err := op.KeyringList(nil)
		if err != nil {
			t.Fatalf("after %s: KeyringList() error = %v", step, err)
		}
		if len(pools) != 1 {
			t.Fatalf("after %s: KeyringList() = %d pools, want 1", step, len(pools))
		}
		p := pools[0]
		if p.WAN || p.Datacenter != "dc1" || p.Segment != "" || p.NumNodes != 2 ||
			fmt.Sprint(p.Keys) != fmt.Sprint(wantKeys) || fmt.Sprint(p.PrimaryKeys) != fmt.Sprint(wantPrimary) {
			t.Errorf("after %s: KeyringList() = %+v, want dc1 (LAN), 2 nodes, keys %v, primary %v", step, *p, wantKeys, wantPrimary)
		}
	}
	list("start", map[string]int{k1: 2}, map[string]int{k1: 2})
	if err := op.KeyringInstall(k2, nil); err != nil {
		t.Fatalf("KeyringInstall() error = %v", err)
	}
	list("install", map[string]int{k1: 2, k2: 2}, map[string]int{k1: 2})
	if err := op.KeyringUse(k2, nil); err != nil {
		t.Fatalf("KeyringUse() error = %v", err)
	}
	list("use", map[string]int{k1: 2, k2: 2}, map[string]int{k2: 2})
	if err := op.KeyringRemove(k1, nil); err != nil {
		t.Fatalf("KeyringRemove() error = %v", err)
	}
	list("remove", map[string]int{k2: 2}, map[string]int{k2: 2})

	// Refusals: the primary key, a key that is not one, a body that is
	// not JSON. None repeats the key given.
	if err := op.KeyringRemove(k2, nil); err == nil || !strings.Contains(err.Error(), "dc1 (LAN) error: 2/2 nodes reported failure") {
		t.Errorf("KeyringRemove(primary) error = %v, want every member's refusal", err)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"Key":"c2hvcnQta2V5"}`, "400 invalid gossip key: the key is 9 bytes once decoded"},
		{`{"Key":`, "400 Request decode failed: unexpected EOF"},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.HTTPAddr()+"/v1/operator/keyring", strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strconv.Itoa(resp.StatusCode) + " " + string(b); !strings.HasPrefix(got, tc.want) || strings.Contains(got, "c2hvcnQta2V5") {
			t.Errorf("POST %s = %q, want %q", tc.body, got, tc.want)
		}
	}

	// /v1/agent/self says gossip is encrypted and shows no key.
	var self map[string]any
	getJSON(t, s, "/v1/agent/self", &self)
	out := fmt.Sprint(self)
	if strings.Contains(out, k1) || strings.Contains(out, k2) || !strings.Contains(out, "encrypted:true") {
		t.Errorf("agent/self = %s, want encrypted:true and no key", out)
	}
}

// TestKeyringWithoutEncryption checks Consul's refusal, in Serf's words, on
// an agent that does not encrypt gossip.
func TestKeyringWithoutEncryption(t *testing.T) {
	a := testAgent(t, "s1", func(c *config.Config) { c.Bootstrap = true })
	client, err := consul.NewClient(&consul.Config{Address: a.HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Operator().KeyringList(nil); err == nil || !strings.Contains(err.Error(), "500 (dc1 (LAN) error: Keyring is empty (encryption not enabled))") {
		t.Errorf("KeyringList() error = %v, want Consul's refusal", err)
	}
	if err := client.Operator().KeyringInstall(base64.StdEncoding.EncodeToString(make([]byte, 32)), nil); err == nil ||
		!strings.Contains(err.Error(), "dc1 (LAN) error: No keyring to modify (encryption not enabled)") {
		t.Errorf("KeyringInstall() error = %v, want Consul's refusal", err)
	}
}
