package cluster

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
	"github.com/conclavehq/conclave/test/testutil"
)

// staticPool is a member list that never produces events.
type staticPool struct {
	mu      sync.Mutex
	self    string
	members []gossip.Member
}

func (p *staticPool) Members() []gossip.Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]gossip.Member(nil), p.members...)
}

func (p *staticPool) LocalMember() gossip.Member {
	for _, m := range p.Members() {
		if m.Name == p.self {
			return m
		}
	}
	return gossip.Member{}
}

func (p *staticPool) SetTag(k, v string) error { return nil }

func (p *staticPool) add(m gossip.Member) {
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

func serverMember(name string, port int) gossip.Member {
	m := member(name, "id-"+name, "127.0.0.1:"+strconv.Itoa(port), gossip.StatusAlive)
	m.Tags[gossip.TagExpect] = "3"
	return m
}

// TestBootstrapRechecksOnATimer is hashicorp/consul#370: the third server
// shows up without any member event reaching the bootstrapper (here: no
// Poke at all), and the re-check timer alone gets the cluster bootstrapped.
func TestBootstrapRechecksOnATimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := &staticPool{self: "a", members: []gossip.Member{serverMember("a", 9001), serverMember("b", 9002)}}
		node := &memNode{}
		yes := func(n string) ClaimAnswer { return ClaimAnswer{Name: n, ID: "id-" + n, Yes: true} }
		peers := &fakePeers{answers: map[string]ClaimAnswer{"127.0.0.1:9002": yes("b"), "127.0.0.1:9003": yes("c")}}
		b := NewBootstrapper(BootstrapConfig{Logger: testutil.Logger(t), Pool: pool, Peers: peers, Node: node, Name: "a", ID: "id-a", Datacenter: "dc1", Expect: 3})
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
