#!/usr/bin/env bash
# Builds the image of curtain-demo (the debug build the test command just made, so nothing is compiled
# again) with Scripts/image.sh, runs its binary inside the image as the only worker (buildah run, chroot
# isolation) against a redis-server on this host, and runs the driver here: both of its jobs must come back
# right, so the worker in the image ran every task. Also checks that a Lambda target is refused, with the
# reason, for an executable that needs a newer glibc than Lambda's provided.al2023 (2.34).
set -euo pipefail
cd "$(dirname "$0")/.."
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot

demo="$(swift build --show-bin-path)/curtain-demo"
work=$(mktemp -d)
container=""
worker_pid=""
redis_pid=""
stop() {  # SIGTERM to the process group (buildah run and the worker it started), then SIGKILL if need be
    local pid=$1
    kill -TERM -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    [ -n "$worker_pid" ] && stop "$worker_pid"
    [ -n "$container" ] && buildah rm "$container" >/dev/null 2>&1 || true
    buildah rmi curtain-demo:image-test >/dev/null 2>&1 || true
    [ -n "$redis_pid" ] && stop "$redis_pid"
    rm -rf "$work"
}
trap cleanup EXIT

echo "==> building the image (Scripts/image.sh, debug build)"
Scripts/image.sh --configuration debug --skip-build --tag curtain-demo:image-test --output "$work/image.tar" | tee "$work/image.log"

needs=$(grep -o 'needs glibc [0-9.]*' "$work/image.log" | grep -o '[0-9.]*$' || true)
if [ -n "$needs" ] && [ "$(printf '%s\n%s\n' "$needs" 2.34 | sort -V | tail -1)" != 2.34 ]; then
    echo "==> a Lambda target is refused (glibc $needs > 2.34)"
    if refusal=$(Scripts/image.sh --configuration debug --skip-build --target lambda --tag curtain-demo:never 2>&1); then
        echo "==> FAILED: an image needing glibc $needs was built for Lambda"; exit 1
    fi
    grep -q "needs glibc $needs" <<<"$refusal" && grep -q "2.34" <<<"$refusal" \
        || { echo "==> FAILED: the refusal does not give the reason: $refusal"; exit 1; }
fi

echo "==> a redis-server on a Unix socket, shared with the container"
redis-server --port 0 --unixsocket "$work/redis.sock" --unixsocketperm 777 --save "" --appendonly no --daemonize no \
    --loglevel warning >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 500); do [ -S "$work/redis.sock" ] && break; sleep 0.02; done
[ -S "$work/redis.sock" ] || { echo "==> FAILED: redis-server did not start: $(cat "$work/redis.log")"; exit 1; }

echo "==> the image's binary as the only worker (buildah run)"
container=$(buildah from curtain-demo:image-test)
# In a process group of its own (setsid execs in place: $! is buildah run), so stopping it stops the worker.
setsid buildah run --isolation chroot -v "$work:/run/curtain" \
    --env CURTAIN_ROLE=worker --env CURTAIN_STORE=unix:///run/curtain/redis.sock --env CURTAIN_WORKER_ID=in-image \
    "$container" -- /app/curtain-demo cluster worker >"$work/worker.log" 2>&1 &
worker_pid=$!
registered=0
for _ in $(seq 1 3000); do
    if [ "$(redis-cli -s "$work/redis.sock" --raw eval "return #redis.call('keys', 'curtain:{*}:worker:in-image')" 0 2>/dev/null)" = 1 ]; then
        registered=1; break
    fi
    kill -0 "$worker_pid" 2>/dev/null || { echo "==> FAILED: the worker in the image exited: $(cat "$work/worker.log")"; exit 1; }
    sleep 0.02
done
[ "$registered" -eq 1 ] || { echo "==> FAILED: the worker in the image did not register within 60 s: $(cat "$work/worker.log")"; exit 1; }

echo "==> the driver, on this host"
output=$(CURTAIN_BACKEND="unix://$work/redis.sock" CURTAIN_PROGRESS=0 timeout 300 "$demo" cluster run --pi-tasks 16 --samples 200000 --memory-tasks 16 --task-ms 10 2>&1) \
    || { echo "==> FAILED: the driver failed: $output"; echo "worker: $(cat "$work/worker.log")"; exit 1; }
grep -q "^pi: ok" <<<"$output" && grep -q "^memory: ok" <<<"$output" \
    || { echo "==> FAILED: the jobs did not come back right: $output"; exit 1; }
size=$(stat -c %s "$work/image.tar")
echo "image test: ok (the worker in the image ran both jobs; OCI archive $((size / 1024 / 1024)) MiB, needs glibc $needs)"
