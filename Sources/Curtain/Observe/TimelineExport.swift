/// A job's timeline in the two forms people open: Chrome's trace-event JSON (Perfetto, `chrome://tracing`)
/// and a self-contained HTML report.
public enum TimelineExport {
    /// One run placed on its worker's track: the lane (thread) it is drawn in.
    struct Placed {
        var record: TaskRecord
        var process: Int
        var lane: Int
    }

    /// Assigns each run that started to a lane of its worker's track: the lowest lane free at its start, so
    /// slices in one lane never overlap (a worker running several tasks at once gets several lanes).
    static func lanes(_ records: [TaskRecord]) -> (placed: [Placed], workers: [String], lanes: [Int]) {
        var workers: [String] = []
        var number: [String: Int] = [:]
        for record in records where number[record.worker] == nil {
            number[record.worker] = workers.count
            workers.append(record.worker)
        }
        var lanes = Lanes<Int>()
        var placed: [Placed] = []
        for record in records.sorted(by: { ($0.started, $0.index) < ($1.started, $1.index) }) where record.started > 0 {
            let process = number[record.worker]!
            let lane = lanes.place(process, start: record.started, end: max(record.ended, record.started + 1)).lane
            placed.append(Placed(record: record, process: process, lane: lane))
        }
        return (placed, workers, workers.indices.map { lanes.count($0) })
    }

    /// Greedy lanes for intervals visited in start order, per group: each interval takes the lowest lane
    /// of its group that is free at its start, so intervals in one lane never overlap.
    struct Lanes<Group: Hashable> {
        private var busyUntil: [Group: [Int64]] = [:]

        /// The lane of `start..<end` in `group`, and whether it opened a new lane.
        mutating func place(_ group: Group, start: Int64, end: Int64) -> (lane: Int, opened: Bool) {
            if let free = busyUntil[group]?.firstIndex(where: { $0 <= start }) {
                busyUntil[group]![free] = end
                return (free, false)
            }
            busyUntil[group, default: []].append(end)
            return (busyUntil[group]!.count - 1, true)
        }

        /// How many lanes `group` has.
        func count(_ group: Group) -> Int { busyUntil[group]?.count ?? 0 }
    }

