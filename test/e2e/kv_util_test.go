package e2e

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// newRand returns a generator seeded with seed and the time, so concurrent
// clients make different choices.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
}

// definitelyNotApplied reports whether a write that failed with err can
// not have been applied: the connection was refused, so no request was
// sent. Everything else (timeouts, resets, EOF, any 5xx: a follower may
// have forwarded it before failing) may have been applied.
func definitelyNotApplied(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// errClass names the kind of err, for counting outcomes.
func errClass(err error) string {
	var se *StatusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return http.StatusText(se.Code) + " " + shortBody(se.Body)
	case definitelyNotApplied(err):
		return "connection refused"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET), strings.Contains(err.Error(), "EOF"):
		return "connection reset/EOF"
	}
	return "other: " + err.Error()
}

var addrRe = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

func shortBody(s string) string {
	s = addrRe.ReplaceAllString(s, "<addr>")
	if i := strings.Index(s, ": "); i > 0 {
		s = s[:i]
	}
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}
