package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/conclavehq/conclave/consensus"
)

// httpError writes a one-line plain-text error, as Consul does.
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, strings.ReplaceAll(msg, "\n", " "))
}

// writeError answers a failed operation on the store: 400 or 413 for a
// bad request, 503 when the cluster cannot commit it now, 500 otherwise.
// It is the one mapping of consensus's errors to HTTP statuses.
func writeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, consensus.ErrValueTooLarge):
		httpError(w, http.StatusRequestEntityTooLarge, refusalText(err))
	case errors.Is(err, consensus.ErrInvalidKey), errors.Is(err, consensus.ErrInvalidCommand):
		httpError(w, http.StatusBadRequest, refusalText(err))
	case errors.Is(err, consensus.ErrCorruptSnapshot):
		httpError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, consensus.ErrOutcomeUnknown):
		// As Consul: not a 503, since the next leader may still commit it.
		httpError(w, http.StatusInternalServerError, "Leadership lost while committing the write; it may or may not have been applied")
	case errors.Is(err, context.DeadlineExceeded):
		httpError(w, http.StatusServiceUnavailable, "Timed out waiting for the write to commit; it may or may not have been applied")
	case errors.Is(err, consensus.ErrNotLeader), errors.Is(err, consensus.ErrShutdown):
		httpError(w, http.StatusServiceUnavailable, "No cluster leader: "+err.Error())
	default:
		if max, ok := tooLarge(err); ok {
			httpError(w, http.StatusRequestEntityTooLarge, bodyTooLarge(-1, max))
			return
		}
		httpError(w, http.StatusInternalServerError, err.Error())
	}
}

// writeJSON answers 200 with v, indented.
func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

// writeJSONStatus answers code with v, indented.
func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if code != http.StatusOK {
		w.WriteHeader(code)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// refusalText words a command consensus refused as Consul does: "Value
// exceeds N byte limit", and for a transaction "Operation i: ...".
func refusalText(err error) string {
	var tooLarge *consensus.ValueTooLargeError
	var op *consensus.TxnOpError
	switch {
	case errors.As(err, &op) && errors.As(err, &tooLarge):
		return fmt.Sprintf("Operation %d: value exceeds %d byte limit", op.OpIndex, tooLarge.Limit)
	case errors.As(err, &op):
		return fmt.Sprintf("Operation %d: %v", op.OpIndex, op.Err)
	case errors.As(err, &tooLarge):
		return fmt.Sprintf("Value exceeds %d byte limit", tooLarge.Limit)
	}
	return err.Error()
}
