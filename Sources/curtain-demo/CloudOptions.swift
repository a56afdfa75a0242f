import ArgumentParser
import Curtain
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The `--backend`, `--workers` and `--summary` options of the demos that take them: they override
/// `CURTAIN_BACKEND` and `CURTAIN_WORKERS`, which stay the defaults.
struct CloudOptions: ParsableArguments {
    @Option(help: "The backend: inprocess, processes, or a redis://, rediss:// or unix:// URL (default: CURTAIN_BACKEND, else processes).")
    var backend: String?

    @Option(help: "Worker processes of the processes backend, tasks at once in process (default: CURTAIN_WORKERS, else one per core).")
    var workers: Int?

    @Flag(help: "Print Curtain's one-line job summary (tasks, workers, p50/p99 task time, retries) on stderr for each job.")
    var summary = false

    func validate() throws {
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
    }

    /// The environment's configuration with these options applied.
    func configuration() throws -> CloudConfiguration {
        var environment = ProcessInfo.processInfo.environment
        if let backend { environment["CURTAIN_BACKEND"] = backend }
        if let workers { environment["CURTAIN_WORKERS"] = String(workers) }
        return try CloudConfiguration.fromEnvironment(environment)
    }
}

/// The summaries of a demo's jobs, collected from `JobOptions.onSummary` (which runs on the job's task).
final class SummaryLog: Sendable {
    private let summaries = Mutex<[JobSummary]>([])

    /// Job options that record each job's summary here (and print it when `print` is set).
    func options(print: Bool) -> JobOptions {
        JobOptions(summary: print, onSummary: { summary in self.summaries.withLock { $0.append(summary) } })
    }

    /// Every summary recorded so far, in the order the jobs ended.
    var all: [JobSummary] { summaries.withLock { $0 } }

    /// The median of the jobs' median task times, in milliseconds (0 when no job ended).
    var taskP50Milliseconds: Double { all.isEmpty ? 0 : median(all.map { milliseconds($0.p50) }) }

    /// The largest of the jobs' 99th-percentile task times, in milliseconds (0 when no job ended).
    var taskP99Milliseconds: Double { all.map { milliseconds($0.p99) }.max() ?? 0 }
}

/// `d` in milliseconds.
func milliseconds(_ d: Duration) -> Double { seconds(d) * 1_000 }
