#!/usr/bin/env bash
# The scoreboard: the same workloads on Curtain and on its Python peers (Ray, Dask, Lithops, and the
# standard library's multiprocessing as a floor), interleaved, on this machine; then Curtain's own
# targets from `curtain-bench all --json`. Prints one Markdown block and writes it into BENCHMARKS.md
# between <!-- peers:begin --> and <!-- peers:end --> (a section is appended if the markers are absent).
#
#   Scripts/bench-peers.sh                  full run: install, build if stale, 3 rounds, `all`; writes BENCHMARKS.md
#   Scripts/bench-peers.sh --quick          smoke run: tiny sizes, 1 round, no `all`; BENCHMARKS.md untouched
#   options: --write (also with --quick)  --no-write  --rounds N  --budget MINUTES (19)  --no-build
#            --all / --no-all  --all-from FILE (reuse a `curtain-bench all --json` output)
#            --systems curtain,ray,dask,lithops,multiprocessing
#
# Workloads (Scripts/peers/common.py has the details): no-op tasks/s on 2 workers; cold start to the first
# result; Monte Carlo π as local_s / distributed_s against each language's own local run; increments
# under a lock by 2 workers; 1:1 actor calls. Each round runs every system once (the first system
# rotates); cells are medians over the rounds.
#
# Installs what it needs: redis-server and redis-tools (apt-get) if missing, and a venv .venv-peers (git
# ignores .venv*/) with pinned ray, dask[distributed], lithops and redis. Every step is time-boxed and
# the whole run keeps within --budget minutes (20 minutes on this 2-core machine is the bound); a peer
# that fails or times out shows "failed: reason" in its cells. Every process started (peers' daemons
# included: they carry CURTAIN_PEERS_RUN=<id> in their environment) is stopped on exit, Ctrl-C included.
# The raw results of the last run are kept in .venv-peers/last-run/.
set -uo pipefail
SELF=$(realpath "$0")
cd "$(dirname "$0")/.." || exit
ROOT=$(pwd)

PINS=("ray==2.60.0" "dask[distributed]==2026.8.0" "distributed==2026.8.0" "lithops==3.8.0" "redis==8.1.0")
ALL_SYSTEMS="curtain,ray,dask,lithops,multiprocessing"

QUICK=0 WRITE="" ROUNDS="" BUDGET_MIN=19 BUILD=1 RUN_ALL="" ALL_FROM="" SYSTEMS=$ALL_SYSTEMS
while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    --write) WRITE=1 ;;
    --no-write) WRITE=0 ;;
    --rounds) ROUNDS=$2; shift ;;
    --budget) BUDGET_MIN=$2; shift ;;
    --no-build) BUILD=0 ;;
    --all) RUN_ALL=1 ;;
    --no-all) RUN_ALL=0 ;;
    --all-from) ALL_FROM=$(realpath "$2"); RUN_ALL=0; shift ;;
    --systems) SYSTEMS=$2; shift ;;
    -h | --help) sed -n '2,23p' "$SELF" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-peers.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((QUICK)); then
    : "${ROUNDS:=1}" "${WRITE:=0}" "${RUN_ALL:=0}"
else
    : "${ROUNDS:=3}" "${WRITE:=1}" "${RUN_ALL:=1}"
fi
has() { [[ ",$SYSTEMS," == *",$1,"* ]]; }

START=$(date +%s)
DEADLINE=$((START + BUDGET_MIN * 60))
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
RUN_ID="bp-$$-$START"
RUN_DIR=$(mktemp -d /tmp/cp.XXXXXX) # short: Ray's Unix socket paths live under it
RES=$RUN_DIR/results
mkdir -p "$RES" "$RUN_DIR/w"
CB=$ROOT/.build/release/curtain-bench
VENV=$ROOT/.venv-peers
PY=$VENV/bin/python
SYSPY=$(command -v python3.11 || command -v python3)
REDIS_PID=""
STEP_PID=""
RESERVE=0 # seconds kept back from the steps for what comes after them

