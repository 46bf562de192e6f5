package agent

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/test/testutil"
)

// do sends method path with body to a and returns the status and the
// trimmed body.
func do(t *testing.T, a *Agent, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+a.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func createSession(t *testing.T, a *Agent, body string) string {
	t.Helper()
	code, out := do(t, a, "PUT", "/v1/session/create", body)
	var id struct{ ID string }
	if code != 200 || json.Unmarshal([]byte(out), &id) != nil || id.ID == "" {
		t.Fatalf("PUT /v1/session/create %s = %d %s, want 200 with an ID", body, code, out)
	}
	return id.ID
}

// TestSessionsAndLocksOverHTTP: sessions are created with Consul's
// defaults and read back in Consul's shape; ?acquire= gives a key to one
// session at a time and counts LockIndex; ?release= and destroy free it;
// the txn lock verbs work; bad input is a 400 in Consul's words.
func TestSessionsAndLocksOverHTTP(t *testing.T) {
	a := testAgent(t, "sess", func(c *config.Config) { c.Bootstrap = true })
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !a.node.IsLeader() {
			return errors.New("not the leader yet")
		}
		return nil
	})

	s1 := createSession(t, a, "")
	s2 := createSession(t, a, `{"Name":"two","LockDelay":"0s","TTL":"10s","NodeChecks":[]}`)
	var info []api.SessionEntry
	if code := getJSON(t, a, "/v1/session/info/"+s1, &info); code != 200 || len(info) != 1 {
		t.Fatalf("GET /v1/session/info/%s = %d %+v, want one session", s1, code, info)
	}
	want := api.SessionEntry{ID: s1, Node: "sess", LockDelay: 15 * time.Second, Behavior: "release", NodeChecks: []string{"serfHealth"},
		CreateIndex: info[0].CreateIndex, ModifyIndex: info[0].CreateIndex}
	if diff := cmp.Diff(want, info[0]); diff != "" || info[0].CreateIndex == 0 {
		t.Errorf("session with the defaults (-want +got):\n%s", diff)
	}
	var list []api.SessionEntry
	getJSON(t, a, "/v1/session/list", &list)
	if len(list) != 2 {
		t.Fatalf("GET /v1/session/list = %+v, want two sessions", list)
	}
	getJSON(t, a, "/v1/session/node/sess", &list)
	if len(list) != 2 || list[0].ID == list[1].ID {
		t.Fatalf("GET /v1/session/node/sess = %+v, want both sessions", list)
	}
	for _, e := range list {
		if e.ID == s2 && (e.TTL != "10s" || e.LockDelay != 0 || len(e.NodeChecks) != 0 || e.Name != "two") {
			t.Errorf("session two = %+v, want TTL 10s, no lock delay, no checks", e)
		}
	}
	if code, out := do(t, a, "PUT", "/v1/session/renew/"+s2, ""); code != 200 || !strings.Contains(out, `"TTL": "10s"`) {
		t.Errorf("renew = %d %s, want the session", code, out)
	}
	if code, _ := do(t, a, "PUT", "/v1/session/renew/4ca8e74b-6350-7587-addf-a18084928f3c", ""); code != 404 {
		t.Errorf("renew of an unknown session = %d, want 404", code)
	}
	if code, out := do(t, a, "GET", "/v1/session/info/4ca8e74b-6350-7587-addf-a18084928f3c", ""); code != 200 || out != "[]" {
		t.Errorf("info of an unknown session = %d %s, want 200 []", code, out)
	}

	lock := func(op, sid, value string) string {
		t.Helper()
		code, out := do(t, a, "PUT", "/v1/kv/lock/leader?"+op+"="+sid, value)
		if code != 200 {
			t.Fatalf("PUT ?%s=%s = %d %s", op, sid, code, out)
		}
		return out
	}
	holder := func() api.KVPair {
		t.Helper()
		var kv []api.KVPair
		if code := getJSON(t, a, "/v1/kv/lock/leader", &kv); code != 200 || len(kv) != 1 {
			t.Fatalf("GET lock/leader = %d %+v", code, kv)
		}
		return kv[0]
	}
	if got := lock("acquire", s1, "one"); got != "true" {
		t.Fatalf("acquire by s1 = %s, want true", got)
	}
	if got := lock("acquire", s2, "two"); got != "false" {
		t.Fatalf("acquire by s2 while s1 holds = %s, want false", got)
	}
	if got := lock("acquire", s1, "one again"); got != "true" {
		t.Fatalf("acquire by the holder again = %s, want true", got)
	}
	if p := holder(); p.Session != s1 || p.LockIndex != 1 || string(p.Value) != "one again" {
		t.Fatalf("lock/leader = %+v, want held by s1 with LockIndex 1", p)
	}
	if got := lock("release", s2, ""); got != "false" {
		t.Fatalf("release by s2 = %s, want false: it does not hold", got)
	}
	if got := lock("release", s1, "free"); got != "true" {
		t.Fatalf("release by s1 = %s, want true", got)
	}
	if got := lock("acquire", s2, "two"); got != "true" {
		t.Fatalf("acquire by s2 after the release = %s, want true", got)
	}
	if p := holder(); p.Session != s2 || p.LockIndex != 2 {
		t.Fatalf("lock/leader = %+v, want held by s2 with LockIndex 2", p)
	}

	// Transactions: check-session and lock verbs.
	txn := `[{"KV":{"Verb":"check-session","Key":"lock/leader","Session":"` + s2 + `"}},{"KV":{"Verb":"lock","Key":"lock/other","Value":"eA==","Session":"` + s1 + `"}}]`
	if code, out := do(t, a, "PUT", "/v1/txn", txn); code != 200 || !strings.Contains(out, `"Session": "`+s1+`"`) {
		t.Fatalf("txn check-session + lock = %d %s, want 200 with the locked entry", code, out)
	}
	txn = `[{"KV":{"Verb":"lock","Key":"lock/leader","Session":"` + s1 + `"}}]`
	if code, out := do(t, a, "PUT", "/v1/txn", txn); code != 409 {
		t.Fatalf("txn lock of a held key = %d %s, want 409", code, out)
	}

	// Destroying s2 releases its key; with no lock delay it is free at once.
	if code, out := do(t, a, "PUT", "/v1/session/destroy/"+s2, ""); code != 200 || out != "true" {
		t.Fatalf("destroy = %d %s, want true", code, out)
	}
	if p := holder(); p.Session != "" || p.LockIndex != 2 {
		t.Fatalf("lock/leader after destroy = %+v, want released, LockIndex kept", p)
	}
	// Destroying s1 starts the 15 s lock delay of lock/other.
	do(t, a, "PUT", "/v1/session/destroy/"+s1, "")
	s3 := createSession(t, a, `{"LockDelay":1}`)
	if code, out := do(t, a, "PUT", "/v1/kv/lock/other?acquire="+s3, ""); code != 200 || out != "false" {
		t.Fatalf("acquire within the lock delay = %d %s, want false", code, out)
	}

	for _, tc := range []struct{ body, answer string }{
		{`{"Behavior":"keep"}`, "Invalid Behavior setting 'keep'"},
		{`{"TTL":"1s"}`, "Invalid Session TTL '1000000000', must be between [10s=24h0m0s]"},
		{`{"TTL":"soon"}`, `Session TTL 'soon' invalid: time: invalid duration "soon"`},
		{`{"Node":"nobody"}`, "Missing node registration"},
		{`{"NodeChecks":["web"]}`, "Missing check 'web' registration"},
		{`{"LockDelay":true}`, "Request decode failed: LockDelay must be a duration string or a number, not true"},
		{`{`, "Request decode failed: unexpected end of JSON input"},
	} {
		if code, out := do(t, a, "PUT", "/v1/session/create", tc.body); code != 400 || out != tc.answer {
			t.Errorf("create %s = %d %q, want 400 %q", tc.body, code, out, tc.answer)
		}
	}
}

// TestSessionCreateFromAClientAgent: a session created through a client
// agent belongs to that agent's node, as in Consul.
func TestSessionCreateFromAClientAgent(t *testing.T) {
	srv := testAgent(t, "srv", func(c *config.Config) { c.Bootstrap = true })
	cl := testAgent(t, "cl", func(c *config.Config) {
		c.Server = false
		c.RetryJoin = []string{srv.serfAddr()}
	})
	testutil.WaitFor(t, 15*time.Second, func() error {
		if !srv.node.IsLeader() || len(srv.pool.Members()) != 2 {
			return errors.New("no leader with two members yet")
		}
		return nil
	})
	id := createSession(t, cl, "")
	var info []api.SessionEntry
	if code := getJSON(t, cl, "/v1/session/info/"+id, &info); code != 200 || len(info) != 1 || info[0].Node != "cl" {
		t.Fatalf("session info through the client = %d %+v, want one session of node cl", code, info)
	}
}
