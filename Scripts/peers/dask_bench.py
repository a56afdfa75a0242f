"""Dask distributed on this machine: LocalCluster(n_workers=2, threads_per_worker=1), worker processes.

One invocation is one round: cold start (LocalCluster + Client → first no-op result), no-op throughput,
π against the in-process loop, locked increments (distributed.Lock + Variable) from 2 tasks, and 1:1 calls
to a Dask actor; then the cluster is closed. See common.py for the figures.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Spawned worker processes inherit the environment: they import common.py like the driver does.
os.environ["PYTHONPATH"] = HERE + os.pathsep + os.environ.get("PYTHONPATH", "")
sys.path.insert(0, HERE)
# No __pycache__ in Scripts/peers (workers import common.py too, and inherit this).
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
sys.dont_write_bytecode = True

import common  # noqa: E402
from common import WORKERS, emit, guarded  # noqa: E402

SYSTEM = "dask"
FULL = dict(tasks=5_000, pi_tasks=64, pi_samples=500_000, increments=200, calls=2_000, pipelined=5_000)
QUICK = dict(tasks=200, pi_tasks=4, pi_samples=20_000, increments=20, calls=100, pipelined=500)


class Counter:
    """A Dask actor (client.submit(Counter, actor=True)); its methods run on the hosting worker."""

    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n


def locked_worker(n, lock_name, var_name):
    from distributed import Lock, Variable
    lock, var = Lock(lock_name), Variable(var_name)
    start = time.time()
    for _ in range(n):
        with lock:
            var.set(var.get() + 1)
    return start, time.time()


def main():
    args = common.resolve(common.parser(SYSTEM, __doc__).parse_args(), FULL, QUICK)
    import dask
    from distributed import Client, LocalCluster, Variable

    dask.config.set({"logging.distributed": "error"})
    local_dir = args.workdir or None
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None,
                           local_directory=local_dir, silence_logs=40)
    client = Client(cluster)
    try:
        client.submit(common.noop, 0, pure=False).result()
        cold = (time.perf_counter() - t0) * 1000
        if "coldstart" in args.only:
            emit(SYSTEM, "cold_start", cold, "ms", note="LocalCluster(2 worker processes) + Client to the first no-op result")
        workers = sorted(client.scheduler_info()["workers"])

        def throughput():
            client.gather(client.map(common.noop, range(min(200, args.tasks)), pure=False))  # warm-up
            start = time.perf_counter()
            client.gather(client.map(common.noop, range(args.tasks), pure=False))
            emit(SYSTEM, "noop_throughput", args.tasks / (time.perf_counter() - start), "tasks/s", n=args.tasks,
                 note="client.map then client.gather")

        def pi():
            local_s, local_hits = common.pi_local(args)
            start = time.perf_counter()
            hits = sum(client.gather(client.map(common.pi_task, common.pi_jobs(args), pure=False)))
            common.emit_pi(SYSTEM, args, local_s, local_hits, time.perf_counter() - start, hits, "client.map")

        def locked():
            var = Variable("curtain-peers-count", client=client)
            var.set(0)
            futures = [client.submit(locked_worker, args.increments, "curtain-peers-lock", "curtain-peers-count",
                                     workers=[w], pure=False) for w in workers[:WORKERS]]
            elapsed = common.window(client.gather(futures))
            total = var.get()
            assert total == WORKERS * args.increments, total
            emit(SYSTEM, "locked_increments", total / elapsed, "incr/s", n=total,
                 note="distributed.Lock + Variable: acquire, get, set, release")

        def actors():
            counter = client.submit(Counter, actor=True, workers=[workers[0]]).result()
            for _ in range(10):
                counter.incr().result()
            start = time.perf_counter()
            for _ in range(args.calls):
                counter.incr().result()
            emit(SYSTEM, "actor_calls_sequential", args.calls / (time.perf_counter() - start), "calls/s",
                 n=args.calls, note="actor.incr().result() from the driver")
            start = time.perf_counter()
            sent = 0
            while sent < args.pipelined:
                batch = [counter.incr() for _ in range(min(args.in_flight, args.pipelined - sent))]
                for f in batch:
                    f.result()
                sent += len(batch)
            emit(SYSTEM, "actor_calls_in_flight", args.pipelined / (time.perf_counter() - start), "calls/s",
                 n=args.pipelined, in_flight=args.in_flight, note="batches of in_flight, then their results")

        if "noop" in args.only:
            guarded(SYSTEM, ["noop_throughput"], throughput)
        if "pi" in args.only:
            guarded(SYSTEM, ["pi_ratio"], pi)
        if "lock" in args.only:
            guarded(SYSTEM, ["locked_increments"], locked)
        if "actors" in args.only:
            guarded(SYSTEM, ["actor_calls_sequential", "actor_calls_in_flight"], actors)
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
