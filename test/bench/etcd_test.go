package bench

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conclavehq/conclave/test/testutil"
)

// etcdInstallHint says how to get the etcd binary the side-by-side
// benchmark runs; it installs nothing itself.
const etcdInstallHint = "install Debian's etcd-server package (apt-get install -y etcd-server) or put an etcd 3.4+ binary on PATH"

// etcdMember is one etcd server process of a benchmark's cluster, on a
// loopback address of its own.
type etcdMember struct {
	name       string
	ip         string
	clientPort int
	peerPort   int
	dir        string // data dir
	logPath    string

	cmd    *exec.Cmd
	exited chan struct{}
}

// ClientURL is the member's client URL, for gRPC and the HTTP gateway.
func (m *etcdMember) ClientURL() string { return fmt.Sprintf("http://%s:%d", m.ip, m.clientPort) }

func (m *etcdMember) peerURL() string { return fmt.Sprintf("http://%s:%d", m.ip, m.peerPort) }

// etcdCluster is a 3-member etcd cluster in the default configuration:
// every write is fsynced (no unsafe options), the default quota, snapshot
// count, heartbeat (100 ms) and election timeout (1 s).
type etcdCluster struct {
	members []*etcdMember
	http    *http.Client
}

// startEtcd starts n etcd members under root and waits until they agree
// on a leader. They are killed, with their process groups, when the
// benchmark ends, whether it passes or not; their logs are written to its
// output if it failed.
func startEtcd(b *testing.B, bin, root string, n int) *etcdCluster {
	b.Helper()
	ec := &etcdCluster{http: &http.Client{Timeout: 10 * time.Second}}
	var initial []string
	for i := range n {
		ip := testutil.IP(b)
		p := testutil.PortsOn(b, ip, 2)
		m := &etcdMember{
			name: fmt.Sprintf("e%d", i+1), ip: ip, clientPort: p[0], peerPort: p[1],
			dir: filepath.Join(root, fmt.Sprintf("e%d", i+1)),
		}
		m.logPath = m.dir + ".log"
		ec.members = append(ec.members, m)
		initial = append(initial, m.name+"="+m.peerURL())
	}
	token := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	for _, m := range ec.members {
		m.start(b, bin, strings.Join(initial, ","), token)
	}
	b.Cleanup(func() {
		ec.kill()
		if b.Failed() {
			for _, m := range ec.members {
				if out, err := os.ReadFile(m.logPath); err == nil {
					b.Logf("--- %s log (%s) ---\n%s", m.name, m.logPath, tail(out, 40))
				}
			}
		}
	})
	if _, err := pollUntil(time.Now(), measureTimeout, 50*time.Millisecond, func() error {
		_, err := ec.leader()
		return err
	}); err != nil {
		b.Fatalf("etcd cluster did not elect a leader: %v", err)
	}
	return ec
}

func (m *etcdMember) start(b *testing.B, bin, initial, token string) {
	b.Helper()
	logf, err := os.Create(m.logPath)
	if err != nil {
		b.Fatalf("create %s: %v", m.logPath, err)
	}
	cmd := exec.Command(bin,
		"--name", m.name,
		"--data-dir", m.dir,
		"--listen-client-urls", m.ClientURL(),
		"--advertise-client-urls", m.ClientURL(),
		"--listen-peer-urls", m.peerURL(),
		"--initial-advertise-peer-urls", m.peerURL(),
		"--initial-cluster", initial,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", token,
		"--logger", "zap",
		"--log-outputs", "stderr",
	)
	// ETCD_* variables would override the flags above.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		b.Fatalf("start etcd member %s: %v", m.name, err)
	}
	m.cmd = cmd
	m.exited = make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(m.exited)
	}()
}

// kill ends every member with SIGKILL and waits for it; it can be called
// more than once.
func (ec *etcdCluster) kill() {
	for _, m := range ec.members {
		if m.cmd == nil {
			continue
		}
		select {
		case <-m.exited:
			continue
		default:
		}
		syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.exited
	}
}

// etcdStatus is the part of the gateway's /v3/maintenance/status answer
// the harness reads; grpc-gateway writes uint64s as strings.
type etcdStatus struct {
	Header struct {
		MemberID string `json:"member_id"`
		RaftTerm string `json:"raft_term"`
	} `json:"header"`
	Leader string `json:"leader"`
}

