package e2e

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/conclavehq/conclave/test/testutil"
)

// linReads is the consistency mode of TestKVLinearizable's reads. It is
// ?consistent because default-mode reads are not linearizable, in Consul
// nor here: a leader that was paused and has not yet learned of its
// successor answers them from its stale state (the fault schedule's probe
// reads catch that every time). Run with -lin-reads=default to see it.
var linReads = flag.String("lin-reads", "consistent",
	"consistency mode of the reads in TestKVLinearizable: consistent, default or stale")

// linInput is one operation of TestKVLinearizable on a key.
type linInput struct {
	Op     string // "get", "put" or "cas"
	Key    string
	Value  string // put, cas: the value written; every write's value is unique
	Expect string // cas: the value the client last read ("" = absent)
	Index  uint64 // cas: the ModifyIndex read with Expect (0 = create only)
}

// linOutput is what the operation returned.
type linOutput struct {
	Value   string // get: the value read, "" when the key does not exist
	OK      bool   // cas: whether it was applied
	Unknown bool   // a write whose outcome is unknown (timeout, reset, 5xx)
}

// kvModel is a register per key. Every write has a unique value, and a
// write's ModifyIndex is fixed once it is applied, so a CAS at the index
// read together with value v succeeds exactly when the key still holds v.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(linInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(linInput), output.(linOutput)
		switch in.Op {
		case "get":
			return out.Value == s, s
		case "put":
			return true, in.Value
		case "cas":
			match := s == in.Expect
			switch {
			case out.Unknown && match, out.OK:
				return match, in.Value
			default:
				return !match || out.Unknown, s
			}
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		switch in.Op {
		case "get":
			return fmt.Sprintf("get(%s) -> %q", in.Key, out.Value)
		case "put":
			if out.Unknown {
				return fmt.Sprintf("put(%s, %q) -> ?", in.Key, in.Value)
			}
			return fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
		default:
			res := strconv.FormatBool(out.OK)
			if out.Unknown {
				res = "?"
			}
			return fmt.Sprintf("cas(%s, %q@%d -> %q) -> %s", in.Key, in.Expect, in.Index, in.Value, res)
		}
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state.(string)) },
	DescribeOperationMetadata: func(info any) string {
		if info == nil {
			return ""
		}
		return info.(string)
	},
}

