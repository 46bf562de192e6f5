package consensus

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// setClock makes the lock delays read now instead of the wall clock.
func (d *lockDelay) setClock(now func() time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.now = now
}

// fakeClock is a settable clock for lock delays.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock(f *FSM) *fakeClock {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	f.delay.setClock(c.now)
	return c
}
func createCmd(s Session) Command  { return Command{Op: OpSessionCreate, Session: s} }
func destroyCmd(id string) Command { return Command{Op: OpSessionDestroy, Session: Session{ID: id}} }
func lockCmd(key, value, session string) Command {
	return Command{Op: OpLock, Key: key, Value: []byte(value), Session: Session{ID: session}}
}
func unlockCmd(key, value, session string) Command {
	return Command{Op: OpUnlock, Key: key, Value: []byte(value), Session: Session{ID: session}}
}

func mustGet(t *testing.T, f *FSM, key string) Entry {
	t.Helper()
	e, ok := f.Get(key)
	if !ok {
		t.Fatalf("Get(%q): missing", key)
	}
	return e
}

func TestSessionCreateReadDestroy(t *testing.T) {
	f := NewFSM()
	s1 := DefaultSession("s1", "node-a")
	s1.Name, s1.TTL = "web lock", 30*time.Second
	mustApply(t, f, 1, createCmd(s1))
	mustApply(t, f, 2, createCmd(DefaultSession("s2", "node-b")))
	mustApply(t, f, 3, createCmd(Session{ID: "s3", Node: "node-a", Behavior: SessionDelete}))

	v := f.View()
	got, ok := v.SessionGet("s1")
	want := s1
	want.CreateIndex, want.ModifyIndex = 1, 1
	if !ok {
		t.Fatal("SessionGet(s1): missing")
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("SessionGet(s1) mismatch (-got +want):\n%s", diff)
	}
	ids := func(ss []Session) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return out
	}
	if diff := cmp.Diff(ids(v.SessionList()), []string{"s1", "s2", "s3"}); diff != "" {
		t.Errorf("SessionList() mismatch (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(ids(v.SessionsByNode("node-a")), []string{"s1", "s3"}); diff != "" {
		t.Errorf("SessionsByNode(node-a) mismatch (-got +want):\n%s", diff)
	}
	if got := v.SessionIndex(); got != 3 {
		t.Errorf("SessionIndex() = %d, want 3", got)
	}

	// An ID in use is refused and changes nothing.
	if applyBool(t, f, 4, createCmd(DefaultSession("s1", "node-z"))) {
		t.Error("session-create of an ID in use = true, want false")
	}
	if s, _ := f.View().SessionGet("s1"); s.Node != "node-a" || f.View().SessionIndex() != 3 {
		t.Errorf("after a refused create: s1 = %+v, SessionIndex %d; want node-a, 3", s, f.View().SessionIndex())
	}

	watch := f.View().WatchSessions()
	mustApply(t, f, 5, destroyCmd("s1"))
	if !closed(watch) {
		t.Error("session-destroy did not fire WatchSessions")
	}
	if _, ok := f.View().SessionGet("s1"); ok {
		t.Error("SessionGet(s1) after destroy: found")
	}
	if got := f.View().SessionIndex(); got != 5 {
		t.Errorf("SessionIndex() after destroy = %d, want 5", got)
	}
	// Destroying a missing session succeeds and changes nothing.
	mustApply(t, f, 6, destroyCmd("s1"))
	if got := f.View().SessionIndex(); got != 5 {
		t.Errorf("SessionIndex() after destroying a missing session = %d, want 5", got)
	}
	if got := NewFSM().View().SessionIndex(); got != 1 {
		t.Errorf("SessionIndex() of an empty store = %d, want 1", got)
	}
}