    /// The trace-event JSON of `records` (one job's, or any): a track per worker process (the driver is
    /// process 0), a slice per run, flow arrows submit → run → result, and counters of the tasks in flight
    /// and queued. Times are microseconds from the first submission.
    ///
    /// `calls` (this process's calls to actors in other processes) get a track of their own: a thread per
    /// actor (more where calls to it overlap), a slice per call named by its method.
    public static func chromeTrace(
        _ records: [TaskRecord], calls: [ActorCallRecord] = [], title: String = "curtain", dropped: Int = 0
    ) -> String {
        // The span covers every time recorded: workers' clocks are aligned to the store's within a round trip,
        // so a start may precede its submission by a little (and an end follow its receipt).
        let starts = records.map(\.submitted) + records.lazy.filter { $0.started > 0 }.map(\.started) + calls.map(\.started)
        guard let origin = starts.min() else {
            return #"{"traceEvents":[],"displayTimeUnit":"ms"}"#
        }
        let end = max(
            records.map { max($0.received, $0.ended) }.max() ?? origin, calls.map(\.ended).max() ?? origin, origin + 1)
        let (placed, workers, laneCounts) = lanes(records)
        var out = #"{"displayTimeUnit":"ms","otherData":{"title":"# + JSON.string(title) + #","droppedRecords":\#(dropped)},"traceEvents":["#
        var first = true
        func event(_ text: String) {
            if !first { out += "," }
            first = false
            out += text
        }
        func ts(_ t: Int64) -> String { String(t - origin) }
        event(#"{"ph":"M","pid":0,"tid":0,"name":"process_name","args":{"name":"driver"}}"#)
        event(#"{"ph":"M","pid":0,"tid":0,"name":"thread_name","args":{"name":"jobs"}}"#)
        for (i, worker) in workers.enumerated() {
            event(#"{"ph":"M","pid":\#(i + 1),"tid":0,"name":"process_name","args":{"name":"# + JSON.string("worker " + worker) + "}}")
            event(#"{"ph":"M","pid":\#(i + 1),"tid":0,"name":"process_sort_index","args":{"sort_index":\#(i + 1)}}"#)
            for lane in 0..<max(1, laneCounts[i]) {
                event(#"{"ph":"M","pid":\#(i + 1),"tid":\#(lane),"name":"thread_name","args":{"name":"lane \#(lane)"}}"#)
            }
        }
        // The driver's slice for the whole span: the flows start and end inside it.
        event(#"{"ph":"X","pid":0,"tid":0,"name":"# + JSON.string(title) + #","ts":0,"dur":\#(end - origin)}"#)
        var flow = 0
        for item in placed {
            let r = item.record
            let pid = item.process + 1
            let duration = max(1, r.ended - r.started)
            var args = #""index":\#(r.index),"attempt":\#(r.attempt),"bytes_in":\#(r.bytesIn),"bytes_out":\#(r.bytesOut)"#
            args += #","queue_wait_us":\#(r.queueWait),"result_wait_us":\#(r.resultWait)"#
            if r.fetchedBytes > 0 { args += #","fetched_bytes":\#(r.fetchedBytes)"# }
            if let failure = r.failure { args += #","failure":"# + JSON.string(failure) }
            let name = r.succeeded ? r.function : r.function + " (" + (r.failureKind ?? "failed") + ")"
            event(#"{"ph":"X","cat":"task","pid":\#(pid),"tid":\#(item.lane),"name":"# + JSON.string(name)
                + #","ts":\#(ts(r.started)),"dur":\#(duration),"args":{\#(args)}}"#)
            flow += 1
            // Arrows never point back in time, whatever the clocks' residual skew.
            event(#"{"ph":"s","cat":"task","id":\#(flow),"pid":0,"tid":0,"name":"submit","ts":\#(ts(min(r.submitted, r.started)))}"#)
            event(#"{"ph":"f","bp":"e","cat":"task","id":\#(flow),"pid":\#(pid),"tid":\#(item.lane),"name":"submit","ts":\#(ts(r.started))}"#)
            flow += 1
            let out = duration >= 2 ? r.started + duration - 1 : r.started
            event(#"{"ph":"s","cat":"task","id":\#(flow),"pid":\#(pid),"tid":\#(item.lane),"name":"result","ts":\#(ts(out))}"#)
            event(#"{"ph":"f","bp":"e","cat":"task","id":\#(flow),"pid":0,"tid":0,"name":"result","ts":\#(ts(max(r.received, out)))}"#)
        }
        // Calls to actors: their own track, a thread per actor and lane (calls to one actor may overlap).
        if !calls.isEmpty {
            let pid = workers.count + 1
            event(#"{"ph":"M","pid":\#(pid),"tid":0,"name":"process_name","args":{"name":"actor calls from the driver"}}"#)
            event(#"{"ph":"M","pid":\#(pid),"tid":0,"name":"process_sort_index","args":{"sort_index":\#(pid)}}"#)
            var lanes = Lanes<String>()
            var threads: [String: [Int]] = [:]  // per actor, the thread of each of its lanes
            var nextThread = 0
            for call in calls.sorted(by: { ($0.started, $0.ended) < ($1.started, $1.ended) }) {
                let callEnd = max(call.ended, call.started + 1)
                let (lane, opened) = lanes.place(call.actor, start: call.started, end: callEnd)
                if opened {
                    threads[call.actor, default: []].append(nextThread)
                    let name = "→ " + call.actor + (lane > 0 ? " (\(lane + 1))" : "")
                    event(#"{"ph":"M","pid":\#(pid),"tid":\#(nextThread),"name":"thread_name","args":{"name":"# + JSON.string(name) + "}}")
                    nextThread += 1
                }
                let tid = threads[call.actor]![lane]
                let name = call.succeeded ? call.method : call.method + " (" + call.outcome + ")"
                event(#"{"ph":"X","cat":"actor","pid":\#(pid),"tid":\#(tid),"name":"# + JSON.string(name)
                    + #","ts":\#(ts(call.started)),"dur":\#(callEnd - call.started),"args":{"actor":"# + JSON.string(call.actor)
                    + #","host":"# + JSON.string(call.host) + #","outcome":"# + JSON.string(call.outcome) + "}}")
            }
        }
        // Runs that never started (a worker died holding them, a refused envelope): marks on the driver.
        for r in records where r.started == 0 {
            event(#"{"ph":"i","s":"t","cat":"task","pid":0,"tid":0,"name":"# + JSON.string("\(r.function) #\(r.index) " + (r.failureKind ?? "lost"))
                + #","ts":\#(ts(r.received)),"args":{"failure":"# + JSON.string(r.failure ?? "") + "}}")
        }
        // Counters: in flight (submitted, not yet received) and queued (submitted, not yet started), sampled
        // at most 2,000 times over the span.
        var changes: [(Int64, Int, Int)] = []
        changes.reserveCapacity(records.count * 3)
        for r in records {
            changes.append((r.submitted, 1, 1))
            if r.started > 0 { changes.append((max(r.started, r.submitted), 0, -1)) } else { changes.append((r.received, 0, -1)) }
            changes.append((max(r.received, r.submitted), -1, 0))
        }
        changes.sort { $0.0 < $1.0 }
        let step = max(1, (end - origin) / 2000)
        var inFlight = 0
        var queued = 0
        var lastSample: Int64 = -1
        for (i, change) in changes.enumerated() {
            inFlight += change.1
            queued += change.2
            let isLast = i == changes.count - 1 || changes[i + 1].0 != change.0
            guard isLast, lastSample < 0 || change.0 - lastSample >= step || i == changes.count - 1 else { continue }
            lastSample = change.0
            event(#"{"ph":"C","pid":0,"tid":0,"name":"tasks","ts":\#(ts(change.0)),"args":{"in flight":\#(max(0, inFlight)),"queued":\#(max(0, queued))}}"#)
        }
        out += "]}"
        return out
    }
}

/// Just enough JSON writing for the exports.
enum JSON {
    /// `text` as a JSON string literal, quotes included.
    static func string(_ text: String) -> String {
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<": out += "\\u003c"  // safe inside an HTML <script> too
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// Where a job's timeline and report were written: `curtain-reports/<job>/trace.json` (Chrome trace-event
/// JSON; open it in Perfetto, ui.perfetto.dev, or `chrome://tracing`), `report.html` (self-contained) and
/// `failures.jsonl` (every failed run, one JSON ``TaskRecord`` per line), in the cloud's storage.
public struct JobReport: Sendable, Hashable, Codable {
    /// The storage's URL.
    public var storage: String
    /// The job's id.
    public var job: String

    /// The report of `job` in the storage at `storage` (a URL).
    public init(storage: String, job: String) {
        self.storage = storage
        self.job = job
    }

    /// The key of the trace in the storage.
    public var traceKey: String { Self.prefix(job) + "trace.json" }
    /// The key of the HTML report in the storage.
    public var htmlKey: String { Self.prefix(job) + "report.html" }
    /// The key of every failed run of the job, one JSON ``TaskRecord`` per line.
    public var failuresKey: String { Self.prefix(job) + "failures.jsonl" }
    /// The failures' location, as ``trace``.
    public var failures: String { location(failuresKey) }
    /// The trace's location: a file path for a `file://` storage, else the storage's URL and the key.
    public var trace: String { location(traceKey) }
    /// The report's location, as ``trace``.
    public var html: String { location(htmlKey) }

    /// Where a job's reports go in a storage.
    public static func prefix(_ job: String) -> String { "curtain-reports/\(job)/" }

    private func location(_ key: String) -> String {
        if storage.hasPrefix("file://") { return String(storage.dropFirst("file://".count)) + "/" + key }
        return storage + (storage.hasSuffix("/") ? "" : "/") + key
    }

    /// Writes the report of `job` from ``TaskRecorder/shared``; `nil` (with a warning) if it cannot.
    static func write(job: String, function: String, to storage: Storage) async -> JobReport? {
        let recorder = TaskRecorder.shared
        let records = recorder.records(job: job)
        let title = "\(function) · job \(job)"
        let report = JobReport(storage: storage.url, job: job)
        let tally = recorder.tally(job: job)
        // The job's own runs the ring let go of (not the process's).
        let dropped = max(0, (tally?.runs ?? records.count) - records.count)
        do {
            // With the calls this process made to actors while the job ran.
            let calls = tally.map { recorder.actorCalls(from: $0.began, to: $0.ended ?? StoreClock.now()) } ?? []
            let trace = TimelineExport.chromeTrace(records, calls: calls, title: title, dropped: dropped)
            try await storage.write(report.traceKey, Array(trace.utf8))
            let html = TimelineExport.html(
                records: records, tally: tally, failures: recorder.failures(job: job), title: title, dropped: dropped,
                beyondMemory: recorder.failuresBeyondMemory(job: job))
            try await storage.write(report.htmlKey, Array(html.utf8))
            try await storage.write(report.failuresKey, recorder.failureLines(job: job))
            return report
        } catch {
            StandardError.write("curtain: the report of job \(job) could not be written to \(storage.url): \(error)\n")
            return nil
        }
    }
}
