package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
)

// Sessions over HTTP, in Consul's paths and shapes (/v1/session). The
// sessions, locks and lock delays are consensus's; the TTL timers are the
// leader's (SessionTimers, which the agent's session duty implements).
//
// A create is decided in two places. The agent that receives it fills in
// what the body leaves out, its own node name first (as Consul's agent
// does), and sends the completed body on: to a server from a client agent,
// to the leader from a follower. The leader checks the node in gossip,
// chooses an unused ID, logs the create and arms the TTL timer.

// SessionTimers is the leader's set of session TTL timers (the agent's
// session duty over sessions.Timers). Arm starts or restarts the timer of
// a session (it fires after 2×ttl); Stop ends it. Both do nothing on a
// server that does not lead.
type SessionTimers interface {
	Arm(id string, ttl time.Duration)
	Stop(id string)
}

// maxSessionBody bounds the body of a session create.
const maxSessionBody = 64 << 10

// lockDelayMinThreshold is Consul's: a numeric LockDelay below it is in
// seconds, one at or above it in nanoseconds.
const lockDelayMinThreshold = 1000

// sessionBody is the body of PUT /v1/session/create. Pointers tell an
// absent field from an empty one: "NodeChecks": [] means no checks, no
// NodeChecks means the serfHealth default.
type sessionBody struct {
	Name       *string
	Node       *string
	LockDelay  json.RawMessage
	Behavior   *string
	TTL        *string
	NodeChecks *[]string
	// Checks is the name of NodeChecks before Consul 1.7; it counts when
	// NodeChecks is absent.
	Checks *[]string
	// ServiceChecks need services, which Conclave does not have: any is
	// refused.
	ServiceChecks []json.RawMessage
}

// decodeSession reads a create's body over Consul's defaults for node:
// LockDelay 15 s, behavior release, no TTL, the serfHealth check. An empty
// body is the defaults. Errors are worded for the 400's body.
func decodeSession(r *http.Request, node string) (consensus.Session, error) {
	s := consensus.DefaultSession("", node)
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxSessionBody+1))
	switch {
	case err != nil:
		return s, fmt.Errorf("Request decode failed: %v", err)
	case len(raw) > maxSessionBody:
		return s, fmt.Errorf("Request decode failed: body exceeds %d bytes", maxSessionBody)
	case len(bytes.TrimSpace(raw)) == 0:
		return s, nil
	}
	var b sessionBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return s, fmt.Errorf("Request decode failed: %v", err)
	}
	if b.Name != nil {
		s.Name = *b.Name
	}
	if b.Node != nil && *b.Node != "" {
		s.Node = *b.Node
	}
	if b.Behavior != nil && *b.Behavior != "" {
		s.Behavior = consensus.SessionBehavior(*b.Behavior)
	}
	if b.TTL != nil {
		if s.TTL, err = consensus.ParseSessionTTL(*b.TTL); err != nil {
			return s, err
		}
	}
	switch {
	case b.NodeChecks != nil:
		s.NodeChecks = slices.Clone(*b.NodeChecks)
	case b.Checks != nil:
		s.NodeChecks = slices.Clone(*b.Checks)
	}
	if len(b.ServiceChecks) > 0 {
		return s, errors.New("Request decode failed: ServiceChecks need services, which Conclave does not have")
	}
	if len(b.LockDelay) > 0 && string(b.LockDelay) != "null" {
		if s.LockDelay, err = parseLockDelay(b.LockDelay); err != nil {
			return s, err
		}
	}
	return s, nil
}

// parseLockDelay reads LockDelay as Consul's Session.UnmarshalJSON does: a
// duration string ("15s", "1000ms"), or a number, in seconds when it is
// below 1000 and in nanoseconds otherwise.
func parseLockDelay(raw json.RawMessage) (time.Duration, error) {
	var d time.Duration
	var str string
	var num float64
	switch {
	case json.Unmarshal(raw, &str) == nil:
		v, err := time.ParseDuration(str)
		if err != nil {
			return 0, fmt.Errorf("Request decode failed: LockDelay %q: %v", str, err)
		}
		d = v
	case json.Unmarshal(raw, &num) == nil:
		if num < 0 || num > 1e18 {
			return 0, fmt.Errorf("Request decode failed: LockDelay %v out of range", num)
		}
		d = time.Duration(num)
	default:
		return 0, fmt.Errorf("Request decode failed: LockDelay must be a duration string or a number, not %s", raw)
	}
	if d < lockDelayMinThreshold {
		d *= time.Second
	}
	return d, nil
}

