package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// KVClient speaks Consul's KV HTTP API (/v1/kv/<key>) to the nodes of a
// test cluster, over one keep-alive transport shared by every request.
type KVClient struct {
	HTTP *http.Client
}

// NewKVClient returns a KVClient whose requests time out after timeout and
// that keeps up to conns idle connections to each node.
func NewKVClient(timeout time.Duration, conns int) *KVClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        conns * 4,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &KVClient{HTTP: &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// A redirect is an answer to check, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Close drops the client's idle connections.
func (c *KVClient) Close() { c.HTTP.CloseIdleConnections() }

// KVURL is the URL of key on n with the raw query q ("" for none). The key
// is escaped segment by segment, so a '/' inside it stays a separator.
func KVURL(n *Node, key, q string) string {
	u := "http://" + n.HTTPAddr() + "/v1/kv/" + escapeKey(key)
	if q != "" {
		u += "?" + q
	}
	return u
}

func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// StatusError is a non-2xx answer of the HTTP API.
type StatusError struct {
	Method, URL string
	Code        int
	Body        string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Code, e.Body)
}

// Response is an HTTP answer, read in full, with Consul's query metadata.
type Response struct {
	Code        int
	Header      http.Header
	Body        []byte
	Index       uint64 // X-Consul-Index, 0 if absent
	KnownLeader string // X-Consul-KnownLeader, "" if absent
	LastContact string // X-Consul-LastContact, "" if absent
}

// Do sends method to rawURL with body (nil for none) and reads the whole
// answer. err is non-nil only when no HTTP answer came back.
func (c *KVClient) Do(method, rawURL string, body []byte) (*Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := &Response{
		Code:        resp.StatusCode,
		Header:      resp.Header,
		Body:        b,
		KnownLeader: resp.Header.Get("X-Consul-KnownLeader"),
		LastContact: resp.Header.Get("X-Consul-LastContact"),
	}
	if v := resp.Header.Get("X-Consul-Index"); v != "" {
		r.Index, _ = strconv.ParseUint(v, 10, 64)
	}
	return r, nil
}

// Put writes value to key on n with the raw query q (such as "cas=5" or
// "flags=3") and returns the boolean Consul answers.
func (c *KVClient) Put(n *Node, key string, value []byte, q string) (bool, error) {
	u := KVURL(n, key, q)
	if value == nil {
		value = []byte{}
	}
	r, err := c.Do(http.MethodPut, u, value)
	if err != nil {
		return false, err
	}
	return decodeBool(http.MethodPut, u, r)
}

// Delete deletes key on n with the raw query q (such as "cas=5" or
// "recurse") and returns the boolean Consul answers.
func (c *KVClient) Delete(n *Node, key, q string) (bool, error) {
	u := KVURL(n, key, q)
	r, err := c.Do(http.MethodDelete, u, nil)
	if err != nil {
		return false, err
	}
	return decodeBool(http.MethodDelete, u, r)
}

func decodeBool(method, u string, r *Response) (bool, error) {
	if r.Code != http.StatusOK {
		return false, &StatusError{method, u, r.Code, strings.TrimSpace(string(r.Body))}
	}
	var ok bool
	if err := json.Unmarshal(r.Body, &ok); err != nil {
		return false, fmt.Errorf("%s %s: answer %q is not a boolean", method, u, r.Body)
	}
	return ok, nil
}

// Get reads key on n with the raw query q ("", "stale", "consistent", …).
// pair is nil when the key does not exist (404); resp is the answer either
// way.
func (c *KVClient) Get(n *Node, key, q string) (pair *consul.KVPair, resp *Response, err error) {
	pairs, resp, err := c.List(n, key, q)
	if err != nil || len(pairs) == 0 {
		return nil, resp, err
	}
	if len(pairs) != 1 || pairs[0].Key != key {
		return nil, resp, fmt.Errorf("GET %s: want one pair for %q, got %d (first %q)", KVURL(n, key, q), key, len(pairs), pairs[0].Key)
	}
	return pairs[0], resp, nil
}

// List is Get for answers of several pairs (?recurse). A 404 is an empty
// list, not an error.
func (c *KVClient) List(n *Node, key, q string) ([]*consul.KVPair, *Response, error) {
	u := KVURL(n, key, q)
	r, err := c.Do(http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	switch r.Code {
	case http.StatusNotFound:
		return nil, r, nil
	case http.StatusOK:
	default:
		return nil, r, &StatusError{http.MethodGet, u, r.Code, strings.TrimSpace(string(r.Body))}
	}
	var pairs []*consul.KVPair
	if err := json.Unmarshal(r.Body, &pairs); err != nil {
		return nil, r, fmt.Errorf("GET %s: decode %q: %w", u, truncate(r.Body, 200), err)
	}
	return pairs, r, nil
}

// IsStatus reports whether err is an answer of the HTTP API with status
// code.
func IsStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
