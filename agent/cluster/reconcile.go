package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
)

// reconcileInterval is the period of the full pass that repairs anything a
// missed member event left behind.
const reconcileInterval = 60 * time.Second

// reconcileOpTimeout bounds one AddVoter or RemoveServer.
const reconcileOpTimeout = 10 * time.Second

// RaftMembership is the part of consensus.Node the reconciler uses; the
// tests give it an in-memory Raft.
type RaftMembership interface {
	Configuration() ([]consensus.Server, uint64, error)
	AddVoter(ctx context.Context, id, addr string) error
	RemoveServer(ctx context.Context, id string) error
}

// Members is the part of gossip.Pool that lists members.
type Members interface {
	Members() []gossip.Member
}

// Reconciler is the leader's membership loop: it turns gossip membership
// into Raft membership. It runs only while this server leads (Run is a
// leader duty): on gaining leadership, on every member event (Poke) and
// every reconcileInterval.
type Reconciler struct {
	logger hclog.Logger
	raft   RaftMembership
	pool   Members
	selfID string
	dc     string

	trigger chan struct{}

	// self and probe check identities before AddVoter (WithIdentity);
	// nil: no check.
	self     func() Identity
	probe    IdentityProbe
	refusals refusals

	mu     sync.Mutex
	reaped map[string]string // node ID -> name, reaped since the last pass
}

// ReconcilerOption configures a Reconciler.
type ReconcilerOption func(*Reconciler)

// WithIdentity makes the reconciler add a server only when admit agrees:
// self returns the leader's own Identity, probe asks a candidate for its
// own over the server port. Without it, every server of the datacenter is
// added (tests of membership alone).
func WithIdentity(self func() Identity, probe IdentityProbe) ReconcilerOption {
	return func(r *Reconciler) { r.self, r.probe = self, probe }
}

// NewReconciler returns the reconciler of the server selfID in datacenter
// dc.
func NewReconciler(logger hclog.Logger, r RaftMembership, pool Members, selfID, dc string, opts ...ReconcilerOption) *Reconciler {
	rec := &Reconciler{
		logger:  logger.Named("reconcile"),
		raft:    r,
		pool:    pool,
		selfID:  selfID,
		dc:      dc,
		trigger: make(chan struct{}, 1),
		reaped:  make(map[string]string),
	}
	for _, o := range opts {
		o(rec)
	}
	return rec
}

// Poke asks for a pass soon; it never blocks.
func (r *Reconciler) Poke() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Reaped records servers that Serf reaped, so the next pass removes them
// from Raft: once reaped they are no longer in the member list.
func (r *Reconciler) Reaped(members []gossip.Member) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range members {
		if s, ok := gossip.ParseServer(m); ok && s.Datacenter == r.dc {
			r.reaped[s.ID] = s.Name
		}
	}
}

// Run reconciles until ctx ends, that is while this server leads.
func (r *Reconciler) Run(ctx context.Context) {
	r.logger.Info("gained leadership; reconciling membership")
	t := time.NewTicker(reconcileInterval)
	defer t.Stop()
	for {
		if err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			r.logger.Warn("reconcile pass stopped", "error", err)
		}
		select {
		case <-ctx.Done():
			r.logger.Info("lost leadership; reconciler stopped")
			return
		case <-r.trigger:
		case <-t.C:
		}
	}
}

// errLostLeadership ends a pass when leadership goes away mid-pass.
var errLostLeadership = errors.New("lost leadership during reconcile")