// sessionRequestBody is s as a create body that names every field, which
// the receiving agent sends on.
func sessionRequestBody(s consensus.Session) []byte {
	checks := s.NodeChecks
	if checks == nil {
		checks = []string{}
	}
	b, _ := json.Marshal(map[string]any{
		"Name": s.Name, "Node": s.Node, "LockDelay": s.LockDelay.String(), "Behavior": string(s.Behavior),
		"TTL": ttlString(s.TTL), "NodeChecks": checks,
	})
	return b
}

// ttlString renders a TTL as Consul's clients read it: a Go duration, ""
// for none.
func ttlString(ttl time.Duration) string {
	if ttl == 0 {
		return ""
	}
	return ttl.String()
}

func toSessionEntry(s consensus.Session) api.SessionEntry {
	checks := s.NodeChecks
	if checks == nil {
		checks = []string{}
	}
	return api.SessionEntry{
		ID: s.ID, Name: s.Name, Node: s.Node, LockDelay: s.LockDelay, Behavior: string(s.Behavior),
		TTL: ttlString(s.TTL), NodeChecks: checks, CreateIndex: s.CreateIndex, ModifyIndex: s.ModifyIndex,
	}
}

func toSessionEntries(list []consensus.Session) []api.SessionEntry {
	out := make([]api.SessionEntry, 0, len(list))
	for _, s := range list {
		out = append(out, toSessionEntry(s))
	}
	return out
}

// sessionCreate answers PUT /v1/session/create on the agent that received
// it: it completes the body with this agent's defaults and passes it to
// the leader (through a server on a client agent).
func (s *Service) sessionCreate(w http.ResponseWriter, r *http.Request) {
	sess, err := decodeSession(r, s.cfg.Name)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	body := sessionRequestBody(sess)
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	s.place(leader, s.sessionCreateOnLeader)(w, r2)
}

