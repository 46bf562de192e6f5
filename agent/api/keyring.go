package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// KeyringPath is the path of the gossip keyring operations, Consul's.
const KeyringPath = "/v1/operator/keyring"

// KeyringResponse is one gossip pool's answer to a keyring list, in
// Consul's shape (GET /v1/operator/keyring answers a list of them; Conclave
// has one pool, the LAN pool of its datacenter).
type KeyringResponse struct {
	// WAN is always false: Conclave has no WAN pool.
	WAN bool
	// Datacenter is the pool's datacenter; Segment is always "".
	Datacenter string
	Segment    string
	// Messages holds the errors members reported, by member name.
	Messages map[string]string
	// Keys counts, for each key (base64), the members that have it;
	// PrimaryKeys the members that encrypt with it.
	Keys        map[string]int
	PrimaryKeys map[string]int
	// NumNodes is the number of members asked.
	NumNodes int
}

// KeyringRequest is the body of a keyring install, use or remove.
type KeyringRequest struct {
	// Key is the gossip key, in base64.
	Key string
}

// KeyringList lists the gossip keys of every member
// (GET /v1/operator/keyring).
func (c *Client) KeyringList() ([]*KeyringResponse, error) {
	var out []*KeyringResponse
	if err := c.do(c.slowTimeout, http.MethodGet, KeyringPath, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// KeyringInstall adds key to every member's keyring
// (POST /v1/operator/keyring).
func (c *Client) KeyringInstall(key string) error {
	return c.keyringWrite(http.MethodPost, key)
}

// KeyringUse makes key, already installed, every member's primary key
// (PUT /v1/operator/keyring).
func (c *Client) KeyringUse(key string) error {
	return c.keyringWrite(http.MethodPut, key)
}

// KeyringRemove removes key from every member's keyring
// (DELETE /v1/operator/keyring).
func (c *Client) KeyringRemove(key string) error {
	return c.keyringWrite(http.MethodDelete, key)
}

func (c *Client) keyringWrite(method, key string) error {
	body, err := json.Marshal(KeyringRequest{Key: key})
	if err != nil {
		return fmt.Errorf("encode keyring request: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.slowTimeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, KeyringPath, nil, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	closeBody(resp)
	return nil
}
