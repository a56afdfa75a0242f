"""Shared pieces of the peer benchmarks (Scripts/peers/*_bench.py), run by Scripts/bench-peers.sh.

Every peer file measures the same workloads and prints one JSON line per figure:

    {"system": "ray", "name": "noop_throughput", "value": 1234.5, "unit": "tasks/s", ...}

and, for a workload that failed, {"system": ..., "name": ..., "error": "..."} instead (the other workloads
still run). The names:

    cold_start                 ms       start the system with 2 fresh workers -> first result of a no-op task
    noop_throughput            tasks/s  --tasks no-op tasks on 2 workers, all submitted then all gathered
    pi_ratio                   ratio    local_s / distributed_s (also pi_local_s and pi_distributed_s, in s)
    locked_increments          incr/s   2 workers, each --increments times: lock, read the value, write it + 1
    atomic_increments          incr/s   2 workers, one call per increment to a serialized owner (Ray actor)
                                        (both timed inside the workers: first loop start to last loop end)
    actor_calls_sequential     calls/s  --calls calls to one actor, one after the other, from the driver
    actor_calls_in_flight      calls/s  --pipelined calls with --in-flight outstanding at a time

The π task is the same plain Python loop everywhere (pi_task below); the local baseline runs all the tasks
one after the other in the driver process.
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
import traceback

WORKERS = 2


def pi_task(job):
    """Counts the samples of (seed, n) that fall in the quarter circle: the workload of every system."""
    seed, n = job
    rng = random.Random(seed)
    r = rng.random
    hits = 0
    for _ in range(n):
        x = r()
        y = r()
        if x * x + y * y <= 1.0:
            hits += 1
    return hits


def noop(x=None):
    return x


def pi_jobs(args):
    return [(seed, args.pi_samples) for seed in range(args.pi_tasks)]


def pi_local(args):
    """The Python baseline: every π task, one after the other, in this process. Returns (seconds, hits)."""
    start = time.perf_counter()
    hits = sum(pi_task(job) for job in pi_jobs(args))
    return time.perf_counter() - start, hits


def parser(system, description):
    p = argparse.ArgumentParser(prog=f"{system}_bench.py", description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test (seconds)")
    p.add_argument("--only", default="", help="comma-separated workloads: coldstart,noop,pi,lock,actors")
    p.add_argument("--tasks", type=int, default=None, help="no-op tasks for the throughput figure")
    p.add_argument("--pi-tasks", type=int, default=None, help="π tasks (default 64)")
    p.add_argument("--pi-samples", type=int, default=None, help="samples per π task (default 500,000)")
    p.add_argument("--increments", type=int, default=None, help="locked increments per worker")
    p.add_argument("--calls", type=int, default=None, help="sequential actor calls")
    p.add_argument("--pipelined", type=int, default=None, help="actor calls made with many in flight")
    p.add_argument("--in-flight", type=int, default=256, help="actor calls in flight at once")
    p.add_argument("--workdir", default=None, help="scratch directory for this run (temp files, logs)")
    return p


def resolve(args, full, quick):
    """Fills every size the caller left out from the full or the quick defaults."""
    sizes = quick if args.quick else full
    for key, value in sizes.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.only = {w.strip() for w in args.only.split(",") if w.strip()} or {"coldstart", "noop", "pi", "lock", "actors"}
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
    return args


def emit(system, name, value=None, unit="", error=None, **extra):
    line = {"system": system, "name": name}
    if error is not None:
        line["error"] = error
    else:
        line["value"] = round(value, 3 if abs(value) < 100 else 1)
        line["unit"] = unit
    line.update(extra)
    print(json.dumps(line), flush=True)


def guarded(system, names, fn):
    """Runs one workload; on an exception, prints an error line for each of its figures and carries on."""
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 -- a peer's failure is a result, not a crash
        if isinstance(e, KeyboardInterrupt):
            raise
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:160]
        traceback.print_exc(file=sys.stderr)
        for name in names:
            emit(system, name, error=reason)


def emit_pi(system, args, local_s, local_hits, dist_s, dist_hits, note):
    if local_hits != dist_hits:
        raise RuntimeError(f"π hits differ: local {local_hits}, distributed {dist_hits}")
    sizes = f"{args.pi_tasks}x{args.pi_samples}"
    emit(system, "pi_local_s", local_s, "s", sizes=sizes)
    emit(system, "pi_distributed_s", dist_s, "s", sizes=sizes)
    emit(system, "pi_ratio", local_s / dist_s, "local_s/distributed_s", sizes=sizes, note=note,
         pi=4.0 * dist_hits / (args.pi_tasks * args.pi_samples))


def window(windows):
    """Seconds from the first worker's start to the last one's end, from (start, end) wall-clock pairs the
    workers report: the lock figures time the workers' loops, not the dispatch of their tasks."""
    return max(end for _, end in windows) - min(start for start, _ in windows)


def median(xs):
    return statistics.median(xs)
