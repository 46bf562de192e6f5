package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/conclavehq/conclave/consensus"
)

// KV over HTTP, in Consul's shapes and semantics (/v1/kv and /v1/txn).
//
// Writes go to the leader: a follower forwards them (forward.go). Reads
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
	// maxTxnOps is Consul's limit on operations in one transaction.
	maxTxnOps = 64
)

// KVPair is one entry on the wire, as Consul encodes it.
type KVPair struct {
	Key         string
	CreateIndex uint64
	ModifyIndex uint64
	LockIndex   uint64
	Flags       uint64
	Value       []byte
	Session     string `json:",omitempty"`
}

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

// validKey applies Consul's rules plus Conclave's: valid UTF-8, no leading
// slash.
func validKey(key string) error {
	switch {
	case !utf8.ValidString(key):
		return errors.New("Key must be valid UTF-8")
	case strings.HasPrefix(key, "/"):
		return errors.New("Key must not begin with a '/'")
	}
	return nil
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
func (a *Agent) setMeta(w http.ResponseWriter, index uint64) {
	if index == 0 {
		index = 1 // Consul never reports index 0; clients treat it as "no blocking"
	}
	h := w.Header()
	h.Set("X-Consul-Index", strconv.FormatUint(index, 10))
	leader, _ := a.node.Leader()
	h.Set("X-Consul-KnownLeader", strconv.FormatBool(leader != ""))
	// Milliseconds since the leader was last heard from: 0 on the leader,
	// and 0 too when no leader was ever heard from (KnownLeader says so);
	// Consul's client cannot parse a negative value.
	lc := int64(0)
	if !a.node.IsLeader() {
		if t := a.node.LastContact(); !t.IsZero() {
			lc = time.Since(t).Milliseconds()
		}
	}
	h.Set("X-Consul-LastContact", strconv.FormatInt(lc, 10))
}

// readLocally decides where a read is answered: here with ?stale or when
// this server leads (after a quorum check with ?consistent), else on the
// leader, to which it forwards the request. It reports whether the caller
// should answer.
func (a *Agent) readLocally(w http.ResponseWriter, r *http.Request, o queryOpts) bool {
	if o.stale || a.node.IsLeader() {
		if o.consistent {
			ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
			defer cancel()
			if err := a.node.VerifyLeader(ctx); err != nil {
				a.forward.forward(w, r)
				return false
			}
		}
		return true
	}
	a.forward.forward(w, r)
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

// txnOp is one operation of a /v1/txn body; only KV operations exist.
type txnOp struct {
	KV *txnKVOp
}

type txnKVOp struct {
	Verb    string
	Key     string
	Value   []byte
	Flags   uint64
	Index   uint64
	Session string
}

type txnResult struct {
	KV *KVPair
}

type txnError struct {
	OpIndex int
	What    string
}

type txnResponse struct {
	Results []txnResult
	Errors  []txnError
}

// kvPrefix is the path under which keys live.
const kvPrefix = "/v1/kv/"

// kvKey is the key a /v1/kv request names: the rest of the path, taken as
// sent. (ServeMux would clean "/v1/kv//x" into a redirect to "/v1/kv/x";
// kvRouter keeps such paths away from it so the key can be refused.)
func kvKey(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, kvPrefix) }

// kvRouter sends /v1/kv requests to their handlers before ServeMux sees
// them, and everything else to next.
func (a *Agent) kvRouter(next http.Handler) http.Handler {
	routes := a.kvRoutes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, kvPrefix) {
			next.ServeHTTP(w, r)
			return
		}
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		h, ok := routes[method+" "+kvPrefix+"{key...}"]
		if !ok {
			w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
			httpError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
			return
		}
		h(w, r)
	})
}

// kvRoutes are the KV endpoints. Writes are leader routes: a follower
// forwards them, and the server port serves them for that.
func (a *Agent) kvRoutes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"GET /v1/kv/{key...}":    a.viaServer(a.kvGet),
		"PUT /v1/kv/{key...}":    a.viaServer(a.leaderOnly(a.kvPut)),
		"DELETE /v1/kv/{key...}": a.viaServer(a.leaderOnly(a.kvDelete)),
		"PUT /v1/txn":            a.viaServer(a.leaderOnly(a.txn)),
		"GET /v1/snapshot":       a.viaServer(a.leaderOrStale(a.snapshotSave)),
		"PUT /v1/snapshot":       a.viaServer(a.leaderOnly(a.snapshotRestore)),
	}
}

