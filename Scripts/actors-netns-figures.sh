#!/usr/bin/env bash
# Direct actor calls between "hosts": `curtain-bench actors` with the driver in the root namespace and the
# actor's host (and the echo servers of its TCP and NIO floors) in ctn-h1, across the bridge of
# Scripts/cluster-net.sh, with redis-server in ctn-redis for discovery. Needs root. Not part of CI (a
# figure, not a check); BENCHMARKS.md records what it printed.
#
#   Scripts/actors-netns-figures.sh [curtain-bench actors options…]   (env: CURTAIN_BENCH, default the release build)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
bench=${CURTAIN_BENCH:-.build/release/curtain-bench}
[[ -x $bench ]] || { echo "no $bench: swift build -c release --product curtain-bench first" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "needs root (network namespaces)" >&2; exit 1; }

# shellcheck source=Scripts/cluster-net.sh
source Scripts/cluster-net.sh
trap cluster_net_down EXIT
cluster_net_up
start_redis
cluster_net_check
"$bench" actors --paths direct --store "$CTN_REDIS_URL" --worker-namespace ctn-h1 \
    --worker-address "${CTN_ADDR[ctn-h1]}" "$@"
