package cluster

import (
	"context"
	"errors"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclavehq/conclave/gossip"
	"github.com/conclavehq/conclave/test/testutil"
)

func srv(name string, expect int, status gossip.Status) gossip.ServerInfo {
	return gossip.ServerInfo{Name: name, ID: "id-" + name, Datacenter: "dc1", Addr: net.IPv4(127, 0, 0, 1), RaftPort: 8300, Expect: expect, Status: status}
}

func names(set []gossip.ServerInfo) string {
	var out []string
	for _, s := range set {
		out = append(out, s.Name)
	}
	return strings.Join(out, ",")
}

func TestEvaluate(t *testing.T) {
	alive, failed, left := gossip.StatusAlive, gossip.StatusFailed, gossip.StatusLeft
	withState := func(s gossip.ServerInfo) gossip.ServerInfo { s.HasState = true; return s }
	withBootstrap := func(s gossip.ServerInfo) gossip.ServerInfo { s.Bootstrap = true; return s }
	cases := []struct {
		name      string
		self      string
		servers   []gossip.ServerInfo
		wantClaim bool
		wantSet   string
		reason    string
	}{
		{name: "too few", self: "a", servers: []gossip.ServerInfo{srv("a", 3, alive), srv("b", 3, alive)},
			wantSet: "a,b", reason: "waiting for 3 servers, 2 seen"},
		{name: "lowest claims", self: "a", servers: []gossip.ServerInfo{srv("c", 3, alive), srv("a", 3, alive), srv("b", 3, alive)},
			wantClaim: true, wantSet: "a,b,c"},
		{name: "not lowest waits", self: "b", servers: []gossip.ServerInfo{srv("a", 3, alive), srv("b", 3, alive), srv("c", 3, alive)},
			wantSet: "a,b,c", reason: "3 servers seen; a has the lowest name and bootstraps the cluster"},
		{name: "more than expect: all included", self: "a",
			servers:   []gossip.ServerInfo{srv("a", 3, alive), srv("b", 3, alive), srv("c", 3, alive), srv("d", 3, alive), srv("e", 3, alive)},
			wantClaim: true, wantSet: "a,b,c,d,e"},
		{name: "failed and left servers do not count", self: "a",
			servers: []gossip.ServerInfo{srv("a", 3, alive), srv("b", 3, alive), srv("c", 3, failed), srv("d", 3, left)},
			wantSet: "a,b", reason: "waiting for 3 servers, 2 seen"},
		{name: "a failed lower server does not make self wait", self: "b",
			servers:   []gossip.ServerInfo{srv("a", 3, failed), srv("b", 3, alive), srv("c", 3, alive), srv("d", 3, alive)},
			wantClaim: true, wantSet: "b,c,d"},
		{name: "existing cluster blocks", self: "a",
			servers: []gossip.ServerInfo{srv("a", 3, alive), withState(srv("b", 3, alive)), srv("c", 3, alive)},
			wantSet: "a,b,c", reason: "a cluster exists (server b has raft state); waiting for its leader to add this server"},
		{name: "failed server with state still blocks (fail closed)", self: "a",
			servers: []gossip.ServerInfo{srv("a", 3, alive), withState(srv("z", 3, failed)), srv("b", 3, alive), srv("c", 3, alive)},
			wantSet: "a,b,c", reason: "a cluster exists (server z has raft state); waiting for its leader to add this server"},
		{name: "left server with state does not block", self: "a",
			servers:   []gossip.ServerInfo{srv("a", 3, alive), withState(srv("z", 3, left)), srv("b", 3, alive), srv("c", 3, alive)},
			wantClaim: true, wantSet: "a,b,c"},
		{name: "conflicting expect blocks and names the server", self: "a",
			servers: []gossip.ServerInfo{srv("a", 3, alive), srv("b", 5, alive), srv("c", 3, alive), srv("d", 3, alive)},
			wantSet: "a,c,d", reason: "bootstrap blocked: servers disagree with bootstrap_expect = 3: b (bootstrap_expect = 5)"},
		{name: "bootstrap=true peer blocks", self: "a",
			servers: []gossip.ServerInfo{srv("a", 3, alive), withBootstrap(srv("b", 0, alive)), srv("c", 3, alive), srv("d", 3, alive)},
			wantSet: "a,c,d", reason: "bootstrap blocked: servers disagree with bootstrap_expect = 3: b (bootstrap = true)"},
		{name: "servers without expect are not counted", self: "a",
			servers: []gossip.ServerInfo{srv("a", 3, alive), srv("b", 0, alive), srv("c", 3, alive)},
			wantSet: "a,c", reason: "waiting for 3 servers, 2 seen"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var self gossip.ServerInfo
			for _, s := range tc.servers {
				if s.Name == tc.self {
					self = s
				}
			}
			d := evaluate(view{self: self, expect: 3, servers: tc.servers})
			if d.claim != tc.wantClaim {
				t.Errorf("evaluate().claim = %v, want %v (reason %q)", d.claim, tc.wantClaim, d.reason)
			}
			if got := names(d.set); got != tc.wantSet {
				t.Errorf("evaluate().set = %q, want %q", got, tc.wantSet)
			}
			if d.reason != tc.reason {
				t.Errorf("evaluate().reason = %q, want %q", d.reason, tc.reason)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	alive := gossip.StatusAlive
	now := time.Unix(1000, 0)
	three := []gossip.ServerInfo{srv("a", 3, alive), srv("b", 3, alive), srv("c", 3, alive)}
	claimABC := Claim{Candidate: "a", ID: "id-a", Expect: 3, Servers: []string{"a", "b", "c"}}
	cases := []struct {
		name     string
		hasState bool
		servers  []gossip.ServerInfo
		promise  promise
		claim    Claim
		yes      bool
		reason   string
	}{
		{name: "agrees", servers: three, claim: claimABC, yes: true},
		{name: "has state", hasState: true, servers: three, claim: claimABC, reason: "has raft state"},
		{name: "expect differs", servers: three, claim: Claim{Candidate: "a", Expect: 5, Servers: []string{"a", "b", "c"}},
			reason: "bootstrap_expect is 3, not 5"},
		{name: "views differ: sees a lower server the candidate does not",
			servers: append([]gossip.ServerInfo{srv("0", 3, alive)}, three...), claim: claimABC,
			reason: "sees servers [0 a b c], not [a b c]"},
		{name: "views differ: candidate sees more", servers: three[:2],
			claim: Claim{Candidate: "a", Expect: 3, Servers: []string{"a", "b", "c"}}, reason: "sees servers [a b], not [a b c]"},
		{name: "promised to another candidate", servers: three, claim: claimABC,
			promise: promise{candidate: "x", until: now.Add(3 * time.Second)}, reason: "promised to x for 3s more"},
		{name: "expired promise does not bind", servers: three, claim: claimABC,
			promise: promise{candidate: "x", until: now.Add(-time.Millisecond)}, yes: true},
		{name: "promise to the same candidate is renewed", servers: three, claim: claimABC,
			promise: promise{candidate: "a", until: now.Add(time.Second)}, yes: true},
		{name: "cluster exists", servers: []gossip.ServerInfo{srv("a", 3, alive), srv("b", 3, alive), {Name: "c", ID: "id-c", Datacenter: "dc1", Expect: 3, Status: alive, HasState: true}},
			claim: claimABC, reason: "a cluster exists (server c has raft state); waiting for its leader to add this server"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := view{self: srv("b", 3, alive), expect: 3, hasState: tc.hasState, servers: tc.servers}
			a := judge(v, tc.promise, tc.claim, now)
			if a.Yes != tc.yes || a.Reason != tc.reason {
				t.Errorf("judge() = (yes %v, %q), want (yes %v, %q)", a.Yes, a.Reason, tc.yes, tc.reason)
			}
			if a.Name != "b" || a.ID != "id-b" {
				t.Errorf("judge() answered as %s/%s, want b/id-b", a.Name, a.ID)
			}
		})
	}
}

// TestClaimSafety checks the heart of the argument on the pure functions:
// once a server said yes to one candidate, no other candidate gets its yes
// while the promise lasts, whatever its view.
func TestClaimSafety(t *testing.T) {
	alive := gossip.StatusAlive
	now := time.Unix(1000, 0)
	z := view{self: srv("z", 3, alive), expect: 3, servers: []gossip.ServerInfo{srv("b", 3, alive), srv("c", 3, alive), srv("z", 3, alive)}}
	first := Claim{Candidate: "b", Expect: 3, Servers: []string{"b", "c", "z"}}
	a := judge(z, promise{}, first, now)
	if !a.Yes {
		t.Fatalf("judge(first) = no (%s), want yes", a.Reason)
	}
	p := promise{candidate: "b", until: now.Add(claimLease)}
	// z now learns of a lower-named server; its view matches the new claim.
	z.servers = append(z.servers, srv("a", 3, alive))
	second := Claim{Candidate: "a", Expect: 3, Servers: []string{"a", "b", "c", "z"}}
	for _, at := range []time.Duration{0, claimDeadline, claimLease - time.Millisecond} {
		if a := judge(z, p, second, now.Add(at)); a.Yes {
			t.Errorf("judge(second) at +%s = yes, want no while promised", at)
		}
	}
}

// TestReleaseDropsOnlyTheWithdrawnClaim: a release frees the promise made
// to that very claim, and a late release of an older claim of the same
// candidate leaves the newer promise alone.
func TestReleaseDropsOnlyTheWithdrawnClaim(t *testing.T) {
	b := &Bootstrapper{logger: testutil.Logger(t)}
	release := func(candidate string, nonce uint64) {
		b.Release(Claim{Candidate: candidate, Nonce: nonce})
	}
	until := time.Now().Add(claimLease)
	b.promise = promise{candidate: "a", nonce: 2, until: until}
	release("a", 1)
	if b.promise.candidate != "a" {
		t.Fatalf("late release of nonce 1 dropped the promise to claim 2")
	}
	release("b", 2)
	if b.promise.candidate != "a" {
		t.Fatalf("release by another candidate dropped the promise")
	}
	release("a", 2)
	if b.promise.candidate != "" {
		t.Fatalf("promise after its release = %+v, want none", b.promise)
	}
}

// TestReleaseBeforeClaim: a release that overtakes its claim makes the
// claim's late arrival a no, so it leaves no promise behind.
func TestReleaseBeforeClaim(t *testing.T) {
	alive := gossip.StatusAlive
	b := &Bootstrapper{logger: testutil.Logger(t), name: "b", id: "id-b", expect: 3}
	v := view{self: srv("b", 3, alive), expect: 3, servers: []gossip.ServerInfo{srv("a", 3, alive), srv("b", 3, alive), srv("c", 3, alive)}}
	c := Claim{Candidate: "a", Nonce: 7, Expect: 3, Servers: []string{"a", "b", "c"}}
	b.Release(Claim{Candidate: "a", Nonce: 7})
	if a := b.answer(v, c, time.Now()); a.Yes || a.Reason != "claim already withdrawn" {
		t.Fatalf("answer to a withdrawn claim = (yes %v, %q), want no: claim already withdrawn", a.Yes, a.Reason)
	}
	if b.promise.candidate != "" {
		t.Fatalf("withdrawn claim left a promise: %+v", b.promise)
	}
	// The next claim of the same candidate is judged normally.
	c.Nonce = 8
	if a := b.answer(v, c, time.Now()); !a.Yes {
		t.Fatalf("answer to a fresh claim = no (%s), want yes", a.Reason)
	}
}

// fakePeers answers claims from a table: by Raft address, an answer or an
// error. It records every release.
type fakePeers struct {
	mu       sync.Mutex
	answers  map[string]ClaimAnswer
	errs     map[string]error
	released []string
}

func (f *fakePeers) Call(ctx context.Context, addr, path string, in, out any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if path == ReleasePath {
		f.released = append(f.released, addr)
		return nil
	}
	if err := f.errs[addr]; err != nil {
		return err
	}
	*(out.(*ClaimAnswer)) = f.answers[addr]
	return nil
}

func TestClaimFailsClosed(t *testing.T) {
	alive := gossip.StatusAlive
	set := []gossip.ServerInfo{srv("a", 3, alive), srv("b", 3, alive), srv("c", 3, alive)}
	set[1].RaftPort, set[2].RaftPort = 8301, 8302
	bAddr, cAddr := set[1].RaftAddr(), set[2].RaftAddr()
	yes := func(name string) ClaimAnswer { return ClaimAnswer{Name: name, ID: "id-" + name, Yes: true} }
	cases := []struct {
		name    string
		answers map[string]ClaimAnswer
		errs    map[string]error
		want    string // "" for success
	}{
		{name: "all agree", answers: map[string]ClaimAnswer{bAddr: yes("b"), cAddr: yes("c")}},
		{name: "a peer that cannot be asked blocks bootstrap",
			answers: map[string]ClaimAnswer{bAddr: yes("b")}, errs: map[string]error{cAddr: errors.New("connection refused")},
			want: "no answer from c: connection refused"},
		{name: "a peer with raft state blocks bootstrap",
			answers: map[string]ClaimAnswer{bAddr: yes("b"), cAddr: {Name: "c", ID: "id-c", Reason: "has raft state"}},
			want:    "c said no: has raft state"},
		{name: "another node at the peer's address blocks bootstrap",
			answers: map[string]ClaimAnswer{bAddr: yes("b"), cAddr: {Name: "c", ID: "id-other", Yes: true}},
			want:    "c answered as node ID id-other, want id-c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			peers := &fakePeers{answers: tc.answers, errs: tc.errs}
			b := &Bootstrapper{logger: testutil.Logger(t), peers: peers, name: "a", id: "id-a", expect: 3}
			err := b.claim(context.Background(), set)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("claim() = %v, want nil", err)
				}
				if len(peers.released) != 0 {
					t.Errorf("successful claim released %v", peers.released)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("claim() = %v, want %q", err, tc.want)
			}
			// A failed claim is withdrawn everywhere, and frees the candidate.
			sort.Strings(peers.released)
			if got, want := strings.Join(peers.released, " "), bAddr+" "+cAddr; got != want {
				t.Errorf("released at %q, want %q", got, want)
			}
			if b.promise.candidate != "" {
				t.Errorf("candidate still bound to its failed claim: %+v", b.promise)
			}
		})
	}
}
