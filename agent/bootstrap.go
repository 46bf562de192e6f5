package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/serf/serf"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
)

// How a cluster is born
//
// Only a server whose Raft state is empty and whose bootstrap_expect is set
// may bootstrap, and at most one server of a pool ever does. The rule:
//
//  1. A server counts the alive servers of its datacenter that have
//     bootstrap_expect set. Until it sees bootstrap_expect of them, it waits.
//     Any server (alive or failed, not left) that reports Raft state means a
//     cluster exists: nobody bootstraps, and the newcomer waits for that
//     cluster's leader to add it. A server that reports a different
//     bootstrap_expect, or bootstrap = true, blocks bootstrap loudly.
//  2. The server with the lowest node name among them is the only candidate.
//  3. The candidate claims: it sends a claim naming itself and the exact set
//     of servers it counts directly to each of them, over their server port. Each answers yes only if it
//     has no Raft state, has the same bootstrap_expect, counts exactly the
//     same set of servers, and has not promised itself to another candidate
//     within the promise lease. A yes is a promise: for claimLease it answers
//     no to any other candidate and makes no claim of its own. A candidate
//     whose claim fails withdraws it (releasePath), which frees the
//     servers that said yes; it never bootstraps on a withdrawn claim.
//  4. The candidate bootstraps, with every server of the set as a voter, only
//     if every server in the set answered yes, within claimDeadline of the
//     claim's start. A missing answer is a no (fail closed): a peer that
//     cannot be asked whether it has Raft state blocks bootstrap until it
//     answers, so two new servers can never overwrite a third one's data.
//
// Why there cannot be two clusters. Suppose candidates X and Y both
// bootstrapped, with sets Sx and Sy, both at least bootstrap_expect strong.
// If Sx and Sy share a server Z, Z said yes to both. Z answers yes only when
// its own view equals the candidate's set, and the set determines the
// candidate (its lowest name), so Z's view changed between the two answers,
// and the second answer came after Z's promise to the first expired
// (claimLease after the first answer) or after the first candidate
// withdrew its claim, which it then never bootstraps on. The first candidate bootstrapped
// within claimDeadline (a quarter of claimLease) of starting its claim, so
// by then it already had Raft state and reported it in its tags, and its
// first heartbeat gave Z Raft state too; Z then answers no forever, and so
// does the first candidate, which is in the second candidate's view only if
// it is alive. The remaining window is a candidate that crashes within a
// heartbeat of bootstrapping and stays down for longer than claimLease while
// bootstrap_expect other empty servers stay up; website/bootstrap.md
// describes what happens then. If Sx and Sy share no server, the two groups
// never saw each other: they were two separate gossip pools, which no
// protocol can tell from two intended clusters; retry_join lists that name
// the same seeds prevent it.
//
// Restarted servers never bootstrap (their Raft state says so), and the
// condition is re-checked on a timer as well as on member events, so a
// missed event cannot leave a cluster leaderless (hashicorp/consul#370).

// Claims travel as direct requests to each server's port (see mux.go), not
// as Serf queries: gossip spreads a query to random members with few
// retransmissions, and a server that misses it costs a whole claim timeout.
const (
	// claimPath takes a claim and answers with a claimAnswer.
	claimPath = "/internal/bootstrap/claim"
	// releasePath withdraws a claim that failed, so the servers that said
	// yes to it are free at once instead of at the end of the lease.
	releasePath = "/internal/bootstrap/release"
	// claimLease is how long a yes binds the server that said it.
	claimLease = 10 * time.Second
	// claimDeadline bounds a claim from start to bootstrap, measured on the
	// candidate's monotonic clock. It is well under claimLease so every
	// promise is still held when the candidate bootstraps.
	claimDeadline = claimLease / 4
	// claimTimeout is how long the candidate waits for answers.
	claimTimeout = 2 * time.Second
	// bootstrapRecheck is the timer on which the condition is re-evaluated
	// without any member event; it also bounds how long the status and the
	// raft_state tag lag behind Raft state a leader gave this server.
	bootstrapRecheck = 250 * time.Millisecond
	// claimRetry is the base wait after a refused claim; views that
	// differed usually agree again within a gossip round or two.
	claimRetry = 150 * time.Millisecond
)

