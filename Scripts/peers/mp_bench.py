"""The Python standard library's multiprocessing on this machine: the floor a Python peer builds on.

One invocation is one round: cold start (Pool(2) → first result), no-op throughput (imap_unordered with
chunksize=1: one message per task, as the distributed systems send), π against the in-process loop,
locked increments (multiprocessing.Lock + a Value in shared memory, 2 Processes: no network at all), and
1:1 calls to an object in a manager's server process (a BaseManager proxy: the closest thing to an actor).
"""

import multiprocessing as mp
import os
import sys
import time
from multiprocessing.managers import BaseManager

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# No __pycache__ in Scripts/peers (workers import common.py too, and inherit this).
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
sys.dont_write_bytecode = True

import common  # noqa: E402
from common import WORKERS, emit, guarded  # noqa: E402

SYSTEM = "multiprocessing"
FULL = dict(tasks=20_000, pi_tasks=64, pi_samples=500_000, increments=20_000, calls=5_000, pipelined=0)
QUICK = dict(tasks=500, pi_tasks=4, pi_samples=20_000, increments=200, calls=100, pipelined=0)


class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n


class CounterManager(BaseManager):
    pass


CounterManager.register("Counter", Counter)


def locked_worker(n, lock, value, out, i):
    start = time.time()
    for _ in range(n):
        with lock:
            value.value = value.value + 1
    out[2 * i], out[2 * i + 1] = start, time.time()


def main():
    args = common.resolve(common.parser(SYSTEM, __doc__).parse_args(), FULL, QUICK)
    t0 = time.perf_counter()
    pool = mp.Pool(WORKERS)
    try:
        pool.apply(common.noop, (0,))
        cold = (time.perf_counter() - t0) * 1000
        if "coldstart" in args.only:
            emit(SYSTEM, "cold_start", cold, "ms", note=f"Pool(2) ({mp.get_start_method()}) to the first result")

        def throughput():
            for _ in pool.imap_unordered(common.noop, range(min(200, args.tasks)), chunksize=1):
                pass
            start = time.perf_counter()
            for _ in pool.imap_unordered(common.noop, range(args.tasks), chunksize=1):
                pass
            emit(SYSTEM, "noop_throughput", args.tasks / (time.perf_counter() - start), "tasks/s", n=args.tasks,
                 note="pool.imap_unordered, chunksize=1")

        def pi():
            local_s, local_hits = common.pi_local(args)
            start = time.perf_counter()
            hits = sum(pool.map(common.pi_task, common.pi_jobs(args), chunksize=1))
            common.emit_pi(SYSTEM, args, local_s, local_hits, time.perf_counter() - start, hits, "pool.map")

        def locked():
            lock, value = mp.Lock(), mp.Value("i", 0, lock=False)
            out = mp.Array("d", 2 * WORKERS, lock=False)
            procs = [mp.Process(target=locked_worker, args=(args.increments, lock, value, out, i)) for i in range(WORKERS)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            total = value.value
            assert total == WORKERS * args.increments, total
            elapsed = common.window([(out[2 * i], out[2 * i + 1]) for i in range(WORKERS)])
            emit(SYSTEM, "locked_increments", total / elapsed, "incr/s", n=total,
                 note="multiprocessing.Lock + Value in shared memory, 2 Processes")

        def actors():
            with CounterManager() as manager:
                counter = manager.Counter()
                for _ in range(10):
                    counter.incr()
                start = time.perf_counter()
                for _ in range(args.calls):
                    counter.incr()
                emit(SYSTEM, "actor_calls_sequential", args.calls / (time.perf_counter() - start), "calls/s",
                     n=args.calls, note="BaseManager proxy method calls from the driver")

        if "noop" in args.only:
            guarded(SYSTEM, ["noop_throughput"], throughput)
        if "pi" in args.only:
            guarded(SYSTEM, ["pi_ratio"], pi)
        if "lock" in args.only:
            guarded(SYSTEM, ["locked_increments"], locked)
        if "actors" in args.only:
            guarded(SYSTEM, ["actor_calls_sequential"], actors)
    finally:
        pool.terminate()
        pool.join()


if __name__ == "__main__":
    main()
