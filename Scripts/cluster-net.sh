# shellcheck shell=bash
# A small private network of "hosts" on this machine for Curtain's multi-host test (Scripts/cluster-test.sh).
# Source it (as root), then:
#
#   cluster_net_up                 namespaces ctn-redis, ctn-h1, ctn-h2 on a bridge ctn-br0 (10.77.0.1/24)
#   start_redis                    redis-server in ctn-redis on 10.77.0.10:6390, append-only, own temp dir
#   in_ns NAME cmd...              run a command in a namespace (NAME: ctn-h1 or just h1)
#   in_ns_bg NAME LOG cmd...       the same in the background, stdout+stderr to LOG; its pid in CTN_LAST_PID
#   ctn_redis_cli [NAME] args...   redis-cli against our redis (from NAME, default the root namespace)
#   cut_link NAME / restore_link NAME   take a namespace's link off the bridge / put it back
#   restart_redis                  graceful SHUTDOWN SAVE, then the same server again on the same dir
#   cluster_net_check              the network is up and cannot reach anything outside 10.77.0.0/24
#   cluster_net_down               remove all of it; safe to call any number of times, after a partial up
#
#     hosts:   ctn-redis 10.77.0.10   ctn-h1 10.77.0.11   ctn-h2 10.77.0.12   root namespace 10.77.0.1
#
# Why namespaces: a worker on another "host" has its own network stack, so cutting its link really
# stalls its TCP connections (as a cable pull or a partition would), which loopback cannot do.
# Safety: the namespaces get no default route and the root namespace's ip_forward is never changed, so
# nothing sent inside this network can leave 10.77.0.0/24; cluster_net_check verifies both.
#
# The functions return non-zero on failure (they do not rely on the caller's `set -e`, which bash
# ignores inside a function called from `if` or `||`). Run cluster_net_down from a `trap ... EXIT`.

CTN_PREFIX=10.77.0
CTN_BRIDGE=ctn-br0
CTN_BRIDGE_ADDR=$CTN_PREFIX.1
CTN_NAMESPACES=(ctn-redis ctn-h1 ctn-h2)
declare -A CTN_ADDR=([ctn-redis]=$CTN_PREFIX.10 [ctn-h1]=$CTN_PREFIX.11 [ctn-h2]=$CTN_PREFIX.12)
CTN_REDIS_NS=ctn-redis
CTN_REDIS_HOST=$CTN_PREFIX.10
CTN_REDIS_PORT=6390
# shellcheck disable=SC2034 # for the scripts that source this file
CTN_REDIS_URL=redis://$CTN_REDIS_HOST:$CTN_REDIS_PORT

# State of this shell's network: the dir redis lives in (a temp dir made by start_redis and removed by
# cluster_net_down, unless the caller set CTN_STATE_DIR to a dir of its own, which it then removes) and
# the root namespace's ip_forward as found before we touched anything (cluster_net_check compares).
CTN_STATE_DIR=${CTN_STATE_DIR:-}
CTN_STATE_DIR_OURS=
CTN_IP_FORWARD_BEFORE=${CTN_IP_FORWARD_BEFORE:-}
CTN_LAST_PID=

ctn_log() { echo "cluster-net: $*" >&2; }

# NAME may be given as h1 or ctn-h1.
ctn_ns_name() {
    local name=$1
    [[ $name == ctn-* ]] || name=ctn-$name
    if [[ -z ${CTN_ADDR[$name]:-} ]]; then
        ctn_log "unknown namespace '$1' (one of: ${CTN_NAMESPACES[*]})"
        return 1
    fi
    echo "$name"
}

# The root-side end of a namespace's veth pair (interface names are limited to 15 characters).
ctn_root_veth() { echo "ctnv-${1#ctn-}"; }

in_ns() {
    local ns
    ns=$(ctn_ns_name "$1") || return 1
    shift
    ip netns exec "$ns" "$@"
}

