package agent

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/discover"
)

const (
	// maxDiscoverCalls bounds the discover requests an agent works on at
	// once. A request that timed out still counts until its provider call
	// returns, so a hung cloud API cannot pile up goroutines.
	maxDiscoverCalls = 4

	// maxDiscoverEntries bounds the entries of one discover request.
	maxDiscoverEntries = 64
)

// discoverHandler returns the handler of GET /v1/operator/discover: it
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
// maxDiscoverCalls slots, and a request that finds none free answers 503.
func (a *Agent) discoverHandler() http.HandlerFunc {
	slots := make(chan struct{}, maxDiscoverCalls)
	resolver := &discover.Resolver{Logger: a.logger.Named("discover")}
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		entries := q["q"]
		if len(entries) == 0 {
			httpError(w, http.StatusBadRequest, "missing query parameter q: give each retry_join entry to resolve as a q parameter")
			return
		}
		if len(entries) > maxDiscoverEntries {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("too many entries: %d, at most %d", len(entries), maxDiscoverEntries))
			return
		}
		port := a.joinPort()
		if s := q.Get("port"); s != "" {
			p, err := strconv.Atoi(s)
			if err != nil || p < 1 || p > 65535 {
				httpError(w, http.StatusBadRequest, fmt.Sprintf("invalid port %q: want a number from 1 to 65535", s))
				return
			}
			port = p
		}
		timeout := api.DiscoverTimeout
		if s := q.Get("timeout"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 || d > api.MaxDiscoverTimeout {
				httpError(w, http.StatusBadRequest, fmt.Sprintf("invalid timeout %q: want a duration such as 10s, at most %s", s, api.MaxDiscoverTimeout))
				return
			}
			timeout = d
		}

		select {
		case slots <- struct{}{}:
		default:
			httpError(w, http.StatusServiceUnavailable, fmt.Sprintf(
				"%d discover requests are still running; try again later", maxDiscoverCalls))
			return
		}
		// Cancelled when the handler returns, which stops the work after
		// the entry in progress.
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		var current atomic.Int64 // index of the entry being resolved
		done := make(chan []api.DiscoverResult, 1)
		go func() {
			defer func() { <-slots }()
			done <- explainEntries(ctx, resolver, entries, port, &current)
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
}

// explainEntries explains each entry in turn, storing the index of the
// one in progress in current, until ctx is done.
func explainEntries(ctx context.Context, r *discover.Resolver, entries []string, port int, current *atomic.Int64) []api.DiscoverResult {
	out := make([]api.DiscoverResult, 0, len(entries))
	for i, entry := range entries {
		if ctx.Err() != nil {
			break // the handler has answered already
		}
		current.Store(int64(i))
		x, err := r.Explain(ctx, entry, port)
		res := api.DiscoverResult{
			Entry:    x.Entry,
			Provider: x.Provider,
			Args:     x.Args,
			Addrs:    x.Addrs,
			Log:      x.Log,
		}
		if res.Addrs == nil {
			res.Addrs = []string{}
		}
		if res.Log == nil {
			res.Log = []string{}
		}
		if err != nil {
			res.Error = err.Error()
		}
		out = append(out, res)
	}
	return out
}