// TestLockContention walks two sessions through Consul's lock rules.
func TestLockContention(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, createCmd(DefaultSession("s1", "n")))
	mustApply(t, f, 2, createCmd(DefaultSession("s2", "n")))

	steps := []struct {
		name string
		cmd  Command
		ok   bool
		// want is the entry after the step.
		want Entry
	}{
		{"s1 acquires a new key", lockCmd("k", "v1", "s1"), true,
			Entry{Key: "k", Value: []byte("v1"), CreateIndex: 3, ModifyIndex: 3, LockIndex: 1, Session: "s1"}},
		{"s2 cannot acquire a held key", lockCmd("k", "v2", "s2"), false,
			Entry{Key: "k", Value: []byte("v1"), CreateIndex: 3, ModifyIndex: 3, LockIndex: 1, Session: "s1"}},
		{"s1 re-acquires: new value, same LockIndex", lockCmd("k", "v1b", "s1"), true,
			Entry{Key: "k", Value: []byte("v1b"), CreateIndex: 3, ModifyIndex: 5, LockIndex: 1, Session: "s1"}},
		{"s1 re-acquires with the same value: no change", lockCmd("k", "v1b", "s1"), true,
			Entry{Key: "k", Value: []byte("v1b"), CreateIndex: 3, ModifyIndex: 5, LockIndex: 1, Session: "s1"}},
		{"s2 cannot release s1's lock", unlockCmd("k", "x", "s2"), false,
			Entry{Key: "k", Value: []byte("v1b"), CreateIndex: 3, ModifyIndex: 5, LockIndex: 1, Session: "s1"}},
		{"a plain set keeps the lock", setCmd("k", "plain"), true,
			Entry{Key: "k", Value: []byte("plain"), CreateIndex: 3, ModifyIndex: 8, LockIndex: 1, Session: "s1"}},
		{"a cas keeps the lock", Command{Op: OpCAS, Key: "k", Value: []byte("cas"), Index: 8}, true,
			Entry{Key: "k", Value: []byte("cas"), CreateIndex: 3, ModifyIndex: 9, LockIndex: 1, Session: "s1"}},
		{"s1 releases: value written, LockIndex kept", unlockCmd("k", "free", "s1"), true,
			Entry{Key: "k", Value: []byte("free"), CreateIndex: 3, ModifyIndex: 10, LockIndex: 1}},
		{"s1 cannot release twice", unlockCmd("k", "again", "s1"), false,
			Entry{Key: "k", Value: []byte("free"), CreateIndex: 3, ModifyIndex: 10, LockIndex: 1}},
		{"s2 acquires the free key: a new holder increments LockIndex", lockCmd("k", "v2", "s2"), true,
			Entry{Key: "k", Value: []byte("v2"), CreateIndex: 3, ModifyIndex: 12, LockIndex: 2, Session: "s2"}},
	}
	for i, st := range steps {
		if got := applyBool(t, f, uint64(3+i), st.cmd); got != st.ok {
			t.Errorf("step %q: Apply = %v, want %v", st.name, got, st.ok)
		}
		if diff := cmp.Diff(mustGet(t, f, "k"), st.want, equateEmpty); diff != "" {
			t.Errorf("step %q: entry mismatch (-got +want):\n%s", st.name, diff)
		}
	}

	// Release of a missing key fails; acquire by a missing session is an
	// error with Consul's message, and writes nothing.
	if applyBool(t, f, 20, unlockCmd("missing", "", "s1")) {
		t.Error("unlock of a missing key = true, want false")
	}
	resp := applyAt(t, f, 21, lockCmd("other", "v", "nope"))
	err, _ := resp.(error)
	if !errors.Is(err, ErrUnknownSession) || err.Error() != `invalid session "nope"` {
		t.Errorf("lock by a missing session = %#v, want ErrUnknownSession `invalid session \"nope\"`", resp)
	}
	if _, ok := f.Get("other"); ok {
		t.Error("a refused lock wrote its key")
	}
	// A delete removes a locked key and its lock, as in Consul.
	mustApply(t, f, 22, Command{Op: OpDelete, Key: "k"})
	if _, ok := f.Get("k"); ok {
		t.Error("delete of a locked key: still there")
	}
}

