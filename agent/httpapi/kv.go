package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/consensus"
)

// KV over HTTP, in Consul's shapes and semantics (/v1/kv and /v1/txn).
//
// Writes go to the leader: a follower forwards them (placement.go). Reads
// come in three consistency modes: default (the leader answers from its
// state), ?consistent (the leader first confirms with a quorum that it
// still leads) and ?stale (any server answers from its own state).
// Blocking queries (?index=N&wait=D) wait on the store's watches until the
// key or prefix changes past N, or D passes.

const (
	// defaultBlockingWait and maxBlockingWait are Consul's.
	defaultBlockingWait = 5 * time.Minute
	maxBlockingWait     = 10 * time.Minute
	// writeTimeout bounds a write from the leader's point of view; past it
	// the caller gets a 503, never a hang.
	writeTimeout = 10 * time.Second
)

// queryOpts are the read options of a request.
type queryOpts struct {
	stale, consistent bool
	index             uint64
	wait              time.Duration
}

func parseQueryOpts(r *http.Request) (queryOpts, error) {
	q := r.URL.Query()
	var o queryOpts
	_, o.stale = q["stale"]
	_, o.consistent = q["consistent"]
	if o.stale && o.consistent {
		return o, errors.New("Cannot specify ?stale with ?consistent, conflicting semantics.")
	}
	if v := q.Get("index"); v != "" {
		i, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return o, fmt.Errorf("Invalid index: %q", v)
		}
		o.index = i
	}
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return o, fmt.Errorf("Invalid wait time: %q", v)
		}
		o.wait = d
	}
	return o, nil
}

// parseUintParam reads the unsigned integer parameter name of query q.
func parseUintParam(q url.Values, name string) (uint64, bool, error) {
	v, ok := q[name]
	if !ok {
		return 0, false, nil
	}
	i, err := strconv.ParseUint(v[0], 10, 64)
	if err != nil {
		return 0, true, fmt.Errorf("Invalid %s: %q", name, v[0])
	}
	return i, true, nil
}

// setMeta writes Consul's query headers.
func (s *Service) setMeta(w http.ResponseWriter, index uint64) {
	if index == 0 {
		index = 1 // Consul never reports index 0; clients treat it as "no blocking"
	}
	h := w.Header()
	h.Set("X-Consul-Index", strconv.FormatUint(index, 10))
	leader, _ := s.store.Leader()
	h.Set("X-Consul-KnownLeader", strconv.FormatBool(leader != ""))
	// Milliseconds since the leader was last heard from: 0 on the leader,
	// and 0 too when no leader was ever heard from (KnownLeader says so);
	// Consul's client cannot parse a negative value.
	lc := int64(0)
	if !s.store.IsLeader() {
		if t := s.store.LastContact(); !t.IsZero() {
			lc = time.Since(t).Milliseconds()
		}
	}
	h.Set("X-Consul-LastContact", strconv.FormatInt(lc, 10))
}

// readLocally decides where a read is answered: here with ?stale or when
// this server leads (after a quorum check with ?consistent), else on the
// leader, to which it forwards the request. It reports whether the caller
// should answer.
func (s *Service) readLocally(w http.ResponseWriter, r *http.Request, o queryOpts) bool {
	if o.stale || s.store.IsLeader() {
		if o.consistent {
			ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
			defer cancel()
			if err := s.store.VerifyLeader(ctx); err != nil {
				s.toLeader(w, r)
				return false
			}
		}
		return true
	}
	s.toLeader(w, r)
	return false
}

// blockingWait returns how long a blocking query may wait, with Consul's
// jitter of up to wait/16 so that many watchers do not return in step.
func blockingWait(o queryOpts) time.Duration {
	d := o.wait
	if d == 0 {
		d = defaultBlockingWait
	}
	if d > maxBlockingWait {
		d = maxBlockingWait
	}
	return d + rand.N(d/16+1)
}

// jsonContentType is the Content-Type value of a write's answer, shared by
// every answer so that setting it allocates nothing. net/http only reads
// it; nothing may modify it in place.
var jsonContentType = []string{"application/json"}

// Bodies of a write's answer, as Consul answers.
var (
	bodyTrue  = []byte("true")
	bodyFalse = []byte("false")
)

func writeTrueFalse(w http.ResponseWriter, ok bool) {
	w.Header()["Content-Type"] = jsonContentType
	if ok {
		w.Write(bodyTrue)
	} else {
		w.Write(bodyFalse)
	}
}

// kvKey is the key a /v1/kv request names: the rest of the path, taken as
// sent (see kvRouter).
func kvKey(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, kvPrefix) }

