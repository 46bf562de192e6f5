package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// AutopilotConfiguration is the autopilot configuration in Consul's shape
// (GET and PUT /v1/operator/autopilot/configuration). The three
// Enterprise fields are accepted only at their zero value.
type AutopilotConfiguration struct {
	CleanupDeadServers      bool
	LastContactThreshold    *ReadableDuration
	MaxTrailingLogs         uint64
	MinQuorum               uint
	ServerStabilizationTime *ReadableDuration
	RedundancyZoneTag       string
	DisableUpgradeMigration bool
	UpgradeVersionTag       string
	CreateIndex             uint64
	ModifyIndex             uint64
}

// AutopilotState is the leader's autopilot view in Consul's shape
// (GET /v1/operator/autopilot/state): servers by ID, the leader's ID and
// the voters' IDs, sorted.
type AutopilotState struct {
	Healthy                    bool
	FailureTolerance           int
	OptimisticFailureTolerance int
	Servers                    map[string]AutopilotServer
	Leader                     string
	Voters                     []string
}

// AutopilotServer is one server of an AutopilotState.
type AutopilotServer struct {
	ID          string
	Name        string
	Address     string
	NodeStatus  string
	Version     string
	LastContact *ReadableDuration
	LastTerm    uint64
	LastIndex   uint64
	Healthy     bool
	StableSince time.Time
	ReadReplica bool
	// Status is "leader", "voter" or "non-voter".
	Status   string
	Meta     map[string]string
	NodeType string
}

// TransferLeaderResponse answers PUT /v1/operator/raft/transfer-leader.
type TransferLeaderResponse struct {
	Success bool
}

// AutopilotConfiguration returns the stored autopilot configuration, or
// the defaults Conclave runs with when none was set
// (GET /v1/operator/autopilot/configuration).
func (c *Client) AutopilotConfiguration() (*AutopilotConfiguration, error) {
	var out AutopilotConfiguration
	if err := c.do(c.timeout, http.MethodGet, "/v1/operator/autopilot/configuration", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AutopilotSetConfiguration stores conf (PUT
// /v1/operator/autopilot/configuration). With cas, it is stored only if the
// stored configuration's ModifyIndex is still conf.ModifyIndex; the result
// says whether it was.
func (c *Client) AutopilotSetConfiguration(conf *AutopilotConfiguration, cas bool) (bool, error) {
	body, err := json.Marshal(conf)
	if err != nil {
		return false, fmt.Errorf("encode autopilot configuration: %w", err)
	}
	var query url.Values
	if cas {
		query = url.Values{"cas": {strconv.FormatUint(conf.ModifyIndex, 10)}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodPut, "/v1/operator/autopilot/configuration", query, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.send(req)
	if err != nil {
		return false, err
	}
	defer closeBody(resp)
	var ok bool
	if err := decodeBody(resp, &ok); err != nil {
		return false, err
	}
	return ok, nil
}

// AutopilotState returns the leader's autopilot view
// (GET /v1/operator/autopilot/state).
func (c *Client) AutopilotState() (*AutopilotState, error) {
	var out AutopilotState
	if err := c.do(c.timeout, http.MethodGet, "/v1/operator/autopilot/state", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RaftTransferLeader asks the leader to hand leadership to the server with
// the Raft ID id, or, when id is empty, to the voter Raft finds most up to
// date (PUT /v1/operator/raft/transfer-leader). It waits up to 30s: the
// leader answers once it has stepped down.
func (c *Client) RaftTransferLeader(id string) (*TransferLeaderResponse, error) {
	var query url.Values
	if id != "" {
		query = url.Values{"id": {id}}
	}
	var out TransferLeaderResponse
	if err := c.do(c.slowTimeout, http.MethodPut, "/v1/operator/raft/transfer-leader", query, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RaftRemovePeerByAddress removes the server with the given Raft address
// (ip:port) from the Raft configuration
// (DELETE /v1/operator/raft/peer?address=<address>).
func (c *Client) RaftRemovePeerByAddress(address string) error {
	return c.do(c.timeout, http.MethodDelete, "/v1/operator/raft/peer", url.Values{"address": {address}}, nil)
}

// Monitor streams the agent's log lines at level (trace, debug, info,
// warn or error; "" for info), as JSON lines with logJSON
// (GET /v1/agent/monitor). The stream has no timeout: it ends when ctx
// ends, or when the agent stops. The caller closes it.
func (c *Client) Monitor(ctx context.Context, level string, logJSON bool) (io.ReadCloser, error) {
	query := url.Values{}
	if level != "" {
		query.Set("loglevel", level)
	}
	if logJSON {
		query.Set("logjson", "")
	}
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/agent/monitor", query, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
