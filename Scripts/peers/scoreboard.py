"""Builds the scoreboard from the raw results of Scripts/bench-peers.sh and, with --write, puts it into
BENCHMARKS.md between <!-- peers:begin --> and <!-- peers:end --> (appending a section with the markers when
they are not there yet). Standard library only.

The results directory holds, per step, <step>.jsonl (its standard output), <step>.err and <step>.status
("ok SECONDS", "exit:N SECONDS", "timeout SECONDS" or "skipped REASON"); steps are r<round>-<system> for
the Python peers, r<round>-curtain-<subcommand> for Curtain, and all for `curtain-bench all --json`.
"""

import argparse
import datetime
import glob
import json
import os
import re
import statistics
import subprocess
import sys

SYSTEMS = ["curtain", "ray", "dask", "lithops", "multiprocessing"]
TITLES = {"curtain": "Curtain", "ray": "Ray", "dask": "Dask", "lithops": "Lithops",
          "multiprocessing": "Python multiprocessing"}
CURTAIN_SUBS = ["tasks", "coldstart", "pi", "memory-ops", "actors"]

# (key, row title, unit shown, which systems measure it, higher is better)
ROWS = [
    ("noop_throughput", "no-op task throughput, 2 workers", "tasks/s", SYSTEMS, True),
    ("cold_start", "cold start: start with 2 fresh workers → first no-op result", "ms", SYSTEMS, False),
    ("pi_ratio", "Monte Carlo π: local_s / distributed_s (own language's local run)", "ratio", SYSTEMS, True),
    ("pi_efficiency", "Monte Carlo π: that ratio ÷ its ideal (1.0 = both cores fully used; Curtain's local run is a "
     "TaskGroup on both cores, ideal 1.0; Python's local run is one process, ideal 2.0)", "ratio", SYSTEMS, True),
    ("locked_increments", "locked increments, 2 workers: lock, read, write + 1, unlock", "incr/s", SYSTEMS, True),
    ("atomic_increments", "increments by the value's owner, 2 workers (Curtain `SharedMutex.withLock`, Ray counter actor)",
     "incr/s", ["curtain", "ray"], True),
    ("actor_calls_sequential", "1:1 actor calls, sequential, from the driver", "calls/s",
     ["curtain", "ray", "dask", "multiprocessing"], True),
    ("actor_calls_in_flight", "actor calls, 256 in flight", "calls/s", ["curtain", "ray", "dask"], True),
]

# Which Curtain subcommand gives which figure, and how its names map onto the rows.
CURTAIN_SOURCE = {"noop_throughput": "tasks", "cold_start": "coldstart", "pi_ratio": "pi",
                  "locked_increments": "memory-ops", "atomic_increments": "memory-ops",
                  "actor_calls_sequential": "actors", "actor_calls_in_flight": "actors"}


def curtain_figures(sub, obj):
    """Maps one JSON line of a curtain-bench subcommand onto the scoreboard's names."""
    name, value = obj.get("name", ""), obj.get("value")
    if value is None:
        return []
    if sub == "tasks" and name.startswith("no-op tasks"):
        return [("noop_throughput", value, {})]
    if sub == "coldstart" and name.startswith("cold start"):
        return [("cold_start", value, {})]
    if sub == "pi" and name.startswith("pi ") and obj.get("baseline"):
        local_s, dist_s = 1 / obj["baseline"], 1 / value
        size = re.match(r"pi (\S+)", name)
        return [("pi_ratio", local_s / dist_s, {"local_s": local_s, "distributed_s": dist_s,
                                                "sizes": size.group(1).rstrip(",") if size else name})]
    if sub == "memory-ops" and name.startswith("locked increments, 2 workers, lock + value"):
        return [("locked_increments", value, {})]
    if sub == "memory-ops" and name.startswith("locked increments, 2 workers, mutex"):
        return [("atomic_increments", value, {})]
    if sub == "actors" and name.startswith("actor calls, sequential"):
        return [("actor_calls_sequential", value, {})]
    if sub == "actors" and re.match(r"actor calls, \d+ in flight", name):
        return [("actor_calls_in_flight", value, {})]
    return []