// claim is the body of a claim and, with only Candidate and Nonce set, of a
// release.
type claim struct {
	Candidate string
	ID        string
	// Nonce tells one claim of a candidate from the next, so a late
	// release can never cancel a newer claim's promises.
	Nonce  uint64
	Expect int
	// Servers are the names of every server in the candidate's set, sorted,
	// the candidate included.
	Servers []string
}

// claimAnswer is a server's reply to a claim.
type claimAnswer struct {
	Name   string
	ID     string
	Yes    bool
	Reason string
}

// promise records a yes given to a candidate's claim.
type promise struct {
	candidate string
	nonce     uint64
	until     time.Time
}

// view is what one server knows when it evaluates bootstrap.
type view struct {
	self     gossip.ServerInfo
	expect   int
	hasState bool
	// servers are all server members this node knows in its datacenter, in
	// any status, itself included.
	servers []gossip.ServerInfo
}

// memberPool is the part of gossip.Pool the bootstrapper uses.
type memberPool interface {
	Members() []serf.Member
	LocalMember() serf.Member
	SetTag(key, value string) error
}

// raftNode is the part of consensus.Node the bootstrapper uses.
type raftNode interface {
	HasState() bool
	Bootstrap(servers []consensus.Server) error
}

// peerCaller sends a request to another server's port and decodes the
// JSON answer; the agent's serverClient implements it.
type peerCaller interface {
	call(ctx context.Context, addr, path string, in, out any) error
}

// decision is the outcome of evaluating a view.
type decision struct {
	// claim is true when this server should claim with set.
	claim bool
	// set is the bootstrap set: the alive servers that count, sorted by name.
	set []gossip.ServerInfo
	// clusterExists is set when some server reports Raft state.
	clusterExists bool
	// conflicts names servers whose bootstrap settings disagree with ours.
	conflicts []string
	// reason says in one line why the server waits.
	reason string
}

// evaluate applies rules 1 and 2 to a view. It is pure, for testing.
func evaluate(v view) decision {
	var d decision
	for _, s := range v.servers {
		if s.Status != serf.StatusAlive {
			continue
		}
		switch {
		case s.Bootstrap && s.Name != v.self.Name:
			d.conflicts = append(d.conflicts, fmt.Sprintf("%s (bootstrap = true)", s.Name))
		case s.Expect != 0 && s.Expect != v.expect:
			d.conflicts = append(d.conflicts, fmt.Sprintf("%s (bootstrap_expect = %d)", s.Name, s.Expect))
		case s.Expect == v.expect:
			d.set = append(d.set, s)
		}
	}
	sort.Slice(d.set, func(i, j int) bool { return d.set[i].Name < d.set[j].Name })
	for _, s := range v.servers {
		if s.Name != v.self.Name && s.HasState && s.Status != serf.StatusLeft {
			d.clusterExists = true
			d.conflicts = nil
			d.reason = fmt.Sprintf("a cluster exists (server %s has raft state); waiting for its leader to add this server", s.Name)
			return d
		}
	}
	if len(d.conflicts) > 0 {
		d.reason = fmt.Sprintf("bootstrap blocked: servers disagree with bootstrap_expect = %d: %s", v.expect, strings.Join(d.conflicts, ", "))
		return d
	}
	if len(d.set) < v.expect {
		d.reason = fmt.Sprintf("waiting for %d servers, %d seen", v.expect, len(d.set))
		return d
	}
	if d.set[0].Name != v.self.Name {
		d.reason = fmt.Sprintf("%d servers seen; %s has the lowest name and bootstraps the cluster", len(d.set), d.set[0].Name)
		return d
	}
	d.claim = true
	return d
}

// judge applies rule 3: the answer of a server with view v (and its current
// promise p) to claim c at time now. It is pure, for testing.
func judge(v view, p promise, c claim, now time.Time) claimAnswer {
	a := claimAnswer{Name: v.self.Name, ID: v.self.ID}
	d := evaluate(v)
	var mine []string
	for _, s := range d.set {
		mine = append(mine, s.Name)
	}
	switch {
	case v.hasState:
		a.Reason = "has raft state"
	case c.Expect != v.expect:
		a.Reason = fmt.Sprintf("bootstrap_expect is %d, not %d", v.expect, c.Expect)
	case d.clusterExists || len(d.conflicts) > 0:
		a.Reason = d.reason
	case !slices.Equal(mine, c.Servers):
		a.Reason = fmt.Sprintf("sees servers [%s], not [%s]", strings.Join(mine, " "), strings.Join(c.Servers, " "))
	case p.candidate != "" && p.candidate != c.Candidate && now.Before(p.until):
		a.Reason = fmt.Sprintf("promised to %s for %s more", p.candidate, p.until.Sub(now).Round(time.Millisecond))
	default:
		a.Yes = true
	}
	return a
}

