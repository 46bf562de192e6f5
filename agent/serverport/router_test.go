package serverport

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/conclavehq/conclave/gossip"
)

type staticMembers []gossip.Member

func (m staticMembers) Members() []gossip.Member { return m }

func routedServer(name string, addr *net.TCPAddr, status gossip.Status) gossip.Member {
	return gossip.Member{Name: name, Addr: addr.IP, Status: status, Tags: map[string]string{
		gossip.TagRole: gossip.RoleServer, gossip.TagID: name + "-id", gossip.TagDC: "dc1",
		gossip.TagRaftPort: strconv.Itoa(addr.Port),
	}}
}

// fakeServerPort serves HTTP the way a server port's forward channel does:
// each connection starts with the protocol byte.
func fakeServerPort(t *testing.T, h http.Handler) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(protoListener{ln, t})
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr)
}

type protoListener struct {
	net.Listener
	t *testing.T
}

func (l protoListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	if b, err := br.ReadByte(); err != nil || b != protoForward {
		l.t.Errorf("first byte = %q, %v; want the forward protocol byte", b, err)
	}
	return bufferedConn{c, br}, nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// deadAddr is an address on which nothing listens.
func deadAddr(t *testing.T) *net.TCPAddr {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	return addr
}

// TestServerRouterMovesOnWhenADialFails: a client agent whose chosen server
// cannot be reached sends the request, body included, to another alive
// server; failed, left and other-datacenter servers are never tried.
func TestServerRouterMovesOnWhenADialFails(t *testing.T) {
	var got []string
	live := fakeServerPort(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+string(b))
		w.Header().Set("X-Consul-Index", "7")
		io.WriteString(w, "true")
	}))
	other := routedServer("other-dc", live, gossip.StatusAlive)
	other.Tags[gossip.TagDC] = "dc2"
	members := staticMembers{
		routedServer("dead", deadAddr(t), gossip.StatusAlive), // gossip has not noticed yet
		routedServer("live", live, gossip.StatusAlive),
		routedServer("failed", live, gossip.StatusFailed),
		other,
	}
	sr := &Router{pool: members, dc: "dc1", client: NewClient(), preferred: members[0].Addr.String() + ":" + members[0].Tags[gossip.TagRaftPort]}

	for i := range 3 {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPut, "/v1/kv/k?cas=0", strings.NewReader("v"+strconv.Itoa(i)))
		if err := sr.Forward(w, r); err != nil {
			t.Fatalf("attempt %d: Forward: %v", i, err)
		}
		if w.Code != 200 || w.Body.String() != "true" || w.Header().Get("X-Consul-Index") != "7" {
			t.Fatalf("attempt %d: %d %q %v; want the live server's answer", i, w.Code, w.Body.String(), w.Header())
		}
	}
	want := []string{"PUT /v1/kv/k?cas=0 v0", "PUT /v1/kv/k?cas=0 v1", "PUT /v1/kv/k?cas=0 v2"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("the live server got %q, want %q", got, want)
	}
	if sr.preferred != live.String() {
		t.Errorf("preferred = %q, want the server that answered, %s", sr.preferred, live)
	}
}

// TestServerRouterWithoutServers fails with Consul's message (which the
// HTTP API answers with 503) when no alive server is known, and when every
// server's dial fails.
func TestServerRouterWithoutServers(t *testing.T) {
	for name, members := range map[string]staticMembers{
		"none known": {},
		"all failed": {routedServer("s", deadAddr(t), gossip.StatusFailed)},
	} {
		sr := &Router{pool: members, dc: "dc1", client: NewClient()}
		w := httptest.NewRecorder()
		err := sr.Forward(w, httptest.NewRequest(http.MethodGet, "/v1/kv/k", nil))
		if !errors.Is(err, ErrNoServers) || err.Error() != "No known Conclave servers" || w.Body.Len() != 0 {
			t.Errorf("%s: Forward = %v, body %q; want No known Conclave servers and nothing written", name, err, w.Body.String())
		}
	}
	sr := &Router{pool: staticMembers{routedServer("s", deadAddr(t), gossip.StatusAlive)}, dc: "dc1", client: NewClient()}
	w := httptest.NewRecorder()
	err := sr.Forward(w, httptest.NewRequest(http.MethodGet, "/v1/kv/k", nil))
	if err == nil || !strings.HasPrefix(err.Error(), "forward to server: ") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("unreachable server: Forward = %v, want forward to server: ... connection refused", err)
	}
}
