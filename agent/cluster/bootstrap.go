package cluster

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/conclavehq/conclave/gossip"
)

// How a cluster is born
//
// Only a server whose Raft state is empty and whose bootstrap_expect is set
// may bootstrap, and at most one server of a pool ever does. The rule:
//
//  1. A server counts the alive servers of its datacenter that have
//     bootstrap_expect set. Until it sees bootstrap_expect of them, it waits.
//     Any server (alive or failed, not left) that reports Raft state means a
//     cluster exists: nobody bootstraps, and the newcomer waits for that
//     cluster's leader to add it. A server that reports a different
//     bootstrap_expect, or bootstrap = true, blocks bootstrap loudly.
//  2. The server with the lowest node name among them is the only candidate.
//  3. The candidate claims: it sends a claim naming itself and the exact set
//     of servers it counts directly to each of them, over their server port. Each answers yes only if it
//     has no Raft state, has the same bootstrap_expect, counts exactly the
//     same set of servers, and has not promised itself to another candidate
//     within the promise lease. A yes is a promise: for claimLease it answers
//     no to any other candidate and makes no claim of its own. A candidate
//     whose claim fails withdraws it (releasePath), which frees the
//     servers that said yes; it never bootstraps on a withdrawn claim.
//  4. The candidate bootstraps, with every server of the set as a voter, only
//     if every server in the set answered yes, within claimDeadline of the
//     claim's start. A missing answer is a no (fail closed): a peer that
//     cannot be asked whether it has Raft state blocks bootstrap until it
//     answers, so two new servers can never overwrite a third one's data.
//
// Why there cannot be two clusters. Suppose candidates X and Y both
// bootstrapped, with sets Sx and Sy, both at least bootstrap_expect strong.
// If Sx and Sy share a server Z, Z said yes to both. Z answers yes only when
// its own view equals the candidate's set, and the set determines the
// candidate (its lowest name), so Z's view changed between the two answers,
// and the second answer came after Z's promise to the first expired
// (claimLease after the first answer) or after the first candidate
// withdrew its claim, which it then never bootstraps on. The first candidate bootstrapped
// within claimDeadline (a quarter of claimLease) of starting its claim, so
// by then it already had Raft state and reported it in its tags, and its
// first heartbeat gave Z Raft state too; Z then answers no forever, and so
// does the first candidate, which is in the second candidate's view only if
// it is alive. The remaining window is a candidate that crashes within a
// heartbeat of bootstrapping and stays down for longer than claimLease while
// bootstrap_expect other empty servers stay up; website/bootstrap.md
// describes what happens then. If Sx and Sy share no server, the two groups
// never saw each other: they were two separate gossip pools, which no
// protocol can tell from two intended clusters; retry_join lists that name
// the same seeds prevent it.
//
// Restarted servers never bootstrap (their Raft state says so), and the
// condition is re-checked on a timer as well as on member events, so a
// missed event cannot leave a cluster leaderless (hashicorp/consul#370).

// Claims travel as direct requests to each server's port (agent/serverport), not
// as Serf queries: gossip spreads a query to random members with few
// retransmissions, and a server that misses it costs a whole claim timeout.
const (
	// ClaimPath is the server port's route that takes a Claim and answers
	// with a ClaimAnswer.
	ClaimPath = "/internal/bootstrap/claim"
	// ReleasePath withdraws a claim that failed, so the servers that said
	// yes to it are free at once instead of at the end of the lease.
	ReleasePath = "/internal/bootstrap/release"
	// claimLease is how long a yes binds the server that said it.
	claimLease = 10 * time.Second
	// claimDeadline bounds a claim from start to bootstrap, measured on the
	// candidate's monotonic clock. It is well under claimLease so every
	// promise is still held when the candidate bootstraps.
	claimDeadline = claimLease / 4
	// claimTimeout is how long the candidate waits for answers.
	claimTimeout = 2 * time.Second
	// bootstrapRecheck is the timer on which the condition is re-evaluated
	// without any member event; it also bounds how long the status and the
	// raft_state tag lag behind Raft state a leader gave this server.
	bootstrapRecheck = 250 * time.Millisecond
	// claimRetry is the base wait after a refused claim; views that
	// differed usually agree again within a gossip round or two.
	claimRetry = 150 * time.Millisecond
)

