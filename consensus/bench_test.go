package consensus

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// benchSetLogs encodes sets of n distinct keys, in two versions with
// different values, so that every apply really writes.
func benchSetLogs(b *testing.B, n int) [2][][]byte {
	var logs [2][][]byte
	for v := range logs {
		value := make([]byte, 128)
		value[0] = byte(v)
		for i := range n {
			logs[v] = append(logs[v], mustEncode(b, Command{Op: OpSet, Key: fmt.Sprintf("service/%05d/config", i), Value: value}))
		}
	}
	return logs
}

// BenchmarkFSMApplySet applies one set at a time to a store of 64k keys.
func BenchmarkFSMApplySet(b *testing.B) {
	const keys = 1 << 16
	logs := benchSetLogs(b, keys)
	f := NewFSM()
	l := &raft.Log{Type: raft.LogCommand}
	for i := range keys {
		l.Index, l.Data = uint64(i+1), logs[1][i]
		f.Apply(l)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		l.Index, l.Data = uint64(keys+i+1), logs[(i/keys)%2][i%keys]
		if resp := f.Apply(l); resp != true {
			b.Fatalf("Apply = %v", resp)
		}
	}
}

// BenchmarkFSMApplyBatch applies sets in batches of 64, as Raft hands them
// over under load.
func BenchmarkFSMApplyBatch(b *testing.B) {
	const keys, batch = 1 << 16, 64
	logs := benchSetLogs(b, keys)
	f := NewFSM()
	ls := make([]*raft.Log, batch)
	for i := range ls {
		ls[i] = &raft.Log{Type: raft.LogCommand}
	}
	idx := uint64(0)
	fill := func(n int) []*raft.Log {
		for j := range n {
			idx++
			ls[j].Index, ls[j].Data = idx, logs[(idx/keys)%2][idx%keys]
		}
		return ls[:n]
	}
	for range keys / batch {
		f.ApplyBatch(fill(batch))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		f.ApplyBatch(fill(min(batch, b.N-done)))
	}
}

// benchStore holds 100k keys: 1000 directories of 100 keys each.
func benchStore(b *testing.B) *FSM {
	f := NewFSM()
	var logs []*raft.Log
	for i := range 100000 {
		c := Command{Op: OpSet, Key: fmt.Sprintf("dir/%04d/key/%03d", i/100, i%100), Value: make([]byte, 64)}
		logs = append(logs, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: mustEncode(b, c)})
		if len(logs) == 256 {
			f.ApplyBatch(logs)
			logs = logs[:0]
		}
	}
	f.ApplyBatch(logs)
	return f
}

// BenchmarkFSMList reads a 100-key prefix of a 100k-key store the way a
// list request does: the entries and the index to report.
func BenchmarkFSMList(b *testing.B) {
	f := benchStore(b)
	b.Run("List", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			v := f.View()
			prefix := fmt.Sprintf("dir/%04d/", i%1000)
			if got := v.List(prefix); len(got) != 100 {
				b.Fatalf("List(%s) = %d entries", prefix, len(got))
			}
			v.PrefixIndex(prefix)
		}
	})
	b.Run("Keys", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			prefix := fmt.Sprintf("dir/%04d/", i%1000)
			if got := f.Keys(prefix, "/"); len(got) != 1 {
				b.Fatalf("Keys(%s, /) = %q", prefix, got)
			}
		}
	})
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			v := f.View()
			key := fmt.Sprintf("dir/%04d/key/%03d", i%1000, i%100)
			if _, ok := v.Get(key); !ok {
				b.Fatalf("Get(%s) missing", key)
			}
			v.KeyIndex(key)
		}
	})
}

// BenchmarkNodeApply measures replicated writes per second on a single
// server with 32 concurrent writers (one server: this is the cost of the
// log store's fsync and the state machine, not of the network).
func BenchmarkNodeApply(b *testing.B) {
	for _, mode := range []string{"inmem", "boltdb", "wal"} {
		b.Run(mode, func(b *testing.B) {
			stream, err := NewTCPStream("127.0.0.1:0", "127.0.0.1")
			if err != nil {
				b.Fatal(err)
			}
			var store LogStoreConfig
			if mode != "inmem" {
				store.Backend = Backend(mode)
			}
			n, err := New(Config{ID: "bench", Stream: stream, DataDir: b.TempDir(), InMemory: mode == "inmem", LogStore: store, MaxValueSize: testMaxValueSize})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { n.Shutdown() })
			if err := n.Bootstrap([]Server{self(n)}); err != nil {
				b.Fatal(err)
			}
			deadline := time.Now().Add(waitTimeout)
			for !n.IsLeader() {
				if time.Now().After(deadline) {
					b.Fatal("no leader")
				}
				time.Sleep(10 * time.Millisecond)
			}
			value := make([]byte, 128)
			var next atomic.Uint64
			b.SetParallelism(32 / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					i := next.Add(1)
					c := Command{Op: OpSet, Key: fmt.Sprintf("bench/%06d", i%100000), Value: value, Flags: i}
					if _, err := n.Apply(ctx, c); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
		})
	}
}
