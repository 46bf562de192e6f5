package config

import "fmt"

// Limits bound what one client may cost the agent, in Consul's limits
// block. The HTTP API also applies fixed timeouts and a header cap; see
// website/http-api.md.
type Limits struct {
	// HTTPMaxConnsPerClient is the most HTTP API connections one client
	// IP address may hold open at once; a connection beyond it is answered
	// 429 and closed. 0 turns the limit off. Default 200, as in Consul.
	// Key: limits.http_max_conns_per_client.
	HTTPMaxConnsPerClient int

	// TxnMaxReqLen is the largest /v1/txn request body, in bytes. As in
	// Consul, the larger of it and kv_max_value_size applies. Default
	// 524288 (512 KiB), range 1 to 64 MiB. Key: limits.txn_max_req_len.
	TxnMaxReqLen int
}

// Consul's defaults of the limits block.
const (
	DefaultHTTPMaxConnsPerClient = 200
	DefaultTxnMaxReqLen          = 512 << 10
)

// TxnMaxBytes is the largest /v1/txn body the agent reads: the larger of
// txn_max_req_len and kv_max_value_size, as Consul's txn endpoint takes.
func (c *Config) TxnMaxBytes() int { return max(c.Limits.TxnMaxReqLen, c.KVMaxValueSize) }

// rawLimits is the schema of the limits block.
type rawLimits struct {
	HTTPMaxConnsPerClient *int `hcl:"http_max_conns_per_client"`
	TxnMaxReqLen          *int `hcl:"txn_max_req_len"`
	KVMaxValueSize        *int `hcl:"kv_max_value_size"`
}

// applyLimits merges one file's limits block. limits.kv_max_value_size is
// Consul's name for kv_max_value_size: both set the same value, and an
// error about it points at whichever set it last.
func (b *builder) applyLimits(f *file, r *rawLimits) {
	c := b.cfg
	fromFile(b, f, "limits.http_max_conns_per_client", r.HTTPMaxConnsPerClient, &c.Limits.HTTPMaxConnsPerClient)
	fromFile(b, f, "limits.txn_max_req_len", r.TxnMaxReqLen, &c.Limits.TxnMaxReqLen)
	if r.KVMaxValueSize != nil {
		fromFile(b, f, "limits.kv_max_value_size", r.KVMaxValueSize, &c.KVMaxValueSize)
		b.origins["kv_max_value_size"] = b.origins["limits.kv_max_value_size"]
	}
}

func (v *validator) checkLimits() {
	l := v.c.Limits
	if l.HTTPMaxConnsPerClient < 0 {
		v.fail("limits.http_max_conns_per_client", true, "Invalid limits.http_max_conns_per_client",
			fmt.Sprintf("limits.http_max_conns_per_client must be 0 (no limit) or more, got %d.", l.HTTPMaxConnsPerClient))
	}
	if s := l.TxnMaxReqLen; s < 1 || s > MaxKVMaxValueSize {
		v.fail("limits.txn_max_req_len", true, "Invalid limits.txn_max_req_len",
			fmt.Sprintf("limits.txn_max_req_len must be between 1 and %d bytes, got %d.", MaxKVMaxValueSize, s))
	}
}