// TestKVLinearizable has concurrent clients read, write and CAS three keys
// through random servers while the leader is killed, paused and killed
// again, and checks the history with porcupine. Reads are ?consistent
// unless -lin-reads says otherwise (see linReads).
func TestKVLinearizable(t *testing.T) {
	const (
		clients  = 6
		duration = 10 * time.Second
	)
	readQuery := map[string]string{"default": "", "consistent": "consistent", "stale": "stale"}[*linReads]
	if readQuery == "" && *linReads != "default" {
		t.Fatalf("-lin-reads=%q: want default, consistent or stale", *linReads)
	}
	t.Logf("reads use the %s consistency mode", *linReads)
	keys := []string{"lin/a", "lin/b", "lin/c"}

	nodes := kvCluster(t, "lz", 3)
	c := NewKVClient(2*time.Second, clients)
	defer c.Close()

	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		unknown []int // indexes in history of writes with unknown outcome
		counts  = map[string]int{}
	)
	record := func(op porcupine.Operation, outcome string) {
		mu.Lock()
		defer mu.Unlock()
		counts[outcome]++
		if op.Output.(linOutput).Unknown {
			unknown = append(unknown, len(history))
		}
		history = append(history, op)
	}
	drop := func(outcome string) {
		mu.Lock()
		counts[outcome]++
		mu.Unlock()
	}

	stop := make(chan struct{})
	var wg, probes sync.WaitGroup
	for id := range clients {
		wg.Go(func() {
			rng := newRand(uint64(id))
			type seen struct {
				value string
				index uint64
			}
			last := map[string]seen{}
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				key := keys[rng.IntN(len(keys))]
				n := nodes[rng.IntN(len(nodes))]
				val := fmt.Sprintf("c%d-%d", id, seq)
				in := linInput{Key: key}
				var out linOutput
				var err error
				call := now()
				switch r := rng.IntN(10); {
				case r < 4:
					in.Op = "get"
					p, _, gerr := c.Get(n, key, readQuery)
					err = gerr
					if err == nil {
						s := seen{}
						if p != nil {
							s = seen{string(p.Value), p.ModifyIndex}
						}
						out.Value = s.value
						last[key] = s
					}
				case r < 7:
					in.Op, in.Value = "put", val
					_, err = c.Put(n, key, []byte(val), "")
				default:
					in.Op, in.Value = "cas", val
					in.Expect, in.Index = last[key].value, last[key].index
					out.OK, err = c.Put(n, key, []byte(val), "cas="+strconv.FormatUint(in.Index, 10))
				}
				ret := now()
				meta := fmt.Sprintf("via %s", n.Name)
				switch {
				case err == nil:
					record(porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret, Metadata: meta}, in.Op+" ok")
					continue
				case in.Op == "get" || definitelyNotApplied(err):
					drop(in.Op + " failed: " + errClass(err))
				default:
					out = linOutput{Unknown: true}
					record(porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret,
						Metadata: meta + ": " + err.Error()}, in.Op+" unknown: "+errClass(err))
				}
				// Back off after a failure, so that a leaderless cluster does
				// not fill the history with writes of unknown outcome.
				time.Sleep(50 * time.Millisecond)
			}
		})
	}

	// Faults, while the clients run: the leader is killed with SIGKILL and
	// restarted once a new leader is elected; then the new leader is
	// paused with SIGSTOP until the others elect a leader and take writes,
	// and resumed, so that for a moment it still believes it leads (the
	// case in which Consul's default-mode reads can be stale); then the
	// leader is killed and restarted again.
	for i, f := range []struct {
		at   time.Duration
		kind string
	}{{duration / 5, "kill"}, {duration / 2, "pause"}, {4 * duration / 5, "kill"}} {
		time.Sleep(time.Until(start.Add(f.at)))
		victim := LeaderNode(nodes...)
		if victim == nil {
			t.Errorf("fault %d (%s): no leader at %s", i+1, f.kind, time.Since(start))
			continue
		}
		pid := victim.PID()
		if f.kind == "kill" {
			victim.Kill()
		} else {
			syscall.Kill(-pid, syscall.SIGSTOP)
		}
		hit := time.Now()
		var survivors []*Node
		for _, n := range nodes {
			if n != victim {
				survivors = append(survivors, n)
			}
		}
		testutil.WaitFor(t, 15*time.Second, func() error {
			if LeaderNode(survivors...) == nil {
				return fmt.Errorf("no new leader among the survivors")
			}
			return nil
		})
		elected := time.Since(hit)
		if f.kind == "kill" {
			victim.Start()
		} else {
			// Probe the window Consul documents for default-mode reads:
			// write every key through the new leader, then read it from the
			// paused one, which answers once resumed. Until it learns of
			// the new term it may still believe it leads.
			newLeader := LeaderNode(survivors...)
			for k, key := range keys {
				in := linInput{Op: "put", Key: key, Value: fmt.Sprintf("probe%d-%s", i+1, key)}
				call := now()
				_, err := c.Put(newLeader, key, []byte(in.Value), "")
				op := porcupine.Operation{ClientId: clients, Input: in, Call: call, Return: now(), Metadata: "probe via " + newLeader.Name}
				if err != nil {
					op.Output = linOutput{Unknown: true}
					record(op, "probe put unknown: "+errClass(err))
					continue
				}
				op.Output = linOutput{}
				record(op, "probe put ok")
				probes.Go(func() {
					in := linInput{Op: "get", Key: key}
					call := now()
					p, r, err := c.Get(victim, key, readQuery)
					if err != nil {
						drop("probe get failed: " + errClass(err))
						return
					}
					out := linOutput{}
					if p != nil {
						out.Value = string(p.Value)
					}
					record(porcupine.Operation{ClientId: clients + 1 + k, Input: in, Call: call, Output: out, Return: now(),
						Metadata: fmt.Sprintf("probe via resumed %s (X-Consul-KnownLeader %s, X-Consul-LastContact %s)", victim.Name, r.KnownLeader, r.LastContact)},
						"probe get ok")
				})
			}
			time.Sleep(100 * time.Millisecond) // let the probe reads reach the paused server
			syscall.Kill(-pid, syscall.SIGCONT)
		}
		t.Logf("fault %d at %s: %s leader %s; new leader %s after %s; %s after %s",
			i+1, hit.Sub(start).Round(time.Millisecond), map[string]string{"kill": "killed (SIGKILL)", "pause": "paused (SIGSTOP)"}[f.kind],
			victim.Name, LeaderNode(survivors...).Name, elected.Round(time.Millisecond),
			map[string]string{"kill": "restarted", "pause": "resumed (SIGCONT)"}[f.kind], time.Since(hit).Round(time.Millisecond))
	}
	time.Sleep(time.Until(start.Add(duration)))
	close(stop)
	wg.Wait()
	probes.Wait()

	// A write of unknown outcome may take effect at any time after it was
	// sent, even after every other operation: it never returned.
	end := now() + int64(time.Second)
	for _, i := range unknown {
		history[i].Return = end
	}
	t.Logf("history: %d operations (%d writes of unknown outcome); outcomes: %v", len(history), len(unknown), counts)
	if len(history) < 300 {
		t.Fatalf("only %d operations completed; the test did not exercise the cluster", len(history))
	}

	checkLinearizable(t, history)
}

