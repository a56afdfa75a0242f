/// How one job (a `map`, a `run` or a task group) runs: its per-task timeout, retries of failed tasks,
/// progress display and summary.
///
/// ```swift
/// let outputs = try await cloud.map(Resize(width: 640), over: images,
///                                   options: JobOptions(timeout: .seconds(30), retries: 1, summary: true))
/// ```
public struct JobOptions: Sendable {
    /// The longest one task's function may run; `nil` for no limit.
    ///
    /// A task over its limit fails with a ``RemoteFailure/Kind/timedOut`` failure (retried like a thrown
    /// error). The function is cancelled; if it ignores cancellation, a worker process hands back its other
    /// tasks and is replaced, while the in-process backend can only abandon it.
    public var timeout: Duration?
    /// How many more times a task that threw or timed out is run before its failure ends the job (default 0:
    /// thrown errors are not retried). Crashes are retried separately (``CloudConfiguration/crashRetries``).
    public var retries: Int
    /// Whether a progress bar is drawn on standard error.
    public var progress: ProgressDisplay
    /// Whether the job's one-line ``JobSummary`` is printed on standard error when it ends.
    public var summary: Bool
    /// Called with the job's summary when it ends (successfully or not).
    public var onSummary: (@Sendable (JobSummary) -> Void)?
    /// The most tasks of a `map` queued or running at once; `nil` chooses from the worker count.
    ///
    /// Inputs are read and encoded only as the window has room, so a map over a million inputs never holds
    /// them all, encoded, in memory or in the store.
    public var window: Int?
    /// A name for a `map` on a shared store that makes it survive its driver: a driver that dies and is
    /// started again runs the same `map` with the same id and **reattaches** to the job. Tasks the first
    /// driver submitted are not submitted again, the results it had received are read back from the store,
    /// and the job carries on from there. `nil` (the default) gives each job a fresh random id.
    ///
    /// 1 to 64 letters, digits, `-`, `_` or `.`. Results of a named job are kept in the store until it ends
    /// (a named job costs one more round trip per batch of results). Other backends ignore it.
    public var id: String?
    /// Whether the job writes its timeline (Chrome trace-event JSON, for Perfetto) and a self-contained
    /// HTML report to the cloud's ``CloudConfiguration/storage`` when it ends, under
    /// `curtain-reports/<job>/` (see ``JobSummary/report``; `curtain report <job>` fetches them).
    public var report: Bool

    /// Creates options; the defaults are no timeout, no retries of thrown errors, automatic progress and no
    /// summary.
    public init(
        timeout: Duration? = nil, retries: Int = 0, progress: ProgressDisplay = .automatic, summary: Bool = false,
        window: Int? = nil, id: String? = nil, report: Bool = false, onSummary: (@Sendable (JobSummary) -> Void)? = nil
    ) {
        self.id = id
        self.report = report
        self.timeout = timeout
        self.retries = retries
        self.progress = progress
        self.summary = summary
        self.window = window
        self.onSummary = onSummary
    }

    /// Checks every field, naming the first bad one.
    func validated() throws(ConfigurationError) -> JobOptions {
        if let timeout {
            guard timeout > .zero, timeout <= .milliseconds(Int64(UInt32.max)) else {
                throw ConfigurationError(description: "JobOptions.timeout must be positive and under 49 days, not \(timeout)")
            }
        }
        guard (0...10_000).contains(retries) else {
            throw ConfigurationError(description: "JobOptions.retries must be from 0 to 10000, not \(retries)")
        }
        if let id {
            let allowed = id.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
            }
            guard !id.isEmpty, id.utf8.count <= 64, allowed else {
                throw ConfigurationError(
                    description: "JobOptions.id must be 1 to 64 letters, digits, '-', '_' or '.', not '\(id)'")
            }
        }
        if let window, window < 1 {
            throw ConfigurationError(description: "JobOptions.window must be at least 1, not \(window)")
        }
        return self
    }

    /// The timeout as an envelope field (0 for none).
    var timeoutMilliseconds: UInt32 { timeout?.wholeMilliseconds ?? 0 }
}

/// When a job draws a progress bar.
public enum ProgressDisplay: Sendable, Hashable {
    /// On standard error when it is a terminal and the job runs longer than half a second; never otherwise.
    case automatic
    /// Never.
    case never
}
