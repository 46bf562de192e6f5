package consensus

import (
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// StreamLayer carries Raft's connections: Addr is the advertised Raft
// address, Accept yields inbound connections and Dial opens outbound ones
// (raft.StreamLayer, without Raft's types).
type StreamLayer interface {
	net.Listener
	Dial(addr string, timeout time.Duration) (net.Conn, error)
}

// AddressProvider resolves a server ID to the Raft address it has now
// (raft.ServerAddressProvider, without Raft's types).
type AddressProvider interface {
	ServerAddr(id string) (addr string, err error)
}

// raftStream is a StreamLayer as Raft sees it.
type raftStream struct{ StreamLayer }

func (s raftStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.StreamLayer.Dial(string(addr), timeout)
}

// addressProvider is an AddressProvider as Raft sees it.
type addressProvider struct{ p AddressProvider }

func (p addressProvider) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	addr, err := p.p.ServerAddr(string(id))
	return raft.ServerAddress(addr), err
}

// raftAddressProvider is nil for a nil p, so Raft uses the configured
// addresses.
func raftAddressProvider(p AddressProvider) raft.ServerAddressProvider {
	if p == nil {
		return nil
	}
	return addressProvider{p}
}
