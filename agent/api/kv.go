package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// defaultBlockingWait and maxBlockingWait are how long Consul's servers,
	// and so Conclave's, hold a blocking query without ?wait, and at most.
	defaultBlockingWait = 5 * time.Minute
	maxBlockingWait     = 10 * time.Minute
)

// ErrLeadingSlash is returned by KVPut and KVCAS for a key that begins
// with "/", which the agent would refuse. The read and delete methods
// instead drop one leading "/", as Consul's client does.
var ErrLeadingSlash = errors.New("key must not begin with a '/'")

// KVGet returns the entry at key (GET /v1/kv/<key>), or a nil pair and no
// error when there is none. q may be nil.
func (c *Client) KVGet(key string, q *QueryOptions) (*KVPair, *QueryMeta, error) {
	var entries []*KVPair
	found, qm, err := c.kvRead(key, nil, q, &entries)
	if err != nil || !found || len(entries) == 0 {
		return nil, qm, err
	}
	return entries[0], qm, nil
}

// KVList returns every entry whose key begins with prefix, sorted by key
// (GET /v1/kv/<prefix>?recurse), or nil when there is none. q may be nil.
func (c *Client) KVList(prefix string, q *QueryOptions) ([]*KVPair, *QueryMeta, error) {
	var entries []*KVPair
	_, qm, err := c.kvRead(prefix, url.Values{"recurse": {""}}, q, &entries)
	if err != nil {
		return nil, nil, err
	}
	return entries, qm, nil
}

// KVKeys returns the keys that begin with prefix (GET
// /v1/kv/<prefix>?keys), or nil when there is none. With a separator, the
// keys that have it after the prefix are cut just after its first
// occurrence and listed once, as directories: prefix "a/" and separator "/"
// list "a/b" and "a/c/" for the keys a/b, a/c/d and a/c/e. q may be nil.
func (c *Client) KVKeys(prefix, separator string, q *QueryOptions) ([]string, *QueryMeta, error) {
	params := url.Values{"keys": {""}}
	if separator != "" {
		params.Set("separator", separator)
	}
	var keys []string
	_, qm, err := c.kvRead(prefix, params, q, &keys)
	if err != nil {
		return nil, nil, err
	}
	return keys, qm, nil
}

// kvRead reads under /v1/kv/ and decodes the answer into out. found is
// false, with no error, when the agent answers 404: nothing at key.
func (c *Client) kvRead(key string, params url.Values, q *QueryOptions, out any) (found bool, qm *QueryMeta, err error) {
	query := q.values()
	maps.Copy(query, params)
	ctx, cancel := context.WithTimeout(context.Background(), c.queryTimeout(q))
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodGet, kvPath(strings.TrimPrefix(key, "/")), query, nil)
	if err != nil {
		return false, nil, err
	}
	resp, err := c.send(req, http.StatusNotFound)
	if err != nil {
		return false, nil, err
	}
	defer closeBody(resp)
	if qm, err = parseQueryMeta(resp.Header); err != nil {
		return false, nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return false, qm, nil
	}
	if err := decodeBody(resp, out); err != nil {
		return false, nil, err
	}
	return true, qm, nil
}

// KVPut writes p.Value and p.Flags at p.Key (PUT /v1/kv/<key>). The other
// fields of p are ignored.
func (c *Client) KVPut(p *KVPair) error {
	ok, err := c.kvPut(p, false)
	if err == nil && !ok {
		// A plain write cannot lose a race, so "false" is an agent bug;
		// Consul's client ignores it, but a write that was not made must
		// not look like one that was.
		err = fmt.Errorf("put %q: the agent did not apply the write", p.Key)
	}
	return err
}

// KVCAS writes p.Value and p.Flags at p.Key only if the key's ModifyIndex
// is still p.ModifyIndex, or, when p.ModifyIndex is 0, only if the key does
// not exist (PUT /v1/kv/<key>?cas=<index>). It reports whether the write
// was made; false with a nil error means that the check failed.
func (c *Client) KVCAS(p *KVPair) (bool, error) {
	return c.kvPut(p, true)
}

func (c *Client) kvPut(p *KVPair, cas bool) (bool, error) {
	if strings.HasPrefix(p.Key, "/") {
		return false, fmt.Errorf("put %q: %w", p.Key, ErrLeadingSlash)
	}
	query := url.Values{}
	if p.Flags != 0 {
		query.Set("flags", strconv.FormatUint(p.Flags, 10))
	}
	if cas {
		query.Set("cas", strconv.FormatUint(p.ModifyIndex, 10))
	}
	// A *bytes.Reader lets the request carry a Content-Length, which the
	// agent checks against its value size limit before reading the body.
	return c.kvWrite(http.MethodPut, p.Key, query, bytes.NewReader(p.Value))
}

