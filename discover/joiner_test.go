package discover

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeJoin is a JoinFunc that records when it was called and with what,
// and answers from a script; once the script runs out it repeats the last
// answer.
type fakeJoin struct {
	mu      sync.Mutex
	script  []joinResult
	calls   [][]string
	callsAt []time.Time
}

type joinResult struct {
	n   int
	err error
}

func (f *fakeJoin) Join(addrs []string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, slices.Clone(addrs))
	f.callsAt = append(f.callsAt, time.Now())
	r := f.script[min(len(f.calls), len(f.script))-1]
	return r.n, r.err
}

// lookupRecorder wraps a fakeDNS and records when each lookup happened, so
// that attempts can be timed even when no address resolves.
type lookupRecorder struct {
	*fakeDNS
	mu sync.Mutex
	at []time.Time
}

func (l *lookupRecorder) LookupHost(ctx context.Context, host string) ([]string, error) {
	l.mu.Lock()
	l.at = append(l.at, time.Now())
	l.mu.Unlock()
	return l.fakeDNS.LookupHost(ctx, host)
}

// sinceStart returns each time as an offset from start.
func sinceStart(start time.Time, ts []time.Time) []time.Duration {
	var ds []time.Duration
	for _, t := range ts {
		ds = append(ds, t.Sub(start))
	}
	return ds
}

// testJoiner builds a Joiner with a 10s interval and no jitter over dns and
// join; cb may change the config first.
func testJoiner(t *testing.T, dns *lookupRecorder, join *fakeJoin, cb func(*JoinerConfig)) (*Joiner, *lockedBuffer) {
	t.Helper()
	logger, buf := testLogger(t)
	cfg := JoinerConfig{
		Entries:     []string{"servers.example"},
		DefaultPort: testPort,
		Interval:    10 * time.Second,
		Jitter:      -1,
		Join:        join.Join,
		Logger:      logger,
		Resolver:    &Resolver{LookupHost: dns.LookupHost, Providers: map[string]Provider{}, Logger: logger},
	}
	if cb != nil {
		cb(&cfg)
	}
	j, err := NewJoiner(cfg)
	if err != nil {
		t.Fatalf("NewJoiner() error = %v", err)
	}
	return j, buf
}

func TestJoinerRetriesUntilJoined(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		// Attempt 1: DNS has no records yet. Attempt 2: the name resolves
		// but the node is not up. Attempt 3: the join contacts two nodes.
		dns := &lookupRecorder{fakeDNS: newFakeDNS(map[string][]string{})}
		join := &fakeJoin{script: []joinResult{
			{0, errors.New("dial tcp 10.0.0.1:8301: connect: connection refused")},
			{2, nil},
		}}
		j, logs := testJoiner(t, dns, join, nil)

		// The DNS record appears at 5s, between attempts 1 and 2.
		go func() {
			time.Sleep(5 * time.Second)
			dns.set("servers.example", "10.0.0.1", "10.0.0.2")
		}()

		if err := j.Run(t.Context()); err != nil {
			t.Fatalf("Run() error = %v, want nil", err)
		}

		wantAt := []time.Duration{0, 10 * time.Second, 20 * time.Second}
		if diff := cmp.Diff(wantAt, sinceStart(start, dns.at)); diff != "" {
			t.Errorf("attempt times mismatch (-want +got):\n%s", diff)
		}
		wantCalls := [][]string{
			{"10.0.0.1:8301", "10.0.0.2:8301"},
			{"10.0.0.1:8301", "10.0.0.2:8301"},
		}
		if diff := cmp.Diff(wantCalls, join.calls); diff != "" {
			t.Errorf("join calls mismatch (-want +got):\n%s", diff)
		}

		out := logs.String()
		for _, want := range []string{
			`[WARN]  discover: retry_join attempt failed: attempt=1 error="no address resolved; entry \"servers.example\": lookup servers.example: no such host" retry_in=10s`,
			`[WARN]  discover: retry_join attempt failed: attempt=2 error="join 2 addresses: dial tcp 10.0.0.1:8301: connect: connection refused" retry_in=10s`,
			`[INFO]  discover: joined cluster: joined=2 attempt=3`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("logs lack %q; logs:\n%s", want, out)
			}
		}
		if n := strings.Count(out, "[WARN]"); n != 2 {
			t.Errorf("logged %d warnings, want 2", n)
		}
	})
}

func TestJoinerStopsAfterMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		dns := &lookupRecorder{fakeDNS: newFakeDNS(map[string][]string{})}
		join := &fakeJoin{script: []joinResult{{1, nil}}}
		j, logs := testJoiner(t, dns, join, func(c *JoinerConfig) { c.MaxAttempts = 3 })

		err := j.Run(t.Context())
		if !errors.Is(err, ErrMaxAttempts) {
			t.Fatalf("Run() error = %v, want errors.Is ErrMaxAttempts", err)
		}
		want := `retry_join: 3 attempts failed; last error: no address resolved; entry "servers.example": lookup servers.example: no such host`
		if got := err.Error(); got != want {
			t.Errorf("Run() error = %q, want %q", got, want)
		}
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("Run() error = %v, want it to wrap the last *net.DNSError", err)
		}
		if got := time.Since(start); got != 20*time.Second {
			t.Errorf("Run() took %s, want 20s (two waits)", got)
		}
		if got := len(dns.at); got != 3 {
			t.Errorf("attempts = %d, want 3", got)
		}
		if len(join.calls) != 0 {
			t.Errorf("join called %d times with nothing resolved, want 0", len(join.calls))
		}
		if n := strings.Count(logs.String(), "retry_join attempt failed"); n != 3 {
			t.Errorf("logged %d failed attempts, want 3", n)
		}
	})
}

func TestJoinerMaxAttemptsOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dns := &lookupRecorder{fakeDNS: newFakeDNS(map[string][]string{"servers.example": {"10.0.0.1"}})}
		// A join that reaches nobody without an error still fails.
		join := &fakeJoin{script: []joinResult{{0, nil}}}
		j, _ := testJoiner(t, dns, join, func(c *JoinerConfig) { c.MaxAttempts = 1 })

		err := j.Run(t.Context())
		want := "retry_join: 1 attempt failed; last error: join 1 address: contacted no nodes"
		if err == nil || err.Error() != want {
			t.Fatalf("Run() error = %v, want %q", err, want)
		}
	})
}

func TestJoinerStopsWhenContextDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dns := &lookupRecorder{fakeDNS: newFakeDNS(map[string][]string{})}
		join := &fakeJoin{script: []joinResult{{1, nil}}}
		j, _ := testJoiner(t, dns, join, nil)

		ctx, cancel := context.WithCancel(t.Context())
		errCh := make(chan error, 1)
		go func() { errCh <- j.Run(ctx) }()

		// Attempts at 0s, 10s and 20s; cancel while waiting for the 4th.
		time.Sleep(25 * time.Second)
		cancel()
		synctest.Wait()
		select {
		case err := <-errCh:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run() error = %v, want context.Canceled", err)
			}
		default:
			t.Fatal("Run() still running after its context was cancelled")
		}
		if got := len(dns.at); got != 3 {
			t.Errorf("attempts = %d, want 3", got)
		}
	})
}

func TestJoinerDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dns := &lookupRecorder{fakeDNS: newFakeDNS(map[string][]string{})}
		join := &fakeJoin{script: []joinResult{{1, nil}}}
		j, _ := testJoiner(t, dns, join, func(c *JoinerConfig) { c.MaxAttempts = 100 })

		ctx, cancel := context.WithTimeout(t.Context(), 35*time.Second)
		defer cancel()
		if err := j.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run() error = %v, want context.DeadlineExceeded", err)
		}
		if got := len(dns.at); got != 4 {
			t.Errorf("attempts = %d, want 4 (at 0s, 10s, 20s, 30s)", got)
		}
	})
}

func TestJoinerNoEntries(t *testing.T) {
	join := &fakeJoin{script: []joinResult{{1, nil}}}
	j, err := NewJoiner(JoinerConfig{Join: join.Join, DefaultPort: testPort})
	if err != nil {
		t.Fatalf("NewJoiner() error = %v", err)
	}
	if err := j.Run(t.Context()); err != nil {
		t.Errorf("Run() error = %v, want nil", err)
	}
	if len(join.calls) != 0 {
		t.Errorf("join called %d times, want 0", len(join.calls))
	}
}

func TestJoinerPartialFailureIsSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dns := &lookupRecorder{fakeDNS: newFakeDNS(map[string][]string{"servers.example": {"10.0.0.1", "10.0.0.2"}})}
		join := &fakeJoin{script: []joinResult{{1, errors.New("10.0.0.2:8301: connection refused")}}}
		j, logs := testJoiner(t, dns, join, func(c *JoinerConfig) {
			c.Entries = []string{"servers.example", "typo.example"}
		})

		if err := j.Run(t.Context()); err != nil {
			t.Fatalf("Run() error = %v, want nil", err)
		}
		want := `[WARN]  discover: retry_join partly failed: attempt=1 addrs=["10.0.0.1:8301", "10.0.0.2:8301"] error="join 2 addresses: 10.0.0.2:8301: connection refused; entry \"typo.example\": lookup typo.example: no such host"`
		if out := logs.String(); !strings.Contains(out, want) {
			t.Errorf("logs lack %q; logs:\n%s", want, out)
		}
	})
}