// bootstrapper runs the bootstrap decision on one server and answers other
// servers' claims. It also keeps the state /v1/operator/bootstrap reports.
type bootstrapper struct {
	logger   hclog.Logger
	pool     memberPool
	peers    peerCaller
	node     raftNode // nil for clients
	name, id string
	dc       string
	expect   int
	single   bool // bootstrap = true

	trigger chan struct{}

	mu         sync.Mutex
	status     api.BootstrapStatus
	decided    bool
	promise    promise
	lastReason string
	// withdrawn holds the nonces of claims released before they arrived
	// (a release can overtake its claim on another connection), until
	// the lease would have ended.
	withdrawn map[uint64]time.Time
}

func newBootstrapper(logger hclog.Logger, pool memberPool, peers peerCaller, node raftNode, name, id, dc string, expect int, single bool) *bootstrapper {
	b := &bootstrapper{
		logger: logger.Named("bootstrap"),
		pool:   pool, peers: peers, node: node,
		name: name, id: id, dc: dc,
		expect: expect, single: single,
		trigger: make(chan struct{}, 1),
	}
	b.status = api.BootstrapStatus{State: api.BootstrapDisabled, Expect: expect, Reason: "bootstrap_expect is not set"}
	switch {
	case node == nil:
		b.status.Reason = "not a server"
		b.decided = true
	case node.HasState():
		b.status = api.BootstrapStatus{State: api.BootstrapExistingState, Expect: expect, Reason: "restarted with existing raft state; never bootstraps again"}
		b.decided = true
	case expect > 0 || single:
		b.status = api.BootstrapStatus{State: api.BootstrapWaiting, Expect: expect, Reason: "starting"}
	default:
		// No bootstrap settings: this server waits to be added by a leader,
		// and reports "joined" once it has been.
		b.decided = true
	}
	return b
}

// Status returns the current bootstrap state.
func (b *bootstrapper) Status() api.BootstrapStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.status
	s.Seen = slices.Clone(s.Seen)
	return s
}

// Poke asks for an evaluation soon; it never blocks.
func (b *bootstrapper) Poke() {
	select {
	case b.trigger <- struct{}{}:
	default:
	}
}

// Run evaluates the bootstrap condition on every poke and every
// bootstrapRecheck until ctx is done. It also notices when this server
// gains Raft state from a leader and says so in its tags and status.
func (b *bootstrapper) Run(ctx context.Context) {
	if b.node == nil {
		return
	}
	t := time.NewTimer(bootstrapRecheck)
	defer t.Stop()
	for {
		wait := bootstrapRecheck
		if refused := b.step(ctx); refused {
			wait = claimRetry + rand.N(claimRetry)
		}
		if b.finished() {
			return // state and tag are final; nothing left to watch
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-b.trigger:
		case <-t.C:
		}
	}
}

// finished reports whether this server has Raft state and has reported it.
func (b *bootstrapper) finished() bool {
	b.mu.Lock()
	decided := b.decided
	b.mu.Unlock()
	return decided && b.node.HasState()
}

// step evaluates the bootstrap condition once; it reports whether a claim
// was made and refused, so Run retries sooner than the regular re-check.
func (b *bootstrapper) step(ctx context.Context) (refused bool) {
	if b.node.HasState() {
		b.noteState()
		return false
	}
	b.mu.Lock()
	decided := b.decided
	b.mu.Unlock()
	if decided {
		return false
	}
	if b.single {
		b.bootstrap([]gossip.ServerInfo{b.selfInfo()}, "bootstrap = true")
		return false
	}
	v := b.view()
	d := evaluate(v)
	b.setWaiting(d)
	if !d.claim {
		return false
	}
	b.mu.Lock()
	p := b.promise
	b.mu.Unlock()
	if p.candidate != "" && p.candidate != b.name && time.Now().Before(p.until) {
		b.setReason(fmt.Sprintf("promised to candidate %s; waiting for it", p.candidate))
		return true
	}
	if err := b.claim(ctx, d.set); err != nil {
		b.setReason("bootstrap claim refused: " + err.Error())
		b.logger.Info("bootstrap claim refused; will retry", "error", err)
		return true
	}
	b.bootstrap(d.set, fmt.Sprintf("all %d servers agreed", len(d.set)))
	return false
}

