package httpapi

import (
	"context"
	"net/http"
	"time"
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
// (PUT /v1/snapshot), through Raft.
func (s *Service) snapshotRestore(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	info, err := s.store.RestoreSnapshot(ctx, r.Body)
	switch {
	case err != nil:
		writeError(w, err) // a corrupt snapshot is a 400
	default:
		s.logger.Info("snapshot restored", "entries", info.Entries, "index", info.Index)
		w.WriteHeader(http.StatusOK) // Consul answers a restore with an empty body
	}
}