// checkLinearizable checks history against kvModel and fails the test
// unless it is linearizable.
//
// A write of unknown outcome is concurrent with everything after its call,
// and an unknown CAS that did not apply leaves the state as it was, so
// each one doubles the orders the checker may try. Most of them never took
// effect. The first check therefore leaves out the unknown writes whose
// value no read saw and no successful CAS expected. That is sound in one
// direction: any linearization of the smaller history stays one when the
// left-out writes are put at the very end, where an unknown write is
// always allowed. So Ok on the smaller history is Ok; anything else is
// checked again on the whole history.
func checkLinearizable(t *testing.T, history []porcupine.Operation) {
	t.Helper()
	observed := map[string]bool{}
	for _, op := range history {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		switch {
		case in.Op == "get":
			observed[in.Key+"\x00"+out.Value] = true
		case in.Op == "cas" && (out.OK || out.Unknown):
			observed[in.Key+"\x00"+in.Expect] = true
		}
	}
	var reduced []porcupine.Operation
	for _, op := range history {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		if out.Unknown && !observed[in.Key+"\x00"+in.Value] {
			continue
		}
		reduced = append(reduced, op)
	}

	check := func(what string, h []porcupine.Operation) (porcupine.CheckResult, porcupine.LinearizationInfo) {
		start := time.Now()
		res, info := porcupine.CheckOperationsVerbose(kvModel, h, 30*time.Second)
		t.Logf("porcupine on %s (%d operations): %s in %s", what, len(h), res, time.Since(start).Round(time.Millisecond))
		return res, info
	}
	res, info := check("the history without unobserved writes of unknown outcome", reduced)
	if res == porcupine.Ok {
		return
	}
	if len(reduced) < len(history) {
		var fullInfo porcupine.LinearizationInfo
		var fullRes porcupine.CheckResult
		fullRes, fullInfo = check("the whole history", history)
		if fullRes == porcupine.Ok {
			return
		}
		if fullRes == porcupine.Illegal || res != porcupine.Illegal {
			res, info = fullRes, fullInfo
		}
	}

	dir, err := os.MkdirTemp("", "conclave-linearizability-")
	if err != nil {
		t.Fatalf("history is %s, want Ok (and saving it failed: %v)", res, err)
	}
	path := filepath.Join(dir, "history.html")
	if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
		t.Logf("write visualization: %v", err)
	} else {
		t.Logf("visualization of the history: %s", path)
	}
	type record struct {
		Client       int
		Input        linInput
		Output       linOutput
		Call, Return int64
		Metadata     any
	}
	var recs []record
	for _, op := range history {
		recs = append(recs, record{op.ClientId, op.Input.(linInput), op.Output.(linOutput), op.Call, op.Return, op.Metadata})
	}
	if b, err := json.Marshal(recs); err == nil {
		jpath := filepath.Join(dir, "history.json")
		if err := os.WriteFile(jpath, b, 0o600); err == nil {
			t.Logf("history as JSON: %s", jpath)
		}
	}
	t.Fatalf("history of %d operations with reads in %s mode is %s, want Ok", len(history), *linReads, res)
}