log() { printf '==> %s\n' "$*" >&2; }
sweep() { "$SYSPY" "$ROOT/Scripts/peers/sweep.py" "$1" 2>&1 | sed 's/^/    /' >&2; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$STEP_PID" ]; then # interrupted during a step: timeout passes the TERM on to the step
        kill -TERM "$STEP_PID" 2>/dev/null
        wait "$STEP_PID" 2>/dev/null
    fi
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null
        wait "$REDIS_PID" 2>/dev/null
    fi
    sweep "CURTAIN_PEERS_RUN=$RUN_ID"
    if [ -d "$VENV" ] && [ -d "$RES" ]; then
        rm -rf "$VENV/last-run" && cp -r "$RES" "$VENV/last-run" 2>/dev/null
    fi
    rm -rf "$RUN_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s; }
# skip STEP REASON: a step that is not run; its cells say why.
skip() { echo "skipped $2" >"$RES/$1.status"; log "$1: skipped ($2)"; }

# run_step STEP CAP_SECONDS COMMAND...: runs COMMAND time-boxed (CAP, or what is left of the budget less
# RESERVE), standard output to STEP.jsonl, standard error to STEP.err, outcome to STEP.status; then stops
# whatever it left running.
run_step() {
    local step=$1 cap=$2
    shift 2
    local left=$((DEADLINE - $(now) - RESERVE)) t=$cap
    ((left < t)) && t=$left
    if ((t < 15)); then
        skip "$step" "out of the time budget"
        return
    fi
    log "$step (at most ${t} s)"
    if [[ $step == r1-* || $step == all ]]; then
        echo "${*//$RUN_DIR/\$WORKDIR}" | sed "s|$ROOT/||g" >>"$RUN_DIR/commands.txt"
    fi
    local t0 rc
    t0=$(date +%s%N)
    # In the background, waited for: a signal to this script is then handled at once (see cleanup).
    env CURTAIN_PEERS_RUN="$RUN_ID" CURTAIN_PEERS_STEP="$RUN_ID-$step" \
        timeout -k 10 "$t" "$@" >"$RES/$step.jsonl" 2>"$RES/$step.err" </dev/null &
    STEP_PID=$!
    wait "$STEP_PID"
    rc=$?
    STEP_PID=""
    local dt
    dt=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    case $rc in
    0) echo "ok $dt" >"$RES/$step.status" ;;
    124 | 137) echo "timeout $t" >"$RES/$step.status"; log "$step: timed out after $t s" ;;
    *) echo "exit:$rc $dt" >"$RES/$step.status"; log "$step: exit status $rc (last: $(grep -v '^\s*$' "$RES/$step.err" | tail -1 | cut -c1-150))" ;;
    esac
    sweep "CURTAIN_PEERS_STEP=$RUN_ID-$step"
}

