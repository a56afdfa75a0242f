#!/usr/bin/env bash
# Cluster mode's benchmark across "hosts": redis-server in one network namespace, one worker in each of two
# others, the driver (curtain-bench) in the root namespace (Scripts/cluster-net.sh). Prints the no-op
# throughput through Redis and the time from submit to the first result of an already running worker on
# another namespace; `--json` for JSON lines. The kill -9 figure needs local workers: run
# `.build/release/curtain-bench cluster --only kill` for it. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) -eq 0 ]] || { echo "cluster-bench.sh: needs root (network namespaces)" >&2; exit 1; }
BENCH=.build/release/curtain-bench
if [[ ! -x $BENCH ]]; then
    echo "==> building curtain-bench (release)" >&2
    swift build -c release --product curtain-bench >&2
fi
BENCH=$(pwd)/$BENCH
JSON=()
[[ ${1:-} == --json ]] && JSON=(--json)

# shellcheck source=Scripts/cluster-net.sh
source Scripts/cluster-net.sh
LOGS=$(mktemp -d)
WORKERS=()
cleanup() {
    for pid in "${WORKERS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    cluster_net_down
    rm -rf "$LOGS"
}
trap cleanup EXIT

cluster_net_up >&2
start_redis >&2
STORE=redis://10.77.0.10:6390
for host in h1 h2; do
    in_ns_bg "$host" "$LOGS/worker-$host.log" env CURTAIN_ROLE=worker CURTAIN_STORE=$STORE CURTAIN_WORKER_ID="bench-$host" \
        "$BENCH" cluster
    WORKERS+=("$CTN_LAST_PID")
done
# Both workers beating before the driver starts.
for _ in $(seq 100); do
    [[ $(ctn_redis_cli KEYS 'curtain:{*}:worker:bench-*' | grep -c bench-) -ge 2 ]] && break
    sleep 0.1
done
"$BENCH" cluster --store "$STORE" --workers 0 --only throughput,latency "${JSON[@]}"