// TestSessionDestroyInvalidates checks both behaviors and the lock delay.
func TestSessionDestroyInvalidates(t *testing.T) {
	f := NewFSM()
	clock := newFakeClock(f)
	rel := DefaultSession("rel", "n") // LockDelay 15 s
	del := Session{ID: "del", Node: "n", Behavior: SessionDelete, LockDelay: 90 * time.Second}
	none := Session{ID: "none", Node: "n", Behavior: SessionRelease}
	for i, c := range []Command{
		createCmd(rel), createCmd(del), createCmd(none), // 1-3
		lockCmd("r/1", "a", "rel"), lockCmd("r/2", "b", "rel"), // 4-5
		lockCmd("d/1", "c", "del"),   // 6
		lockCmd("n/1", "e", "none"),  // 7
		setCmd("free", "f"),          // 8
		lockCmd("r/3", "g", "rel"),   // 9
		unlockCmd("r/3", "g", "rel"), // 10: released before the destroy
	} {
		mustApply(t, f, uint64(i+1), c)
	}
	watch := f.View().WatchKey("r/1")
	mustApply(t, f, 11, destroyCmd("rel"))
	mustApply(t, f, 12, destroyCmd("del"))
	mustApply(t, f, 13, destroyCmd("none"))

	want := []Entry{
		{Key: "free", Value: []byte("f"), CreateIndex: 8, ModifyIndex: 8},
		{Key: "n/1", Value: []byte("e"), CreateIndex: 7, ModifyIndex: 13, LockIndex: 1},
		{Key: "r/1", Value: []byte("a"), CreateIndex: 4, ModifyIndex: 11, LockIndex: 1},
		{Key: "r/2", Value: []byte("b"), CreateIndex: 5, ModifyIndex: 11, LockIndex: 1},
		{Key: "r/3", Value: []byte("g"), CreateIndex: 9, ModifyIndex: 10, LockIndex: 1},
	}
	if diff := cmp.Diff(f.List(""), want, equateEmpty); diff != "" {
		t.Errorf("entries after the destroys mismatch (-got +want):\n%s", diff)
	}
	if !closed(watch) {
		t.Error("releasing r/1 did not fire its watch")
	}
	if got := f.View().KeyIndex("d/1"); got != 12 {
		t.Errorf("KeyIndex(d/1) after its session deleted it = %d, want 12 (its tombstone)", got)
	}

	start := clock.t
	for _, tc := range []struct {
		key  string
		want time.Duration // 0: no delay
	}{
		{"r/1", 15 * time.Second}, {"r/2", 15 * time.Second},
		{"d/1", MaxLockDelay}, // 90 s is applied as the maximum
		{"n/1", 0},            // LockDelay 0
		{"r/3", 0},            // not held at the destroy
		{"free", 0},
	} {
		until, ok := f.LockDelay(tc.key)
		if tc.want == 0 {
			if ok {
				t.Errorf("LockDelay(%q) = %v, true; want none", tc.key, until)
			}
			continue
		}
		if !ok || !until.Equal(start.Add(tc.want)) {
			t.Errorf("LockDelay(%q) = %v, %v; want %v", tc.key, until, ok, start.Add(tc.want))
		}
	}
	clock.advance(15 * time.Second)
	if _, ok := f.LockDelay("r/1"); ok {
		t.Error("LockDelay(r/1) still runs when 15 s have passed")
	}
	if _, ok := f.LockDelay("d/1"); !ok {
		t.Error("LockDelay(d/1) ended after 15 s, want 60 s")
	}
	// A restore forgets the delays, as Consul's does.
	if err := restore(f, persist(t, f)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if _, ok := f.LockDelay("d/1"); ok {
		t.Error("LockDelay(d/1) survived a restore")
	}
}

// TestLockDelayNode checks the leader's lock delay: an acquire during the
// delay is answered false without reaching the log, a transaction's lock
// fails with Consul's message, and both succeed once it has passed.
func TestLockDelayNode(t *testing.T) {
	n := newTestNode(t, "node-1", inMemory)
	if err := n.Bootstrap([]Server{self(n)}); err != nil {
		t.Fatal(err)
	}
	waitForLeader(t, n)
	clock := newFakeClock(n.fsm)
	s := DefaultSession("s1", "node-1")
	s.LockDelay = 10 * time.Second
	mustApplyNode(t, n, createCmd(s))
	mustApplyNode(t, n, createCmd(DefaultSession("s2", "node-1")))
	if res := mustApplyNode(t, n, lockCmd("k", "v", "s1")); !res.OK {
		t.Fatal("first acquire failed")
	}
	mustApplyNode(t, n, destroyCmd("s1"))

	applied := n.AppliedIndex()
	if res := mustApplyNode(t, n, lockCmd("k", "v2", "s2")); res.OK || res.Index != 0 {
		t.Errorf("acquire during the lock delay = %+v, want OK false and no log index", res)
	}
	txn := Command{Op: OpTxn, Ops: []TxnOp{
		{Verb: VerbSet, Key: "other", Value: []byte("x")},
		{Verb: VerbLock, Key: "k", Value: []byte("v2"), Session: "s2"},
	}}
	res := mustApplyNode(t, n, txn)
	wantErrs := []TxnError{{OpIndex: 1, What: `failed to lock key "k" due to lock delay`}}
	if diff := cmp.Diff(res.Errors, wantErrs); res.OK || diff != "" {
		t.Errorf("txn lock during the lock delay: OK %v, errors mismatch (-got +want):\n%s", res.OK, diff)
	}
	if got := n.AppliedIndex(); got != applied {
		t.Errorf("AppliedIndex() = %d after refused acquires, want %d: they reached the log", got, applied)
	}

	clock.advance(10 * time.Second)
	if res := mustApplyNode(t, n, lockCmd("k", "v2", "s2")); !res.OK {
		t.Error("acquire after the lock delay failed")
	}
	if e, _ := n.Get("k"); e.Session != "s2" || e.LockIndex != 2 {
		t.Errorf("after the handover: %+v, want Session s2, LockIndex 2", e)
	}
	if got := n.SessionList(); len(got) != 1 || got[0].ID != "s2" {
		t.Errorf("SessionList() = %+v, want s2 only", got)
	}
}

func TestTxnSessionVerbs(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, createCmd(DefaultSession("s1", "n")))
	mustApply(t, f, 2, createCmd(DefaultSession("s2", "n")))
	mustApply(t, f, 3, lockCmd("held", "h", "s1"))
	mustApply(t, f, 4, setCmd("free", "f"))

	cases := []struct {
		name   string
		ops    []TxnOp
		errs   []TxnError
		result []Entry // for a committed one
	}{
		{"lock, check-session, unlock", []TxnOp{
			{Verb: VerbLock, Key: "free", Value: []byte("mine"), Session: "s2"},
			{Verb: VerbCheckSession, Key: "free", Session: "s2"},
			{Verb: VerbCheckSession, Key: "held", Session: "s1"},
			{Verb: VerbUnlock, Key: "free", Value: []byte("done"), Session: "s2"},
		}, nil, []Entry{
			{Key: "free", CreateIndex: 4, ModifyIndex: 10, LockIndex: 1, Session: "s2"},
			{Key: "free", CreateIndex: 4, ModifyIndex: 10, LockIndex: 1, Session: "s2"},
			{Key: "held", CreateIndex: 3, ModifyIndex: 3, LockIndex: 1, Session: "s1"},
			{Key: "free", CreateIndex: 4, ModifyIndex: 10, LockIndex: 1},
		}},
		{"every failure, with Consul's messages", []TxnOp{
			{Verb: VerbLock, Key: "held", Session: "s2"},
			{Verb: VerbLock, Key: "x", Session: "nope"},
			{Verb: VerbUnlock, Key: "held", Session: "s2"},
			{Verb: VerbUnlock, Key: "missing", Session: "s2"},
			{Verb: VerbCheckSession, Key: "held", Session: "s2"},
			{Verb: VerbCheckSession, Key: "free"}, // empty session: unheld, passes
			{Verb: VerbCheckSession, Key: "missing", Session: "s1"},
			{Verb: VerbSet, Key: "rolled-back"},
		}, []TxnError{
			{OpIndex: 0, What: `failed to lock key "held", lock is already held`},
			{OpIndex: 1, What: `invalid session "nope"`},
			{OpIndex: 2, What: `failed to unlock key "held", lock isn't held, or is held by another session`},
			{OpIndex: 3, What: `failed to unlock key "missing", lock isn't held, or is held by another session`},
			{OpIndex: 4, What: `failed session check for key "held", current session "s1" != "s2"`},
			{OpIndex: 6, What: `failed to check session, key "missing" doesn't exist`},
		}, nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.List("")
			res, ok := applyAt(t, f, uint64(10+i), Command{Op: OpTxn, Ops: tc.ops}).(*Result)
			if !ok {
				t.Fatalf("txn response is not a *Result")
			}
			if diff := cmp.Diff(res.Errors, tc.errs); diff != "" {
				t.Errorf("txn errors mismatch (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(res.Results, tc.result, equateEmpty); diff != "" {
				t.Errorf("txn results mismatch (-got +want):\n%s", diff)
			}
			if tc.errs != nil {
				if diff := cmp.Diff(f.List(""), before, equateEmpty); diff != "" {
					t.Errorf("a rolled back txn changed the store (-got +want):\n%s", diff)
				}
			}
		})
	}
	// check-session is a read: View.ReadTxn answers it; lock is a write.
	res, err := f.View().ReadTxn([]TxnOp{{Verb: VerbCheckSession, Key: "held", Session: "s1"}})
	if err != nil || !res.OK {
		t.Errorf("ReadTxn(check-session) = %+v, %v; want OK", res, err)
	}
	if _, err := f.View().ReadTxn([]TxnOp{{Verb: VerbLock, Key: "held", Session: "s1"}}); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("ReadTxn(lock) = %v, want ErrInvalidCommand", err)
	}
}

