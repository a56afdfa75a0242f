#!/usr/bin/env bash
# Multi-host test of Curtain's cluster mode, with failures injected while jobs run. Needs root (network
# namespaces); takes about a minute, at most about four. Run by Scripts/test.sh after the Swift tests.
#
#   Scripts/cluster-test.sh            (env: CURTAIN_DEMO, CLUSTER_* knobs below, CLUSTER_KEEP_LOGS=1)
#
# Three "hosts" on a private bridge (Scripts/cluster-net.sh): redis-server in ctn-redis (10.77.0.10:6390),
# two workers in ctn-h1 and two in ctn-h2, the driver in the root namespace. Nothing leaves 10.77.0.0/24.
#
# 1. Scenario: the driver runs a Monte-Carlo pi job and a shared-memory job through the workers while,
#    counted from the driver's `started` line: t+2 s one h1 worker is killed with -9; t+4 s h1's link is
#    cut for 10 s; t+16 s both h2 workers get SIGTERM (each must exit 0 within 10 s) and two new h2
#    workers start; t+20 s redis-server restarts gracefully. Both jobs must still end `ok`.
# 2. Direct actor calls across hosts: the driver (root namespace) calls an actor on a worker in ctn-h2
#    (heartbeat 10 s) over a direct connection, which must be advertised on the bridge (10.77.0.x), then
#    waits on a long call while that worker is killed with -9: the call must fail as hostLost within
#    5 s, well before the heartbeat lapses. Then an actor on a worker in ctn-h1 (heartbeat 3 s) while
#    h1's link is cut: that call fails as hostLost once the heartbeat lapses.
# 3. Forgery: one forged queue entry of each kind is pushed, one at a time; a worker must log a
#    rejection, with the kind's reason, for each; none may run (curtain:test:marker stays unset) and no
#    worker may die of them.
# 4. Leased workers: the plain workers go; an http-worker in ctn-h1 and one in ctn-h2 serve leases on
#    their bridge addresses (with a lease token); a driver with CURTAIN_INVOKE (no worker running) runs
#    both jobs through leases; h1's http worker is killed with -9 mid-lease and another started there.
#    Both jobs must end `ok`: nothing the killed one held is lost.
#
# Every check prints `PASS name` or `FAIL name: why` (with the tails of the logs concerned), and the
# last line is `N passed, M failed`; the exit status is non-zero if any check failed. Everything made
# (namespaces, bridge, processes, temp dir) is removed on any exit, Ctrl-C included; with
# CLUSTER_KEEP_LOGS=1 the temp dir with the logs is kept and named.
set -Eeuo pipefail # -E: the ERR trap below reports failures inside functions too
cd "$(dirname "$0")/.."

# ---- Knobs ---------------------------------------------------------------------------------------
# Job size: the jobs must still be running at the last fault (t+20 s, checked by faults-hit-running-job);
# with 4 workers these take roughly 20-40 s. Raise them if a faster machine finishes too early.
PI_TASKS=${CLUSTER_PI_TASKS:-200}
PI_SAMPLES=${CLUSTER_SAMPLES:-2000000}
MEMORY_TASKS=${CLUSTER_MEMORY_TASKS:-300}
TASK_MS=${CLUSTER_TASK_MS:-250}
# Fault timeline, in seconds after the driver printed `started`.
T_KILL9=2          # kill -9 one h1 worker
T_CUT=4            # cut h1's link ...
CUT_SECONDS=10     # ... for this long
T_SIGTERM=16       # SIGTERM both h2 workers, start two new ones
T_REDIS_RESTART=20 # graceful redis-server restart
# Limits.
DRAIN_LIMIT=10       # a worker must exit 0 this long after SIGTERM
STARTED_TIMEOUT=60   # from the driver's start to its `started` line
DRIVER_TIMEOUT=${CLUSTER_DRIVER_TIMEOUT:-180} # from the driver's start to its exit (then it is killed)
ENTRY_TIMEOUT=10     # for each forged entry to be taken off the queue and rejected
MAX_PAYLOAD=1048576  # CURTAIN_MAX_PAYLOAD_BYTES of the workers (the oversized forgery is 2 MiB)
# CURTAIN_DRAIN_SECONDS of the workers: their own bound on finishing the running task after SIGTERM (the
# default, 25 s, is longer than DRAIN_LIMIT), so the check holds them to their contract rather than
# depending on how long the task they happen to run takes.
WORKER_DRAIN_SECONDS=${CLUSTER_WORKER_DRAIN_SECONDS:-5}
FORGED_KINDS=(unsigned badsig unknown-function wrong-build oversized garbage)
# What a worker's rejection line must say for each kind (garbage: any reason).
declare -A REJECT_REASON=([unsigned]=unsigned [badsig]=forged [unknown-function]="unknown function"
    [wrong-build]="another build" [oversized]="over the limit" [garbage]="")
