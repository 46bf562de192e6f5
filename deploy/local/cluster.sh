#!/usr/bin/env bash
# Starts three Conclave servers on loopback that form one cluster with
# bootstrap_expect = 3, prints `conclave operator raft list-peers`, and
# stops them all on Ctrl-C (or when any of them exits).
#
#   server   HTTP API         gossip            raft
#   c1       127.0.0.1:8500   127.0.0.1:8301    127.0.0.1:8300
#   c2       127.0.0.1:8510   127.0.0.1:8311    127.0.0.1:8310
#   c3       127.0.0.1:8520   127.0.0.1:8321    127.0.0.1:8320
#
# Data and logs live in $CONCLAVE_CLUSTER_DIR (default: a new temp dir).
set -euo pipefail

bin=${CONCLAVE_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/bin/conclave}
dir=${CONCLAVE_CLUSTER_DIR:-$(mktemp -d -t conclave-cluster.XXXXXX)}
pids=()

stop() {
  trap - INT TERM EXIT
  echo
  echo "==> Stopping the cluster"
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "==> Data and logs kept in $dir"
}
trap stop INT TERM EXIT

for i in 1 2 3; do
  off=$(( (i - 1) * 10 ))
  mkdir -p "$dir/c$i"
  cat >"$dir/c$i.hcl" <<HCL
node_name        = "c$i"
data_dir         = "$dir/c$i"
server           = true
bootstrap_expect = 3
bind_addr        = "127.0.0.1"
client_addr      = "127.0.0.1"
ports {
  http     = $((8500 + off))
  serf_lan = $((8301 + off))
  server   = $((8300 + off))
}
retry_join     = ["127.0.0.1:8301", "127.0.0.1:8311", "127.0.0.1:8321"]
retry_interval = "1s"
HCL
  "$bin" agent -config-file "$dir/c$i.hcl" >"$dir/c$i.log" 2>&1 &
  pids+=($!)
done
echo "==> Started c1, c2, c3 (logs in $dir/c*.log)"

for _ in $(seq 1 100); do
  if out=$("$bin" operator raft list-peers -http-addr 127.0.0.1:8500 2>/dev/null) &&
     [[ $(grep -c true <<<"$out") -eq 3 ]] && grep -q leader <<<"$out"; then
    echo "$out"
    echo
    echo "==> Cluster formed. Try: $bin members   (Ctrl-C stops the cluster)"
    break
  fi
  sleep 0.2
done
if ! grep -q leader <<<"${out:-}"; then
  echo "==> No cluster after 20s; see $dir/c*.log" >&2
  "$bin" operator bootstrap -http-addr 127.0.0.1:8500 >&2 || true
  exit 1
fi

# Wait until Ctrl-C or until one of the servers exits.
wait -n "${pids[@]}" || true
