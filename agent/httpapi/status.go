package httpapi

import "net/http"

// /v1/status/leader and /v1/status/peers: answered by a server from its
// Raft. (/v1/status/ready is in health.go.)

func (s *Service) statusLeader(w http.ResponseWriter, _ *http.Request) {
	addr, _ := s.store.Leader()
	writeJSON(w, addr)
}

func (s *Service) statusPeers(w http.ResponseWriter, _ *http.Request) {
	servers, _, err := s.store.Configuration()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	peers := []string{}
	for _, srv := range servers {
		if srv.Voter {
			peers = append(peers, srv.Address)
		}
	}
	writeJSON(w, peers)
}