// claim runs rules 3 and 4 for set and returns nil only if every server in
// it said yes in time.
func (b *bootstrapper) claim(ctx context.Context, set []gossip.ServerInfo) error {
	start := time.Now()
	c := claim{Candidate: b.name, ID: b.id, Nonce: rand.Uint64(), Expect: b.expect}
	var others []gossip.ServerInfo
	for _, s := range set {
		c.Servers = append(c.Servers, s.Name)
		if s.Name != b.name {
			others = append(others, s)
		}
	}
	// The candidate binds itself too, so it answers no to anyone else
	// while its own claim is in flight.
	b.mu.Lock()
	b.promise = promise{candidate: b.name, nonce: c.Nonce, until: start.Add(claimLease)}
	b.mu.Unlock()
	if len(others) == 0 {
		return nil
	}
	b.logger.Info("claiming bootstrap", "servers", strings.Join(c.Servers, ","))
	err := b.collect(ctx, c, others)
	if elapsed := time.Since(start); err == nil && elapsed > claimDeadline {
		err = fmt.Errorf("answers took %s, longer than %s", elapsed.Round(time.Millisecond), claimDeadline)
	}
	if err != nil {
		b.release(ctx, c, others)
	}
	return err
}

// collect sends claim c to every server in others at once and waits for
// all answers. Any no, wrong answer, error or timeout fails the claim.
func (b *bootstrapper) collect(ctx context.Context, c claim, others []gossip.ServerInfo) error {
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	errs := make(chan error, len(others))
	for _, s := range others {
		go func() {
			var a claimAnswer
			if err := b.peers.call(ctx, s.RaftAddr(), claimPath, c, &a); err != nil {
				errs <- fmt.Errorf("no answer from %s: %w", s.Name, err)
				return
			}
			switch {
			case a.ID != s.ID:
				errs <- fmt.Errorf("%s answered as node ID %s, want %s", s.Name, a.ID, s.ID)
			case !a.Yes:
				errs <- fmt.Errorf("%s said no: %s", s.Name, a.Reason)
			default:
				errs <- nil
			}
		}()
	}
	var first error
	for range others {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel() // no point waiting for the rest
		}
	}
	return first
}

// release withdraws claim c: every server drops a promise it made to it.
// Servers that cannot be told are freed when the lease ends.
func (b *bootstrapper) release(ctx context.Context, c claim, others []gossip.ServerInfo) {
	b.mu.Lock()
	if b.promise.candidate == b.name && b.promise.nonce == c.Nonce {
		b.promise = promise{}
	}
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	r := claim{Candidate: c.Candidate, Nonce: c.Nonce}
	var wg sync.WaitGroup
	for _, s := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.peers.call(ctx, s.RaftAddr(), releasePath, r, nil); err != nil {
				b.logger.Debug("failed to withdraw bootstrap claim", "server", s.Name, "error", err)
			}
		}()
	}
	wg.Wait()
}

// bootstrap calls Raft's bootstrap with set. Like Nomad, it records the
// decision even when bootstrap fails: retrying a half-done bootstrap is
// worse than an operator reading the error in the status.
func (b *bootstrapper) bootstrap(set []gossip.ServerInfo, why string) {
	servers := make([]consensus.Server, 0, len(set))
	var names []string
	for _, s := range set {
		servers = append(servers, consensus.Server{ID: s.ID, Address: s.RaftAddr(), Voter: true})
		names = append(names, s.Name)
	}
	err := b.node.Bootstrap(servers)
	now := time.Now().UTC()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.decided = true
	switch {
	case err == nil:
		b.logger.Info("bootstrapped cluster", "servers", strings.Join(names, ","), "reason", why)
		b.status = api.BootstrapStatus{State: api.BootstrapBootstrapped, Expect: b.expect, Seen: names, By: b.name, At: &now,
			Reason: "this server bootstrapped the cluster: " + why}
		if terr := b.pool.SetTag(gossip.TagRaftState, "1"); terr != nil {
			b.logger.Warn("failed to set raft_state tag", "error", terr)
		}
	case errors.Is(err, consensus.ErrAlreadyBootstrapped):
		b.status.Reason = "raft state appeared before bootstrap; not bootstrapping"
	default:
		b.logger.Error("bootstrap failed", "error", err)
		b.status.Reason = "bootstrap failed: " + err.Error()
	}
}

