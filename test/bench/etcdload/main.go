// Command etcdload is the gRPC load generator of the bench package's
// side-by-side benchmark: it writes to one etcd endpoint with etcd's own Go
// client (go.etcd.io/etcd/client/v3) the same workload the bench package
// writes to Conclave over HTTP, and prints every timed operation's latency
// as JSON on stdout, so that both sides are summarised by the same code.
//
// It lives in a module of its own because the etcd client's dependencies
// (gRPC, protobuf, OpenTelemetry and golang.org/x at newer versions) would
// otherwise be raised in the main module. The bench package builds it with
// `go build` and runs it once per trial; it is not meant to be run by hand,
// though it can be:
//
//	etcdload -endpoint http://127.0.0.1:2379 -clients 32 -ops 100000 -max-time 15s
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Result is what etcdload prints on stdout: the wall time of the timed part
// and the latency of each timed operation, in nanoseconds.
type Result struct {
	ElapsedNS   int64   `json:"elapsed_ns"`
	LatenciesNS []int64 `json:"latencies_ns"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "etcdload:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		endpoint  = flag.String("endpoint", "", "the etcd client URL to write to (the leader's)")
		clients   = flag.Int("clients", 1, "concurrent writers, sharing one gRPC connection")
		ops       = flag.Int("ops", 1000, "timed operations in all, at most")
		maxTime   = flag.Duration("max-time", 15*time.Second, "duration of the timed part, at most")
		warmup    = flag.Int("warmup", 50, "untimed operations per writer before the timed part")
		valueSize = flag.Int("value-size", 100, "size of every value, in bytes")
		keys      = flag.Int("keys-per-client", 256, "distinct keys each writer cycles through")
		keyFormat = flag.String("key-format", "bench/c%02d/k%03d", "fmt format of a key from the writer's number and the key's")
		opTimeout = flag.Duration("op-timeout", 10*time.Second, "timeout of one PUT")
	)
	flag.Parse()
	if *endpoint == "" {
		return errors.New("-endpoint is required")
	}
	if *clients < 1 || *ops < 1 || *keys < 1 || *valueSize < 0 || *warmup < 0 {
		return errors.New("-clients, -ops and -keys-per-client must be positive, -value-size and -warmup not negative")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{*endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", *endpoint, err)
	}
	defer cli.Close()

	value := string(bytes.Repeat([]byte("v"), *valueSize))
	put := func(client, i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), *opTimeout)
		defer cancel()
		key := fmt.Sprintf(*keyFormat, client, i%*keys)
		if _, err := cli.Put(ctx, key, value); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		return nil
	}
	for c := range *clients {
		for i := range *warmup {
			if err := put(c, i); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
		}
	}

	var (
		next     atomic.Int64
		failed   atomic.Pointer[error]
		mu       sync.Mutex
		all      = make([]int64, 0, *ops)
		wg       sync.WaitGroup
		deadline = time.Now().Add(*maxTime)
	)
	start := time.Now()
	for c := range *clients {
		wg.Go(func() {
			lat := make([]int64, 0, *ops / *clients + 1)
			for i := *warmup; ; i++ {
				if next.Add(1) > int64(*ops) || failed.Load() != nil || time.Now().After(deadline) {
					break
				}
				t0 := time.Now()
				if err := put(c, i); err != nil {
					failed.CompareAndSwap(nil, &err)
					break
				}
				lat = append(lat, int64(time.Since(t0)))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if p := failed.Load(); p != nil {
		return fmt.Errorf("after %d operations: %w", len(all), *p)
	}
	return json.NewEncoder(os.Stdout).Encode(Result{ElapsedNS: int64(elapsed), LatenciesNS: all})
}
