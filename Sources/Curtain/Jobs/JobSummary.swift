/// What one job did, in numbers: printed as one line on request (``JobOptions/summary``, `CURTAIN_SUMMARY=1`)
/// or handed to ``JobOptions/onSummary``.
///
/// ```text
/// curtain: CountHits · 64 tasks on 2 workers in 3.02 s (21 tasks/s) · cold start 19 ms · task p50 94 ms, p99 101 ms · 0 retries
/// ```
public struct JobSummary: Sendable, CustomStringConvertible {
    /// The function's registered name.
    public var function: String
    /// The job's id (what ``TaskRecorder`` files its records under, and `curtain report` takes).
    public var job: String = ""
    /// The backend the job ran on (`inprocess`, `processes`, or the store URL with any password hidden).
    public var backend: String
    /// Tasks that completed successfully.
    public var tasks: Int
    /// Tasks that failed for good (at most one for `map`, whose first failure ends the job).
    public var failed: Int
    /// Distinct workers that returned results.
    public var workers: Int
    /// From the job's start to its end.
    public var wallTime: Duration
    /// From `Cloud.start` until the first worker process was connected and ready for tasks; `nil` where the
    /// cloud does not start its workers (in-process, or a shared store).
    public var coldStart: Duration?
    /// The median time a task's function ran, measured where it ran.
    public var p50: Duration
    /// The 99th percentile of the time a task's function ran.
    public var p99: Duration
    /// Extra runs: thrown errors and timeouts retried, and tasks re-run after their worker crashed.
    public var retries: Int
    /// Results dropped because their task had already been answered (a task re-run after its worker was
    /// presumed dead, which then answered after all): the first result wins.
    public var duplicates: Int = 0
    /// Bytes the driver sent for the job: task payloads (captures and inputs, as sent) and the values it
    /// shares by hash that were not where workers fetch them already.
    public var bytesSent: Int = 0
    /// Times a task found a value shared by hash already decoded in its worker's cache.
    public var sharedHits: Int = 0
    /// Bytes of shared values workers fetched for the job (each worker fetches a value once).
    public var sharedBytesFetched: Int = 0
    /// Where the job's timeline and report were written (``JobOptions/report``, `CURTAIN_REPORT=1`).
    public var report: JobReport?

    /// One line: tasks, workers, wall time and rate, cold start, p50/p99 task time, retries, duplicates.
    public var description: String {
        var parts = ["curtain: \(function)"]
        let seconds = wallTime.inSeconds
        let rate = seconds > 0 ? Double(tasks) / seconds : 0
        var line = "\(tasks) task\(tasks == 1 ? "" : "s")"
        if failed > 0 { line += " (+\(failed) failed)" }
        line += " on \(workers) worker\(workers == 1 ? "" : "s") in \(Format.duration(wallTime)) (\(Format.count(rate)) tasks/s)"
        parts.append(line)
        if let coldStart { parts.append("cold start \(Format.duration(coldStart))") }
        parts.append("task p50 \(Format.duration(p50)), p99 \(Format.duration(p99))")
        parts.append("\(retries) retr\(retries == 1 ? "y" : "ies")")
        if duplicates > 0 { parts.append("\(duplicates) duplicate\(duplicates == 1 ? "" : "s") dropped") }
        parts.append("sent \(Format.bytes(bytesSent))")
        if sharedHits > 0 || sharedBytesFetched > 0 {
            parts.append("shared values: \(sharedHits) cache hit\(sharedHits == 1 ? "" : "s"), \(Format.bytes(sharedBytesFetched)) fetched")
        }
        parts.append(backend)
        if let report { parts.append("report \(report.html)") }
        return parts.joined(separator: " · ")
    }
}

/// What a job records as results arrive, for its summary and progress bar.
struct JobStatistics {
    var completed = 0
    var failed = 0
    /// Failed runs that were retried (thrown errors and timeouts); crashes show in `retries` only.
    var failedAttempts = 0
    var retries = 0
    /// Results for tasks already answered.
    var duplicates = 0
    /// Bytes of task payloads and shared values sent.
    var bytesSent = 0
    var sharedHits = 0
    var sharedBytesFetched = 0
    var workers = Set<String>()
    /// Function run times in microseconds, kept only when a summary was asked for.
    var durations: [UInt64]?

    init(keepDurations: Bool) {
        durations = keepDurations ? [] : nil
    }

    mutating func record(_ result: TaskResult) {
        workers.insert(result.workerID)
        retries += Int(result.attempt) - 1
        durations?.append(result.durationMicroseconds)
        record(shared: result.shared)
    }

    /// Counts what a task (ended or not) used of the shared values.
    mutating func record(shared: SharedUse) {
        sharedHits += shared.hits
        sharedBytesFetched += shared.fetchedBytes
    }

    /// The `fraction` quantile of the recorded run times (nearest rank).
    func quantile(_ fraction: Double) -> Duration {
        guard var sorted = durations, !sorted.isEmpty else { return .zero }
        sorted.sort()
        let rank = min(sorted.count - 1, max(0, Int((fraction * Double(sorted.count)).rounded(.up)) - 1))
        return .microseconds(Int64(sorted[rank]))
    }
}

/// Short human forms of durations and counts for summaries, progress and error messages.
enum Format {
    /// `850 µs`, `12 ms`, `1.25 s`, `3 min 20 s`.
    static func duration(_ d: Duration) -> String {
        let (s, atto) = d.components
        let seconds = Double(s) + Double(atto) / 1e18
        if seconds < 0.001 { return "\(Int((seconds * 1e6).rounded())) µs" }
        if seconds < 1 { return "\(Int((seconds * 1e3).rounded())) ms" }
        if seconds < 60 { return fixed(seconds, digits: seconds < 10 ? 2 : 1) + " s" }
        let whole = Int(seconds.rounded())
        return whole < 3600 ? "\(whole / 60) min \(whole % 60) s" : "\(whole / 3600) h \(whole % 3600 / 60) min"
    }

    /// `950`, `12.3k`, `4.5M`.
    static func count(_ x: Double) -> String {
        if x < 1000 { return "\(Int(x.rounded()))" }
        if x < 1_000_000 { return fixed(x / 1000, digits: x < 10_000 ? 2 : 1) + "k" }
        return fixed(x / 1_000_000, digits: 2) + "M"
    }

    /// `512 B`, `12.3 kB`, `6.40 MB`, `1.20 GB` (decimal units).
    static func bytes(_ n: Int) -> String {
        let x = Double(n)
        if n < 1000 { return "\(n) B" }
        if x < 1e6 { return fixed(x / 1e3, digits: 1) + " kB" }
        if x < 1e9 { return fixed(x / 1e6, digits: 2) + " MB" }
        return fixed(x / 1e9, digits: 2) + " GB"
    }

    /// `x` with `digits` decimals, without Foundation.
    static func fixed(_ x: Double, digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = Int((x * scale).rounded())
        let whole = scaled / Int(scale)
        let fraction = abs(scaled % Int(scale))
        guard digits > 0 else { return "\(whole)" }
        let digitsText = String(fraction)
        return "\(whole).\(String(repeating: "0", count: digits - digitsText.count))\(digitsText)"
    }
}