// Pass makes one full reconciliation:
//   - an alive server missing from the configuration is added as a voter;
//   - a known ID at a new address is updated in place (AddVoter on the same
//     ID keeps its vote);
//   - an entry whose address now belongs to a different ID is removed first;
//   - a server that left, or was reaped, is removed;
//   - a failed server is kept: it may come back;
//   - with WithIdentity, a server is added or updated only when admit
//     agrees: never one of another cluster or datacenter, nor one with
//     Raft state but no cluster ID. Each refusal is logged once per server
//     and reason.
//
// The leader never removes itself here, and a pass stops at the first
// sign that this server no longer leads.
func (r *Reconciler) Pass(ctx context.Context) error {
	servers, _, err := r.raft.Configuration()
	if err != nil {
		return err
	}
	byID := make(map[string]consensus.Server, len(servers))
	byAddr := make(map[string]consensus.Server, len(servers))
	for _, s := range servers {
		byID[s.ID] = s
		byAddr[s.Address] = s
	}

	r.mu.Lock()
	reaped := r.reaped
	r.reaped = make(map[string]string)
	r.mu.Unlock()

	alive := make(map[string]bool)
	for _, m := range r.pool.Members() {
		s, ok := gossip.ParseServer(m)
		if !ok || s.Datacenter != r.dc {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		switch m.Status {
		case gossip.StatusAlive:
			alive[s.ID] = true
			if err := r.ensureVoter(ctx, s, byID, byAddr); err != nil {
				return err
			}
		case gossip.StatusLeft:
			if _, ok := byID[s.ID]; ok && s.ID != r.selfID {
				if err := r.remove(ctx, s.ID, s.Name, "left"); err != nil {
					return err
				}
			}
		}
	}
	for id, name := range reaped {
		if _, ok := byID[id]; ok && id != r.selfID && !alive[id] {
			if err := r.remove(ctx, id, name, "reaped"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Reconciler) ensureVoter(ctx context.Context, s gossip.ServerInfo, byID, byAddr map[string]consensus.Server) error {
	addr := s.RaftAddr()
	cur, known := byID[s.ID]
	if known && cur.Address == addr && cur.Voter {
		return nil
	}
	if !r.admitted(ctx, s, known) {
		return nil
	}
	if stale, ok := byAddr[addr]; ok && stale.ID != s.ID {
		if stale.ID == r.selfID {
			r.logger.Error("a server advertises the leader's own raft address; not touching it", "server", s.Name, "addr", addr)
			return nil
		}
		// The old holder of this address is gone (the address is now
		// someone else's); dropping its entry only shrinks the quorum.
		if err := r.remove(ctx, stale.ID, "", "address taken by "+s.Name); err != nil {
			return err
		}
	}
	op := "adding voter"
	if known {
		op = "updating voter address"
	}
	r.logger.Info(op, "server", s.Name, "id", s.ID, "addr", addr)
	octx, cancel := context.WithTimeout(ctx, reconcileOpTimeout)
	defer cancel()
	if err := r.raft.AddVoter(octx, s.ID, addr); err != nil {
		return r.opErr(err)
	}
	return nil
}

// probeTimeout bounds one identity probe.
const probeTimeout = 3 * time.Second

// admitted checks s with admit, probing it first unless it is known; a
// refusal is logged once per server and reason, naming both sides.
func (r *Reconciler) admitted(ctx context.Context, s gossip.ServerInfo, known bool) bool {
	if r.self == nil {
		return true
	}
	leader := r.self()
	c := candidate{name: s.Name, id: s.ID, datacenter: s.Datacenter, tag: s.ClusterID, known: known}
	if !known && leader.ClusterID != "" {
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		id, err := r.probe(pctx, s.RaftAddr())
		cancel()
		if err != nil {
			return r.verdict(s, leader, false, fmt.Sprintf("node %s did not say who it is on its server port", s.Name), err)
		}
		c.probe = &id
	}
	ok, reason := admit(c, leader)
	return r.verdict(s, leader, ok, reason, nil)
}

func (r *Reconciler) verdict(s gossip.ServerInfo, leader Identity, ok bool, reason string, err error) bool {
	if ok {
		r.refusals.forget(s.ID)
		return true
	}
	if leader.ClusterID == "" {
		// EnsureClusterID is writing it and pokes the reconciler once done.
		r.logger.Debug("not adding servers before the cluster ID is written", "server", s.Name)
		return false
	}
	if r.refusals.first(s.ID, reason) {
		args := []any{"server", s.Name, "id", s.ID, "addr", s.RaftAddr(), "reason", reason,
			"cluster_id", leader.ClusterID, "server_cluster_id", s.ClusterID}
		if err != nil {
			r.logger.Warn("not adding a server that does not answer its identity probe", append(args, "error", err)...)
			return false
		}
		r.logger.Error("refusing to add a server that is not of this cluster; two clusters must not be joined, see website/operations.md", args...)
	}
	return false
}

func (r *Reconciler) remove(ctx context.Context, id, name, why string) error {
	r.logger.Info("removing server", "server", name, "id", id, "reason", why)
	octx, cancel := context.WithTimeout(ctx, reconcileOpTimeout)
	defer cancel()
	if err := r.raft.RemoveServer(octx, id); err != nil {
		return r.opErr(err)
	}
	return nil
}

func (r *Reconciler) opErr(err error) error {
	if errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrShutdown) {
		return errLostLeadership
	}
	return err
}
