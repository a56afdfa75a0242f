"""Ray on this machine: a local cluster started by ray.init(num_cpus=2), so 2 worker processes.

One invocation is one round: cold start (ray.init → first no-op result), no-op throughput, π against the
in-process loop, locked increments from 2 tasks, and 1:1 actor calls; then ray.shutdown().
See common.py for the figures and Scripts/bench-peers.sh for how rounds are interleaved.
"""

import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Workers started by this driver inherit its environment: they import common.py like the driver does.
os.environ["PYTHONPATH"] = HERE + os.pathsep + os.environ.get("PYTHONPATH", "")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports (no network here anyway)
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
sys.path.insert(0, HERE)
# No __pycache__ in Scripts/peers (workers import common.py too, and inherit this).
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
sys.dont_write_bytecode = True

import common  # noqa: E402
from common import WORKERS, emit, guarded  # noqa: E402

SYSTEM = "ray"
FULL = dict(tasks=10_000, pi_tasks=64, pi_samples=500_000, increments=500, calls=2_000, pipelined=20_000)
QUICK = dict(tasks=200, pi_tasks=4, pi_samples=20_000, increments=30, calls=100, pipelined=500)


def main():
    args = common.resolve(common.parser(SYSTEM, __doc__).parse_args(), FULL, QUICK)
    import ray

    @ray.remote
    def noop(x):
        return x

    pi_remote = ray.remote(common.pi_task)

    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def incr(self):
            self.n += 1
            return self.n

        def get(self):
            return self.n

    @ray.remote
    class Lock:
        """A lock as an async actor: acquire() returns once the caller holds it."""

        def __init__(self):
            import asyncio
            self.lock = asyncio.Lock()

        async def acquire(self):
            await self.lock.acquire()

        async def release(self):
            self.lock.release()

        async def ping(self):
            return None

    @ray.remote
    class Value:
        def __init__(self):
            self.v = 0

        def get(self):
            return self.v

        def set(self, v):
            self.v = v

    @ray.remote
    def atomic_worker(counter, n):
        start = time.time()
        for _ in range(n):
            ray.get(counter.incr.remote())
        return start, time.time()

    @ray.remote
    def locked_worker(lock, value, n):
        start = time.time()
        for _ in range(n):
            ray.get(lock.acquire.remote())
            ray.get(value.set.remote(ray.get(value.get.remote()) + 1))
            ray.get(lock.release.remote())
        return start, time.time()

    # Ray's own directory, removed at the end: in --workdir if that path is short, else in /tmp, since Ray's
    # Unix socket paths (under session_<date>_<pid>/sockets/) must stay within 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir=args.workdir if args.workdir and len(args.workdir) < 32 else "/tmp")
    t0 = time.perf_counter()
    ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False, logging_level="warning",
             object_store_memory=256 * 1024 * 1024, _temp_dir=temp_dir)
    try:
        ray.get(noop.remote(0))
        cold = (time.perf_counter() - t0) * 1000
        if "coldstart" in args.only:
            emit(SYSTEM, "cold_start", cold, "ms", note="ray.init(num_cpus=2) to the first no-op result")

        def throughput():
            ray.get([noop.remote(i) for i in range(min(200, args.tasks))])  # warm-up, not timed
            start = time.perf_counter()
            ray.get([noop.remote(i) for i in range(args.tasks)])
            emit(SYSTEM, "noop_throughput", args.tasks / (time.perf_counter() - start), "tasks/s", n=args.tasks,
                 note="all .remote() then one ray.get")

        def pi():
            local_s, local_hits = common.pi_local(args)
            start = time.perf_counter()
            hits = sum(ray.get([pi_remote.remote(job) for job in common.pi_jobs(args)]))
            common.emit_pi(SYSTEM, args, local_s, local_hits, time.perf_counter() - start, hits, "ray tasks")

        def atomic():
            counter = Counter.remote()
            ray.get(counter.get.remote())
            windows = ray.get([atomic_worker.remote(counter, args.increments) for _ in range(WORKERS)])
            elapsed = common.window(windows)
            total = ray.get(counter.get.remote())
            assert total == WORKERS * args.increments, total
            emit(SYSTEM, "atomic_increments", total / elapsed, "incr/s", n=total,
                 note="2 tasks calling counter.incr() on one actor, ray.get each")

        def locked():
            lock, value = Lock.remote(), Value.remote()
            ray.get([lock.ping.remote(), value.get.remote()])  # both actors up before the clock starts
            windows = ray.get([locked_worker.remote(lock, value, args.increments) for _ in range(WORKERS)])
            elapsed = common.window(windows)
            total = ray.get(value.get.remote())
            assert total == WORKERS * args.increments, total
            emit(SYSTEM, "locked_increments", total / elapsed, "incr/s", n=total,
                 note="lock actor (asyncio.Lock) + value actor: acquire, get, set, release")

        def actors():
            counter = Counter.remote()
            for _ in range(10):
                ray.get(counter.incr.remote())
            start = time.perf_counter()
            for _ in range(args.calls):
                ray.get(counter.incr.remote())
            emit(SYSTEM, "actor_calls_sequential", args.calls / (time.perf_counter() - start), "calls/s",
                 n=args.calls, note="ray.get(actor.incr.remote()) from the driver")
            start = time.perf_counter()
            sent, pending = 0, []
            while sent < args.pipelined or pending:
                while sent < args.pipelined and len(pending) < args.in_flight:
                    pending.append(counter.incr.remote())
                    sent += 1
                _, pending = ray.wait(pending, num_returns=max(1, len(pending) // 4))
            emit(SYSTEM, "actor_calls_in_flight", args.pipelined / (time.perf_counter() - start), "calls/s",
                 n=args.pipelined, in_flight=args.in_flight)

        if "noop" in args.only:
            guarded(SYSTEM, ["noop_throughput"], throughput)
        if "pi" in args.only:
            guarded(SYSTEM, ["pi_ratio"], pi)
        if "lock" in args.only:
            guarded(SYSTEM, ["locked_increments"], locked)
            guarded(SYSTEM, ["atomic_increments"], atomic)
        if "actors" in args.only:
            guarded(SYSTEM, ["actor_calls_sequential", "actor_calls_in_flight"], actors)
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
