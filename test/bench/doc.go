// Package bench measures what an operator of a small Conclave cluster
// notices: how long servers take to form a cluster, how long a cluster is
// without a leader after the leader dies, how much memory an idle server
// holds, whether a busy machine costs the cluster its leader, and how fast
// the key/value store writes and reads over HTTP (BenchmarkKV…).
//
// Every benchmark starts real conclave processes on loopback, in the
// default configuration apart from what the e2e harness always sets (fresh
// ports, log_level = "debug", retry_interval = "200ms"), and reports its
// numbers through b.ReportMetric. Each one does a fixed number of runs per
// invocation, whatever b.N is, so run them with -benchtime 1x as
// `make bench` does. The results are recorded in BENCHMARKS.md at the top
// of the repository.
//
// Pass -logdir DIR (after the package path) to keep every node's data dir,
// configuration and log under DIR instead of a temp dir that is removed,
// for reading where the time went. -conclave-bin PATH runs a binary built
// elsewhere (an older commit, say) instead of building this tree, so two
// versions can be compared in alternating runs. -kv-profile DIR sets
// enable_debug on the KV write benchmarks' servers and saves pprof CPU
// profiles of the leader and a follower during the timed load, and their
// allocation profiles before and after it, under DIR. -logstore wal|boltdb
// picks the servers' raft_logstore backend (through test/e2e), and each
// benchmark logs the store its servers use.
//
// Two benchmarks run only when asked, as they take long: BenchmarkSideBySide
// (-etcd, `make bench-etcd`) measures Conclave and a 3-member etcd cluster
// from Debian's etcd-server package in interleaved rounds (-rounds) with the
// same write workload, etcd through its gRPC client (the module etcdload,
// kept apart for its dependencies) and its HTTP gateway, and probes the
// floor: fdatasync and a loopback round trip. BenchmarkStabilityCurve
// (-curve, `make bench-stability`) counts leader changes and times failover
// for each oversubscription level (-levels) and raft_multiplier
// (-multipliers). Every process they start, etcd members and load
// neighbours included, is in a process group of its own, bounded in time,
// and killed when the benchmark ends, passing or not.
package bench