# `ip netns exec` execs its command without forking, so $! is the pid of the command itself (not of
# a wrapper): the caller can signal, kill -9 and `wait` for that very process.
in_ns_bg() {
    local ns log=$2
    ns=$(ctn_ns_name "$1") || return 1
    shift 2
    ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
    # shellcheck disable=SC2034 # read by the caller
    CTN_LAST_PID=$!
}

ctn_have_ns() { [[ -e /run/netns/$1 ]]; }
ctn_have_link() { ip link show "$1" >/dev/null 2>&1; }

cluster_net_up() {
    local ns addr veth
    # Leftovers of an earlier run that could not clean up (killed with -9, say) would clash: clear them.
    local leftover=0
    ctn_have_link "$CTN_BRIDGE" && leftover=1
    for ns in "${CTN_NAMESPACES[@]}"; do
        { ctn_have_ns "$ns" || ctn_have_link "$(ctn_root_veth "$ns")"; } && leftover=1
    done
    if ((leftover)); then
        ctn_log "removing leftovers of an earlier run"
        cluster_net_down
    fi
    CTN_IP_FORWARD_BEFORE=$(sysctl -n net.ipv4.ip_forward) || return 1

    ip link add "$CTN_BRIDGE" type bridge || return 1
    ip addr add "$CTN_BRIDGE_ADDR/24" dev "$CTN_BRIDGE" || return 1
    ctn_quiet_ipv6 "$CTN_BRIDGE"
    ip link set "$CTN_BRIDGE" up || return 1

    for ns in "${CTN_NAMESPACES[@]}"; do
        addr=${CTN_ADDR[$ns]}
        veth=$(ctn_root_veth "$ns")
        ip netns add "$ns" || return 1
        # Only IPv4 on 10.77.0.0/24 here; no IPv6 (no link-local chatter, no second way out).
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
        ip netns exec "$ns" ip link set lo up || return 1
        ip link add "$veth" type veth peer name eth0 netns "$ns" || return 1
        ctn_quiet_ipv6 "$veth"
        ip link set "$veth" master "$CTN_BRIDGE" || return 1
        ip link set "$veth" up || return 1
        ip netns exec "$ns" ip addr add "$addr/24" dev eth0 || return 1
        ip netns exec "$ns" ip link set eth0 up || return 1
        # Deliberately no default route: the only route in the namespace is the connected 10.77.0.0/24.
    done
    cluster_net_check
}

ctn_quiet_ipv6() {
    local knob=/proc/sys/net/ipv6/conf/$1/disable_ipv6
    if [[ -w $knob ]]; then echo 1 >"$knob" || true; fi
}

# Verifies the network is as cluster_net_up made it and closed off: returns non-zero, saying why, if not.
cluster_net_check() {
    local ns routes bad=0 via now
    for ns in "${CTN_NAMESPACES[@]}"; do
        if ! ctn_have_ns "$ns"; then ctn_log "namespace $ns is missing"; bad=1; continue; fi
        # Every route in a namespace must be inside 10.77.0.0/24 (no default route, nothing else).
        routes=$(ip netns exec "$ns" ip -4 route show) || { bad=1; continue; }
        if [[ $routes != "$CTN_PREFIX.0/24 dev eth0 "* ]] || [[ $(wc -l <<<"$routes") -ne 1 ]]; then
            ctn_log "namespace $ns has routes other than $CTN_PREFIX.0/24: $routes"
            bad=1
        fi
        if [[ -n $(ip netns exec "$ns" ip -6 route show 2>/dev/null) ]]; then
            ctn_log "namespace $ns has IPv6 routes"
            bad=1
        fi
        if [[ $(ip netns exec "$ns" sysctl -n net.ipv4.ip_forward) != 0 ]]; then
            ctn_log "namespace $ns forwards IPv4"
            bad=1
        fi
    done
    # From the root namespace, our addresses must be reached over the bridge and nothing else.
    via=$(ip -4 route get "$CTN_REDIS_HOST" 2>/dev/null) || via=
    if [[ $via != *" dev $CTN_BRIDGE "* ]]; then
        ctn_log "the root namespace does not reach $CTN_REDIS_HOST over $CTN_BRIDGE: $via"
        bad=1
    fi
    now=$(sysctl -n net.ipv4.ip_forward)
    if [[ -n $CTN_IP_FORWARD_BEFORE && $now != "$CTN_IP_FORWARD_BEFORE" ]]; then
        ctn_log "net.ipv4.ip_forward in the root namespace changed ($CTN_IP_FORWARD_BEFORE -> $now)"
        bad=1
    fi
    return "$bad"
}

