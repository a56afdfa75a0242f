#!/usr/bin/env python3
"""The dashboard and the job report in a real browser (Debian's chromium through chromium-driver).

Starts the fixture driver (curtain-test-worker with CURTAIN_FIXTURE_DASHBOARD=1): two worker processes, a
job of slow tasks and a task group whose odd tasks fail, its dashboard on a port the kernel picks, and a
report of each job in a storage directory. Then, in headless Chromium:
- the dashboard shows a lane per worker and one for the actor the fixture calls, the failures' text, the finished job's progress, no console
  errors, and no request leaves its origin; a screenshot is saved;
- the report opens from a file and shows the summary and the failures;
- the trace JSON nests (slices on one track never partly overlap) and its flows pair up;
- the trace of the driver's actor calls has the fixture's calls, each actor's lanes never overlapping;
- /metrics parses with the Prometheus client and counts the tasks by function and outcome.
Exits non-zero with the reason on the first thing that does not hold.
"""
import json, os, subprocess, sys, tempfile, time
from urllib.parse import urlparse
from urllib.request import urlopen

from prometheus_client.parser import text_string_to_metric_families

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def fail(message):
    print("dashboard browser test: FAILED: " + message, file=sys.stderr)
    sys.exit(1)


def check_trace(path):
    with open(path) as f:
        trace = json.load(f)
    events = trace["traceEvents"]
    slices = {}
    for e in events:
        if e.get("ph") == "X":
            slices.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    runs = sum(len(v) for k, v in slices.items() if k[0] != 0)
    if runs == 0:
        fail("the trace has no run slices")
    for track, spans in slices.items():
        spans.sort(key=lambda s: (s[0], -s[1]))
        stack = []
        for start, end in spans:
            while stack and stack[-1] <= start:
                stack.pop()
            if stack and end > stack[-1]:
                fail(f"slices on track {track} overlap without nesting: one ends at {stack[-1]}, the next runs {start}-{end}")
            stack.append(end)
    starts, finishes = {}, {}
    for e in events:
        if e.get("ph") == "s":
            starts[e["id"]] = e
        elif e.get("ph") == "f":
            finishes[e["id"]] = e
    if not starts or set(starts) != set(finishes):
        fail(f"flows do not pair up: {len(starts)} starts, {len(finishes)} ends, {len(set(starts) ^ set(finishes))} unpaired")
    for fid, s in starts.items():
        f = finishes[fid]
        if f["ts"] < s["ts"]:
            fail(f"flow {fid} ends before it starts")
        # each end lies inside a slice of its track (what it binds to)
        if not any(a <= f["ts"] <= b for a, b in slices.get((f["pid"], f["tid"]), [])):
            fail(f"flow {fid} ends outside any slice of its track")
    if not any(e.get("ph") == "C" for e in events):
        fail("the trace has no counters")
    return runs


def check_actor_trace(url):
    """The dashboard's trace of this driver's calls to actors: the 20 calls to the fixture's Tally, nested."""
    trace = json.loads(urlopen(url.rstrip("/") + "/api/actor-trace", timeout=30).read().decode())
    calls = [e for e in trace["traceEvents"] if e.get("cat") == "actor" and e.get("ph") == "X"]
    adds = [e for e in calls if e["name"] == "add(_:)"]
    if len(adds) < 20:
        fail(f"the actor trace has {len(adds)} add(_:) calls, not at least 20: {[e['name'] for e in calls][:10]}")
    threads = {}
    for e in calls:
        threads.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    for thread, spans in threads.items():
        spans.sort()
        for (a, b), (c, d) in zip(spans, spans[1:]):
            if c < b:
                fail(f"actor calls on thread {thread} overlap: {a}-{b} and {c}-{d}")
    return len(calls)


