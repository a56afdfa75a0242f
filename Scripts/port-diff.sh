#!/usr/bin/env bash
# The porting suite: for each pair in Examples/Porting/<name>/ (plain/Program.swift, a single-machine
# program, and curtain/Program.swift, its Curtain version) prints the changed-line count of the port
#     diff -u plain curtain | grep -c '^[-+][^-+]'
# and whether the Curtain version prints exactly what the plain one prints on three backends: inprocess,
# processes (the default) and a redis-server (started here on a Unix socket of a private directory, with
# two workers started as CURTAIN_ROLE=worker). Ends with "N passed, N failed".
#
# A pair passes when its output is identical on all three backends. The line target (at most 5) is reported
# for every pair and summed up at the end; --strict also fails a pair over it.
#
#   Scripts/port-diff.sh [--skip-build] [--strict] [pair…]
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
strict=0
pairs=()
for argument in "$@"; do
    case "$argument" in
        --skip-build) build=0 ;;
        --strict) strict=1 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "port-diff.sh: unknown option '$argument' (known: --skip-build, --strict, --help)" >&2; exit 2 ;;
        *) pairs+=("$argument") ;;
    esac
done
if ((${#pairs[@]} == 0)); then
    for directory in Examples/Porting/*/; do pairs+=("$(basename "$directory")"); done
fi
for pair in "${pairs[@]}"; do
    [ -f "Examples/Porting/$pair/plain/Program.swift" ] && [ -f "Examples/Porting/$pair/curtain/Program.swift" ] || {
        echo "port-diff.sh: no pair '$pair' (Examples/Porting/$pair/{plain,curtain}/Program.swift)" >&2
        exit 2
    }
done
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
    echo "port-diff.sh: needs redis-server and redis-cli (Scripts/test.sh installs them)" >&2
    exit 2
}

if [ "$build" -eq 1 ]; then
    for pair in "${pairs[@]}"; do
        swift build --product "port-$pair-plain" >/dev/null
        swift build --product "port-$pair" >/dev/null
    done
fi
bin=$(swift build --show-bin-path)

work=$(mktemp -d)
socket="$work/redis.sock"
redis_pid=""
worker_pids=()
cleanup() {
    for pid in "${worker_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# No TCP port at all (--port 0): nothing to collide with on a shared machine.
redis-server --port 0 --unixsocket "$socket" --unixsocketperm 700 --save '' --appendonly no \
    --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 300); do
    redis-cli -s "$socket" ping >/dev/null 2>&1 && break
    kill -0 "$redis_pid" 2>/dev/null || { echo "port-diff.sh: redis-server did not start:"; cat "$work/redis.log"; exit 1; }
    sleep 0.1
done
redis-cli -s "$socket" ping >/dev/null || { echo "port-diff.sh: redis-server not answering on $socket"; exit 1; }
store="unix://$socket"

# Runs the Curtain version of $1 on the redis-server, with two workers of its own.
run_on_redis() {
    local executable="$bin/port-$1"
    redis-cli -s "$socket" flushall >/dev/null
    worker_pids=()
    for index in 1 2; do
        CURTAIN_ROLE=worker CURTAIN_STORE="$store" CURTAIN_WORKER_ID="port-$1-$index" \
            "$executable" >>"$work/workers.log" 2>&1 &
        worker_pids+=($!)
    done
    local status=0
    CURTAIN_BACKEND="$store" timeout 600 "$executable" 2>>"$work/driver.log" || status=$?
    for pid in "${worker_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${worker_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    worker_pids=()
    return "$status"
}

passed=0
failed=0
within=0
printf '%-12s %6s  %-10s %-10s %-10s %s\n' pair lines inprocess processes redis result
for pair in "${pairs[@]}"; do
    lines=$(diff -u "Examples/Porting/$pair/plain/Program.swift" "Examples/Porting/$pair/curtain/Program.swift" \
        | grep -c '^[-+][^-+]' || true)
    expected=$(timeout 600 "$bin/port-$pair-plain")
    verdicts=()
    ok=1
    for backend in inprocess processes redis; do
        status=0
        case "$backend" in
            inprocess) got=$(CURTAIN_BACKEND=inprocess timeout 600 "$bin/port-$pair" 2>>"$work/driver.log") || status=$? ;;
            processes) got=$(CURTAIN_BACKEND=processes timeout 600 "$bin/port-$pair" 2>>"$work/driver.log") || status=$? ;;
            redis) got=$(run_on_redis "$pair") || status=$? ;;
        esac
        if [ "$status" -eq 0 ] && [ "$got" = "$expected" ]; then
            verdicts+=(same)
        else
            verdicts+=("DIFFERENT")
            ok=0
            echo "  $pair on $backend (exit $status):" >&2
            echo "    plain:   $expected" >&2
            echo "    curtain: $got" >&2
        fi
    done
    target="≤ 5"
    if [ "$lines" -le 5 ]; then within=$((within + 1)); else target="over 5"; [ "$strict" -eq 1 ] && ok=0; fi
    if [ "$ok" -eq 1 ]; then result=passed; passed=$((passed + 1)); else result=FAILED; failed=$((failed + 1)); fi
    printf '%-12s %6s  %-10s %-10s %-10s %s (%s lines)\n' "$pair" "$lines" "${verdicts[@]}" "$result" "$target"
done
if [ "$failed" -gt 0 ]; then
    echo "driver stderr (last lines):" >&2
    tail -20 "$work/driver.log" >&2 || true
fi
echo "lines: $within of ${#pairs[@]} pairs within 5 changed lines"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
