package discover

import (
	"context"
	"sync/atomic"
)

// Explained is one entry's Explanation with the error that ended it, in
// words ("" when it resolved). Addrs and Log are never nil, so that JSON
// shows them as empty lists.
type Explained struct {
	Explanation
	Error string
}

// ExplainAll explains each entry in turn, with defaultPort for addresses
// without one, until ctx is done; it stores the index of the entry in
// progress in current, so a caller that gives up can say which one hung.
// It is the one loop behind GET /v1/operator/discover and
// "conclave operator discover".
func (r *Resolver) ExplainAll(ctx context.Context, entries []string, defaultPort int, current *atomic.Int64) []Explained {
	out := make([]Explained, 0, len(entries))
	for i, entry := range entries {
		if ctx.Err() != nil {
			break // the caller has given up already
		}
		current.Store(int64(i))
		x, err := r.Explain(ctx, entry, defaultPort)
		res := Explained{Explanation: x}
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