def check_metrics(url):
    text = urlopen(url.rstrip("/") + "/metrics", timeout=30).read().decode()
    tasks = {}
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            if sample.name == "curtain_tasks_total":
                tasks[(sample.labels.get("function"), sample.labels.get("outcome"))] = sample.value
    if tasks.get(("SlowSquare", "succeeded")) != 60:
        fail(f"curtain_tasks_total for SlowSquare succeeded is {tasks.get(('SlowSquare', 'succeeded'))}, not 60 ({tasks})")
    if tasks.get(("SlowOddRefused", "failed")) != 12 or tasks.get(("SlowOddRefused", "succeeded")) != 12:
        fail(f"curtain_tasks_total for SlowOddRefused is not 12 succeeded and 12 failed: {tasks}")
    for needed in ("curtain_task_duration_seconds", "curtain_task_queue_wait_seconds", "curtain_workers"):
        if needed not in names:
            fail(f"/metrics has no {needed} (it has {sorted(names)})")
    return f"{len(names)} metric families"


def main():
    worker = sys.argv[1]
    out_dir = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp()
    storage = tempfile.mkdtemp(prefix="curtain-reports-")
    env = dict(os.environ, CURTAIN_FIXTURE_DASHBOARD="1", CURTAIN_DASHBOARD="127.0.0.1:0",
               CURTAIN_STORAGE="file://" + storage, CURTAIN_PROGRESS="0", CURTAIN_METRICS="prometheus")
    fixture = subprocess.Popen([worker], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    lines = {}
    try:
        deadline = time.time() + 300
        while "READY" not in lines:
            line = fixture.stdout.readline()
            if not line:
                fail(f"the fixture ended before it was ready (status {fixture.wait()})")
            if time.time() > deadline:
                fail("the fixture was not ready within 300 s")
            key, _, value = line.strip().partition(" ")
            lines[key] = value
        url, report, trace = lines["DASHBOARD"], lines["REPORT"], lines["TRACE"]

        options = Options()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1400"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            browser.get(url)
            wait = WebDriverWait(browser, 60)
            wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#stream g.lane")) >= 2)
            wait.until(lambda b: "odd input" in b.find_element(By.ID, "failures").text)
            wait.until(lambda b: "60 / 60" in b.find_element(By.ID, "jobs").text)
            wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#workers tbody tr")) >= 2)
            # The actor the fixture spawned and called 20 times, and its shared counter.
            wait.until(lambda b: "Tally" in b.find_element(By.ID, "actors").text and " 20 " in " " + b.find_element(By.ID, "actors").text + " ")
            wait.until(lambda b: "dashboard-visits" in b.find_element(By.ID, "objects").text)
            lanes = [g.get_attribute("data-worker") for g in browser.find_elements(By.CSS_SELECTOR, "#stream g.lane:not(.actor)")]
            if len(set(lanes)) < 2:
                fail(f"expected a lane per worker, got {lanes}")
            # The fixture keeps calling an actor: its lane shows the calls.
            wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#stream g.lane.actor rect.run"))
            if not browser.find_elements(By.CSS_SELECTOR, "#stream rect.run.failed"):
                fail("no failed run drawn in the task stream")
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            if errors:
                fail(f"console errors: {errors}")
            origin = "{0.scheme}://{0.netloc}".format(urlparse(url))
            resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
            foreign = [r for r in resources if not r.startswith(origin) and not r.startswith("data:")]
            if foreign:
                fail(f"requests left the origin: {foreign}")
            shot = os.path.join(out_dir, "dashboard.png")
            browser.save_screenshot(shot)

            browser.get("file://" + report)
            summary = browser.find_element(By.ID, "summary").text
            if "SlowOddRefused" not in browser.page_source or "odd input" not in browser.find_element(By.ID, "failures").text:
                fail("the report does not show the failing job's failures")
            if len(browser.find_elements(By.CSS_SELECTOR, "#timeline rect.run")) < 2:
                fail("the report's timeline has no runs")
            if not browser.find_elements(By.CSS_SELECTOR, "#where div"):
                fail("the report has no 'where the time went' bar")
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            if errors:
                fail(f"console errors in the report: {errors}")
        finally:
            browser.quit()
        runs = check_trace(trace)
        calls = check_actor_trace(url)
        metrics = check_metrics(url)
        print(f"dashboard browser test: ok ({len(set(lanes))} worker lanes, {runs} runs in the trace, {calls} actor calls, {metrics}, screenshot {shot}; report summary: {summary.splitlines()[0] if summary else ''})")
    finally:
        try:
            fixture.stdin.close()
        except Exception:
            pass
        try:
            fixture.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fixture.kill()


if __name__ == "__main__":
    main()
