package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/consensus"
)

// maxTxnOps is Consul's limit on operations in one transaction.
const maxTxnOps = 128

// txn answers PUT /v1/txn: Consul's transaction API, KV operations only.
// Keys and values are checked by consensus (Command.Validate); the body is
// limited to Limits.TxnMaxBytes before it gets here (limitBody).
func (s *Service) txn(w http.ResponseWriter, r *http.Request) {
	var ops []api.TxnOp
	if err := json.NewDecoder(r.Body).Decode(&ops); err != nil {
		if max, ok := tooLarge(err); ok {
			httpError(w, http.StatusRequestEntityTooLarge, bodyTooLarge(-1, max))
			return
		}
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
		verb, ok := consensus.ParseVerb(string(op.KV.Verb))
		if !ok {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("Operation %d: invalid KV verb %q", i, op.KV.Verb))
			return
		}
		cmd.Ops = append(cmd.Ops, consensus.TxnOp{Verb: verb, Key: op.KV.Key, Value: op.KV.Value, Flags: op.KV.Flags, Index: op.KV.Index, Session: op.KV.Session})
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	res, err := s.store.Apply(ctx, cmd)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(res.Errors) > 0 {
		out := api.TxnResponse{}
		for _, e := range res.Errors {
			out.Errors = append(out.Errors, &api.TxnError{OpIndex: e.OpIndex, What: e.What})
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(out)
		return
	}
	out := api.TxnResponse{Results: []*api.TxnResult{}}
	for _, e := range res.Results {
		p := toKVPair(e)
		out.Results = append(out.Results, &api.TxnResult{KV: &p})
	}
	s.setMeta(w, res.Index)
	writeJSON(w, out)
}