def read_lines(path):
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def step_failure(results, step):
    """Why a step gave no figure: its status and the last line it printed on standard error."""
    try:
        with open(os.path.join(results, step + ".status")) as f:
            status = f.read().split()
    except OSError:
        return "not run"
    code = status[0] if status else "?"
    if code == "ok":
        reason = "no figure"
    elif code == "timeout":
        reason = f"timed out after {status[1]} s" if len(status) > 1 else "timed out"
    elif code == "skipped":
        return "skipped: " + " ".join(status[1:])
    else:
        reason = code.replace("exit:", "exit status ")
    last = ""
    try:
        with open(os.path.join(results, step + ".err"), encoding="utf-8", errors="replace") as f:
            lines = [l.strip() for l in f if l.strip() and "WARNING" not in l and not l.startswith("warnings.warn")]
        if lines:
            last = lines[-1][:120]
    except OSError:
        pass
    return reason + (f" ({last})" if last and code != "timeout" else "")


def collect(results):
    """{system: {key: [(round, value, extra)]}}, {system: {key: [failure reasons]}}, rounds seen."""
    values = {s: {} for s in SYSTEMS}
    failures = {s: {} for s in SYSTEMS}
    rounds = sorted({int(m.group(1)) for p in glob.glob(os.path.join(results, "r*-*.status"))
                     if (m := re.match(r"r(\d+)-", os.path.basename(p)))})
    for r in rounds:
        for system in SYSTEMS:
            if system == "curtain":
                for sub in CURTAIN_SUBS:
                    step = f"r{r}-curtain-{sub}"
                    if not os.path.exists(os.path.join(results, step + ".status")):
                        continue
                    got = set()
                    for obj in read_lines(os.path.join(results, step + ".jsonl")):
                        for key, value, extra in curtain_figures(sub, obj):
                            if key not in got:  # the first store/transport listed counts
                                values[system].setdefault(key, []).append((r, value, extra))
                                got.add(key)
                    for key, source in CURTAIN_SOURCE.items():
                        if source == sub and key not in got:
                            failures[system].setdefault(key, []).append(step_failure(results, step))
                continue
            step = f"r{r}-{system}"
            if not os.path.exists(os.path.join(results, step + ".status")):
                continue
            got = set()
            for obj in read_lines(os.path.join(results, step + ".jsonl")):
                key = obj.get("name")
                if obj.get("system") != system or key is None:
                    continue
                if "error" in obj:
                    failures[system].setdefault(key, []).append(obj["error"][:120])
                    got.add(key)
                    continue
                extra = {k: v for k, v in obj.items() if k not in ("system", "name", "value", "unit")}
                if key == "pi_ratio":
                    for obj2 in read_lines(os.path.join(results, step + ".jsonl")):
                        if obj2.get("name") == "pi_local_s" and "value" in obj2:
                            extra["local_s"] = obj2["value"]
                        if obj2.get("name") == "pi_distributed_s" and "value" in obj2:
                            extra["distributed_s"] = obj2["value"]
                values[system].setdefault(key, []).append((r, obj["value"], extra))
                got.add(key)
            for key, _, _, measured, _ in ROWS:
                if key == "pi_efficiency":
                    continue  # derived below
                if system in measured and key not in got:
                    failures[system].setdefault(key, []).append(step_failure(results, step))
    # π efficiency: the ratio against what perfect use of 2 workers gives with that system's local run.
    for system in SYSTEMS:
        ideal = 1.0 if system == "curtain" else 2.0
        values[system]["pi_efficiency"] = [(r, v / ideal, {}) for r, v, _ in values[system].get("pi_ratio", [])]
        if "pi_ratio" in failures[system]:
            failures[system]["pi_efficiency"] = failures[system]["pi_ratio"]
    return values, failures, rounds


def fmt(x, unit=""):
    if x is None:
        return "—"
    if unit == "ratio":
        return f"{x:.2f}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def esc(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def cell(system, key, unit, measured, values, failures, planned):
    if system not in measured:
        return "n/a"
    got = values[system].get(key, [])
    failed = failures[system].get(key, [])
    if not got:
        reason = failed[0] if failed else "not run"
        if reason.startswith("skipped") or reason == "not run":
            return esc(reason)
        return "failed: " + esc(reason)
    xs = [v for _, v, _ in got]
    text = fmt(statistics.median(xs), unit)
    if len(xs) > 1 and fmt(min(xs), unit) != fmt(max(xs), unit):
        text += f" ({fmt(min(xs), unit)}–{fmt(max(xs), unit)})"
    if key == "pi_ratio":
        locs = [e.get("local_s") for _, _, e in got if e.get("local_s") is not None]
        dists = [e.get("distributed_s") for _, _, e in got if e.get("distributed_s") is not None]
        if locs and dists:
            text += f"; {fmt(statistics.median(locs))} s / {fmt(statistics.median(dists))} s"
    if failed:
        text += f"; {len(failed)} of {len(xs) + len(failed)} rounds failed: {esc(failed[0])}"
    return text


