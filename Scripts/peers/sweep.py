"""Stops every process that carries KEY=VALUE in its environment (and only those).

Scripts/bench-peers.sh starts each system with a marker of its own run (CURTAIN_PEERS_RUN=<id>) in the
environment, which every descendant inherits: Ray's GCS server, raylet and workers, Dask's nannies, the
subprocesses Lithops starts in sessions of their own, Curtain's worker processes. After each step and at
exit the script calls this to end whatever such a process left behind, without touching anything else.

    python3 sweep.py CURTAIN_PEERS_RUN=<id> [--grace SECONDS]
"""

import os
import signal
import sys
import time


def marked(marker):
    me = {os.getpid(), os.getppid()}
    needle = marker.encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def main():
    if len(sys.argv) < 2 or "=" not in sys.argv[1]:
        sys.exit(__doc__)
    marker = sys.argv[1]
    grace = float(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--grace" else 3.0
    pids = marked(marker)
    if not pids:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.time() + grace
    while time.time() < deadline and marked(marker):
        time.sleep(0.1)
    left = marked(marker)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    print(f"sweep: stopped {len(pids)} leftover process(es) of {marker}"
          + (f", {len(left)} with SIGKILL" if left else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
