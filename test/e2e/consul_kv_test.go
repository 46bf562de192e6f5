package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/conclavehq/conclave/test/testutil"
)

// TestConsulClientKV drives the KV store, transactions and snapshots with
// Consul's official Go client, through a follower.
func TestConsulClientKV(t *testing.T) {
	nodes := kvCluster(t, "ck", 3)
	_, followers := leaderAndFollowers(t, nodes)
	clients := map[*Node]*consul.Client{}
	for _, n := range nodes {
		cl, err := consul.NewClient(&consul.Config{Address: n.HTTPAddr()})
		if err != nil {
			t.Fatal(err)
		}
		clients[n] = cl
	}
	kv := clients[followers[0]].KV()

	// value reads key through cl; "" with ok false when it does not exist.
	value := func(cl *consul.Client, key string, q *consul.QueryOptions) (string, bool, error) {
		p, _, err := cl.KV().Get(key, q)
		if err != nil || p == nil {
			return "", false, err
		}
		return string(p.Value), true, nil
	}

	t.Run("put get list keys delete", func(t *testing.T) {
		for _, p := range []*consul.KVPair{
			{Key: "web/config", Value: []byte("v1"), Flags: 7},
			{Key: "web/hosts/a", Value: []byte("10.0.0.1")},
			{Key: "web/hosts/b", Value: []byte("10.0.0.2")},
			{Key: "web/empty"},
		} {
			if _, err := kv.Put(p, nil); err != nil {
				t.Fatalf("Put(%s): %v", p.Key, err)
			}
		}
		p, meta, err := kv.Get("web/config", nil)
		if err != nil || p == nil || string(p.Value) != "v1" || p.Flags != 7 {
			t.Fatalf("Get(web/config) = %+v, %v; want v1 with flags 7", p, err)
		}
		if !meta.KnownLeader || meta.LastIndex == 0 {
			t.Errorf("Get(web/config) meta = %+v, want a known leader and an index", meta)
		}
		if p, _, err := kv.Get("web/empty", nil); err != nil || p == nil || len(p.Value) != 0 {
			t.Errorf("Get(web/empty) = %+v, %v; want an empty value", p, err)
		}
		if p, _, err := kv.Get("web/nope", nil); err != nil || p != nil {
			t.Errorf("Get(web/nope) = %+v, %v; want nil, nil", p, err)
		}

		pairs, _, err := kv.List("web/hosts/", nil)
		if err != nil {
			t.Fatalf("List(web/hosts/): %v", err)
		}
		var got []string
		for _, p := range pairs {
			got = append(got, p.Key+"="+string(p.Value))
		}
		if want := []string{"web/hosts/a=10.0.0.1", "web/hosts/b=10.0.0.2"}; !slices.Equal(got, want) {
			t.Errorf("List(web/hosts/) = %v, want %v", got, want)
		}
		keys, _, err := kv.Keys("web/", "/", nil)
		if want := []string{"web/config", "web/empty", "web/hosts/"}; err != nil || !slices.Equal(keys, want) {
			t.Errorf("Keys(web/, /) = %v, %v; want %v", keys, err, want)
		}
		keys, _, err = kv.Keys("web/", "", nil)
		if want := []string{"web/config", "web/empty", "web/hosts/a", "web/hosts/b"}; err != nil || !slices.Equal(keys, want) {
			t.Errorf("Keys(web/, \"\") = %v, %v; want %v", keys, err, want)
		}

		if _, err := kv.Delete("web/empty", nil); err != nil {
			t.Fatalf("Delete(web/empty): %v", err)
		}
		if _, err := kv.DeleteTree("web/hosts/", nil); err != nil {
			t.Fatalf("DeleteTree(web/hosts/): %v", err)
		}
		keys, _, err = kv.Keys("web/", "", nil)
		if want := []string{"web/config"}; err != nil || !slices.Equal(keys, want) {
			t.Errorf("Keys(web/) after the deletes = %v, %v; want %v", keys, err, want)
		}
	})

	t.Run("CAS and DeleteCAS", func(t *testing.T) {
		ok, _, err := kv.CAS(&consul.KVPair{Key: "lock/owner", Value: []byte("a")}, nil)
		if err != nil || !ok {
			t.Fatalf("CAS(create lock/owner) = %t, %v; want true", ok, err)
		}
		ok, _, err = kv.CAS(&consul.KVPair{Key: "lock/owner", Value: []byte("b")}, nil)
		if err != nil || ok {
			t.Fatalf("CAS(create lock/owner again) = %t, %v; want false", ok, err)
		}
		p, _, err := kv.Get("lock/owner", nil)
		if err != nil || p == nil || string(p.Value) != "a" {
			t.Fatalf("Get(lock/owner) = %+v, %v; want a", p, err)
		}
		stale := *p
		p.Value = []byte("b")
		if ok, _, err := kv.CAS(p, nil); err != nil || !ok {
			t.Fatalf("CAS(lock/owner at %d) = %t, %v; want true", p.ModifyIndex, ok, err)
		}
		stale.Value = []byte("c")
		if ok, _, err := kv.CAS(&stale, nil); err != nil || ok {
			t.Fatalf("CAS(lock/owner at stale %d) = %t, %v; want false", stale.ModifyIndex, ok, err)
		}
		if ok, _, err := kv.DeleteCAS(&stale, nil); err != nil || ok {
			t.Fatalf("DeleteCAS(lock/owner at stale %d) = %t, %v; want false", stale.ModifyIndex, ok, err)
		}
		cur, _, err := kv.Get("lock/owner", nil)
		if err != nil || cur == nil || string(cur.Value) != "b" {
			t.Fatalf("Get(lock/owner) = %+v, %v; want b", cur, err)
		}
		if ok, _, err := kv.DeleteCAS(cur, nil); err != nil || !ok {
			t.Fatalf("DeleteCAS(lock/owner at %d) = %t, %v; want true", cur.ModifyIndex, ok, err)
		}
		if _, ok, err := value(clients[nodes[0]], "lock/owner", nil); err != nil || ok {
			t.Fatalf("lock/owner after DeleteCAS: exists %t, %v; want gone", ok, err)
		}
	})

	t.Run("blocking Get with WaitIndex", func(t *testing.T) {
		if _, err := kv.Put(&consul.KVPair{Key: "watch/x", Value: []byte("0")}, nil); err != nil {
			t.Fatal(err)
		}
		watcher := clients[followers[1]].KV()
		var idx uint64
		testutil.WaitFor(t, 10*time.Second, func() error {
			p, meta, err := watcher.Get("watch/x", &consul.QueryOptions{AllowStale: true})
			if err != nil || p == nil || string(p.Value) != "0" {
				return fmt.Errorf("stale Get(watch/x) = %+v, %v", p, err)
			}
			idx = meta.LastIndex
			return nil
		})
		type result struct {
			p    *consul.KVPair
			meta *consul.QueryMeta
			err  error
		}
		ch := make(chan result, 1)
		go func() {
			p, meta, err := watcher.Get("watch/x", &consul.QueryOptions{WaitIndex: idx, WaitTime: 10 * time.Second})
			ch <- result{p, meta, err}
		}()
		select {
		case r := <-ch:
			t.Fatalf("blocking Get returned before the write: %+v, %v", r.p, r.err)
		case <-time.After(300 * time.Millisecond): // let the query park on the server
		}
		written := time.Now()
		if _, err := clients[nodes[0]].KV().Put(&consul.KVPair{Key: "watch/x", Value: []byte("1")}, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-ch:
			t.Logf("blocking Get returned %s after the write was sent", time.Since(written))
			if r.err != nil || r.p == nil || string(r.p.Value) != "1" || r.meta.LastIndex <= idx {
				t.Fatalf("blocking Get = %+v, %+v, %v; want 1 at an index > %d", r.p, r.meta, r.err, idx)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("blocking Get did not return within 15s of the write")
		}
	})

	t.Run("Txn is all or nothing", func(t *testing.T) {
		for k, v := range map[string]string{"txn/a": "a0", "txn/b": "b0"} {
			if _, err := kv.Put(&consul.KVPair{Key: k, Value: []byte(v)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		b, _, err := kv.Get("txn/b", nil)
		if err != nil || b == nil {
			t.Fatalf("Get(txn/b) = %+v, %v", b, err)
		}
		txn := clients[followers[0]].Txn()
		ok, resp, _, err := txn.Txn(consul.TxnOps{
			{KV: &consul.KVTxnOp{Verb: consul.KVSet, Key: "txn/a", Value: []byte("a1")}},
			{KV: &consul.KVTxnOp{Verb: consul.KVSet, Key: "txn/new", Value: []byte("n")}},
			{KV: &consul.KVTxnOp{Verb: consul.KVCheckIndex, Key: "txn/b", Index: b.ModifyIndex + 1000}},
		}, nil)
		if err != nil || ok || resp == nil || len(resp.Errors) == 0 {
			t.Fatalf("Txn with a failing check-index = %t, %+v, %v; want false with errors", ok, resp, err)
		}
		if e := resp.Errors[0]; e.OpIndex != 2 || e.What == "" {
			t.Errorf("Txn error = %+v, want one for op 2 that says what failed", e)
		}
		if len(resp.Results) != 0 {
			t.Errorf("Txn rolled back but returned %d results", len(resp.Results))
		}
		for _, n := range nodes {
			if v, _, err := value(clients[n], "txn/a", nil); err != nil || v != "a0" {
				t.Errorf("txn/a via %s after the failed Txn = %q, %v; want a0", n.Name, v, err)
			}
			if _, ok, err := value(clients[n], "txn/new", nil); err != nil || ok {
				t.Errorf("txn/new via %s after the failed Txn exists %t, %v; want absent", n.Name, ok, err)
			}
		}

		ok, resp, _, err = txn.Txn(consul.TxnOps{
			{KV: &consul.KVTxnOp{Verb: consul.KVSet, Key: "txn/a", Value: []byte("a1")}},
			{KV: &consul.KVTxnOp{Verb: consul.KVCAS, Key: "txn/b", Value: []byte("b1"), Index: b.ModifyIndex}},
			{KV: &consul.KVTxnOp{Verb: consul.KVCheckNotExists, Key: "txn/new"}},
			{KV: &consul.KVTxnOp{Verb: consul.KVGet, Key: "txn/a"}},
		}, nil)
		if err != nil || !ok || resp == nil || len(resp.Errors) != 0 {
			t.Fatalf("Txn = %t, %+v, %v; want true", ok, resp, err)
		}
		var gotA bool
		for _, r := range resp.Results {
			if r.KV != nil && r.KV.Key == "txn/a" && string(r.KV.Value) == "a1" {
				gotA = true
			}
		}
		if !gotA {
			t.Errorf("Txn results %+v: want the get of txn/a with a1", resp.Results)
		}
		for k, want := range map[string]string{"txn/a": "a1", "txn/b": "b1"} {
			if v, _, err := value(clients[nodes[2]], k, nil); err != nil || v != want {
				t.Errorf("%s after the Txn = %q, %v; want %q", k, v, err, want)
			}
		}
	})

	t.Run("Snapshot Save and Restore", func(t *testing.T) {
		want := map[string]string{"snap/a": "1", "snap/b": "2", "snap/dir/c": "3"}
		for k, v := range want {
			if _, err := kv.Put(&consul.KVPair{Key: k, Value: []byte(v)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		rc, meta, err := clients[followers[1]].Snapshot().Save(nil)
		if err != nil {
			t.Fatalf("Snapshot().Save: %v", err)
		}
		snap, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || len(snap) == 0 {
			t.Fatalf("read snapshot: %d bytes, %v", len(snap), err)
		}
		t.Logf("snapshot: %d bytes at index %d", len(snap), meta.LastIndex)
		// What consul snapshot save verifies and inspect reads: Consul's
		// archive, its meta.json describing state.bin.
		files := archiveFiles(t, snap)
		var sm struct {
			ID          string
			Index, Term uint64
			Size        int64
		}
		if err := json.Unmarshal(files["meta.json"], &sm); err != nil {
			t.Fatalf("meta.json: %v", err)
		}
		if sm.ID == "" || sm.Index == 0 || sm.Term == 0 || sm.Size != int64(len(files["state.bin"])) || len(files["SHA256SUMS"]) == 0 {
			t.Errorf("archive meta.json = %+v with a state.bin of %d bytes; want an ID, index, term and its size", sm, len(files["state.bin"]))
		}

		// Change everything the snapshot holds, and add a key it does not.
		if _, err := kv.Put(&consul.KVPair{Key: "snap/a", Value: []byte("changed")}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Delete("snap/b", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.DeleteTree("snap/dir/", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(&consul.KVPair{Key: "snap/later", Value: []byte("x")}, nil); err != nil {
			t.Fatal(err)
		}

		if err := clients[followers[0]].Snapshot().Restore(nil, bytes.NewReader(snap)); err != nil {
			t.Fatalf("Snapshot().Restore: %v", err)
		}
		for _, n := range nodes {
			cl := clients[n]
			testutil.WaitFor(t, 15*time.Second, func() error {
				pairs, _, err := cl.KV().List("snap/", &consul.QueryOptions{AllowStale: true})
				if err != nil {
					return err
				}
				got := map[string]string{}
				for _, p := range pairs {
					got[p.Key] = string(p.Value)
				}
				if !maps.Equal(got, want) {
					return fmt.Errorf("%s: snap/ = %v, want %v", n.Name, got, want)
				}
				return nil
			})
			if v, _, err := value(cl, "snap/a", &consul.QueryOptions{RequireConsistent: true}); err != nil || v != "1" {
				t.Errorf("consistent Get(snap/a) via %s = %q, %v; want 1", n.Name, v, err)
			}
		}
		// The cluster still takes writes after a restore.
		if _, err := kv.Put(&consul.KVPair{Key: "snap/after", Value: []byte("ok")}, nil); err != nil {
			t.Fatalf("Put after Restore: %v", err)
		}
		if v, _, err := value(clients[nodes[2]], "snap/after", nil); err != nil || v != "ok" {
			t.Errorf("Get(snap/after) = %q, %v; want ok", v, err)
		}
	})

	t.Run("Snapshot Restore refuses a damaged archive, takes an old plain stream", func(t *testing.T) {
		if _, err := kv.Put(&consul.KVPair{Key: "old/k", Value: []byte("old")}, nil); err != nil {
			t.Fatal(err)
		}
		rc, _, err := clients[nodes[0]].Snapshot().Save(nil)
		if err != nil {
			t.Fatalf("Snapshot().Save: %v", err)
		}
		snap, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		// The state stream alone is what conclave snapshot save wrote
		// before archives.
		plain := archiveFiles(t, snap)["state.bin"]
		if _, err := kv.Put(&consul.KVPair{Key: "old/k", Value: []byte("new")}, nil); err != nil {
			t.Fatal(err)
		}

		err = clients[followers[0]].Snapshot().Restore(nil, bytes.NewReader(changeStateByte(t, snap)))
		if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("Restore(changed state.bin) = %v, want a 400 naming the checksum", err)
		}
		if v, _, _ := value(clients[nodes[0]], "old/k", &consul.QueryOptions{RequireConsistent: true}); v != "new" {
			t.Errorf("old/k after a refused restore = %q, want new", v)
		}

		if err := clients[followers[0]].Snapshot().Restore(nil, bytes.NewReader(plain)); err != nil {
			t.Fatalf("Restore(plain stream): %v", err)
		}
		if v, _, err := value(clients[nodes[0]], "old/k", &consul.QueryOptions{RequireConsistent: true}); err != nil || v != "old" {
			t.Errorf("old/k after restoring the plain stream = %q, %v; want old", v, err)
		}
	})

	t.Run("state survives a restart of every server", func(t *testing.T) {
		for _, n := range nodes {
			n.Kill()
		}
		for _, n := range nodes {
			n.Start()
		}
		WaitForCluster(t, 30*time.Second, nodes...)
		want := map[string]string{"snap/a": "1", "snap/b": "2", "snap/dir/c": "3", "snap/after": "ok", "txn/a": "a1", "txn/b": "b1", "web/config": "v1"}
		for _, n := range nodes {
			testutil.WaitFor(t, 15*time.Second, func() error {
				for k, v := range want {
					got, _, err := value(clients[n], k, &consul.QueryOptions{AllowStale: true})
					if err != nil || got != v {
						return fmt.Errorf("%s: %s = %q, %v; want %q", n.Name, k, got, err, v)
					}
				}
				if _, ok, err := value(clients[n], "snap/later", &consul.QueryOptions{AllowStale: true}); err != nil || ok {
					return fmt.Errorf("%s: snap/later exists %t, %v; want it gone since the restore", n.Name, ok, err)
				}
				return nil
			})
		}
	})

	t.Run("Acquire and Release: one holder at a time", func(t *testing.T) {
		// Two sessions contend for one key: exactly one holds it, and it
		// passes to the other only when released.
		var ids []string
		for _, name := range []string{"first", "second"} {
			id, _, err := clients[followers[0]].Session().Create(&consul.SessionEntry{Name: name, LockDelay: time.Millisecond}, nil)
			if err != nil {
				t.Fatalf("Session().Create(%s): %v", name, err)
			}
			ids = append(ids, id)
		}
		holds := 0
		for _, id := range ids {
			ok, _, err := kv.Acquire(&consul.KVPair{Key: "lock/leader", Value: []byte(id), Session: id}, nil)
			if err != nil {
				t.Fatalf("Acquire(lock/leader, %s): %v", id, err)
			}
			if ok {
				holds++
			}
		}
		p, _, err := kv.Get("lock/leader", nil)
		if holds != 1 || err != nil || p == nil || p.Session != ids[0] || p.LockIndex != 1 {
			t.Fatalf("after two acquires: %d holders, lock/leader = %+v, %v; want one holder, %s, LockIndex 1", holds, p, err, ids[0])
		}
		if ok, _, err := kv.Release(&consul.KVPair{Key: "lock/leader", Session: ids[1]}, nil); err != nil || ok {
			t.Fatalf("Release by the non-holder = %t, %v; want false", ok, err)
		}
		if ok, _, err := kv.Release(&consul.KVPair{Key: "lock/leader", Session: ids[0]}, nil); err != nil || !ok {
			t.Fatalf("Release by the holder = %t, %v; want true", ok, err)
		}
		if ok, _, err := kv.Acquire(&consul.KVPair{Key: "lock/leader", Session: ids[1]}, nil); err != nil || !ok {
			t.Fatalf("Acquire by the second after the release = %t, %v; want true", ok, err)
		}
		if p, _, err := kv.Get("lock/leader", nil); err != nil || p == nil || p.Session != ids[1] || p.LockIndex != 2 {
			t.Fatalf("lock/leader = %+v, %v; want held by %s with LockIndex 2", p, err, ids[1])
		}
		ok, _, _, err := kv.Txn(consul.KVTxnOps{{Verb: consul.KVCheckSession, Key: "lock/leader", Session: ids[1]}}, nil)
		if err != nil || !ok {
			t.Errorf("Txn(check-session) = %t, %v; want true", ok, err)
		}
		for _, id := range ids {
			if _, err := clients[followers[0]].Session().Destroy(id, nil); err != nil {
				t.Errorf("Session().Destroy(%s): %v", id, err)
			}
		}
	})

	t.Run("errors come back as Consul's client reports them", func(t *testing.T) {
		_, err := kv.Put(&consul.KVPair{Key: "big", Value: bytes.Repeat([]byte("x"), 512<<10+1)}, nil)
		if err == nil || !strings.Contains(err.Error(), "413") {
			t.Errorf("Put of 512 KiB + 1 = %v, want a 413 error", err)
		}
	})
}

// archiveFiles returns the files of a snapshot archive (gzip'd tar) by
// name.
func archiveFiles(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("snapshot is not gzip: %v", err)
	}
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("snapshot tar: %v", err)
		}
		if files[hdr.Name], err = io.ReadAll(tr); err != nil {
			t.Fatalf("snapshot tar %s: %v", hdr.Name, err)
		}
	}
	for _, name := range []string{"meta.json", "state.bin", "SHA256SUMS"} {
		if _, ok := files[name]; !ok {
			t.Fatalf("snapshot archive has %v, want %s", slices.Collect(maps.Keys(files)), name)
		}
	}
	return files
}

// changeStateByte returns the archive with one byte of state.bin changed,
// compressed again: the sizes still agree, only the checksum does not.
func changeStateByte(t *testing.T, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte("CNCLVKV"))
	if i < 0 {
		t.Fatal("no state stream in the archive")
	}
	raw[i+10] ^= 0x01
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(raw)
	zw.Close()
	return out.Bytes()
}
