package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/conclavehq/conclave/agent/serverport"
)

// place wraps h so that only who answers it: on a client agent every
// server route goes to a server; on a follower a leader route goes to the
// leader.
func (s *Service) place(who placement, h http.HandlerFunc) http.HandlerFunc {
	if who == anyAgent {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if s.store == nil {
			s.toServer(w, r)
			return
		}
		switch who {
		case leaderOrStale:
			if _, stale := r.URL.Query()["stale"]; stale {
				break
			}
			fallthrough
		case leader:
			if !s.store.IsLeader() {
				s.toLeader(w, r)
				return
			}
		}
		h(w, r)
	}
}

// toLeader forwards r to the leader, one hop.
func (s *Service) toLeader(w http.ResponseWriter, r *http.Request) {
	err := s.cfg.Leader.Forward(w, r)
	var re *serverport.RequestError
	max, cut := tooLarge(err)
	switch {
	case err == nil:
	case cut:
		// The body was cut at its limit while it streamed to the leader.
		httpError(w, http.StatusRequestEntityTooLarge, bodyTooLarge(-1, max))
	case errors.As(err, &re):
		httpError(w, http.StatusInternalServerError, err.Error())
	default:
		httpError(w, http.StatusServiceUnavailable, err.Error())
	}
}

// toServer sends a client agent's request to a server.
func (s *Service) toServer(w http.ResponseWriter, r *http.Request) {
	err := s.cfg.Router.Forward(w, r)
	if max, cut := tooLarge(err); cut {
		httpError(w, http.StatusRequestEntityTooLarge, bodyTooLarge(-1, max))
		return
	}
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err.Error())
	}
}

// recoverer turns a panic in a handler into a 500, so no request can take
// the agent down.
func recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				httpError(w, http.StatusInternalServerError, fmt.Sprintf("internal error: %v", v))
			}
		}()
		h.ServeHTTP(w, r)
	})
}