// Claim is the body of a claim and, with only Candidate and Nonce set, of a
// release.
type Claim struct {
	Candidate string
	ID        string
	// Nonce tells one claim of a candidate from the next, so a late
	// release can never cancel a newer claim's promises.
	Nonce  uint64
	Expect int
	// Servers are the names of every server in the candidate's set, sorted,
	// the candidate included.
	Servers []string
}

// ClaimAnswer is a server's reply to a claim.
type ClaimAnswer struct {
	Name   string
	ID     string
	Yes    bool
	Reason string
}

// promise records a yes given to a candidate's claim.
type promise struct {
	candidate string
	nonce     uint64
	until     time.Time
}

// view is what one server knows when it evaluates bootstrap.
type view struct {
	self     gossip.ServerInfo
	expect   int
	hasState bool
	// servers are all server members this node knows in its datacenter, in
	// any status, itself included.
	servers []gossip.ServerInfo
}

// decision is the outcome of evaluating a view.
type decision struct {
	// claim is true when this server should claim with set.
	claim bool
	// set is the bootstrap set: the alive servers that count, sorted by name.
	set []gossip.ServerInfo
	// clusterExists is set when some server reports Raft state.
	clusterExists bool
	// conflicts names servers whose bootstrap settings disagree with ours.
	conflicts []string
	// reason says in one line why the server waits.
	reason string
}

// evaluate applies rules 1 and 2 to a view. It is pure, for testing.
func evaluate(v view) decision {
	var d decision
	for _, s := range v.servers {
		if s.Status != gossip.StatusAlive {
			continue
		}
		switch {
		case s.Bootstrap && s.Name != v.self.Name:
			d.conflicts = append(d.conflicts, fmt.Sprintf("%s (bootstrap = true)", s.Name))
		case s.Expect != 0 && s.Expect != v.expect:
			d.conflicts = append(d.conflicts, fmt.Sprintf("%s (bootstrap_expect = %d)", s.Name, s.Expect))
		case s.Expect == v.expect:
			d.set = append(d.set, s)
		}
	}
	sort.Slice(d.set, func(i, j int) bool { return d.set[i].Name < d.set[j].Name })
	for _, s := range v.servers {
		if s.Name != v.self.Name && s.HasState && s.Status != gossip.StatusLeft {
			d.clusterExists = true
			d.conflicts = nil
			d.reason = fmt.Sprintf("a cluster exists (server %s has raft state); waiting for its leader to add this server", s.Name)
			return d
		}
	}
	if len(d.conflicts) > 0 {
		d.reason = fmt.Sprintf("bootstrap blocked: servers disagree with bootstrap_expect = %d: %s", v.expect, strings.Join(d.conflicts, ", "))
		return d
	}
	if len(d.set) < v.expect {
		d.reason = fmt.Sprintf("waiting for %d servers, %d seen", v.expect, len(d.set))
		return d
	}
	if d.set[0].Name != v.self.Name {
		d.reason = fmt.Sprintf("%d servers seen; %s has the lowest name and bootstraps the cluster", len(d.set), d.set[0].Name)
		return d
	}
	d.claim = true
	return d
}

// judge applies rule 3: the answer of a server with view v (and its current
// promise p) to claim c at time now. It is pure, for testing.
func judge(v view, p promise, c Claim, now time.Time) ClaimAnswer {
	a := ClaimAnswer{Name: v.self.Name, ID: v.self.ID}
	d := evaluate(v)
	var mine []string
	for _, s := range d.set {
		mine = append(mine, s.Name)
	}
	switch {
	case v.hasState:
		a.Reason = "has raft state"
	case c.Expect != v.expect:
		a.Reason = fmt.Sprintf("bootstrap_expect is %d, not %d", v.expect, c.Expect)
	case d.clusterExists || len(d.conflicts) > 0:
		a.Reason = d.reason
	case !slices.Equal(mine, c.Servers):
		a.Reason = fmt.Sprintf("sees servers [%s], not [%s]", strings.Join(mine, " "), strings.Join(c.Servers, " "))
	case p.candidate != "" && p.candidate != c.Candidate && now.Before(p.until):
		a.Reason = fmt.Sprintf("promised to %s for %s more", p.candidate, p.until.Sub(now).Round(time.Millisecond))
	default:
		a.Yes = true
	}
	return a
}
