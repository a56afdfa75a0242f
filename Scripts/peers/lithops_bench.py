"""Lithops on this machine: the localhost backend (v2) with 2 worker processes and localhost storage.

The localhost backend runs every call in a fresh Python subprocess (2 at a time, `worker_processes: 2`)
and keeps inputs and results in files; lithops.multiprocessing (Lock, Value) keeps its state in Redis,
so the locked-increment figure needs a redis-server: --redis-port names one, else this script starts its
own on a free loopback port and stops it at the end. Lithops has no actors.

One invocation is one round: cold start (FunctionExecutor → first no-op result), no-op throughput, π
against the in-process loop, and locked increments from 2 lithops.multiprocessing Processes.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = HERE + os.pathsep + os.environ.get("PYTHONPATH", "")
sys.path.insert(0, HERE)
# No __pycache__ in Scripts/peers (workers import common.py too, and inherit this).
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
sys.dont_write_bytecode = True

import common  # noqa: E402
from common import WORKERS, emit, guarded  # noqa: E402

SYSTEM = "lithops"
FULL = dict(tasks=40, pi_tasks=64, pi_samples=500_000, increments=500, calls=0, pipelined=0)
QUICK = dict(tasks=6, pi_tasks=4, pi_samples=20_000, increments=20, calls=0, pipelined=0)


def locked_worker(n, lock, value):
    start = time.time()
    for _ in range(n):
        with lock:
            value.value = value.value + 1
    return start, time.time()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(workdir):
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return port, proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def main():
    p = common.parser(SYSTEM, __doc__)
    p.add_argument("--redis-port", type=int, default=None, help="a running redis-server on 127.0.0.1")
    p.add_argument("--monitoring-interval", type=float, default=0.1,
                   help="seconds between Lithops' polls for finished calls (Lithops' default is 2)")
    args = common.resolve(p.parse_args(), FULL, QUICK)
    workdir = args.workdir or tempfile.mkdtemp(prefix="lithops-bench-")
    os.makedirs(workdir, exist_ok=True)
    # Lithops keeps its jobs, storage and runner under $TMPDIR/lithops-$USER: this run's own directory.
    os.environ["TMPDIR"] = os.path.join(workdir, "tmp")
    os.makedirs(os.environ["TMPDIR"], exist_ok=True)
    tempfile.tempdir = None
    redis_proc = None
    if args.redis_port is None and "lock" in args.only:
        args.redis_port, redis_proc = start_redis(workdir)
    config = {
        "lithops": {"backend": "localhost", "storage": "localhost", "log_level": "WARNING",
                    "monitoring_interval": args.monitoring_interval},
        "localhost": {"runtime": sys.executable, "worker_processes": WORKERS},
    }
    if args.redis_port:
        config["redis"] = {"host": "127.0.0.1", "port": args.redis_port}
    # lithops.multiprocessing and the calls' subprocesses read the same configuration from here.
    os.environ["LITHOPS_CONFIG"] = json.dumps(config)
    try:
        run(args, config)
    finally:
        if redis_proc:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args, config):
    import lithops

    t0 = time.perf_counter()
    fexec = lithops.FunctionExecutor(config=config)
    try:
        fexec.get_result(fexec.call_async(common.noop, 0))
        cold = (time.perf_counter() - t0) * 1000
        if "coldstart" in args.only:
            emit(SYSTEM, "cold_start", cold, "ms", note="FunctionExecutor(localhost, 2 worker processes) to the first no-op result")

        def throughput():
            start = time.perf_counter()
            fexec.get_result(fexec.map(common.noop, list(range(args.tasks))))
            emit(SYSTEM, "noop_throughput", args.tasks / (time.perf_counter() - start), "tasks/s", n=args.tasks,
                 note="fexec.map then get_result; a subprocess per call")

        def pi():
            local_s, local_hits = common.pi_local(args)
            start = time.perf_counter()
            hits = sum(fexec.get_result(fexec.map(common.pi_task, [{"job": job} for job in common.pi_jobs(args)])))
            common.emit_pi(SYSTEM, args, local_s, local_hits, time.perf_counter() - start, hits, "fexec.map")

        def locked():
            from lithops import multiprocessing as lmp
            lock = lmp.Lock()
            value = lmp.Value("i", 0, lock=False)
            pool = lmp.Pool(processes=WORKERS)
            try:
                windows = pool.starmap(locked_worker, [(args.increments, lock, value)] * WORKERS)
            finally:
                pool.close()
                pool.join()
            total = value.value
            assert total == WORKERS * args.increments, total
            elapsed = common.window(windows)
            emit(SYSTEM, "locked_increments", total / elapsed, "incr/s", n=total,
                 note="lithops.multiprocessing Lock + Value (Redis): acquire, get, set, release")

        if "noop" in args.only:
            guarded(SYSTEM, ["noop_throughput"], throughput)
        if "pi" in args.only:
            guarded(SYSTEM, ["pi_ratio"], pi)
        if "lock" in args.only:
            guarded(SYSTEM, ["locked_increments"], locked)
    finally:
        fexec.clean(clean_cloudobjects=True) if hasattr(fexec, "clean") else None


if __name__ == "__main__":
    main()
