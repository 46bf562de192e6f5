package agent

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/serf/serf"

	"github.com/conclavehq/conclave/gossip"
)

type staticMembers []serf.Member

func (m staticMembers) Members() []serf.Member { return m }

func routedServer(name string, addr *net.TCPAddr, status serf.MemberStatus) serf.Member {
	return serf.Member{Name: name, Addr: addr.IP, Status: status, Tags: map[string]string{
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
	other := routedServer("other-dc", live, serf.StatusAlive)
	other.Tags[gossip.TagDC] = "dc2"
	members := staticMembers{
		routedServer("dead", deadAddr(t), serf.StatusAlive), // gossip has not noticed yet
		routedServer("live", live, serf.StatusAlive),
		routedServer("failed", live, serf.StatusFailed),
		other,
	}
	sr := &serverRouter{pool: members, dc: "dc1", client: newServerClient(), preferred: members[0].Addr.String() + ":" + members[0].Tags[gossip.TagRaftPort]}

	for i := range 3 {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPut, "/v1/kv/k?cas=0", strings.NewReader("v"+strconv.Itoa(i)))
		sr.forward(w, r)
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

// TestServerRouterWithoutServers answers 503 with Consul's message when no
// alive server is known, and when every server's dial fails.
func TestServerRouterWithoutServers(t *testing.T) {
	for name, members := range map[string]staticMembers{
		"none known": {},
		"all failed": {routedServer("s", deadAddr(t), serf.StatusFailed)},
	} {
		sr := &serverRouter{pool: members, dc: "dc1", client: newServerClient()}
		w := httptest.NewRecorder()
		sr.forward(w, httptest.NewRequest(http.MethodGet, "/v1/kv/k", nil))
		if w.Code != 503 || w.Body.String() != "No known Conclave servers\n" {
			t.Errorf("%s: %d %q, want 503 No known Conclave servers", name, w.Code, w.Body.String())
		}
	}
	sr := &serverRouter{pool: staticMembers{routedServer("s", deadAddr(t), serf.StatusAlive)}, dc: "dc1", client: newServerClient()}
	w := httptest.NewRecorder()
	sr.forward(w, httptest.NewRequest(http.MethodGet, "/v1/kv/k", nil))
	if w.Code != 503 || !strings.HasPrefix(w.Body.String(), "forward to server: ") || !strings.Contains(w.Body.String(), "connection refused") {
		t.Errorf("unreachable server: %d %q, want 503 forward to server: ... connection refused", w.Code, w.Body.String())
	}
}
