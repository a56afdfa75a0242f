/// The dashboard's one page: HTML, CSS and script inline, nothing fetched from anywhere but its origin.
enum DashboardPage {
    static let html = #"""
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Curtain</title>
<link rel="icon" href="data:,">
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fafafa}
h1{font-size:18px;margin:0 0 8px}h2{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;background:#fff}td,th{padding:2px 8px;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top}
.progress{width:160px;height:10px;background:#eee;display:inline-block;vertical-align:middle}.progress div{height:100%;background:#2ca02c}
.where{display:flex;width:240px;height:10px;background:#eee}.where div{height:100%}
#status{color:#888}.failed{color:#b00}pre{margin:0;white-space:pre-wrap;max-width:560px}
svg{background:#fff;border:1px solid #ddd}
</style></head><body>
<h1>Curtain <span id="status">connecting…</span></h1>
<h2>Jobs</h2><table id="jobs"><thead><tr><th>function</th><th>job</th><th>exports</th><th>progress</th><th>failed</th><th>workers</th><th>ETA</th><th>where the time went</th></tr></thead><tbody></tbody></table>
<h2>Task stream (last 60 s): a lane per worker, and one per actor this process calls</h2><svg id="stream" width="1000" height="40"></svg>
<p id="dropped"></p>
<h2>Failed runs</h2><table id="failures"><thead><tr><th>job</th><th>task</th><th>attempt</th><th>worker</th><th>kind</th><th>error</th><th>input</th></tr></thead><tbody></tbody></table>
<h2>Workers</h2><table id="workers"><thead><tr><th>worker</th><th>host</th><th>pid</th><th>heartbeat age</th><th>RSS</th><th>tasks done</th><th>in flight</th></tr></thead><tbody></tbody></table>
<h2>Queues</h2><table id="queues"><thead><tr><th>build</th><th>waiting</th><th>placed</th><th>key</th></tr></thead><tbody></tbody></table>
<h2>Actors <a id="actor-trace" href="/api/actor-trace">(calls from here as a trace for Perfetto)</a></h2><table id="actors"><thead><tr><th>actor</th><th>type</th><th>host</th><th>restarts left</th><th>calls from here</th><th>failed</th><th>latency p50 / p99</th></tr></thead><tbody></tbody></table>
<h2>Shared objects</h2><table id="objects"><thead><tr><th>key</th><th>type</th><th>size</th></tr></thead><tbody></tbody></table>
<h2>Dead letters</h2><table id="dead"><thead><tr><th>job</th><th>task</th><th>function</th><th>attempts</th><th>worker</th><th>reason</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const colors = {"encode":"#9467bd","queue wait":"#ff7f0e","run":"#2ca02c","result wait":"#1f77b4","decode":"#8c564b"};
const token = new URLSearchParams(location.search).get("token");
const suffix = token ? "?token=" + encodeURIComponent(token) : "";
document.getElementById("actor-trace").href = "/api/actor-trace" + suffix;
function cell(row, text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; row.appendChild(td); return td; }
function fill(id, items, build) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...items.map(item => { const tr = document.createElement("tr"); build(tr, item); return tr; }));
}
function duration(us) { if (us < 1000) return us + " µs"; if (us < 1e6) return (us / 1000).toFixed(1) + " ms"; return (us / 1e6).toFixed(2) + " s"; }
function bytes(n) { if (n < 1000) return n + " B"; if (n < 1e6) return (n / 1e3).toFixed(1) + " kB"; return (n / 1e6).toFixed(1) + " MB"; }
const svgNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) { const e = document.createElementNS(svgNS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; return e; }
function render(state) {
  document.getElementById("status").textContent = "live · " + new Date(state.now / 1000).toLocaleTimeString();
  // A driver's own jobs; a dashboard of a shared store shows the cluster's running jobs instead.
  const jobs = state.jobs.length ? state.jobs : ((state.cluster || {}).jobs || []);
  fill("jobs", jobs.slice().reverse(), (tr, j) => {
    cell(tr, j.function); cell(tr, j.job);
    // A driver's own jobs have their trace and report here (a shared store's cluster view does not).
    const x = cell(tr, "");
    if (state.jobs.length) for (const [label, path] of [["trace", "/api/trace/"], ["report", "/api/report/"]]) {
      const a = document.createElement("a"); a.href = path + encodeURIComponent(j.job) + suffix; a.textContent = label; x.appendChild(a); x.appendChild(document.createTextNode(" "));
    }
    const p = cell(tr, ""); const bar = document.createElement("span"); bar.className = "progress";
    const inner = document.createElement("div"); inner.style.width = (j.submitted ? Math.min(100, 100 * j.done / j.submitted) : 0) + "%";
    bar.appendChild(inner); p.appendChild(bar); p.appendChild(document.createTextNode(" " + j.done + " / " + j.submitted + (j.ended ? " · done" : "")));
    cell(tr, String(j.failed), j.failed ? "failed" : ""); cell(tr, j.workers === undefined ? "–" : String(j.workers)); cell(tr, j.ended ? "–" : (j.eta > 0 ? j.eta + " s" : "…"));
    const w = cell(tr, ""); const where = document.createElement("div"); where.className = "where";
    const parts = j.where || {};
    const total = Object.values(parts).reduce((a, b) => a + b, 0) || 1;
    for (const name in parts) { if (!parts[name]) continue; const d = document.createElement("div"); d.style.width = (100 * parts[name] / total) + "%"; d.style.background = colors[name]; d.title = name + ": " + duration(parts[name]); where.appendChild(d); }
    w.appendChild(where);
  });
  const s = state.stream, box = document.getElementById("stream"), left = 170, width = 820, row = 18;
  box.replaceChildren(); box.setAttribute("height", String(Math.max(40, s.workers.length * row + 20)));
  const x = t => left + (t - s.from) / (s.to - s.from) * width;
  s.workers.forEach((w, i) => {
    // A worker's lane (its task runs) or an actor's (this process's calls to it, in purple).
    const actor = w.kind === "actor", fill = actor ? "#9467bd" : "#2ca02c";
    const lane = svg("g", {"class": actor ? "lane actor" : "lane", "data-worker": w.worker});
    lane.appendChild(svg("text", {x: 2, y: i * row + 13, "font-size": 11}, w.worker.slice(-26)));
    if (s.bands) {
      w.runs.forEach((busy, c) => { if (busy > 0) lane.appendChild(svg("rect", {"class": "band", x: left + c * width / 120, y: i * row + 3, width: width / 120, height: row - 6, fill: fill, "fill-opacity": busy})); });
    } else {
      for (const r of w.runs) {
        const rect = svg("rect", {"class": r[2] ? "run" : "run failed", x: Math.max(left, x(r[0])), y: i * row + 3, width: Math.max(1, x(r[1]) - Math.max(left, x(r[0]))), height: row - 6, fill: r[2] ? fill : "#d62728"});
        rect.appendChild(svg("title", {}, (actor ? r[3] : "#" + r[3]) + " · " + duration(r[1] - r[0]))); lane.appendChild(rect);
      }
    }
    box.appendChild(lane);
  });
  document.getElementById("dropped").textContent = state.dropped ? "The driver's ring dropped " + state.dropped + " older runs; job numbers count every run." : "";
  fill("failures", state.failures, (tr, f) => { cell(tr, f.job); cell(tr, f.function + " #" + f.index); cell(tr, String(f.attempt)); cell(tr, f.worker); cell(tr, f.kind, "failed");
    const e = cell(tr, ""); const pre = document.createElement("pre"); pre.textContent = f.error; e.appendChild(pre); cell(tr, f.input); });
  const c = state.cluster || {workers: [], queues: [], dead: [], spawned: [], objects: []};
  fill("workers", c.workers, (tr, w) => { cell(tr, w.id); cell(tr, w.host); cell(tr, String(w.pid)); cell(tr, duration(w.beat_age_ms * 1000)); cell(tr, w.rss ? bytes(w.rss) : "–"); cell(tr, String(w.tasks)); cell(tr, String(w.in_flight)); });
  fill("queues", c.queues, (tr, q) => { cell(tr, q.build); cell(tr, String(q.depth)); cell(tr, String(q.placed)); cell(tr, q.key); });
  // Actors: the cluster's spawned ones (with their records) and any this driver called, merged by name.
  const actors = new Map();
  for (const a of (c.spawned || [])) actors.set(a.name, {name: a.name, type: a.type, host: a.host, restarts: String(a.restarts_left)});
  for (const k of (state.calls || [])) { const a = actors.get(k.actor) || {name: k.actor, type: "–", host: k.host, restarts: "–"}; a.calls = k; actors.set(k.actor, a); }
  fill("actors", Array.from(actors.values()), (tr, a) => { cell(tr, a.name); cell(tr, a.type); cell(tr, a.host); cell(tr, a.restarts);
    cell(tr, a.calls ? String(a.calls.calls) : "0"); cell(tr, a.calls ? String(a.calls.failures) : "0", a.calls && a.calls.failures ? "failed" : "");
    cell(tr, a.calls ? "≤ " + duration(a.calls.p50_us) + " / ≤ " + duration(a.calls.p99_us) : "–"); });
  fill("objects", c.objects || [], (tr, o) => { cell(tr, o.key); cell(tr, o.type); cell(tr, bytes(o.bytes)); });
  fill("dead", c.dead, (tr, d) => { cell(tr, d.job); cell(tr, "#" + d.index); cell(tr, d.function); cell(tr, String(d.attempts)); cell(tr, d.worker); cell(tr, d.reason); });
}
const events = new EventSource("/events" + suffix);
events.onmessage = m => render(JSON.parse(m.data));
events.onerror = () => { document.getElementById("status").textContent = "reconnecting…"; };
</script></body></html>
"""#
}