func (s *Service) kvGet(w http.ResponseWriter, r *http.Request) {
	key := kvKey(r)
	o, err := parseQueryOpts(r)
	if err == nil {
		err = consensus.ValidateKey(key)
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.readLocally(w, r, o) {
		return
	}
	q := r.URL.Query()
	_, recurse := q["recurse"]
	_, keys := q["keys"]
	_, raw := q["raw"]
	prefix := recurse || keys

	v, ok := s.waitView(r.Context(), key, prefix, o)
	if !ok {
		return // the client went away
	}
	if prefix {
		s.setMeta(w, v.PrefixIndex(key))
	} else {
		s.setMeta(w, v.KeyIndex(key))
	}
	switch {
	case keys:
		list := v.Keys(key, q.Get("separator"))
		if len(list) == 0 {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		writeJSON(w, list)
	case recurse:
		list := v.List(key)
		if len(list) == 0 {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		out := make([]api.KVPair, len(list))
		for i, e := range list {
			out[i] = toKVPair(e)
		}
		writeJSON(w, out)
	default:
		e, found := v.Get(key)
		if !found {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if raw {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(e.Value)
			return
		}
		writeJSON(w, []api.KVPair{toKVPair(e)})
	}
}

// waitView runs the blocking part of a query: without ?index it returns
// the current version at once, else the first version in which the key or
// prefix changed past the index, or the current one when the wait is over.
// ok is false when the client went away.
func (s *Service) waitView(ctx context.Context, key string, prefix bool, o queryOpts) (v consensus.View, ok bool) {
	if o.index == 0 {
		return s.store.View(), true
	}
	wctx, cancel := context.WithTimeout(ctx, blockingWait(o))
	defer cancel()
	var err error
	if prefix {
		v, err = s.store.WaitPrefix(wctx, key, o.index)
	} else {
		v, err = s.store.WaitKey(wctx, key, o.index)
	}
	if err != nil && ctx.Err() != nil {
		return v, false
	}
	return v, true
}

func toKVPair(e consensus.Entry) api.KVPair {
	return api.KVPair{Key: e.Key, CreateIndex: e.CreateIndex, ModifyIndex: e.ModifyIndex, LockIndex: e.LockIndex, Flags: e.Flags, Value: e.Value, Session: e.Session}
}

func (s *Service) kvPut(w http.ResponseWriter, r *http.Request) {
	key := kvKey(r)
	if key == "" {
		httpError(w, http.StatusBadRequest, "Missing key name")
		return
	}
	op := consensus.Command{Op: consensus.OpSet, Key: key}
	var err error
	// A plain PUT has no query; parsing an empty one would still allocate.
	if r.URL.RawQuery != "" {
		q := r.URL.Query()
		if op.Flags, _, err = parseUintParam(q, "flags"); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		var cas bool
		if op.Index, cas, err = parseUintParam(q, "cas"); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		if cas {
			op.Op = consensus.OpCAS
		}
		// As in Consul, ?acquire= overrides ?cas=, and ?release= both.
		if sid, ok := q["acquire"]; ok {
			op.Op, op.Session.ID = consensus.OpLock, sid[0]
		}
		if sid, ok := q["release"]; ok {
			op.Op, op.Session.ID = consensus.OpUnlock, sid[0]
		}
	}
	// The size rule is consensus's (Apply refuses a larger value);
	// limitBody has already refused a larger Content-Length and cuts a
	// chunked body at the limit, so that no larger value is ever read.
	op.Value, err = readBody(r, s.store.MaxValueSize())
	if max, ok := tooLarge(err); ok {
		httpError(w, http.StatusRequestEntityTooLarge, valueTooLarge(-1, max))
		return
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, "Failed to read the value: "+err.Error())
		return
	}
	s.kvWrite(w, r, op)
}

// readBody reads a value of at most max bytes (the caller has refused a
// larger Content-Length): a body of known length into one buffer of
// exactly that size, one of unknown length (chunked) up to max+1 bytes, so
// that the caller can tell it is too large.
func readBody(r *http.Request, max int) ([]byte, error) {
	if r.ContentLength >= 0 {
		b := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
}

func (s *Service) kvDelete(w http.ResponseWriter, r *http.Request) {
	key := kvKey(r)
	op := consensus.Command{Op: consensus.OpDelete, Key: key}
	q := r.URL.Query()
	index, cas, err := parseUintParam(q, "cas")
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	_, recurse := q["recurse"]
	switch {
	case recurse:
		op.Op = consensus.OpDeleteTree
	case cas:
		op.Op, op.Index = consensus.OpDeleteCAS, index
	case key == "":
		httpError(w, http.StatusBadRequest, "Missing key name")
		return
	}
	s.kvWrite(w, r, op)
}

func (s *Service) kvWrite(w http.ResponseWriter, r *http.Request, op consensus.Command) {
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	res, err := s.store.Apply(ctx, op)
	if err != nil {
		writeError(w, err)
		return
	}
	writeTrueFalse(w, res.OK)
}