# ---- Install ------------------------------------------------------------------------------------------
INSTALL_T0=$(now)
need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v redis-benchmark >/dev/null 2>&1 || need_apt+=(redis-tools)
"$SYSPY" -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if ((${#need_apt[@]})); then
    log "installing ${need_apt[*]} (apt-get)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
    ($SUDO service redis-server stop || true) >/dev/null 2>&1 # the package starts one on 6379; we use our own
fi

pins_ok() {
    [ -x "$PY" ] && "$PY" - "${PINS[@]}" <<'EOF' >/dev/null 2>&1
import importlib.metadata as m, re, sys
for pin in sys.argv[1:]:
    name, version = re.sub(r"\[.*\]", "", pin).split("==")
    if m.version(name) != version:
        sys.exit(1)
EOF
}
PEERS_OK=1
PEERS_WHY=""
if has ray || has dask || has lithops || has multiprocessing; then
    if pins_ok; then
        log "venv .venv-peers has the pinned versions"
    else
        log "installing ${PINS[*]} into .venv-peers"
        rm -rf "$VENV"
        if ! { "$SYSPY" -m venv "$VENV" &&
            timeout 600 "$PY" -m pip install -q --disable-pip-version-check "${PINS[@]}"; } >"$RUN_DIR/pip.log" 2>&1; then
            PEERS_OK=0
            PEERS_WHY="install failed: $(grep -v '^\s*$' "$RUN_DIR/pip.log" | tail -1 | cut -c1-120)"
            log "$PEERS_WHY"
        fi
    fi
    # (TMPDIR: importing lithops makes its directories under $TMPDIR/lithops-$USER)
    if ((PEERS_OK)) && ! TMPDIR="$RUN_DIR/w" "$PY" -c 'import ray, dask, distributed, lithops, redis' >"$RUN_DIR/import.log" 2>&1; then
        PEERS_OK=0
        PEERS_WHY="import failed: $(tail -1 "$RUN_DIR/import.log" | cut -c1-120)"
        log "$PEERS_WHY"
    fi
fi
INSTALL_S=$(($(now) - INSTALL_T0))

# ---- Build ----------------------------------------------------------------------------------------------
stale() { [ ! -x "$1" ] || [ -n "$(find Sources Package.swift -newer "$1" -print -quit 2>/dev/null)" ]; }
CURTAIN_WHY=""
if has curtain || ((RUN_ALL)); then
    products=(curtain-bench)
    ((RUN_ALL)) && products+=(curtain-demo) # `all` runs the sgd and wordcount experiments from curtain-demo
    for product in "${products[@]}"; do
        if ((BUILD)) && stale "$ROOT/.build/release/$product"; then
            log "building $product (release)"
            left=$((DEADLINE - $(now) - 240))
            if ((left < 60)) || ! timeout "$left" swift build -c release --product "$product" >"$RUN_DIR/build-$product.log" 2>&1; then
                log "build of $product failed: $(tail -1 "$RUN_DIR/build-$product.log" 2>/dev/null)"
            fi
        elif stale "$ROOT/.build/release/$product"; then
            log "warning: $product is missing or older than Sources/ (--no-build)"
        fi
    done
    [ -x "$CB" ] || CURTAIN_WHY="curtain-bench not built"
fi

# ---- redis-server for lithops.multiprocessing -------------------------------------------------------
REDIS_PORT=""
if has lithops && ((PEERS_OK)); then
    REDIS_PORT=$("$SYSPY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    env CURTAIN_PEERS_RUN="$RUN_ID" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$RUN_DIR" >"$RUN_DIR/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 50); do
        [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
        sleep 0.1
    done
    log "redis-server for Lithops on 127.0.0.1:$REDIS_PORT"
fi

# ---- Rounds -------------------------------------------------------------------------------------------------
if ((QUICK)); then
    Q=(--quick)
    C_TASKS=(--tasks 2000) C_PI=(--tasks 8 --samples 1000000) C_MEM=(--adds 500 --increments 100 --elements 100000)
    C_ACT=(--calls 200 --pipelined 2000)
    CAP_PEER=120 CAP_CURTAIN=60 ALL_RESERVE=0
else
    Q=()
    C_TASKS=() C_PI=() C_MEM=(--elements 1000000) C_ACT=(--calls 5000 --pipelined 50000)
    CAP_PEER=180 CAP_CURTAIN=150 ALL_RESERVE=540
fi
((RUN_ALL)) && RESERVE=$ALL_RESERVE || RESERVE=20

run_system() {
    local r=$1 system=$2
    case $system in
    curtain)
        if [ -n "$CURTAIN_WHY" ]; then
            for sub in tasks coldstart pi memory-ops actors; do skip "r$r-curtain-$sub" "$CURTAIN_WHY"; done
            return
        fi
        run_step "r$r-curtain-tasks" "$CAP_CURTAIN" "$CB" tasks --workers 2 "${C_TASKS[@]}" --json
        run_step "r$r-curtain-coldstart" "$CAP_CURTAIN" "$CB" coldstart --workers 2 --repeats 1 --json
        run_step "r$r-curtain-pi" "$CAP_CURTAIN" "$CB" pi --workers 2 --repeats 1 "${C_PI[@]}" --json
        run_step "r$r-curtain-memory-ops" "$CAP_CURTAIN" "$CB" memory-ops --stores embedded "${C_MEM[@]}" --json
        run_step "r$r-curtain-actors" "$CAP_CURTAIN" "$CB" actors --stores embedded "${C_ACT[@]}" --json
        ;;
    *)
        if ((!PEERS_OK)); then
            skip "r$r-$system" "$PEERS_WHY"
            return
        fi
        local file=$system extra=()
        [ "$system" = multiprocessing ] && file=mp
        [ "$system" = lithops ] && extra=(--redis-port "$REDIS_PORT")
        mkdir -p "$RUN_DIR/w/$system"
        run_step "r$r-$system" "$CAP_PEER" "$PY" "$ROOT/Scripts/peers/${file}_bench.py" "${Q[@]}" "${extra[@]}" \
            --workdir "$RUN_DIR/w/$system"
        ;;
    esac
}

IFS=, read -r -a ORDER <<<"$SYSTEMS"
ROUND_S=0
DONE=0
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r > 1 && $(now) + ROUND_S > DEADLINE - RESERVE)); then
        log "round $r and later: not started (a round takes about $ROUND_S s; the time budget is spent)"
        break
    fi
    log "round $r of $ROUNDS"
    t0=$(now)
    n=${#ORDER[@]}
    for ((i = 0; i < n; i++)); do
        run_system "$r" "${ORDER[$(((i + r - 1) % n))]}"
    done
    ROUND_S=$(($(now) - t0))
    DONE=$r
done

# ---- Curtain's targets ---------------------------------------------------------------------------------
RESERVE=20
if ((RUN_ALL)); then
    if [ -n "$CURTAIN_WHY" ]; then
        skip all "$CURTAIN_WHY"
    else
        run_step all 900 "$CB" all --json
    fi
fi

# ---- Report ----------------------------------------------------------------------------------------------
{
    echo "Scripts/bench-peers.sh$( ((QUICK)) && echo " --quick")   # the whole scoreboard (options: --help)"
    echo "# one round, step by step (\$WORKDIR: a scratch directory; Lithops needs a redis-server on PORT):"
    sed "s/--redis-port $REDIS_PORT/--redis-port PORT/" "$RUN_DIR/commands.txt" 2>/dev/null | grep -v ' all --json$'
    grep ' all --json$' "$RUN_DIR/commands.txt" 2>/dev/null
} >"$RUN_DIR/rerun.txt"
REPORT_PY=$PY
[ -x "$REPORT_PY" ] || REPORT_PY=$SYSPY
args=(--results "$RES" --rounds-planned "$ROUNDS" --install-seconds "$INSTALL_S" --commands "$RUN_DIR/rerun.txt"
    --python "$REPORT_PY" --load "$LOAD" --elapsed-seconds "$(($(now) - START))")
((QUICK)) && args+=(--quick)
((WRITE)) && args+=(--write "$ROOT/BENCHMARKS.md")
[ -n "$ALL_FROM" ] && args+=(--all-from "$ALL_FROM")
log "done: $DONE round(s) in $(($(now) - START)) s"
echo
"$REPORT_PY" "$ROOT/Scripts/peers/scoreboard.py" "${args[@]}"
