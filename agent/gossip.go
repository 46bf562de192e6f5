package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/gossip"
)

// eventLoop drains the pool's member events: they poke the bootstrapper,
// the reconciler and the session duty, and a reaped member is handed to
// the reconciler and the session duty, since it is gone from the member
// list.
func (a *Agent) eventLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-a.pool.Events():
			for _, m := range e.Members {
				a.logger.Debug("member event", "event", e.Type.String(), "member", m.Name)
			}
			if a.recon != nil && e.Type == gossip.EventMemberReap {
				a.recon.Reaped(e.Members)
			}
			if a.sess != nil {
				a.sess.Event(e)
			}
			a.boot.Poke()
			if a.recon != nil {
				a.recon.Poke()
			}
		}
	}
}

// joinPort is the port assumed for join and retry_join entries without
// one: this agent's own gossip port, since a pool's agents normally share
// their configuration, or the default gossip port when this agent picks a
// free port.
func (a *Agent) joinPort() int {
	if p := a.cfg.Ports.SerfLAN; p > 0 {
		return p
	}
	return config.DefaultSerfLANPort
}

// join is the JoinFunc for retry_join and the join endpoint. A duplicate
// node name is fatal: retrying cannot fix it.
func (a *Agent) join(addrs []string) (int, error) {
	n, err := a.pool.Join(addrs)
	if gossip.IsDuplicateName(err) {
		a.fail(fmt.Errorf("join refused: %w", err))
	}
	return n, err
}

// errOnlySelf fails a retry_join attempt whose entries resolved to this
// agent's own address and nothing else.
var errOnlySelf = errors.New("resolved only to this agent's own address")

// retryJoin is the JoinFunc for retry_join. It leaves this agent's own
// address out: joining oneself "succeeds" and would end the retries, so a
// pod that reads the headless Service's DNS before its peers are in it
// would stop looking and could form a pool of its own. An attempt that
// finds no one else fails and is retried, unless another agent has joined
// this one meanwhile, or this is a server configured to be alone
// (bootstrap = true), which has no one to find.
func (a *Agent) retryJoin(addrs []string) (int, error) {
	self := a.serfAddr()
	others := make([]string, 0, len(addrs))
	for _, addr := range addrs {
		if addr != self {
			others = append(others, addr)
		}
	}
	if len(others) > 0 {
		return a.join(others)
	}
	if a.cfg.Server && (a.cfg.Bootstrap || a.cfg.BootstrapExpect == 1) {
		return 1, nil
	}
	for _, m := range a.pool.Members() {
		if m.Name != a.cfg.NodeName && m.Status == gossip.StatusAlive {
			return 1, nil // another agent has joined this one meanwhile
		}
	}
	return 0, errOnlySelf
}

func (a *Agent) serfAddr() string {
	ip, port := a.pool.Addr()
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
}

// addrProvider resolves a Raft server ID to the address its gossip member
// advertises now, so a server that changed its IP stays reachable.
type addrProvider struct{ a *Agent }

func (p addrProvider) ServerAddr(id string) (string, error) {
	if p.a.pool == nil {
		return "", errors.New("gossip not started")
	}
	for _, m := range p.a.pool.Members() {
		if s, ok := gossip.ParseServer(m); ok && s.ID == id && m.Status != gossip.StatusLeft {
			return s.RaftAddr(), nil
		}
	}
	return "", fmt.Errorf("no gossip member with id %s", id)
}

// apiAgent is what the HTTP API may ask of the agent.
type apiAgent struct{ *Agent }

func (a apiAgent) Join(addrs []string) (int, error) { return a.join(addrs) }

// NotReady returns why the agent is not ready, or "" when it is: it has
// started, it is not leaving or shutting down, and its gossip member is
// alive. (The API adds Raft's state on a server.)
func (a apiAgent) NotReady() string {
	switch {
	case a.stopping.Load():
		return "agent is shutting down"
	case a.Err() != nil:
		return "agent is stopping on an error: " + a.Err().Error()
	case a.leaving.Load():
		return "agent is leaving the cluster"
	case !a.started.Load():
		return "agent is starting"
	}
	if st := a.pool.LocalMember().Status; st != gossip.StatusAlive {
		return "gossip member is " + st.String()
	}
	return ""
}