// sessionCreateOnLeader creates the session of a completed body: its node
// must be in the gossip pool and, with the serfHealth check, alive (as
// Consul's state store requires a registered node whose checks are not
// critical).
func (s *Service) sessionCreateOnLeader(w http.ResponseWriter, r *http.Request) {
	sess, err := decodeSession(r, s.cfg.Name)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if msg := s.checkSessionNode(sess); msg != "" {
		httpError(w, http.StatusBadRequest, msg)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	// The ID is chosen here, before the log, so that applying is
	// deterministic; a collision (a UUID in use) is refused by the state
	// machine and tried again with another.
	for range 3 {
		sess.ID = s.newSessionID()
		res, err := s.store.Apply(ctx, consensus.Command{Op: consensus.OpSessionCreate, Session: sess})
		if err != nil {
			writeError(w, err)
			return
		}
		if !res.OK {
			continue
		}
		if sess.TTL > 0 && s.cfg.Sessions != nil {
			s.cfg.Sessions.Arm(sess.ID, sess.TTL)
		}
		writeJSON(w, struct{ ID string }{sess.ID})
		return
	}
	httpError(w, http.StatusInternalServerError, "Session ID generation failed: every ID tried is in use")
}

// newSessionID returns a random UUID that no session has.
func (s *Service) newSessionID() string {
	for {
		id := uuid.NewString()
		if _, taken := s.store.View().SessionGet(id); !taken {
			return id
		}
	}
}

// checkSessionNode says why sess may not be created for its node, in
// Consul's words, or "" when it may: the node must be a member of the
// gossip pool that has not left, and alive if the session has the
// serfHealth check.
func (s *Service) checkSessionNode(sess consensus.Session) string {
	for _, m := range s.cfg.Pool.Members() {
		if m.Name != sess.Node {
			continue
		}
		switch {
		case m.Status == gossip.StatusLeft:
			return "Missing node registration"
		case m.Status != gossip.StatusAlive && slices.Contains(sess.NodeChecks, consensus.SerfHealth):
			return fmt.Sprintf("Check '%s' is in critical state", consensus.SerfHealth)
		}
		return ""
	}
	return "Missing node registration"
}

// sessionID is the session a /v1/session/{destroy,renew,info} path names.
func sessionID(r *http.Request) string { return strings.TrimSpace(r.PathValue("id")) }

// sessionDestroy answers PUT /v1/session/destroy/<id> on the leader:
// the session is invalidated (its keys released or deleted, their lock
// delay started). Destroying a session that does not exist succeeds.
func (s *Service) sessionDestroy(w http.ResponseWriter, r *http.Request) {
	id := sessionID(r)
	if id == "" {
		httpError(w, http.StatusBadRequest, "Missing session")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if _, err := s.store.Apply(ctx, consensus.Command{Op: consensus.OpSessionDestroy, Session: consensus.Session{ID: id}}); err != nil {
		writeError(w, err)
		return
	}
	if s.cfg.Sessions != nil {
		s.cfg.Sessions.Stop(id)
	}
	writeTrueFalse(w, true)
}

// sessionRenew answers PUT /v1/session/renew/<id> on the leader: the
// session's TTL timer starts again, and the answer is the session in a
// JSON array; 404 when it does not exist (any more).
func (s *Service) sessionRenew(w http.ResponseWriter, r *http.Request) {
	id := sessionID(r)
	if id == "" {
		httpError(w, http.StatusBadRequest, "Missing session")
		return
	}
	v := s.store.View()
	sess, ok := v.SessionGet(id)
	if !ok {
		httpError(w, http.StatusNotFound, fmt.Sprintf("Session id '%s' not found", id))
		return
	}
	if sess.TTL > 0 && s.cfg.Sessions != nil {
		s.cfg.Sessions.Arm(id, sess.TTL)
	}
	s.setMeta(w, v.SessionIndex())
	writeJSON(w, []api.SessionEntry{toSessionEntry(sess)})
}

// sessionRead answers a read of sessions (info, node, list) with what read
// finds in the view, as a blocking query on the sessions table.
func (s *Service) sessionRead(w http.ResponseWriter, r *http.Request, read func(consensus.View) []consensus.Session) {
	o, err := parseQueryOpts(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.readLocally(w, r, o) {
		return
	}
	v := s.store.View()
	if o.index > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), blockingWait(o))
		v, err = s.store.WaitSessions(ctx, o.index)
		cancel()
		if err != nil && r.Context().Err() != nil {
			return // the client went away
		}
	}
	s.setMeta(w, v.SessionIndex())
	writeJSON(w, toSessionEntries(read(v)))
}

// sessionInfo answers GET /v1/session/info/<id>: the session in a JSON
// array, or an empty array, as Consul answers.
func (s *Service) sessionInfo(w http.ResponseWriter, r *http.Request) {
	id := sessionID(r)
	if id == "" {
		httpError(w, http.StatusBadRequest, "Missing session")
		return
	}
	s.sessionRead(w, r, func(v consensus.View) []consensus.Session {
		if sess, ok := v.SessionGet(id); ok {
			return []consensus.Session{sess}
		}
		return nil
	})
}

// sessionNode answers GET /v1/session/node/<node>.
func (s *Service) sessionNode(w http.ResponseWriter, r *http.Request) {
	node := r.PathValue("node")
	if node == "" {
		httpError(w, http.StatusBadRequest, "Missing node name")
		return
	}
	s.sessionRead(w, r, func(v consensus.View) []consensus.Session { return v.SessionsByNode(node) })
}

// sessionList answers GET /v1/session/list.
func (s *Service) sessionList(w http.ResponseWriter, r *http.Request) {
	s.sessionRead(w, r, consensus.View.SessionList)
}
