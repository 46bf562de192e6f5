package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/discover"
)

const (
	// MaxDiscoverCalls bounds the discover requests an agent works on at
	// once. A request that timed out still counts until its provider call
	// returns, so a hung cloud API cannot pile up goroutines.
	MaxDiscoverCalls = 4

	// MaxDiscoverEntries bounds the entries of one discover request.
	MaxDiscoverEntries = 64
)

// discoverer answers GET /v1/operator/discover: it
// resolves the retry_join entries given as q, now, from this agent's
// network view (its DNS, its cloud or Kubernetes credentials), and answers
// how each one resolved. An entry that fails is reported in its result, and
// the answer is still 200.
//
// go-discover providers take no context, so a provider call cannot be
// interrupted. The handler answers 504 once the request's timeout has
// passed and leaves the call running in the background, untracked by the
// agent's WaitGroup so that Shutdown does not wait for a cloud API; it ends
// on the provider's own timeout. Until then it holds one of
// MaxDiscoverCalls slots, and a request that finds none free answers 503.
type discoverer struct {
	slots    chan struct{}
	resolver *discover.Resolver
}

func newDiscoverer(logger hclog.Logger) *discoverer {
	return &discoverer{slots: make(chan struct{}, MaxDiscoverCalls), resolver: &discover.Resolver{Logger: logger}}
}

func (s *Service) discover(w http.ResponseWriter, r *http.Request) {
	d := s.disc
	q := r.URL.Query()
	entries := q["q"]
	if len(entries) == 0 {
		httpError(w, http.StatusBadRequest, "missing query parameter q: give each retry_join entry to resolve as a q parameter")
		return
	}
	if len(entries) > MaxDiscoverEntries {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("too many entries: %d, at most %d", len(entries), MaxDiscoverEntries))
		return
	}
	port := s.cfg.JoinPort
	if v := q.Get("port"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("invalid port %q: want a number from 1 to 65535", v))
			return
		}
		port = p
	}
	timeout := api.DiscoverTimeout
	if v := q.Get("timeout"); v != "" {
		t, err := time.ParseDuration(v)
		if err != nil || t <= 0 || t > api.MaxDiscoverTimeout {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("invalid timeout %q: want a duration such as 10s, at most %s", v, api.MaxDiscoverTimeout))
			return
		}
		timeout = t
	}

	select {
	case d.slots <- struct{}{}:
	default:
		httpError(w, http.StatusServiceUnavailable, fmt.Sprintf(
			"%d discover requests are still running; try again later", MaxDiscoverCalls))
		return
	}
	// Cancelled when the handler returns, which stops the work after
	// the entry in progress.
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	var current atomic.Int64 // index of the entry being resolved
	done := make(chan []api.DiscoverResult, 1)
	go func() {
		defer func() { <-d.slots }()
		done <- toDiscoverResults(d.resolver.ExplainAll(ctx, entries, port, &current))
	}()

	select {
	case res := <-done:
		writeJSON(w, res)
	case <-ctx.Done():
		if r.Context().Err() != nil {
			return // the client went away
		}
		entry := discover.Redact(entries[current.Load()])
		httpError(w, http.StatusGatewayTimeout, fmt.Sprintf(
			"entry %q did not resolve within %s; a go-discover provider call cannot be interrupted, so it goes on in the background",
			entry, timeout))
	}
}

// toDiscoverResults puts explanations in their wire form.
func toDiscoverResults(xs []discover.Explained) []api.DiscoverResult {
	out := make([]api.DiscoverResult, 0, len(xs))
	for _, x := range xs {
		out = append(out, api.DiscoverResult{Entry: x.Entry, Provider: x.Provider, Args: x.Args, Addrs: x.Addrs, Log: x.Log, Error: x.Error})
	}
	return out
}
