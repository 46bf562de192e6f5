package httpapi

import "net/http"

// Reloader reloads what can change without a restart (agent.Agent): the
// log level from the configuration files and the TLS certificates.
type Reloader interface {
	Reload() error
}

// agentReload is PUT /v1/agent/reload, as Consul's: 200 once everything
// reloaded, 500 with the one-line reason when a part failed (that part
// keeps what it had).
func (s *Service) agentReload(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Reloader == nil {
		httpError(w, http.StatusInternalServerError, "this agent cannot reload")
		return
	}
	if err := s.cfg.Reloader.Reload(); err != nil {
		s.logger.Error("reload failed", "error", err)
		httpError(w, http.StatusInternalServerError, "Reload failed: "+err.Error())
		return
	}
	writeJSON(w, nil)
}
