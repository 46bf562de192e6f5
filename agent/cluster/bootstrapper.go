package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
)

// Pool is the part of gossip.Pool the bootstrapper uses.
type Pool interface {
	Members() []gossip.Member
	LocalMember() gossip.Member
	SetTag(key, value string) error
}

// RaftNode is the part of consensus.Node the bootstrapper uses.
type RaftNode interface {
	HasState() bool
	Bootstrap(servers []consensus.Server) error
}

// PeerCaller sends a request to another server's port and decodes the
// JSON answer; serverport.Client implements it.
type PeerCaller interface {
	Call(ctx context.Context, addr, path string, in, out any) error
}

// BootstrapConfig configures a Bootstrapper.
type BootstrapConfig struct {
	// Logger is the parent logger; the bootstrapper logs as "bootstrap".
	Logger hclog.Logger
	// Pool is the gossip pool whose servers count.
	Pool Pool
	// Peers sends claims to the other servers.
	Peers PeerCaller
	// Node is this server's Raft; nil on a client agent.
	Node RaftNode
	// Name and ID are this node's name and node ID; Datacenter its
	// datacenter: only servers of the same datacenter count.
	Name, ID, Datacenter string
	// Expect is bootstrap_expect; 0 when unset.
	Expect int
	// Single is bootstrap = true: bootstrap alone, at once.
	Single bool
}

// Bootstrapper runs the bootstrap decision on one server and answers other
// servers' claims. It also keeps the state /v1/operator/bootstrap reports.
type Bootstrapper struct {
	logger   hclog.Logger
	pool     Pool
	peers    PeerCaller
	node     RaftNode // nil for clients
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

// NewBootstrapper returns the bootstrapper of one agent; Run starts it.
func NewBootstrapper(cfg BootstrapConfig) *Bootstrapper {
	node, expect := cfg.Node, cfg.Expect
	b := &Bootstrapper{
		logger: cfg.Logger.Named("bootstrap"),
		pool:   cfg.Pool, peers: cfg.Peers, node: node,
		name: cfg.Name, id: cfg.ID, dc: cfg.Datacenter,
		expect: expect, single: cfg.Single,
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
	case expect > 0 || cfg.Single:
		b.status = api.BootstrapStatus{State: api.BootstrapWaiting, Expect: expect, Reason: "starting"}
	default:
		// No bootstrap settings: this server waits to be added by a leader,
		// and reports "joined" once it has been.
		b.decided = true
	}
	return b
}

// Status returns the current bootstrap state.
func (b *Bootstrapper) Status() api.BootstrapStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.status
	s.Seen = slices.Clone(s.Seen)
	return s
}

// Poke asks for an evaluation soon; it never blocks.
func (b *Bootstrapper) Poke() {
	select {
	case b.trigger <- struct{}{}:
	default:
	}
}

// Run evaluates the bootstrap condition on every poke and every
// bootstrapRecheck until ctx is done. It also notices when this server
// gains Raft state from a leader and says so in its tags and status.
func (b *Bootstrapper) Run(ctx context.Context) {
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
func (b *Bootstrapper) finished() bool {
	b.mu.Lock()
	decided := b.decided
	b.mu.Unlock()
	return decided && b.node.HasState()
}

// step evaluates the bootstrap condition once; it reports whether a claim
// was made and refused, so Run retries sooner than the regular re-check.
func (b *Bootstrapper) step(ctx context.Context) (refused bool) {
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
func (b *Bootstrapper) claim(ctx context.Context, set []gossip.ServerInfo) error {
	start := time.Now()
	c := Claim{Candidate: b.name, ID: b.id, Nonce: rand.Uint64(), Expect: b.expect}
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
func (b *Bootstrapper) collect(ctx context.Context, c Claim, others []gossip.ServerInfo) error {
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	errs := make(chan error, len(others))
	for _, s := range others {
		go func() {
			var a ClaimAnswer
			if err := b.peers.Call(ctx, s.RaftAddr(), ClaimPath, c, &a); err != nil {
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
func (b *Bootstrapper) release(ctx context.Context, c Claim, others []gossip.ServerInfo) {
	b.mu.Lock()
	if b.promise.candidate == b.name && b.promise.nonce == c.Nonce {
		b.promise = promise{}
	}
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	r := Claim{Candidate: c.Candidate, Nonce: c.Nonce}
	var wg sync.WaitGroup
	for _, s := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.peers.Call(ctx, s.RaftAddr(), ReleasePath, r, nil); err != nil {
				b.logger.Debug("failed to withdraw bootstrap claim", "server", s.Name, "error", err)
			}
		}()
	}
	wg.Wait()
}

// bootstrap calls Raft's bootstrap with set. Like Nomad, it records the
// decision even when bootstrap fails: retrying a half-done bootstrap is
// worse than an operator reading the error in the status.
func (b *Bootstrapper) bootstrap(set []gossip.ServerInfo, why string) {
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
func (b *Bootstrapper) noteState() {
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
func (b *Bootstrapper) Answer(c Claim) ClaimAnswer {
	a := ClaimAnswer{Name: b.name, ID: b.id, Reason: "not a server"}
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
func (b *Bootstrapper) answer(v view, c Claim, now time.Time) ClaimAnswer {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, gone := b.withdrawn[c.Nonce]; gone {
		return ClaimAnswer{Name: b.name, ID: b.id, Reason: "claim already withdrawn"}
	}
	a := judge(v, b.promise, c, now)
	if a.Yes {
		b.promise = promise{candidate: c.Candidate, nonce: c.Nonce, until: now.Add(claimLease)}
	}
	return a
}

// Release drops the promise made to a withdrawn claim.
func (b *Bootstrapper) Release(c Claim) {
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

func (b *Bootstrapper) selfInfo() gossip.ServerInfo {
	s, _ := gossip.ParseServer(b.pool.LocalMember())
	return s
}

func (b *Bootstrapper) view() view {
	v := view{self: b.selfInfo(), expect: b.expect, hasState: b.node != nil && b.node.HasState()}
	for _, m := range b.pool.Members() {
		s, ok := gossip.ParseServer(m)
		if !ok || s.Datacenter != b.dc {
			continue
		}
		if s.Name == b.name {
			s.Status = gossip.StatusAlive
		}
		v.servers = append(v.servers, s)
	}
	return v
}

func (b *Bootstrapper) setWaiting(d decision) {
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

func (b *Bootstrapper) setReason(r string) {
	b.mu.Lock()
	b.status.Reason = r
	b.mu.Unlock()
}
