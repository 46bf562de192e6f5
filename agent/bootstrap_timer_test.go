package agent

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
	"github.com/conclavehq/conclave/test/testutil"
)

// staticPool is a member list that never produces events.
type staticPool struct {
	mu      sync.Mutex
	self    string
	members []serf.Member
}

func (p *staticPool) Members() []serf.Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]serf.Member(nil), p.members...)
}

func (p *staticPool) LocalMember() serf.Member {
	for _, m := range p.Members() {
		if m.Name == p.self {
			return m
		}
	}
	return serf.Member{}
}

func (p *staticPool) SetTag(k, v string) error { return nil }

func (p *staticPool) add(m serf.Member) {
	p.mu.Lock()
	p.members = append(p.members, m)
	p.mu.Unlock()
}

// memNode records bootstraps.
type memNode struct {
	mu     sync.Mutex
	booted []consensus.Server
}

func (n *memNode) HasState() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.booted != nil
}

func (n *memNode) Bootstrap(s []consensus.Server) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.booted = s
	return nil
}

func serverMember(name string, port int) serf.Member {
	m := member(name, "id-"+name, "127.0.0.1:"+strconv.Itoa(port), serf.StatusAlive)
	m.Tags[gossip.TagExpect] = "3"
	return m
}

// TestBootstrapRechecksOnATimer is hashicorp/consul#370: the third server
// shows up without any member event reaching the bootstrapper (here: no
// Poke at all), and the re-check timer alone gets the cluster bootstrapped.
func TestBootstrapRechecksOnATimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := &staticPool{self: "a", members: []serf.Member{serverMember("a", 9001), serverMember("b", 9002)}}
		node := &memNode{}
		yes := func(n string) claimAnswer { return claimAnswer{Name: n, ID: "id-" + n, Yes: true} }
		peers := &fakePeers{answers: map[string]claimAnswer{"127.0.0.1:9002": yes("b"), "127.0.0.1:9003": yes("c")}}
		b := newBootstrapper(testutil.Logger(t), pool, peers, node, "a", "id-a", "dc1", 3, false)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { b.Run(ctx); close(done) }()

		time.Sleep(10 * time.Second)
		synctest.Wait()
		if node.HasState() {
			t.Fatal("bootstrapped with two of three servers")
		}
		if st := b.Status(); st.State != api.BootstrapWaiting || st.Reason != "waiting for 3 servers, 2 seen" {
			t.Fatalf("status = %+v, want waiting for 3 servers, 2 seen", st)
		}

		pool.add(serverMember("c", 9003)) // no Poke: the event was lost
		time.Sleep(bootstrapRecheck)
		synctest.Wait()
		if !node.HasState() || len(node.booted) != 3 {
			t.Fatalf("after one re-check period: bootstrapped with %v, want all three servers", node.booted)
		}
		if st := b.Status(); st.State != api.BootstrapBootstrapped || st.By != "a" {
			t.Fatalf("status = %+v, want bootstrapped by a", st)
		}
		cancel()
		<-done
	})
}