// noteState records that this server has Raft state it did not bootstrap
// itself: either it was in another candidate's bootstrap set, or a leader
// added it later.
func (b *bootstrapper) noteState() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.status.State == api.BootstrapBootstrapped || b.status.State == api.BootstrapExistingState || b.status.State == api.BootstrapJoined {
		return
	}
	b.decided = true
	now := time.Now().UTC()
	if p := b.promise; p.candidate != "" && p.candidate != b.name && now.Before(p.until) {
		b.status = api.BootstrapStatus{State: api.BootstrapBootstrapped, Expect: b.expect, Seen: b.status.Seen, By: p.candidate, At: &now,
			Reason: fmt.Sprintf("cluster bootstrapped by %s", p.candidate)}
	} else {
		b.status = api.BootstrapStatus{State: api.BootstrapJoined, Expect: b.expect, Seen: b.status.Seen, At: &now,
			Reason: "joined an existing cluster"}
	}
	b.logger.Info("raft state received from leader", "state", b.status.State)
	if err := b.pool.SetTag(gossip.TagRaftState, "1"); err != nil {
		b.logger.Warn("failed to set raft_state tag", "error", err)
	}
}

// Answer judges a claim from another server and records the promise when
// the answer is yes.
func (b *bootstrapper) Answer(c claim) claimAnswer {
	a := claimAnswer{Name: b.name, ID: b.id, Reason: "not a server"}
	if b.node != nil {
		a = b.answer(b.view(), c, time.Now())
	}
	if a.Yes {
		b.logger.Info("promised bootstrap to candidate", "candidate", c.Candidate)
	} else {
		b.logger.Info("refused bootstrap claim", "candidate", c.Candidate, "reason", a.Reason)
	}
	return a
}

// answer judges c against view v at time now and records the promise.
func (b *bootstrapper) answer(v view, c claim, now time.Time) claimAnswer {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, gone := b.withdrawn[c.Nonce]; gone {
		return claimAnswer{Name: b.name, ID: b.id, Reason: "claim already withdrawn"}
	}
	a := judge(v, b.promise, c, now)
	if a.Yes {
		b.promise = promise{candidate: c.Candidate, nonce: c.Nonce, until: now.Add(claimLease)}
	}
	return a
}

// Release drops the promise made to a withdrawn claim.
func (b *bootstrapper) Release(c claim) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.promise.candidate == c.Candidate && b.promise.nonce == c.Nonce {
		b.promise = promise{}
		b.logger.Debug("bootstrap claim withdrawn", "candidate", c.Candidate)
		return
	}
	now := time.Now()
	for n, until := range b.withdrawn {
		if now.After(until) {
			delete(b.withdrawn, n)
		}
	}
	if b.withdrawn == nil {
		b.withdrawn = make(map[uint64]time.Time)
	}
	b.withdrawn[c.Nonce] = now.Add(claimLease)
}

func (b *bootstrapper) selfInfo() gossip.ServerInfo {
	s, _ := gossip.ParseServer(b.pool.LocalMember())
	return s
}

func (b *bootstrapper) view() view {
	v := view{self: b.selfInfo(), expect: b.expect, hasState: b.node != nil && b.node.HasState()}
	for _, m := range b.pool.Members() {
		s, ok := gossip.ParseServer(m)
		if !ok || s.Datacenter != b.dc {
			continue
		}
		if s.Name == b.name {
			s.Status = serf.StatusAlive
		}
		v.servers = append(v.servers, s)
	}
	return v
}

func (b *bootstrapper) setWaiting(d decision) {
	var seen []string
	for _, s := range d.set {
		seen = append(seen, s.Name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status.State = api.BootstrapWaiting
	b.status.Seen = seen
	b.status.Reason = d.reason
	if len(d.conflicts) > 0 && d.reason != b.lastReason {
		b.logger.Error("BOOTSTRAP BLOCKED: servers report conflicting bootstrap settings; all servers must use the same bootstrap_expect",
			"expect", b.expect, "conflicting", strings.Join(d.conflicts, ", "))
	} else if d.reason != b.lastReason && d.reason != "" {
		b.logger.Info("bootstrap waiting", "reason", d.reason)
	}
	b.lastReason = d.reason
}

func (b *bootstrapper) setReason(r string) {
	b.mu.Lock()
	b.status.Reason = r
	b.mu.Unlock()
}