// KVDelete deletes key (DELETE /v1/kv/<key>). Deleting a key that does not
// exist is not an error.
func (c *Client) KVDelete(key string) error {
	_, err := c.kvWrite(http.MethodDelete, strings.TrimPrefix(key, "/"), nil, nil)
	return err
}

// KVDeleteCAS deletes p.Key only if its ModifyIndex is still p.ModifyIndex
// (DELETE /v1/kv/<key>?cas=<index>). It reports whether the key was
// deleted; false with a nil error means that the check failed.
func (c *Client) KVDeleteCAS(p *KVPair) (bool, error) {
	query := url.Values{"cas": {strconv.FormatUint(p.ModifyIndex, 10)}}
	return c.kvWrite(http.MethodDelete, strings.TrimPrefix(p.Key, "/"), query, nil)
}

// KVDeleteTree deletes every key that begins with prefix (DELETE
// /v1/kv/<prefix>?recurse). An empty prefix deletes every key.
func (c *Client) KVDeleteTree(prefix string) error {
	_, err := c.kvWrite(http.MethodDelete, strings.TrimPrefix(prefix, "/"), url.Values{"recurse": {""}}, nil)
	return err
}

// kvWrite sends a write under /v1/kv/ and returns the agent's true or
// false answer.
func (c *Client) kvWrite(method, key string, query url.Values, body io.Reader) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, kvPath(key), query, body)
	if err != nil {
		return false, err
	}
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

// Txn applies ops atomically (PUT /v1/txn). ok is true, with the results,
// when the transaction was applied (200). ok is false, with the errors in
// the response and a nil error, when it was rolled back (409). Any other
// answer is an error.
func (c *Client) Txn(ops []*TxnOp) (ok bool, resp *TxnResponse, err error) {
	body, err := json.Marshal(ops)
	if err != nil {
		return false, nil, fmt.Errorf("encode transaction: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodPut, "/v1/txn", nil, bytes.NewReader(body))
	if err != nil {
		return false, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	hresp, err := c.send(req, http.StatusConflict)
	if err != nil {
		return false, nil, err
	}
	defer closeBody(hresp)
	var out TxnResponse
	if err := decodeBody(hresp, &out); err != nil {
		return false, nil, err
	}
	return hresp.StatusCode != http.StatusConflict, &out, nil
}

// kvPath returns the escaped request path of key. Each segment is escaped
// on its own so that "/" still separates them, as in the URLs Consul's
// client sends: "a b/c?" becomes /v1/kv/a%20b/c%3F.
func kvPath(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/v1/kv/" + strings.Join(segs, "/")
}

// values returns the query parameters of q. Flags are sent as "stale=",
// as Consul's client sends them; the agent only checks their presence.
func (q *QueryOptions) values() url.Values {
	v := url.Values{}
	if q == nil {
		return v
	}
	if q.Stale {
		v.Set("stale", "")
	}
	if q.Consistent {
		v.Set("consistent", "")
	}
	if q.WaitIndex != 0 {
		v.Set("index", strconv.FormatUint(q.WaitIndex, 10))
	}
	if q.WaitTime != 0 {
		v.Set("wait", durationMillis(q.WaitTime))
	}
	return v
}

// durationMillis formats d in whole milliseconds, at least 1ms, as
// Consul's client writes ?wait.
func durationMillis(d time.Duration) string {
	ms := d.Milliseconds()
	if d > 0 && ms == 0 {
		ms = 1
	}
	return strconv.FormatInt(ms, 10) + "ms"
}

// queryTimeout returns how long a read with q may take. A blocking query
// (WaitIndex set) may be held by the agent for its wait time (the default
// or the cap when WaitTime is unset or above it) plus up to 1/16 of that
// as jitter; the usual timeout comes on top, for the exchange itself.
func (c *Client) queryTimeout(q *QueryOptions) time.Duration {
	if q == nil || q.WaitIndex == 0 {
		return c.timeout
	}
	wait := q.WaitTime
	if wait <= 0 {
		wait = defaultBlockingWait
	}
	wait = min(wait, maxBlockingWait)
	return c.timeout + wait + wait/16
}

// parseQueryMeta reads the X-Consul-* headers of a read. A header that is
// missing leaves its field at the zero value; one that is malformed is an
// error, since a wrong LastIndex would make a blocking loop spin or stall.
func parseQueryMeta(h http.Header) (*QueryMeta, error) {
	qm := &QueryMeta{KnownLeader: h.Get("X-Consul-KnownLeader") == "true"}
	if v := h.Get("X-Consul-Index"); v != "" {
		i, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse X-Consul-Index %q: %w", v, err)
		}
		qm.LastIndex = i
	}
	if v := h.Get("X-Consul-LastContact"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse X-Consul-LastContact %q: %w", v, err)
		}
		qm.LastContact = time.Duration(ms) * time.Millisecond
	}
	return qm, nil
}
