package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/gossip"
)

// Keyring is the gossip pool's key manager (gossip.Pool).
type Keyring interface {
	ListKeys() (gossip.KeyringResponse, error)
	InstallKey(key string) (gossip.KeyringResponse, error)
	UseKey(key string) (gossip.KeyringResponse, error)
	RemoveKey(key string) (gossip.KeyringResponse, error)
}

// maxKeyringBody bounds a keyring request's body: {"Key":"…"} with a
// base64 key of at most 32 bytes needs under 100 bytes.
const maxKeyringBody = 4 << 10

// keyringList answers GET /v1/operator/keyring: the keys of every member
// of the pool, counted, as a list of one pool in Consul's shape.
func (s *Service) keyringList(w http.ResponseWriter, _ *http.Request) {
	resp, err := s.cfg.Keyring.ListKeys()
	if err != nil {
		s.keyringError(w, err, "Keyring is empty (encryption not enabled)")
		return
	}
	writeJSON(w, []api.KeyringResponse{{
		Datacenter:  s.cfg.Datacenter,
		Messages:    nonNil(resp.Messages),
		Keys:        nonNil(resp.Keys),
		PrimaryKeys: nonNil(resp.PrimaryKeys),
		NumNodes:    resp.NumNodes,
	}})
}

// keyringInstall answers POST: install the body's key on every member.
func (s *Service) keyringInstall(w http.ResponseWriter, r *http.Request) {
	s.keyringChange(w, r, s.cfg.Keyring.InstallKey)
}

// keyringUse answers PUT: make the body's key every member's primary key.
func (s *Service) keyringUse(w http.ResponseWriter, r *http.Request) {
	s.keyringChange(w, r, s.cfg.Keyring.UseKey)
}

// keyringRemove answers DELETE: remove the body's key from every member.
func (s *Service) keyringRemove(w http.ResponseWriter, r *http.Request) {
	s.keyringChange(w, r, s.cfg.Keyring.RemoveKey)
}

// keyringChange decodes {"Key": "…"} and runs op with it. Consul answers
// a change with an empty 200.
func (s *Service) keyringChange(w http.ResponseWriter, r *http.Request, op func(string) (gossip.KeyringResponse, error)) {
	var req api.KeyringRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxKeyringBody)).Decode(&req); err != nil {
		// Consul's words; the decoder's error never quotes a string value.
		httpError(w, http.StatusBadRequest, "Request decode failed: "+err.Error())
		return
	}
	if _, err := op(req.Key); err != nil {
		s.keyringError(w, err, "No keyring to modify (encryption not enabled)")
		return
	}
}

// keyringError answers a failed keyring operation as Consul does: "dc1
// (LAN) error: …", 500, or 400 for a key that is not one. disabled is
// Serf's words for a pool without encryption, which Consul relays.
func (s *Service) keyringError(w http.ResponseWriter, err error, disabled string) {
	pool := s.cfg.Datacenter + " (LAN)"
	switch {
	case errors.Is(err, gossip.ErrEncryptionDisabled):
		httpError(w, http.StatusInternalServerError, fmt.Sprintf("%s error: %s", pool, disabled))
	case errors.Is(err, gossip.ErrInvalidKey):
		httpError(w, http.StatusBadRequest, err.Error())
	default:
		httpError(w, http.StatusInternalServerError, fmt.Sprintf("%s error: %v", pool, err))
	}
}

// nonNil returns m, or an empty map for nil, so that JSON shows {}.
func nonNil[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}