def peers_table(values, failures, rounds):
    head = "| workload | unit | " + " | ".join(TITLES[s] for s in SYSTEMS) + " |"
    lines = [head, "|" + "---|" * (len(SYSTEMS) + 2)]
    for key, title, unit, measured, _ in ROWS:
        cells = [cell(s, key, unit, measured, values, failures, len(rounds)) for s in SYSTEMS]
        lines.append(f"| {title} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sizes_lines(values):
    """What each system ran, from the figures' own fields."""
    out = []
    for system in SYSTEMS:
        parts = []
        for key, title, *_ in ROWS:
            for _, _, extra in values[system].get(key, [])[:1]:
                n = extra.get("n")
                if key == "pi_ratio" and extra.get("sizes"):
                    parts.append(f"π {extra['sizes']}")
                elif n:
                    parts.append(f"{key} n={n:,}")
        if parts:
            out.append(f"- {TITLES[system]}: " + ", ".join(parts))
    return out


def targets_table(results, all_from):
    path = all_from or os.path.join(results, "all.jsonl")
    figures = read_lines(path)
    lines = ["| figure | value | baseline | ratio | target | |", "|---|---|---|---|---|---|"]
    for f in figures:
        value = f.get("value")
        unit = f.get("unit", "")
        if f.get("target") is not None:
            target = f"ratio ≥ {f['target']}"
        elif f.get("minimum") is not None:
            target = f"≥ {fmt(f['minimum'])} {unit}"
        elif f.get("maximum") is not None:
            target = f"≤ {fmt(f['maximum'])} {unit}"
        else:
            target = "—"
        if value is None:
            met = "**NOT met** (failed)" if target != "—" or "FAILED" in f.get("name", "") else "failed"
        elif "met" in f:
            met = "met" if f["met"] else "**NOT met**"
        else:
            met = ""
        base = "—"
        if f.get("baseline") is not None:
            base = fmt(f["baseline"]) + (f" ({esc(f['baseline_name'])})" if f.get("baseline_name") else "")
        ratio = fmt(f["ratio"], "ratio") if f.get("ratio") is not None else "—"
        shown = "—" if value is None else f"{fmt(value)} {unit}"
        lines.append(f"| {esc(f.get('name', '?'))} | {esc(shown)} | {base} | {ratio} | {target} | {met} |")
    status = "ok" if all_from else None
    if not all_from:
        try:
            with open(os.path.join(results, "all.status")) as fh:
                status = fh.read().strip()
        except OSError:
            status = None
    note = ""
    if status is None:
        note = "`curtain-bench all --json` was not run" + (" (--quick)" if not figures else "") + "."
    elif not status.startswith("ok"):
        reason = step_failure(results, "all")
        note = f"`curtain-bench all --json` failed: {reason}" + (
            "; the figures above are those it printed before that." if figures else ".")
    if not figures:
        return note or "`curtain-bench all --json` printed no figure."
    met = sum(1 for f in figures if f.get("met") is True)
    with_target = sum(1 for f in figures if "met" in f or f.get("value") is None)
    summary = f"{met} of {with_target} targets met."
    return "\n".join(lines) + "\n\n" + summary + (("\n\n" + note) if note else "")


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


def machine():
    cores = sh("nproc") or str(os.cpu_count())
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cores} cores ({model})" if model else f"{cores} cores", mem


def versions(python):
    swift = (sh("swift --version 2>&1").splitlines() or ["Swift: not found"])[0]
    out = [("", re.sub(r"^.*?(Swift version)", r"\1", swift)),
           ("", sh(f"{python} --version 2>&1") or "Python: not found")]
    probe = ("import importlib.metadata as m\nfor p in ['ray','dask','distributed','lithops','redis']:\n"
             "    try: print(p, m.version(p))\n    except Exception: print(p, 'not installed')")
    for line in sh(f"{python} -c \"{probe}\"").splitlines():
        name, _, version = line.partition(" ")
        out.append((name if name != "redis" else "redis (Python client)", version))
    server = sh("redis-server --version")
    version = re.search(r"v=(\S+)", server)
    out.append(("redis-server", version.group(1) if version else server or "not found"))
    return out