KEEP_LOGS=${CLUSTER_KEEP_LOGS:-0}

# shellcheck source=Scripts/cluster-net.sh
source Scripts/cluster-net.sh

# ---- Reporting -----------------------------------------------------------------------------------
passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
# fail NAME WHY [LOG...]: the tails of the given logs follow, to see why without keeping the temp dir.
fail() {
    local name=$1 why=$2 log
    shift 2
    echo "FAIL $name: $why"
    failed=$((failed + 1))
    for log in "$@"; do
        [[ -s $log ]] || continue
        echo "---- last lines of ${log#"$TMP"/}"
        tail -n 25 "$log" | sed 's/^/    /'
    done
}
check() { # check NAME WHY-IF-NOT COMMAND... : PASS if the command succeeds
    local name=$1 why=$2
    shift 2
    if "$@"; then pass "$name"; else fail "$name" "$why"; fi
}
say() { echo "    $(date +%T.%N | cut -c1-12) $*"; }

# Milliseconds, from bash's own clock (no date(1) per tick); stripping non-digits copes with locales
# whose decimal separator is a comma.
now_ms() { local t=${EPOCHREALTIME//[!0-9]/}; echo $((t / 1000)); }
# Time since the driver's `started`, as t+S.S s.
t_since() { local ms=$(($(now_ms) - T0_MS)); printf 't+%d.%d s' $((ms / 1000)) $((ms % 1000 / 100)); }

# ---- Preparation ---------------------------------------------------------------------------------
RUN_START_MS=$(now_ms)
if [[ $(id -u) -ne 0 ]]; then
    echo "cluster-test.sh: needs root (it makes network namespaces)" >&2
    exit 1
fi
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "==> installing redis-server and redis-tools"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
    # The Debian package starts a system redis on 6379; this test runs its own.
    (service redis-server stop || true) >/dev/null 2>&1
fi
for tool in ip timeout; do
    command -v "$tool" >/dev/null || { echo "cluster-test.sh: $tool is missing" >&2; exit 1; }
done

DEFAULT_DEMO=.build/debug/curtain-demo
DEMO=${CURTAIN_DEMO:-$DEFAULT_DEMO}
if [[ ! -x $DEMO ]]; then
    if [[ $DEMO == "$DEFAULT_DEMO" ]]; then
        echo "==> building curtain-demo"
        swift build --enable-all-traits --product curtain-demo
    fi
    [[ -x $DEMO ]] || { echo "cluster-test.sh: $DEMO is not an executable" >&2; exit 1; }
fi
# Absolute, since workers start in other namespaces (same file system, but be independent of cwd).
DEMO=$(cd "$(dirname "$DEMO")" && pwd)/$(basename "$DEMO")
# The forger: the test fixture's `forge` command writes raw queue entries (what a stranger could push).
FORGE=${CURTAIN_FORGE:-$(dirname "$DEMO")/curtain-test-worker}
if [[ ! -x $FORGE ]]; then
    echo "==> building curtain-test-worker (the forger)"
    swift build --enable-all-traits --product curtain-test-worker
fi
[[ -x $FORGE ]] || { echo "cluster-test.sh: $FORGE is not an executable" >&2; exit 1; }

TMP=
# Processes we start, by id: workers (h1-w1, ...) and the driver.
declare -A WORKER_PID WORKER_NS WORKER_LOG
WORKERS=() # in start order
declare -A NEXT_WORKER=([h1]=1 [h2]=1)
DRIVER_PID=
ACTORS_PID=

finished=0
cleaned=0
cleanup() {
    ((cleaned)) && return 0
    cleaned=1
    # The driver is the only process of ours outside the namespaces; cluster_net_down ends the rest
    # (workers, redis-server and anything they left) and removes the namespaces and the bridge.
    stop_driver
    # The actor scenario's driver (a process group of its own, like the main driver).
    if [[ -n ${ACTORS_PID:-} ]]; then kill -KILL -- -"$ACTORS_PID" 2>/dev/null || true; fi
    cluster_net_down 2>/dev/null || true
    if [[ -z $TMP ]]; then
        return 0
    elif [[ $KEEP_LOGS == 1 ]]; then
        echo "    logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
# The driver runs in a process group of its own (setsid), so that stopping it also stops anything it
# started. reap_driver: once the driver has exited, ends whatever is left in its group, then collects
# its exit status (DRIVER_STATUS). Until it is reaped its pid cannot be reused, so neither can the group
# id: the group signalled is surely the driver's.
reap_driver() {
    [[ -n $DRIVER_PID ]] || return 0
    kill -KILL -- "-$DRIVER_PID" 2>/dev/null || true
    DRIVER_STATUS=0
    wait "$DRIVER_PID" 2>/dev/null || DRIVER_STATUS=$?
    DRIVER_PID=
}
# stop_driver: the same for a driver that may still run: SIGTERM, up to 3 s, then SIGKILL.
stop_driver() {
    [[ -n $DRIVER_PID ]] || return 0
    if ctn_alive "$DRIVER_PID"; then
        kill -TERM -- "-$DRIVER_PID" 2>/dev/null || true
        ctn_wait_gone "$DRIVER_PID" 30 || true
    fi
    reap_driver
}
# The end of every run: clean up, then the closing line, then the verdict as the exit status.
finish() {
    cleanup
    say "took $((($(now_ms) - RUN_START_MS) / 1000)) s"
    echo "$passed passed, $failed failed"
    finished=1
    exit $((failed > 0))
}
# Any other way out (an unexpected error under `set -e`, a signal) still cleans up, and counts as a
# failure in the closing line, so that a run cut short can never pass for a good one.
# shellcheck disable=SC2317 # reached through the trap
on_exit() {
    local status=$?
    cleanup
    if ((!finished)); then
        echo "FAIL cluster-test: stopped early (exit status $status)"
        echo "$passed passed, $((failed + 1)) failed"
    fi
}
trap on_exit EXIT
trap 'echo "cluster-test.sh: line $LINENO: unexpected failure: $BASH_COMMAND" >&2' ERR
# Turn signals into an ordinary exit, so the EXIT trap runs for them too.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

TMP=$(mktemp -d /tmp/curtain-cluster-test.XXXXXX)
CTN_STATE_DIR=$TMP/net # the library keeps redis's dir and log here; we remove TMP ourselves
DRIVER_OUT=$TMP/driver.out
DRIVER_ERR=$TMP/driver.err
REDIS_LOG=$TMP/net/redis/redis.log
SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
BUILD_ID=$("$DEMO" cluster build-id 2>"$TMP/build-id.err") || BUILD_ID=
if [[ -z $BUILD_ID || $BUILD_ID == *$'\n'* ]]; then
    fail build-id "'$DEMO cluster build-id' printed '$BUILD_ID', not one line" "$TMP/build-id.err"
    finish
fi
QUEUE="curtain:{$BUILD_ID}:queue"
MARKER=curtain:test:marker


# start_worker HOST: a new worker in ctn-HOST, its stdout and stderr in its own log.
start_worker() {
    local host=$1 id
    id=$host-w${NEXT_WORKER[$host]}
    NEXT_WORKER[$host]=$((NEXT_WORKER[$host] + 1))
    WORKER_LOG[$id]=$TMP/worker-$id.log
    in_ns_bg "$host" "${WORKER_LOG[$id]}" env CURTAIN_ROLE=worker CURTAIN_STORE="$CTN_REDIS_URL" \
        CURTAIN_SECRET="$SECRET" CURTAIN_WORKER_ID="$id" CURTAIN_MAX_PAYLOAD_BYTES="$MAX_PAYLOAD" \
        CURTAIN_DRAIN_SECONDS="$WORKER_DRAIN_SECONDS" "$DEMO" cluster worker
    WORKER_PID[$id]=$CTN_LAST_PID
    WORKER_NS[$id]=$host
    WORKERS+=("$id")
    say "started worker $id (pid ${WORKER_PID[$id]}) in ctn-$host"
}

worker_alive() { ctn_alive "${WORKER_PID[$1]}"; }

# The exit status of a worker that has exited, in WORKER_STATUS (our child: `wait` reaps it and gives
# its status; not in a $(...) subshell, which could not wait for it).
worker_status() {
    WORKER_STATUS=0
    wait "${WORKER_PID[$1]}" 2>/dev/null || WORKER_STATUS=$?
}

worker_logs() { local id; for id in "$@"; do echo "${WORKER_LOG[$id]}"; done; }

# ---- The scenario's clock ------------------------------------------------------------------------
# While the script waits for the next fault it keeps watching the workers that got SIGTERM (their exit
# time is checked against DRAIN_LIMIT) and the driver (whether the faults hit a running job).
declare -A TERM_SENT_MS TERM_GONE_MS
DRIVER_END_MS=

watch_processes() {
    local id
    for id in "${!TERM_SENT_MS[@]}"; do
        if [[ -z ${TERM_GONE_MS[$id]:-} ]] && ! worker_alive "$id"; then TERM_GONE_MS[$id]=$(now_ms); fi
    done
    if [[ -z $DRIVER_END_MS ]] && ! ctn_alive "$DRIVER_PID"; then DRIVER_END_MS=$(now_ms); fi
}

# wait_until_t S: wait until S seconds after `started`.
wait_until_t() {
    local until=$((T0_MS + $1 * 1000))
    while (($(now_ms) < until)); do
        watch_processes
        sleep 0.1
    done
    watch_processes
}

# ---- Setup -----------------------------------------------------------------------------------------
echo "==> network and redis-server (temp dir $TMP)"
if cluster_net_up; then pass net-up; else fail net-up "cluster_net_up failed (see above)"; finish; fi
if start_redis; then pass redis-start; else fail redis-start "redis-server did not start" "$REDIS_LOG"; finish; fi
for from in root h1 h2; do
    if [[ $(ctn_redis_cli "$from" PING 2>&1) == PONG ]]; then
        pass "redis-reachable-from-$from"
    else
        fail "redis-reachable-from-$from" "no PONG from $CTN_REDIS_HOST:$CTN_REDIS_PORT"
    fi
done
((failed == 0)) || finish

echo "==> scenario: pi and shared-memory jobs with faults"
for host in h1 h1 h2 h2; do start_worker "$host"; done
sleep 1
dead=()
for id in "${WORKERS[@]}"; do worker_alive "$id" || dead+=("$id"); done
if ((${#dead[@]} == 0)); then
    pass workers-start
else
    # shellcheck disable=SC2046 # one log path per word
    fail workers-start "exited right after starting: ${dead[*]}" $(worker_logs "${dead[@]}")
fi

DRIVER_START_MS=$(now_ms)
# setsid execs the command in place (a background job is no process group leader), so $! is the driver.
setsid env -u CURTAIN_ROLE CURTAIN_BACKEND="$CTN_REDIS_URL" CURTAIN_SECRET="$SECRET" \
    "$DEMO" cluster run --pi-tasks "$PI_TASKS" --samples "$PI_SAMPLES" \
    --memory-tasks "$MEMORY_TASKS" --task-ms "$TASK_MS" >"$DRIVER_OUT" 2>"$DRIVER_ERR" </dev/null &
DRIVER_PID=$!
say "driver started (pid $DRIVER_PID): $PI_TASKS pi tasks of $PI_SAMPLES samples, $MEMORY_TASKS memory tasks of $TASK_MS ms"

started=0
while (($(now_ms) - DRIVER_START_MS < STARTED_TIMEOUT * 1000)); do
    if grep -q '^started' "$DRIVER_OUT"; then started=1; break; fi
    ctn_alive "$DRIVER_PID" || break
    sleep 0.1
done
# One last look: the driver may have printed `started` just before exiting.
grep -q '^started' "$DRIVER_OUT" && started=1
T0_MS=$(now_ms)

if ((started)); then
    pass driver-started
    say "$(t_since): driver printed started, $(((T0_MS - DRIVER_START_MS) / 1000)) s after it began"

    wait_until_t "$T_KILL9"
    victim=h1-w1
    kill -KILL "${WORKER_PID[$victim]}" 2>/dev/null || true
    worker_status "$victim" # reap it now, which also keeps bash from reporting it as "Killed"
    say "$(t_since): kill -9 worker $victim"

    wait_until_t "$T_CUT"
    cut_link h1
    say "$(t_since): cut h1's link"
    # The fault must be real: from h1, redis must now be out of reach.
    if CTN_CLI_TIMEOUT=2 ctn_redis_cli h1 PING >/dev/null 2>&1; then
        fail link-cut-isolates-h1 "redis still answers PING from ctn-h1 with its link cut"
    else
        pass link-cut-isolates-h1
    fi

    wait_until_t $((T_CUT + CUT_SECONDS))
    restore_link h1
    say "$(t_since): restored h1's link"
    check link-restore-reaches-h1 "no PONG from ctn-h1 within 5 s of restoring its link" ctn_wait_ping h1 50

    wait_until_t "$T_SIGTERM"
    for id in h2-w1 h2-w2; do
        kill -TERM "${WORKER_PID[$id]}" 2>/dev/null || true
        TERM_SENT_MS[$id]=$(now_ms)
    done
    say "$(t_since): SIGTERM to workers h2-w1 and h2-w2"
    start_worker h2
    start_worker h2

    wait_until_t "$T_REDIS_RESTART"
    canary=$SECRET
    ctn_redis_cli SET curtain:test:canary "$canary" >/dev/null || true
    say "$(t_since): restarting redis-server"
    if ! restart_redis; then
        fail redis-restart "the graceful restart failed" "$REDIS_LOG"
    elif [[ $(ctn_redis_cli GET curtain:test:canary 2>&1) != "$canary" ]]; then
        fail redis-restart "a key written before SHUTDOWN SAVE was lost" "$REDIS_LOG"
    else
        pass redis-restart
        say "$(t_since): redis-server is back"
    fi
    watch_processes
    if [[ -z $DRIVER_END_MS ]]; then
        pass faults-hit-running-job
    else
        fail faults-hit-running-job "the driver had exited at t+$(((DRIVER_END_MS - T0_MS) / 1000)) s, before the last fault at t+$T_REDIS_RESTART s: raise CLUSTER_PI_TASKS, CLUSTER_MEMORY_TASKS or CLUSTER_TASK_MS"
    fi

    # Each SIGTERMed worker: gone within DRAIN_LIMIT of its signal, with status 0.
    while [[ -z ${TERM_GONE_MS[h2-w1]:-} || -z ${TERM_GONE_MS[h2-w2]:-} ]] &&
        (($(now_ms) < T0_MS + (T_SIGTERM + DRAIN_LIMIT) * 1000)); do
        watch_processes
        sleep 0.1
    done
    watch_processes
    for id in h2-w1 h2-w2; do
        if [[ -z ${TERM_GONE_MS[$id]:-} ]]; then
            fail "sigterm-drain-$id" "still running $DRAIN_LIMIT s after SIGTERM (killed now)" "${WORKER_LOG[$id]}"
            kill -KILL "${WORKER_PID[$id]}" 2>/dev/null || true
            worker_status "$id"
            continue
        fi
        worker_status "$id"
        took=$((TERM_GONE_MS[$id] - TERM_SENT_MS[$id]))
        if [[ $WORKER_STATUS == 0 ]]; then
            pass "sigterm-drain-$id"
            say "$id exited 0, $((took / 1000)).$((took % 1000 / 100)) s after SIGTERM"
        else
            fail "sigterm-drain-$id" "exited with status $WORKER_STATUS after SIGTERM" "${WORKER_LOG[$id]}"
        fi
    done
else
    if ctn_alive "$DRIVER_PID"; then
        fail driver-started "no 'started' line from the driver within $STARTED_TIMEOUT s (killed)" "$DRIVER_OUT" "$DRIVER_ERR"
        stop_driver
    else
        reap_driver
        fail driver-started "the driver exited (status $DRIVER_STATUS) without printing 'started'" "$DRIVER_OUT" "$DRIVER_ERR"
    fi
fi

# The driver: bounded wait, then its verdicts.
while [[ -n $DRIVER_PID ]] && ctn_alive "$DRIVER_PID" && (($(now_ms) - DRIVER_START_MS < DRIVER_TIMEOUT * 1000)); do
    sleep 0.2
done
if [[ -z $DRIVER_PID ]]; then
    : # already dealt with (it never printed `started`)
elif ctn_alive "$DRIVER_PID"; then
    stop_driver
    # shellcheck disable=SC2046 # one log path per word
    fail driver-finished "still running $DRIVER_TIMEOUT s after it began (killed)" "$DRIVER_OUT" "$DRIVER_ERR" "$REDIS_LOG" $(worker_logs "${WORKERS[@]}")
else
    reap_driver
    say "driver exited with status $DRIVER_STATUS after $((($(now_ms) - DRIVER_START_MS) / 1000)) s"
    pass driver-finished
    driver_logs=("$DRIVER_OUT" "$DRIVER_ERR")
    if [[ $DRIVER_STATUS == 0 ]]; then
        pass driver-exit-0
    else
        # shellcheck disable=SC2046 # one log path per word
        fail driver-exit-0 "exit status $DRIVER_STATUS" "${driver_logs[@]}" $(worker_logs "${WORKERS[@]}")
    fi
    for job in pi memory; do
        line=$(grep "^$job: " "$DRIVER_OUT" | tail -n 1 || true)
        if [[ $line == "$job: ok"* ]]; then
            pass "$job-ok"
            # The figures that show the faults were felt: tasks run again, and late second answers.
            say "$job: retried=$(sed -n 's/.*retried=\([0-9]*\).*/\1/p' <<<"$line") duplicates=$(sed -n 's/.*duplicates=\([0-9]*\).*/\1/p' <<<"$line")  ($line)"
        else
            fail "$job-ok" "${line:-no \"$job:\" line}" "${driver_logs[@]}"
        fi
    done
fi

if ((started)); then
    # The workers that lived through the faults (a cut link, a store restart) must still be running.
    dead=()
    for id in "${WORKERS[@]}"; do
        [[ $id == h1-w1 || -n ${TERM_SENT_MS[$id]:-} ]] && continue
        worker_alive "$id" || dead+=("$id")
    done
    if ((${#dead[@]} == 0)); then
        pass workers-survive-faults
    else
        # shellcheck disable=SC2046 # one log path per word
        fail workers-survive-faults "exited: ${dead[*]}" $(worker_logs "${dead[@]}")
    fi
fi

# ---- Forgery ---------------------------------------------------------------------------------------
echo "==> direct actor calls across hosts: kill -9 and a cut link mid-call"
# start_named_worker ID HOST [ENV...]: a worker with a given id in ctn-HOST.
start_named_worker() {
    local id=$1 host=$2
    shift 2
    WORKER_LOG[$id]=$TMP/worker-$id.log
    in_ns_bg "$host" "${WORKER_LOG[$id]}" env CURTAIN_ROLE=worker CURTAIN_STORE="$CTN_REDIS_URL" \
        CURTAIN_SECRET="$SECRET" CURTAIN_WORKER_ID="$id" "$@" "$DEMO" cluster worker
    WORKER_PID[$id]=$CTN_LAST_PID
    WORKER_NS[$id]=$host
    say "started worker $id (pid ${WORKER_PID[$id]}) in ctn-$host"
}
# wait_line FILE PATTERN SECONDS: until FILE has a line matching PATTERN (0) or the time is up (1).
wait_line() {
    local deadline=$(($(now_ms) + $3 * 1000))
    while (($(now_ms) < deadline)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    grep -q -- "$2" "$1" 2>/dev/null
}
start_named_worker h2-actors h2 CURTAIN_HEARTBEAT_MS=10000
start_named_worker h1-actors h1 CURTAIN_HEARTBEAT_MS=3000
ACTORS_OUT=$TMP/actors.out
ACTORS_ERR=$TMP/actors.err
setsid env -u CURTAIN_ROLE CURTAIN_BACKEND="$CTN_REDIS_URL" CURTAIN_SECRET="$SECRET" \
    "$DEMO" cluster actors --kill-worker h2-actors --cut-worker h1-actors --calls 2000 >"$ACTORS_OUT" 2>"$ACTORS_ERR" </dev/null &
ACTORS_PID=$!
actor_logs=("$ACTORS_OUT" "$ACTORS_ERR" "${WORKER_LOG[h2-actors]}" "${WORKER_LOG[h1-actors]}")
if ! wait_line "$ACTORS_OUT" '^kill-wait started' 60; then
    fail actor-calls-direct "no 'kill-wait started' line within 60 s" "${actor_logs[@]}"
else
    address=$(ctn_redis_cli GET "curtain:{$BUILD_ID}:actors:h2-actors:addr" 2>&1)
    if grep -q '^kill-calls ok host=h2-actors' "$ACTORS_OUT" && [[ $address == 10.77.0.* ]]; then
        pass actor-calls-direct
        say "h2-actors advertises $address; $(grep '^kill-calls' "$ACTORS_OUT")"
    else
        fail actor-calls-direct "calls: '$(grep '^kill-calls' "$ACTORS_OUT")', advertised address '$address'" "${actor_logs[@]}"
    fi
    sleep 0.3 # the long call is on its way (a call that never left fails as hostLost too)
    kill -KILL "${WORKER_PID[h2-actors]}" 2>/dev/null || true
    worker_status h2-actors
    say "kill -9 worker h2-actors mid-call"
    if ! wait_line "$ACTORS_OUT" '^kill-wait lost' 15; then
        fail actor-kill-noticed-at-once "no 'kill-wait lost' line within 15 s" "${actor_logs[@]}"
    else
        line=$(grep '^kill-wait lost' "$ACTORS_OUT")
        ms=$(sed -n 's/.* ms=\([0-9]*\).*/\1/p' <<<"$line")
        if [[ $line == *kind=hostLost* && $line == *"connection dropped"* && ${ms:-99999} -lt 5000 ]]; then
            pass actor-kill-noticed-at-once
            say "$line"
        else
            fail actor-kill-noticed-at-once "expected hostLost, 'connection dropped', under 5000 ms (heartbeat 10 s): $line" "${actor_logs[@]}"
        fi
    fi
    if ! wait_line "$ACTORS_OUT" '^cut-wait started' 60; then
        fail actor-cut-link "no 'cut-wait started' line within 60 s" "${actor_logs[@]}"
    else
        sleep 0.3
        cut_link h1
        say "cut h1's link mid-call"
        if wait_line "$ACTORS_OUT" '^cut-wait lost' 20; then
            line=$(grep '^cut-wait lost' "$ACTORS_OUT")
            if [[ $line == *kind=hostLost* && $line == *heartbeat* ]]; then
                pass actor-cut-link
                say "$line"
            else
                fail actor-cut-link "expected hostLost after the heartbeat lapsed: $line" "${actor_logs[@]}"
            fi
        else
            fail actor-cut-link "no 'cut-wait lost' line within 20 s of cutting the link" "${actor_logs[@]}"
        fi
        restore_link h1
        check link-restore-reaches-h1-again "no PONG from ctn-h1 within 5 s of restoring its link" ctn_wait_ping h1 50
    fi
fi
ACTORS_STATUS=0
if ! timeout 20 tail --pid="$ACTORS_PID" -f /dev/null; then
    kill -KILL "$ACTORS_PID" 2>/dev/null || true
fi
wait "$ACTORS_PID" 2>/dev/null || ACTORS_STATUS=$?
if [[ $ACTORS_STATUS == 0 ]]; then pass actor-driver-exit-0; else fail actor-driver-exit-0 "status $ACTORS_STATUS" "${actor_logs[@]}"; fi
kill -TERM "${WORKER_PID[h1-actors]}" 2>/dev/null || true

echo "==> forgery: one forged queue entry of each kind"
# The workers still running take part; a host left without one gets a fresh worker.
phase=()
for id in "${WORKERS[@]}"; do worker_alive "$id" && phase+=("$id"); done
for host in h1 h2; do
    have=0
    for id in "${phase[@]}"; do [[ ${WORKER_NS[$id]} == "$host" ]] && have=1; done
    if ((!have)); then start_worker "$host"; phase+=("${WORKERS[-1]}"); fi
done
say "workers: ${phase[*]}"

# Only what the workers log from now on counts: remember where each log stands.
declare -A LOG_MARK
mark_logs() { local id; for id in "${phase[@]}"; do LOG_MARK[$id]=$(stat -c %s "${WORKER_LOG[$id]}"); done; }
# The rejection lines logged since mark_logs.
new_rejections() {
    local id
    for id in "${phase[@]}"; do
        tail -c +$((LOG_MARK[$id] + 1)) "${WORKER_LOG[$id]}" | grep -a -i 'rejected' | sed "s/^/$id: /" || true
    done
}

ctn_redis_cli DEL "$MARKER" >/dev/null || true
forged_ok=1
for kind in "${FORGED_KINDS[@]}"; do
    if ! "$FORGE" forge --kind "$kind" --build "$BUILD_ID" --secret "$SECRET" --out "$TMP/forged-$kind.bin" >"$TMP/forge.log" 2>&1 ||
        [[ ! -s $TMP/forged-$kind.bin ]]; then
        fail "forge-$kind" "'forge --kind $kind' failed or wrote nothing" "$TMP/forge.log"
        forged_ok=0
    fi
done

if ((forged_ok)); then
    # One entry at a time, so that each rejection line can be told apart from the others.
    for kind in "${FORGED_KINDS[@]}"; do
        mark_logs
        ctn_redis_cli -x RPUSH "$QUEUE" <"$TMP/forged-$kind.bin" >/dev/null || true
        deadline=$(($(now_ms) + ENTRY_TIMEOUT * 1000))
        lines=
        while (($(now_ms) < deadline)); do
            lines=$(new_rejections)
            [[ -n $lines && $(ctn_redis_cli LLEN "$QUEUE" 2>&1) == 0 ]] && break
            sleep 0.1
        done
        reason=${REJECT_REASON[$kind]}
        # shellcheck disable=SC2046 # one log path per word
        if [[ $(ctn_redis_cli LLEN "$QUEUE" 2>&1) != 0 ]]; then
            fail "forgery-$kind" "still on the queue after $ENTRY_TIMEOUT s" $(worker_logs "${phase[@]}")
        elif [[ -z $lines ]]; then
            fail "forgery-$kind" "taken off the queue but no worker logged a rejection within $ENTRY_TIMEOUT s" $(worker_logs "${phase[@]}")
        elif [[ -n $reason ]] && ! grep -q -i -F "$reason" <<<"$lines"; then
            fail "forgery-$kind" "rejected, but not for '$reason': $lines"
        else
            pass "forgery-$kind"
            say "${lines//$'\n'/$'\n'    }"
        fi
    done
fi

# ClusterMark would have set the marker had any forged entry run; give a straggler a moment first.
sleep 1
if [[ $(ctn_redis_cli EXISTS "$MARKER" 2>&1) == 0 ]]; then
    pass forgery-nothing-ran
else
    # shellcheck disable=SC2046 # one log path per word
    fail forgery-nothing-ran "$MARKER exists: a forged entry was run" $(worker_logs "${phase[@]}")
fi
dead=()
for id in "${phase[@]}"; do worker_alive "$id" || dead+=("$id"); done
if ((${#dead[@]} == 0)); then
    pass forgery-workers-alive
else
    # shellcheck disable=SC2046 # one log path per word
    fail forgery-workers-alive "exited: ${dead[*]}" $(worker_logs "${dead[@]}")
fi

# ---- Leased workers --------------------------------------------------------------------------------
echo "==> leased workers: http-workers in ctn-h1 and ctn-h2 leased by the driver, one killed mid-lease"
# Only leased workers from here on: the plain ones go (their heartbeats lapse meanwhile).
for id in "${WORKERS[@]}"; do
    if worker_alive "$id"; then kill -KILL "${WORKER_PID[$id]}" 2>/dev/null || true; worker_status "$id"; fi
done
LEASE_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
declare -A HTTP_PID HTTP_LOG
start_http_worker() { # start_http_worker HOST ADDRESS NAME
    HTTP_LOG[$3]=$TMP/http-$3.log
    in_ns_bg "$1" "${HTTP_LOG[$3]}" env CURTAIN_ROLE=http-worker CURTAIN_STORE="$CTN_REDIS_URL" CURTAIN_SECRET="$SECRET" \
        CURTAIN_HTTP_HOST="$2" PORT=8080 CURTAIN_LEASE_TOKEN="$LEASE_TOKEN" CURTAIN_DRAIN_SECONDS="$WORKER_DRAIN_SECONDS" \
        "$DEMO" cluster worker
    HTTP_PID[$3]=$CTN_LAST_PID
    local deadline=$(($(now_ms) + 30000))
    until curl -s -m 2 "http://$2:8080/healthz" 2>/dev/null | grep -q '"leased":false'; do
        if (($(now_ms) > deadline)) || ! ctn_alive "${HTTP_PID[$3]}"; then return 1; fi
        sleep 0.05
    done
    say "http worker $3 (pid ${HTTP_PID[$3]}) serves leases on $2:8080"
}
if start_http_worker h1 "$CTN_PREFIX.11" h1-first && start_http_worker h2 "$CTN_PREFIX.12" h2-first; then
    pass leased-workers-start
    LEASED_OUT=$TMP/leased-driver.out
    LEASED_ERR=$TMP/leased-driver.err
    # No worker runs: the driver invokes leases, about one per 4 queued tasks, at most one per endpoint.
    setsid env -u CURTAIN_ROLE CURTAIN_BACKEND="$CTN_REDIS_URL" CURTAIN_SECRET="$SECRET" \
        CURTAIN_INVOKE="http://$CTN_PREFIX.11:8080/lease,http://$CTN_PREFIX.12:8080/lease" CURTAIN_INVOKE_TOKEN="$LEASE_TOKEN" \
        CURTAIN_TASKS_PER_LEASE=4 CURTAIN_MAX_LEASES=2 \
        "$DEMO" cluster run --pi-tasks 32 --samples 2000000 --memory-tasks 32 --task-ms 100 >"$LEASED_OUT" 2>"$LEASED_ERR" </dev/null &
    DRIVER_PID=$!
    # Once h1's worker is leased and has answered tasks, kill it with -9 mid-lease; start another there.
    deadline=$(($(now_ms) + 60000))
    leased=0
    until curl -s -m 2 "http://$CTN_PREFIX.11:8080/healthz" 2>/dev/null | grep -q '"leased":true'; do
        (($(now_ms) > deadline)) && break
        sleep 0.05
    done
    curl -s -m 2 "http://$CTN_PREFIX.11:8080/healthz" 2>/dev/null | grep -q '"leased":true' && leased=1
    if ((leased)); then pass leased-h1-leased; else fail leased-h1-leased "h1's http worker was not leased within 60 s" "${HTTP_LOG[h1-first]}" "$LEASED_ERR"; fi
    # Killed while its lease runs (the jobs take far longer than this second).
    sleep 1
    kill -KILL "${HTTP_PID[h1-first]}" 2>/dev/null || true
    wait "${HTTP_PID[h1-first]}" 2>/dev/null || true
    say "killed h1's http worker mid-lease"
    start_http_worker h1 "$CTN_PREFIX.11" h1-second || fail leased-restart "a second http worker did not start in ctn-h1" "${HTTP_LOG[h1-second]}"
    ctn_wait_gone "$DRIVER_PID" 1800 || true
    reap_driver
    if [[ $DRIVER_STATUS == 0 ]] && grep -q '^pi: ok' "$LEASED_OUT" && grep -q '^memory: ok' "$LEASED_OUT"; then
        pass leased-jobs-ok
    else
        fail leased-jobs-ok "the driver (status $DRIVER_STATUS) did not end both jobs ok with leased workers only" \
            "$LEASED_OUT" "$LEASED_ERR" "${HTTP_LOG[h1-first]}" "${HTTP_LOG[h2-first]}" "${HTTP_LOG[h1-second]:-/dev/null}"
    fi
    # Its lease ends once idle (half a second after the jobs): wait for it.
    deadline=$(($(now_ms) + 20000))
    until grep -q 'lease ended' "${HTTP_LOG[h2-first]}" || (($(now_ms) > deadline)); do sleep 0.1; done
    if grep -q 'lease ended' "${HTTP_LOG[h2-first]}"; then
        pass leased-leases-answered
    else
        fail leased-leases-answered "h2's http worker answered no lease" "${HTTP_LOG[h2-first]}"
    fi
else
    fail leased-workers-start "an http worker did not answer /healthz within 30 s" "${HTTP_LOG[h1-first]}" "${HTTP_LOG[h2-first]:-/dev/null}"
fi

# ---- End -------------------------------------------------------------------------------------------
# The network must have stayed closed off all along.
check net-isolated "the network leaks out of 10.77.0.0/24 or ip_forward changed (see above)" cluster_net_check
finish