func (a *Agent) kvGet(w http.ResponseWriter, r *http.Request) {
	key := kvKey(r)
	o, err := parseQueryOpts(r)
	if err == nil {
		err = validKey(key)
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !a.readLocally(w, r, o) {
		return
	}
	q := r.URL.Query()
	_, recurse := q["recurse"]
	_, keys := q["keys"]
	_, raw := q["raw"]
	prefix := recurse || keys

	v, ok := a.waitView(r.Context(), key, prefix, o)
	if !ok {
		return // the client went away
	}
	if prefix {
		a.setMeta(w, v.PrefixIndex(key))
	} else {
		a.setMeta(w, v.KeyIndex(key))
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
		out := make([]KVPair, len(list))
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
		writeJSON(w, []KVPair{toKVPair(e)})
	}
}

// waitView runs the blocking part of a query: without ?index it returns
// the current version at once, else the first version in which the key or
// prefix changed past the index, or the current one when the wait is over.
// ok is false when the client went away.
func (a *Agent) waitView(ctx context.Context, key string, prefix bool, o queryOpts) (v consensus.View, ok bool) {
	if o.index == 0 {
		return a.node.View(), true
	}
	wctx, cancel := context.WithTimeout(ctx, blockingWait(o))
	defer cancel()
	var err error
	if prefix {
		v, err = a.node.WaitPrefix(wctx, key, o.index)
	} else {
		v, err = a.node.WaitKey(wctx, key, o.index)
	}
	if err != nil && ctx.Err() != nil {
		return v, false
	}
	return v, true
}

func toKVPair(e consensus.Entry) KVPair {
	return KVPair{Key: e.Key, CreateIndex: e.CreateIndex, ModifyIndex: e.ModifyIndex, LockIndex: e.LockIndex, Flags: e.Flags, Value: e.Value}
}

func (a *Agent) kvPut(w http.ResponseWriter, r *http.Request) {
	key := kvKey(r)
	if key == "" {
		httpError(w, http.StatusBadRequest, "Missing key name")
		return
	}
	if err := validKey(key); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	op := consensus.Command{Op: consensus.OpSet, Key: key}
	var err error
	// A plain PUT has no query; parsing an empty one would still allocate.
	if r.URL.RawQuery != "" {
		q := r.URL.Query()
		if msg := sessionParamRefusal(q); msg != "" {
			httpError(w, http.StatusBadRequest, msg)
			return
		}
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
	}
	max := a.cfg.KVMaxValueSize
	if r.ContentLength > int64(max) {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Value exceeds %d byte limit", max))
		return
	}
	op.Value, err = readBody(r, max)
	if err != nil {
		httpError(w, http.StatusBadRequest, "Failed to read the value: "+err.Error())
		return
	}
	if len(op.Value) > max {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Value exceeds %d byte limit", max))
		return
	}
	a.kvWrite(w, r, op)
}

// sessionVerbs are Consul's txn verbs that act on a session's lock.
var sessionVerbs = map[string]bool{"lock": true, "unlock": true, "check-session": true}

// sessionParamRefusal says why a PUT with ?acquire= or ?release= is refused
// ("" when it has neither). Without sessions such a PUT would be a plain
// write that answers true, so two clients would each believe they hold the
// lock; refusing it is the only safe answer.
func sessionParamRefusal(q url.Values) string {
	for _, p := range []string{"acquire", "release"} {
		if _, ok := q[p]; ok {
			return fmt.Sprintf("?%s= needs sessions, which Conclave does not support yet; the key was not written", p)
		}
	}
	return ""
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

func (a *Agent) kvDelete(w http.ResponseWriter, r *http.Request) {
	key := kvKey(r)
	if err := validKey(key); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
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
	a.kvWrite(w, r, op)
}

func (a *Agent) kvWrite(w http.ResponseWriter, r *http.Request, op consensus.Command) {
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	res, err := a.node.Apply(ctx, op)
	if err != nil {
		a.writeError(w, err)
		return
	}
	writeTrueFalse(w, res.OK)
}

// writeError answers a failed write: 400 or 413 for a bad request, 503
// when the cluster cannot commit it now, 500 otherwise.
func (a *Agent) writeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, consensus.ErrValueTooLarge):
		httpError(w, http.StatusRequestEntityTooLarge, err.Error())
	case errors.Is(err, consensus.ErrInvalidKey), errors.Is(err, consensus.ErrInvalidCommand):
		httpError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, consensus.ErrOutcomeUnknown):
		// As Consul: not a 503, since the next leader may still commit it.
		httpError(w, http.StatusInternalServerError, "Leadership lost while committing the write; it may or may not have been applied")
	case errors.Is(err, context.DeadlineExceeded):
		httpError(w, http.StatusServiceUnavailable, "Timed out waiting for the write to commit; it may or may not have been applied")
	case errors.Is(err, consensus.ErrNotLeader), errors.Is(err, consensus.ErrShutdown):
		httpError(w, http.StatusServiceUnavailable, "No cluster leader: "+err.Error())
	default:
		httpError(w, http.StatusInternalServerError, err.Error())
	}
}