def write(path, block):
    begin, end = "<!-- peers:begin -->", "<!-- peers:end -->"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Benchmarks\n"
    if begin in text and end in text and text.index(begin) < text.index(end):
        before, rest = text.split(begin, 1)
        after = rest.split(end, 1)[1]
        text = before + begin + "\n" + block + "\n" + end + after
    else:
        text = text.rstrip("\n") + "\n\n## The scoreboard (issue: The scoreboard)\n\n" + begin + "\n" + block + "\n" + end + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True)
    p.add_argument("--rounds-planned", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--write", default=None, help="BENCHMARKS.md to update")
    p.add_argument("--install-seconds", default="?")
    p.add_argument("--elapsed-seconds", default="?")
    p.add_argument("--commands", default=None, help="file with the commands to rerun")
    p.add_argument("--curtain-args", default=None, help="file with the curtain-bench invocations of a round")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--all-from", default=None)
    p.add_argument("--load", default="", help="load average when the run started")
    a = p.parse_args()

    values, failures, rounds = collect(a.results)
    cores, mem = machine()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = []
    kind = "a smoke run (--quick: tiny sizes, not figures to quote)" if a.quick else "a full run"
    out.append(f"{now}, {kind}: {cores}, {mem} memory (load average {a.load or '?'} at the start). "
               f"{len(rounds)} of {a.rounds_planned} planned rounds, interleaved round-robin (each round runs "
               f"every system once, the starting system rotating); each cell is the **median over the rounds** "
               f"(lowest–highest in parentheses). The whole run took {a.elapsed_seconds} s, of which "
               f"{a.install_seconds} s installing.")
    out.append("")
    out.append(peers_table(values, failures, rounds))
    out.append("")
    out.append("How each system runs each workload (all on 2 worker processes on this machine):")
    out.append("")
    out.append("- **Curtain**: `curtain-bench` subcommands, one per workload per round (commands below); locked "
               "increments are `SharedLock` + `SharedValue` (lock row) and `SharedMutex.withLock` (owner row), "
               "with the embedded store over TCP on loopback; actors on one worker process, "
               "sequential calls best of 3 within the subcommand. π compares with a local Swift `TaskGroup`.")
    out.append("- **Ray**: `ray.init(num_cpus=2)` (a fresh local cluster per round, included in cold start); tasks "
               "all submitted, then one `ray.get`; locks: an async lock actor plus a value actor (4 calls per "
               "increment), and a counter actor called from 2 tasks (owner row).")
    out.append("- **Dask**: `LocalCluster(n_workers=2, threads_per_worker=1)` (processes); `client.map` + `gather`; "
               "`distributed.Lock` + `Variable`; a Dask actor (`actor=True`) for actor calls.")
    out.append("- **Lithops**: the localhost backend (a fresh Python subprocess per call, 2 at a time) with "
               "localhost storage and `monitoring_interval: 0.1` (its default, 2 s, adds up to 2 s to every "
               "wait); `lithops.multiprocessing` `Lock` + `Value`, kept in a `redis-server` the script starts. "
               "No actors.")
    out.append("- **Python multiprocessing**: `Pool(2)` (fork), `imap_unordered(chunksize=1)`; `Lock` + `Value` in "
               "shared memory (no network: a floor, not a peer); a `BaseManager` proxy as the actor.")
    out.append("- π: Python peers run the same plain-Python loop (`common.pi_task`), the local baseline being all "
               "tasks one after the other in the driver; the ratio is local_s / distributed_s (2 workers: 2.0 is "
               "perfect). Lock figures are timed inside the workers (first loop start to last loop end); the "
               "others from the driver. Cold start excludes importing the Python package.")
    sizes = sizes_lines(values)
    if sizes:
        out.append("")
        out.append("Sizes (per round):")
        out.append("")
        out += sizes
    out.append("")
    out.append("### Curtain's targets")
    out.append("")
    out.append(targets_table(a.results, a.all_from))
    out.append("")
    out.append("Versions: " + "; ".join(f"{n} {v}".strip() for n, v in versions(a.python)) + ".")
    if a.commands and os.path.exists(a.commands):
        out.append("")
        out.append("Rerun:")
        out.append("")
        out.append("```sh")
        with open(a.commands) as f:
            out.append(f.read().rstrip("\n"))
        out.append("```")
    block = "\n".join(out)
    print(block)
    if a.write:
        write(a.write, block)
        print(f"\n(written to {a.write})", file=sys.stderr)


if __name__ == "__main__":
    main()
