package serverport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/agent/tlsutil"
)

// The server port carries two protocols, told apart by the first byte of
// each connection, as Consul's RPC port does: Raft's own, and HTTP requests
// that a follower forwards to the leader. Forwarding over the Raft port
// needs no extra port or address, and reaches the leader even when its HTTP
// API listens on loopback only.
const (
	protoRaft    byte = 'R'
	protoForward byte = 'F'

	// protoReadTimeout bounds how long an inbound connection may take to
	// finish its TLS handshake, if any, and send its first byte.
	protoReadTimeout = 5 * time.Second
)

// Mux accepts connections on the server port and hands each to the
// listener of its protocol.
type Mux struct {
	ln        net.Listener
	advertise *net.TCPAddr
	tls       *tlsutil.Configurator // nil: plain TCP
	logger    hclog.Logger
	raft      *subListener
	forward   *subListener
	closeOnce sync.Once
	done      chan struct{}
}

// Listen binds the server port at bind; advertiseIP is the address other
// servers reach it at. With tlsConf the port speaks TLS only (see tls.go);
// nil means plain TCP.
func Listen(bind string, advertiseIP string, tlsConf *tlsutil.Configurator, logger hclog.Logger) (*Mux, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen on server port %s: %w", bind, err)
	}
	ip := net.ParseIP(advertiseIP)
	if ip == nil || ip.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("advertise address %q is not a usable IP", advertiseIP)
	}
	adv := &net.TCPAddr{IP: ip, Port: ln.Addr().(*net.TCPAddr).Port}
	m := &Mux{ln: ln, advertise: adv, tls: tlsConf, logger: logger.Named("mux"), done: make(chan struct{})}
	m.raft = newSubListener(adv, m.done)
	m.forward = newSubListener(adv, m.done)
	return m, nil
}

// Serve accepts connections until Close.
func (m *Mux) Serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.logger.Error("accept failed", "error", err)
			return
		}
		go m.route(c)
	}
}

func (m *Mux) route(c net.Conn) {
	c.SetDeadline(time.Now().Add(protoReadTimeout))
	if m.tls != nil {
		tc := tls.Server(c, incomingConfig(m.tls))
		if err := tc.Handshake(); err != nil {
			m.logger.Warn("refused a connection: TLS handshake failed", "remote", c.RemoteAddr().String(), "error", err)
			c.Close()
			return
		}
		c = tc
	}
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	var sub *subListener
	switch b[0] {
	case protoRaft:
		if tc, ok := c.(*tls.Conn); ok && serverOnly(m.tls) && !m.tls.IsServer(tc.ConnectionState()) {
			m.logger.Warn("refused a Raft connection: the peer has no server certificate of this datacenter",
				"remote", c.RemoteAddr().String(), "want", tlsutil.ServerName(m.tls.Settings().Datacenter))
			c.Close()
			return
		}
		sub = m.raft
	case protoForward:
		sub = m.forward
	default:
		m.logger.Warn("unknown protocol on server port", "byte", b[0], "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	select {
	case sub.conns <- c:
	case <-sub.closed:
		c.Close()
	case <-m.done:
		c.Close()
	}
}

// Advertise is the server port's advertised address: the Raft address.
func (m *Mux) Advertise() *net.TCPAddr { return m.advertise }

// Raft is the consensus.StreamLayer of the server port: Raft's side of it.
// It dials other servers as the port listens: over TLS when the port
// speaks it.
func (m *Mux) Raft() RaftStream { return RaftStream{m.raft, dialer{m.tls}} }

// Internal is the listener of the internal HTTP channel ('F').
func (m *Mux) Internal() net.Listener { return m.forward }

// Close stops accepting; both sub-listeners report closed.
func (m *Mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.ln.Close()
	})
	return err
}

// subListener is the net.Listener of one protocol on the mux. Closing it
// stops its protocol only; the mux itself closes with Mux.Close.
type subListener struct {
	addr      net.Addr
	conns     chan net.Conn
	done      chan struct{} // the mux's
	closed    chan struct{}
	closeOnce sync.Once
}

func newSubListener(addr net.Addr, done chan struct{}) *subListener {
	return &subListener{addr: addr, conns: make(chan net.Conn), done: done, closed: make(chan struct{})}
}

func (l *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *subListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *subListener) Addr() net.Addr { return l.addr }

// RaftStream is the stream layer Raft uses on the mux (a
// consensus.StreamLayer): it accepts the connections that start with 'R'
// and dials with that byte.
type RaftStream struct {
	*subListener
	d dialer
}

// Dial opens a Raft connection to the server port at addr.
func (s RaftStream) Dial(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.d.dial(ctx, addr, protoRaft)
}