// leader returns the member that every member reports as the leader.
func (ec *etcdCluster) leader() (*etcdMember, error) {
	ids := map[string]*etcdMember{}
	var leaderID string
	for _, m := range ec.members {
		var st etcdStatus
		if err := ec.post(m, "/v3/maintenance/status", []byte("{}"), &st); err != nil {
			return nil, err
		}
		if st.Leader == "" || st.Leader == "0" {
			return nil, fmt.Errorf("etcd member %s has no leader", m.name)
		}
		if leaderID != "" && st.Leader != leaderID {
			return nil, fmt.Errorf("etcd members disagree on the leader: %s and %s", leaderID, st.Leader)
		}
		leaderID = st.Leader
		ids[st.Header.MemberID] = m
	}
	if l := ids[leaderID]; l != nil {
		return l, nil
	}
	return nil, fmt.Errorf("etcd leader %s is not one of the members", leaderID)
}

// post sends a JSON request to the member's HTTP gateway and decodes the
// answer into v, if v is not nil.
func (ec *etcdCluster) post(m *etcdMember, path string, body []byte, v any) error {
	resp, err := ec.http.Post(m.ClientURL()+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s on etcd member %s: %d %s", path, m.name, resp.StatusCode, bytes.TrimSpace(out))
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(out, v)
}

// pid returns the member's process ID.
func (m *etcdMember) pid() int { return m.cmd.Process.Pid }

// etcdPutBody is the JSON of a gateway PUT of value at key.
func etcdPutBody(key string, value []byte) []byte {
	body, _ := json.Marshal(map[string]string{
		"key":   base64.StdEncoding.EncodeToString([]byte(key)),
		"value": base64.StdEncoding.EncodeToString(value),
	})
	return body
}

// errEtcdPut is returned by an HTTP gateway PUT that etcd did not answer
// with a header.
var errEtcdPut = errors.New("etcd gateway PUT answered without a header")

// httpPut writes through the member's HTTP gateway with the given client,
// whose keep-alive connections are reused.
func httpPut(c *http.Client, m *etcdMember, key string, value []byte) error {
	resp, err := c.Post(m.ClientURL()+"/v3/kv/put", "application/json", bytes.NewReader(etcdPutBody(key, value)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT %s through the gateway of %s: %d %s", key, m.name, resp.StatusCode, bytes.TrimSpace(out))
	}
	if !bytes.Contains(out, []byte(`"header"`)) {
		return fmt.Errorf("%w: %s", errEtcdPut, bytes.TrimSpace(out))
	}
	return nil
}

// etcdLoad builds the gRPC load generator (module test/bench/etcdload)
// once per test binary.
var etcdLoad struct {
	once sync.Once
	path string
	err  error
}

func buildEtcdLoad() (string, error) {
	etcdLoad.once.Do(func() {
		dir, err := os.MkdirTemp("", "conclave-etcdload-")
		if err != nil {
			etcdLoad.err = err
			return
		}
		bin := filepath.Join(dir, "etcdload")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir = "etcdload"
		if out, err := cmd.CombinedOutput(); err != nil {
			etcdLoad.err = fmt.Errorf("build test/bench/etcdload: %v\n%s", err, out)
			return
		}
		etcdLoad.path = bin
	})
	return etcdLoad.path, etcdLoad.err
}

// etcdLoadResult mirrors etcdload's Result.
type etcdLoadResult struct {
	ElapsedNS   int64   `json:"elapsed_ns"`
	LatenciesNS []int64 `json:"latencies_ns"`
}

// grpcLoad runs the gRPC load generator against the member with the same
// workload as load: clients writers, ops operations or maxTime at most,
// kvWarmup untimed writes each, kvValueSize-byte values, the same keys.
func grpcLoad(b *testing.B, bin string, m *etcdMember, clients, ops int, maxTime time.Duration) ([]time.Duration, time.Duration) {
	b.Helper()
	cmd := exec.Command(bin,
		"-endpoint", m.ClientURL(),
		"-clients", strconv.Itoa(clients),
		"-ops", strconv.Itoa(ops),
		"-max-time", maxTime.String(),
		"-warmup", strconv.Itoa(kvWarmup),
		"-value-size", strconv.Itoa(kvValueSize),
		"-keys-per-client", strconv.Itoa(kvKeysPerClient),
		"-key-format", kvKeyFormat,
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Do not wait long for the output pipes after the process is gone.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		b.Fatalf("start etcdload: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	limit := maxTime + time.Duration(clients*kvWarmup)*100*time.Millisecond + time.Minute
	select {
	case err := <-done:
		if err != nil {
			b.Fatalf("etcdload against %s: %v\n%s", m.name, err, bytes.TrimSpace(stderr.Bytes()))
		}
	case <-time.After(limit):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		b.Fatalf("etcdload against %s still running after %s; killed", m.name, limit)
	}
	var r etcdLoadResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		b.Fatalf("decode etcdload's result: %v", err)
	}
	lat := make([]time.Duration, len(r.LatenciesNS))
	for i, ns := range r.LatenciesNS {
		lat[i] = time.Duration(ns)
	}
	return lat, time.Duration(r.ElapsedNS)
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