func TestSessionValidate(t *testing.T) {
	ok := DefaultSession("id-1", "node-1")
	with := func(fn func(*Session)) Command {
		s := ok
		fn(&s)
		return createCmd(s)
	}
	cases := []struct {
		name string
		cmd  Command
		want string // "" is valid; else the exact message
	}{
		{"defaults", createCmd(ok), ""},
		{"empty behavior is release", with(func(s *Session) { s.Behavior = "" }), ""},
		{"delete", with(func(s *Session) { s.Behavior = SessionDelete }), ""},
		{"TTL at the minimum", with(func(s *Session) { s.TTL = 10 * time.Second }), ""},
		{"TTL at the maximum", with(func(s *Session) { s.TTL = 24 * time.Hour }), ""},
		{"no checks", with(func(s *Session) { s.NodeChecks = nil }), ""},
		{"missing ID", with(func(s *Session) { s.ID = "" }), "Must provide ID"},
		{"missing node", with(func(s *Session) { s.Node = "" }), "Must provide Node"},
		{"bad behavior", with(func(s *Session) { s.Behavior = "keep" }), "Invalid Behavior setting 'keep'"},
		{"TTL too short", with(func(s *Session) { s.TTL = 5 * time.Second }),
			"Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"},
		{"TTL too long", with(func(s *Session) { s.TTL = 25 * time.Hour }),
			"Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]"},
		{"negative lock delay", with(func(s *Session) { s.LockDelay = -time.Second }),
			"Invalid LockDelay '-1s', must not be negative"},
		{"unknown check", with(func(s *Session) { s.NodeChecks = []string{"mem"} }), "Missing check 'mem' registration"},
		{"destroy without ID", destroyCmd(""), "Must provide ID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cmd.Validate(0)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tc.want == "":
			case err == nil || err.Error() != tc.want:
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			case !errors.Is(err, ErrInvalidSession) || !errors.Is(err, ErrInvalidCommand):
				t.Errorf("Validate = %v, want it to match ErrInvalidSession and ErrInvalidCommand", err)
			}
		})
	}
	for _, c := range []Command{
		lockCmd("k", "v", ""), unlockCmd("k", "v", ""),
		{Op: OpTxn, Ops: []TxnOp{{Verb: VerbLock, Key: "k"}}},
	} {
		if err := c.Validate(0); !errors.Is(err, ErrInvalidCommand) || !strings.Contains(err.Error(), "missing session") {
			t.Errorf("Validate(%s without a session) = %v, want ErrInvalidCommand: missing session", c.Op, err)
		}
	}
	if err := lockCmd("/k", "v", "s").Validate(0); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Validate(lock /k) = %v, want ErrInvalidKey", err)
	}
	if err := lockCmd("k", "12345", "s").Validate(4); !errors.Is(err, ErrValueTooLarge) {
		t.Errorf("Validate(lock with a large value) = %v, want ErrValueTooLarge", err)
	}

	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"", 0, ""}, {"15s", 15 * time.Second, ""}, {"0s", 0, ""},
		{"10z", 0, `Session TTL '10z' invalid: time: unknown unit "z" in duration "10z"`},
	} {
		got, err := ParseSessionTTL(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err || !errors.Is(err, ErrInvalidSession) {
				t.Errorf("ParseSessionTTL(%q) = %v, %v; want %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSessionTTL(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestLocksRandom applies random acquires, releases, writes, deletes,
// creates and destroys, and checks after each one that no key is held by
// a session that does not exist, that a key's LockIndex never goes down
// while the key lives (the fencing counter), and that it goes up exactly
// when a new holder takes the key.
func TestLocksRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	f := NewFSM()
	newFakeClock(f)
	keys := []string{"a", "b", "c", "d"}
	sessions := []string{"s0", "s1", "s2", "s3", "s4"}
	lockIndex := map[string]uint64{}
	holder := map[string]string{}
	for idx := uint64(1); idx <= 5000; idx++ {
		k, s := keys[rng.IntN(len(keys))], sessions[rng.IntN(len(sessions))]
		var c Command
		switch r := rng.IntN(10); {
		case r < 4:
			c = lockCmd(k, fmt.Sprint(idx), s)
		case r < 6:
			c = unlockCmd(k, fmt.Sprint(idx), s)
		case r == 6:
			c = setCmd(k, fmt.Sprint(idx))
		case r == 7:
			c = Command{Op: OpDelete, Key: k}
		case r == 8:
			b := SessionRelease
			if rng.IntN(2) == 0 {
				b = SessionDelete
			}
			c = createCmd(Session{ID: s, Node: "n", Behavior: b, LockDelay: time.Second})
		default:
			c = destroyCmd(s)
		}
		resp := applyAt(t, f, idx, c)
		if err, ok := resp.(error); ok && !errors.Is(err, ErrUnknownSession) {
			t.Fatalf("index %d: Apply(%s %q %s) = %v", idx, c.Op, c.Key, c.Session.ID, err)
		}
		v := f.View()
		for _, k := range keys {
			e, ok := v.Get(k)
			if !ok {
				delete(lockIndex, k)
				delete(holder, k)
				continue
			}
			if e.Session != "" {
				if _, ok := v.SessionGet(e.Session); !ok {
					t.Fatalf("index %d (%s): key %q held by session %q, which does not exist", idx, c.Op, k, e.Session)
				}
			}
			prev, seen := lockIndex[k]
			switch {
			case e.LockIndex < prev:
				t.Fatalf("index %d (%s): LockIndex of %q went from %d to %d", idx, c.Op, k, prev, e.LockIndex)
			case e.Session != "" && e.Session != holder[k] && seen && e.LockIndex != prev+1:
				t.Fatalf("index %d (%s): new holder %q of %q has LockIndex %d, want %d", idx, c.Op, e.Session, k, e.LockIndex, prev+1)
			case e.Session == holder[k] && e.LockIndex != prev && seen:
				t.Fatalf("index %d (%s): LockIndex of %q moved from %d to %d without a new holder", idx, c.Op, k, prev, e.LockIndex)
			}
			lockIndex[k], holder[k] = e.LockIndex, e.Session
		}
	}
}

// TestLockDelaySweep checks that expired delays do not pile up: the map
// holds about twice the keys still delayed at most.
func TestLockDelaySweep(t *testing.T) {
	d := newLockDelay()
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	d.setClock(clock.now)
	for round := range 50 {
		var batch []keyDelay
		for i := range 100 {
			batch = append(batch, keyDelay{fmt.Sprintf("r%d/k%d", round, i), time.Second})
		}
		d.set(batch)
		clock.advance(2 * time.Second)
	}
	d.set([]keyDelay{{"last", time.Second}})
	if got := len(d.m); got > 2*100+64 {
		t.Errorf("after 5000 expired delays the map holds %d keys, want at most %d", got, 2*100+64)
	}
	if _, ok := d.until("last"); !ok {
		t.Error("the live delay was swept")
	}
	if _, ok := d.until("r49/k0"); ok {
		t.Error("an expired delay still runs")
	}
}
