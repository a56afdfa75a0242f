import ArgumentParser
import Curtain
import CurtainRESP

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `curtain dashboard --store URL`: the cluster-wide views of a shared store (workers, queues, running jobs,
/// dead letters), served live for as long as it runs, outliving any driver.
struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve the live dashboard of a Curtain cluster's shared store.",
        discussion: """
            Shows what the store says: workers (heartbeat age, RSS, tasks done), queues, running jobs and dead \
            letters. A driver's own dashboard (CURTAIN_DASHBOARD) adds its tasks: the task stream, where the \
            time went, failures with their inputs.
            """
    )

    @Option(name: .long, help: "The store: redis://[user:pass@]host:port/db, rediss://…, or unix:///path.")
    var store: String

    @Option(name: .long, help: "host:port to serve on (port 0 picks a free one).")
    var listen: String = "127.0.0.1:8265"

    @Option(name: .long, help: "The token asked of visitors (required unless serving on loopback).")
    var token: String?

    func run() async throws {
        let client: RESPClient
        do {
            client = try RESPClient(url: store)
            try await client.ping()
        } catch {
            throw ValidationError("cannot reach the store \(RESPConfiguration.redacted(url: store)): \(error)")
        }
        do {
            let dashboard = try await Dashboard.start(address: listen, token: token, client: client)
            print("curtain: dashboard of \(RESPConfiguration.redacted(url: store)) at \(dashboard.url)")
            fflush(nil)
            while true { try await Task.sleep(for: .seconds(3600)) }
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
    }
}

/// `curtain report JOB --storage URL`: fetches a job's timeline, HTML report and failed runs (written with
/// `JobOptions(report: true)` or `CURTAIN_REPORT=1`) into a local folder.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Fetch a job's timeline (trace.json, for Perfetto), report.html and failures.jsonl from the cluster's storage.")

    @Argument(help: "The job's id (as the job's summary names it).")
    var job: String

    @Option(name: .long, help: "The storage the driver wrote to (its CURTAIN_STORAGE): file:///path or s3://bucket/prefix.")
    var storage: String = ProcessInfo.processInfo.environment["CURTAIN_STORAGE"] ?? CloudConfiguration.defaultStorage

    @Option(name: .long, help: "The folder to write trace.json, report.html and failures.jsonl into.")
    var out: String = "."

    func run() async throws {
        let store = try Storage(url: storage)
        let report = JobReport(storage: storage, job: job)
        var written: [String] = []
        // failures.jsonl (every failed run) is fetched when there is one: reports written before it existed lack it.
        for (key, name) in [(report.traceKey, "trace.json"), (report.htmlKey, "report.html"), (report.failuresKey, "failures.jsonl")] {
            let bytes: [UInt8]
            do {
                bytes = try await store.read(key)
            } catch {
                if name == "failures.jsonl" { continue }
                throw ValidationError("no report of job '\(job)' in \(storage) (\(key): \(error)); was it run with JobOptions(report: true) or CURTAIN_REPORT=1?")
            }
            let path = out + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            written.append(path)
        }
        print(written.joined(separator: "\n"))
    }
}
