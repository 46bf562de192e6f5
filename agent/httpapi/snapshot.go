package httpapi

import (
	"context"
	"net/http"
)

// snapshotSave streams the state machine as a snapshot (GET /v1/snapshot).
// The leader answers, after confirming it still leads, unless ?stale.
func (s *Service) snapshotSave(w http.ResponseWriter, r *http.Request) {
	if _, stale := r.URL.Query()["stale"]; !stale {
		ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
		err := s.store.VerifyLeader(ctx)
		cancel()
		if err != nil {
			writeError(w, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	s.setMeta(w, s.store.AppliedIndex())
	if _, err := s.store.SaveSnapshot(w); err != nil {
		// The status line is gone; the client sees a stream that fails
		// its checksum. Log it here.
		s.logger.Error("snapshot save failed", "error", err)
	}
}

// snapshotRestore replaces the whole state with a snapshot stream
// (PUT /v1/snapshot), through Raft. consensus streams it to a temporary
// file; limitBody bounds it to maxSnapshotBytes and snapshotTimeout.
func (s *Service) snapshotRestore(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), snapshotTimeout)
	defer cancel()
	body := &watchedBody{r: r.Body}
	info, err := s.store.RestoreSnapshot(ctx, body)
	max, cut := tooLarge(body.err)
	switch {
	case cut:
		httpError(w, http.StatusRequestEntityTooLarge, bodyTooLarge(-1, max))
	case err != nil:
		writeError(w, err) // a corrupt snapshot is a 400
	default:
		s.logger.Info("snapshot restored", "entries", info.Entries, "index", info.Index)
		w.WriteHeader(http.StatusOK) // Consul answers a restore with an empty body
	}
}