func TestJoinerJitter(t *testing.T) {
	join := &fakeJoin{script: []joinResult{{1, nil}}}
	j, err := NewJoiner(JoinerConfig{Entries: []string{"10.0.0.1"}, DefaultPort: testPort, Interval: 10 * time.Second, Join: join.Join})
	if err != nil {
		t.Fatalf("NewJoiner() error = %v", err)
	}
	if j.jitter != DefaultJitter {
		t.Errorf("default jitter = %g, want %g", j.jitter, DefaultJitter)
	}
	for _, tc := range []struct {
		r    float64
		want time.Duration
	}{
		{0, 9 * time.Second},
		{0.5, 10 * time.Second},
		{0.75, 10500 * time.Millisecond},
		{0.25, 9500 * time.Millisecond},
	} {
		j.rand = func() float64 { return tc.r }
		if got := j.wait(); got != tc.want {
			t.Errorf("wait() with rand %g = %s, want %s", tc.r, got, tc.want)
		}
	}

	// The real random source stays within ±10%.
	j.rand = rand.Float64
	for range 1000 {
		if d := j.wait(); d < 9*time.Second || d >= 11*time.Second {
			t.Fatalf("wait() = %s, want within [9s, 11s)", d)
		}
	}
}

func TestJoinerJitterSpreadsAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		dns := &lookupRecorder{fakeDNS: newFakeDNS(map[string][]string{})}
		join := &fakeJoin{script: []joinResult{{1, nil}}}
		j, _ := testJoiner(t, dns, join, func(c *JoinerConfig) {
			c.Jitter = 0.1
			c.MaxAttempts = 3
		})
		rs := []float64{0, 0.75}
		j.rand = func() float64 { r := rs[0]; rs = rs[1:]; return r }

		if err := j.Run(t.Context()); !errors.Is(err, ErrMaxAttempts) {
			t.Fatalf("Run() error = %v, want ErrMaxAttempts", err)
		}
		want := []time.Duration{0, 9 * time.Second, 9*time.Second + 10500*time.Millisecond}
		if diff := cmp.Diff(want, sinceStart(start, dns.at)); diff != "" {
			t.Errorf("attempt times mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestNewJoinerRejects(t *testing.T) {
	join := func([]string) (int, error) { return 1, nil }
	cases := []struct {
		name   string
		cfg    JoinerConfig
		want   string
		target error
	}{
		{name: "no join func", cfg: JoinerConfig{}, want: "join func is nil"},
		{name: "port", cfg: JoinerConfig{Join: join, DefaultPort: 70000}, want: "default port 70000 is not a number from 1 to 65535"},
		{name: "no port", cfg: JoinerConfig{Join: join, DefaultPort: -1}, want: "default port -1 is not a number from 1 to 65535"},
		{name: "interval", cfg: JoinerConfig{Join: join, Interval: -time.Second}, want: "interval -1s is negative"},
		{name: "max attempts", cfg: JoinerConfig{Join: join, MaxAttempts: -1}, want: "max attempts -1 is negative"},
		{name: "jitter", cfg: JoinerConfig{Join: join, Jitter: 0.6}, want: "jitter 0.6 is greater than 0.5"},
		{
			name:   "bad address",
			cfg:    JoinerConfig{Join: join, Entries: []string{"10.0.0.1", "[::1"}},
			want:   `entry "[::1": invalid address: missing ']'`,
			target: ErrInvalidAddress,
		},
		{
			name: "every bad entry at once",
			cfg: JoinerConfig{Join: join, Entries: []string{
				"host:notaport", "provider=nope secret_access_key=s3cr3t", "provider=aws tag_key=x tag_value=y",
			}},
			want: `entry "host:notaport": invalid address: port "notaport" is not a number from 1 to 65535; ` +
				`entry "provider=nope secret_access_key=[redacted]": invalid go-discover config: unknown provider "nope"; known providers: ` +
				strings.Join(slices.Sorted(maps.Keys(DefaultProviders())), ", "),
			target: ErrInvalidProviderConfig,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.DefaultPort == 0 {
				tc.cfg.DefaultPort = testPort
			}
			j, err := NewJoiner(tc.cfg)
			if err == nil {
				t.Fatalf("NewJoiner() = %v, want error %q", j, tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("NewJoiner() error = %q, want %q", got, tc.want)
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("NewJoiner() error = %v, want errors.Is %v", err, tc.target)
			}
		})
	}
}