# Takes the root-side end of a namespace's veth down: the namespace keeps its address and route but
# nothing reaches the bridge, so its packets are dropped and open connections stall (not reset).
cut_link() {
    local ns
    ns=$(ctn_ns_name "$1") || return 1
    ip link set "$(ctn_root_veth "$ns")" down
}

restore_link() {
    local ns
    ns=$(ctn_ns_name "$1") || return 1
    ip link set "$(ctn_root_veth "$ns")" up
}

# redis-cli against our redis, from a namespace when the first argument names one (h1, ctn-h1, ...),
# else (or with `root` first) from the root namespace. Bounded: a cut link must not hang the caller.
ctn_redis_cli() {
    local ns=
    if [[ ${1:-} == root ]]; then
        shift
    elif [[ -n ${1:-} && -n ${CTN_ADDR[$1]:-}${CTN_ADDR[ctn-$1]:-} ]]; then
        ns=$(ctn_ns_name "$1") || return 1
        shift
    fi
    local cmd=(timeout "${CTN_CLI_TIMEOUT:-5}" redis-cli -h "$CTN_REDIS_HOST" -p "$CTN_REDIS_PORT" "$@")
    if [[ -n $ns ]]; then ip netns exec "$ns" "${cmd[@]}"; else "${cmd[@]}"; fi
}

# Waits (bounded, in tenths of a second) until redis answers PING from the given namespace (`root` for
# the root namespace; default: the redis one itself).
ctn_wait_ping() {
    local from=${1:-$CTN_REDIS_NS} tries=${2:-100} i
    for ((i = 0; i < tries; i++)); do
        if [[ $(CTN_CLI_TIMEOUT=1 ctn_redis_cli "$from" PING 2>/dev/null) == PONG ]]; then return 0; fi
        sleep 0.1
    done
    return 1
}

ctn_redis_pid() {
    local pidfile=$CTN_STATE_DIR/redis/redis.pid
    [[ -s $pidfile ]] && cat "$pidfile"
}

start_redis() {
    if [[ -z $CTN_STATE_DIR ]]; then
        CTN_STATE_DIR=$(mktemp -d /tmp/curtain-cluster-net.XXXXXX) || return 1
        CTN_STATE_DIR_OURS=1
    fi
    local dir=$CTN_STATE_DIR/redis
    mkdir -p "$dir" || return 1
    # Append-only with a once-a-second fsync, as a production store would run; no protected mode since
    # clients come from other hosts without a password; bound to the namespace's own address only.
    # Daemonized with a pid file, so the server outlives no one: cluster_net_down stops it by that pid.
    ip netns exec "$CTN_REDIS_NS" redis-server \
        --bind "$CTN_REDIS_HOST" --port "$CTN_REDIS_PORT" \
        --protected-mode no \
        --appendonly yes --appendfsync everysec \
        --dir "$dir" --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" ||
        { ctn_log "redis-server did not start"; return 1; }
    if ! ctn_wait_ping "$CTN_REDIS_NS" 100; then
        ctn_log "redis-server does not answer PING after 10 s; its log:"
        tail -20 "$dir/redis.log" >&2 2>/dev/null || true
        return 1
    fi
}

# Whether a process is still running. A process that has exited but whose parent has not reaped it yet
# (a zombie) counts as gone: `kill -0` would still succeed on it. That happens to our own children until
# we `wait` for them, and to daemons until the machine's init gets round to reaping them.
ctn_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    # The state is the first field after the command name, which is in parentheses and may hold spaces.
    stat=${stat##*) }
    [[ ${stat%% *} != [ZX] ]]
}

