package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Health checks, as HealthCheck.Check names them.
const (
	// CheckAlive is the liveness check, GET /v1/agent/health: the agent
	// serves HTTP.
	CheckAlive = "alive"
	// CheckReady is the readiness check, GET /v1/status/ready: the agent
	// has started and is not leaving or shutting down. It needs no leader.
	CheckReady = "ready"
	// CheckVoter is the rollout gate, GET /v1/status/ready?voter: this
	// server is a caught-up voter and the cluster tolerates one failure.
	CheckVoter = "voter"
)

// HealthCheck is the 200 answer of GET /v1/agent/health,
// GET /v1/status/ready and GET /v1/status/ready?voter. A failed check
// answers 503 with a one-line plain-text reason instead.
type HealthCheck struct {
	// Node is the agent's node name.
	Node string
	// Check is CheckAlive, CheckReady or CheckVoter.
	Check string
	// Healthy is true in every 200 answer.
	Healthy bool
	// Reason says in one line what passed.
	Reason string
	// AppliedIndex is the last Raft index this server had applied when
	// the voter check passed. Only the voter check sets it.
	AppliedIndex uint64 `json:",omitempty"`
	// LeaderLastIndex is the leader's last Raft index in the autopilot
	// view the voter check used. Only the voter check sets it.
	LeaderLastIndex uint64 `json:",omitempty"`
}

// OperatorHealthReply is the answer of GET /v1/operator/autopilot/health:
// the leader's autopilot view of every server in the Raft configuration.
// The shape is Consul's.
type OperatorHealthReply struct {
	// Healthy is true when every server is healthy.
	Healthy bool
	// FailureTolerance is how many voters the cluster can lose and keep a
	// quorum of healthy voters.
	FailureTolerance int
	// Servers holds the health of each server, sorted by name.
	Servers []ServerHealth
}

// ServerHealth is the health of one server in an OperatorHealthReply.
type ServerHealth struct {
	// ID is the server's node ID, its Raft server ID.
	ID string
	// Name is the server's node name, empty when gossip does not know it.
	Name string
	// Address is the server's Raft address.
	Address string
	// SerfStatus is the server's gossip status: alive, leaving, left,
	// failed or none.
	SerfStatus string
	// Version is the Conclave version the server reports.
	Version string
	// Leader is true for the leader.
	Leader bool
	// LastContact is how long ago the server last heard from the leader,
	// as the server reported it ("0s" on the leader; negative when it
	// never has).
	LastContact *ReadableDuration
	// LastTerm is the term of the last entry in the server's Raft log.
	LastTerm uint64
	// LastIndex is the index of the last entry in the server's Raft log.
	LastIndex uint64
	// Healthy is true when the server is alive in gossip, heard from the
	// leader recently, is on the leader's term and is close to the
	// leader's last index.
	Healthy bool
	// Voter is true when the server has a vote in the committed Raft
	// configuration.
	Voter bool
	// StableSince is when Healthy last changed, to the second.
	StableSince time.Time
}

// ReadableDuration is a time.Duration that reads and writes JSON as a
// duration string such as "12.5ms", as Consul's does. It also reads a
// number of nanoseconds.
type ReadableDuration time.Duration

// NewReadableDuration returns a pointer to d as a ReadableDuration.
func NewReadableDuration(d time.Duration) *ReadableDuration {
	r := ReadableDuration(d)
	return &r
}

// Duration returns d as a time.Duration; a nil d is 0.
func (d *ReadableDuration) Duration() time.Duration {
	if d == nil {
		return 0
	}
	return time.Duration(*d)
}

// String formats d as time.Duration does.
func (d *ReadableDuration) String() string { return d.Duration().String() }

// MarshalJSON writes d as a quoted duration string.
func (d *ReadableDuration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(d.Duration().String())), nil
}

// UnmarshalJSON reads a quoted duration string or a number of nanoseconds.
func (d *ReadableDuration) UnmarshalJSON(raw []byte) error {
	if s, err := strconv.Unquote(string(raw)); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("parse duration %q: %w", s, err)
		}
		*d = ReadableDuration(v)
		return nil
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return fmt.Errorf("parse duration %s: want a string or a number", raw)
	}
	*d = ReadableDuration(time.Duration(v))
	return nil
}

// Health runs one health check (CheckAlive, CheckReady or CheckVoter)
// within ctx. A failed check is a *StatusError whose Body is the agent's
// one-line reason: 503 when the check fails, 400 for CheckVoter on a
// client agent.
func (c *Client) Health(ctx context.Context, check string) (*HealthCheck, error) {
	var (
		path  string
		query url.Values
	)
	switch check {
	case CheckAlive:
		path = "/v1/agent/health"
	case CheckReady:
		path = "/v1/status/ready"
	case CheckVoter:
		path, query = "/v1/status/ready", url.Values{"voter": {""}}
	default:
		return nil, fmt.Errorf("unknown health check %q", check)
	}
	req, err := c.newRequest(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp)
	var out HealthCheck
	if err := decodeBody(resp, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AutopilotServerHealth returns the leader's autopilot view of the servers
// (GET /v1/operator/autopilot/health). The agent answers 429 when a server
// is unhealthy, as Consul does; that is an answer here, not an error.
func (c *Client) AutopilotServerHealth() (*OperatorHealthReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/operator/autopilot/health", nil, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req, http.StatusTooManyRequests)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp)
	var out OperatorHealthReply
	if err := decodeBody(resp, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
