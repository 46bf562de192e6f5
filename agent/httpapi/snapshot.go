package httpapi

import (
	"bufio"
	"context"
	"net/http"

	"github.com/conclavehq/conclave/consensus"
)

// snapshotSave answers GET /v1/snapshot with the state as a snapshot
// archive in Consul's format (consensus.SaveArchive), so that Consul's
// snapshot save, restore and inspect work. The leader answers, after
// confirming it still leads, unless ?stale.
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
	if _, err := s.store.SaveArchive(w); err != nil {
		// The status line is gone; the client sees an archive that fails
		// its checksums or ends early. Log it here.
		s.logger.Error("snapshot save failed", "error", err)
	}
}

// snapshotRestore replaces the whole state with a snapshot (PUT
// /v1/snapshot), through Raft. It takes an archive in Consul's format,
// checked in full first, or the plain snapshot stream of earlier Conclave
// releases, told apart by their first bytes (gzip's magic, or the
// stream's header). consensus streams it to a temporary file; limitBody
// bounds it to maxSnapshotBytes and snapshotTimeout.
func (s *Service) snapshotRestore(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), snapshotTimeout)
	defer cancel()
	watched := &watchedBody{r: r.Body}
	body := bufio.NewReader(watched)
	// An error here is an empty or cut body; the restore reports it.
	prefix, _ := body.Peek(2)
	restore := s.store.RestoreSnapshot
	if consensus.IsArchive(prefix) {
		restore = s.store.RestoreArchive
	}
	info, err := restore(ctx, body)
	max, cut := tooLarge(watched.err)
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