# Waits (bounded, in tenths of a second) until a process has gone.
ctn_wait_gone() {
    local pid=$1 tenths=${2:-100} i
    for ((i = 0; i < tenths; i++)); do
        ctn_alive "$pid" || return 0
        sleep 0.1
    done
    return 1
}

# A graceful restart: SHUTDOWN SAVE fsyncs the append-only file and writes a snapshot before the server
# exits (and refuses to exit if it cannot), so every acknowledged write survives; then the same server
# starts on the same dir and loads its data back (from the append-only file, as appendonly is on).
restart_redis() {
    local pid
    pid=$(ctn_redis_pid) || { ctn_log "redis-server is not running"; return 1; }
    # On success the server closes the connection without a reply; an error reply means it did not
    # shut down (e.g. the save failed), which must not pass for a restart.
    local reply log=$CTN_STATE_DIR/redis/redis.log byes
    byes=$(grep -c "ready to exit, bye bye" "$log" 2>/dev/null) || byes=0
    reply=$(ctn_redis_cli "$CTN_REDIS_NS" SHUTDOWN SAVE 2>&1) || true
    if [[ $reply == ERR* || $reply == *"(error)"* ]]; then
        ctn_log "SHUTDOWN SAVE refused: $reply"
        return 1
    fi
    if ! ctn_wait_gone "$pid" 100; then
        ctn_log "redis-server $pid did not exit within 10 s of SHUTDOWN"
        return 1
    fi
    # The log is kept across restarts: this shutdown must have added its own farewell.
    if (($(grep -c "ready to exit, bye bye" "$log" 2>/dev/null || true) <= byes)); then
        ctn_log "redis-server exited without a clean shutdown; its log:"
        tail -20 "$log" >&2 2>/dev/null || true
        return 1
    fi
    start_redis
}

# Stops everything cluster_net_up and start_redis made. Each step checks for itself whether there is
# anything to undo, so a partial up, a second call or a call with nothing up are all fine.
cluster_net_down() {
    local ns pid pids veth
    pid=$(ctn_redis_pid 2>/dev/null) || pid=
    if [[ -n $pid ]] && ctn_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        ctn_wait_gone "$pid" 50 || kill -KILL "$pid" 2>/dev/null || true
    fi
    for ns in "${CTN_NAMESPACES[@]}"; do
        ctn_have_ns "$ns" || continue
        # A process left in a namespace would keep it alive after `ip netns delete`, and keep running
        # there unseen: everything in our namespaces was started by us, so end it all, politely first.
        pids=$(ip netns pids "$ns" 2>/dev/null) || pids=
        if [[ -n $pids ]]; then
            # shellcheck disable=SC2086 # one pid per word
            kill -TERM $pids 2>/dev/null || true
            for pid in $pids; do ctn_wait_gone "$pid" 30 || break; done
        fi
        # Then without asking, again and again: a process that ignored SIGTERM may have started others
        # since the list was taken.
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            pids=$(ip netns pids "$ns" 2>/dev/null) || pids=
            [[ -n $pids ]] || break
            # shellcheck disable=SC2086 # one pid per word
            kill -KILL $pids 2>/dev/null || true
            sleep 0.1
        done
        ip netns delete "$ns" 2>/dev/null || true
    done
    # Deleting a namespace deletes its end of each veth pair and with it the root end; a pair whose
    # namespace never got its end (a partial up) is removed here.
    for ns in "${CTN_NAMESPACES[@]}"; do
        veth=$(ctn_root_veth "$ns")
        if ctn_have_link "$veth"; then ip link delete "$veth" 2>/dev/null || true; fi
    done
    if ctn_have_link "$CTN_BRIDGE"; then ip link delete "$CTN_BRIDGE" 2>/dev/null || true; fi
    if [[ -n $CTN_STATE_DIR_OURS && -d $CTN_STATE_DIR ]]; then
        rm -rf "$CTN_STATE_DIR"
        CTN_STATE_DIR=
        CTN_STATE_DIR_OURS=
    fi
    return 0
}