func (a *Agent) txn(w http.ResponseWriter, r *http.Request) {
	var ops []txnOp
	dec := json.NewDecoder(io.LimitReader(r.Body, int64(maxTxnOps)*int64(a.cfg.KVMaxValueSize)*2+1<<20))
	if err := dec.Decode(&ops); err != nil {
		httpError(w, http.StatusBadRequest, "Failed to parse body: "+err.Error())
		return
	}
	if len(ops) > maxTxnOps {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Transaction contains too many operations (%d > %d)", len(ops), maxTxnOps))
		return
	}
	cmd := consensus.Command{Op: consensus.OpTxn, Ops: make([]consensus.TxnOp, 0, len(ops))}
	for i, op := range ops {
		if op.KV == nil {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("Operation %d: only KV operations are supported", i))
			return
		}
		if sessionVerbs[op.KV.Verb] {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("Operation %d: KV verb %q needs sessions, which Conclave does not support yet", i, op.KV.Verb))
			return
		}
		verb, ok := consensus.ParseVerb(op.KV.Verb)
		if !ok {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("Operation %d: invalid KV verb %q", i, op.KV.Verb))
			return
		}
		if err := validKey(op.KV.Key); err != nil {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("Operation %d: %v", i, err))
			return
		}
		if len(op.KV.Value) > a.cfg.KVMaxValueSize {
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Operation %d: value exceeds %d byte limit", i, a.cfg.KVMaxValueSize))
			return
		}
		cmd.Ops = append(cmd.Ops, consensus.TxnOp{Verb: verb, Key: op.KV.Key, Value: op.KV.Value, Flags: op.KV.Flags, Index: op.KV.Index})
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	res, err := a.node.Apply(ctx, cmd)
	if err != nil {
		a.writeError(w, err)
		return
	}
	if len(res.Errors) > 0 {
		out := txnResponse{}
		for _, e := range res.Errors {
			out.Errors = append(out.Errors, txnError{OpIndex: e.OpIndex, What: e.What})
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(out)
		return
	}
	out := txnResponse{Results: []txnResult{}}
	for _, e := range res.Results {
		p := toKVPair(e)
		out.Results = append(out.Results, txnResult{KV: &p})
	}
	a.setMeta(w, res.Index)
	writeJSON(w, out)
}

// snapshotSave streams the state machine as a snapshot (GET /v1/snapshot).
// The leader answers, after confirming it still leads, unless ?stale.
func (a *Agent) snapshotSave(w http.ResponseWriter, r *http.Request) {
	if _, stale := r.URL.Query()["stale"]; !stale {
		ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
		err := a.node.VerifyLeader(ctx)
		cancel()
		if err != nil {
			a.writeError(w, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	a.setMeta(w, a.node.AppliedIndex())
	if _, err := a.node.SaveSnapshot(w); err != nil {
		// The status line is gone; the client sees a stream that fails
		// its checksum. Log it here.
		a.logger.Error("snapshot save failed", "error", err)
	}
}

// snapshotRestore replaces the whole state with a snapshot stream
// (PUT /v1/snapshot), through Raft.
func (a *Agent) snapshotRestore(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	info, err := a.node.RestoreSnapshot(ctx, r.Body)
	switch {
	case errors.Is(err, consensus.ErrCorruptSnapshot):
		httpError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		a.writeError(w, err)
	default:
		a.logger.Info("snapshot restored", "entries", info.Entries, "index", info.Index)
		w.WriteHeader(http.StatusOK) // Consul answers a restore with an empty body
	}
}
