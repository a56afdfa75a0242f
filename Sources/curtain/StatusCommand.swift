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

/// `curtain status --store URL`: the workers, queues, running jobs and dead letters of a shared store.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the workers, queues, running jobs and dead letters of a Curtain cluster.",
        discussion: """
            Reads the store the cluster meets in (the URL workers get as CURTAIN_STORE); changes nothing.
            """
    )

    @Option(name: .long, help: "The store: redis://[user:pass@]host:port/db, rediss://…, or unix:///path.")
    var store: String

    @Option(name: .long, help: "How many of the latest dead letters to show per build.")
    var dead: Int = 10

    @Flag(name: .long, help: "Print one JSON object instead of tables.")
    var json = false

    func run() async throws {
        let client: RESPClient
        do {
            client = try RESPClient(url: store)
        } catch {
            throw ValidationError("--store \(RESPConfiguration.redacted(url: store)): \(error)")
        }
        let status: ClusterStatus
        do {
            status = try await ClusterStatus.read(from: client, deadLetterLimit: dead)
        } catch {
            await client.close()
            print("curtain status: cannot read \(RESPConfiguration.redacted(url: store)): \(error)")
            throw ExitCode(1)
        }
        await client.close()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
            return
        }
        print(Self.render(status, now: Int(time(nil)) * 1000))
    }

    /// The tables.
    static func render(_ status: ClusterStatus, now: Int) -> String {
        var out = ""
        out += "WORKERS (\(status.workers.count))\n"
        out += table(
            ["ID", "HOST", "PID", "BUILD", "TASKS DONE", "IN FLIGHT", "LAST HEARTBEAT"],
            status.workers.map {
                [$0.id, $0.host, "\($0.pid)", $0.build, "\($0.tasksDone)", "\($0.inFlight)", ago($0.lastBeat, now: now)]
            })
        out += "\nQUEUES\n"
        out += table(["BUILD", "DEPTH", "PLACED", "KEY"], status.queues.map { [$0.build, "\($0.depth)", "\($0.placed)", $0.key] })
        out += "\nRUNNING JOBS (\(status.jobs.count))\n"
        out += table(
            ["JOB", "FUNCTION", "DRIVER", "PROGRESS", "FAILED", "RETRIES", "DUPLICATES", "STARTED"],
            status.jobs.map {
                [$0.id, $0.function, $0.driver, "\($0.completed + $0.failed)/\($0.submitted)", "\($0.failed)", "\($0.retries)",
                 "\($0.duplicates)", ago($0.started, now: now)]
            })
        out += "\nDEAD LETTERS (\(status.deadLetters.count))\n"
        out += table(
            ["BUILD", "JOB", "TASK", "FUNCTION", "ATTEMPTS", "WORKER", "WHEN", "REASON"],
            status.deadLetters.map {
                [$0.build, $0.job, "\($0.index)", $0.function, "\($0.attempts)", $0.worker, ago($0.at, now: now), $0.reason]
            })
        return out
    }

    private static func ago(_ unixMilliseconds: Int, now: Int) -> String {
        guard unixMilliseconds > 0 else { return "?" }
        let seconds = max(0, (now - unixMilliseconds) / 1000)
        return seconds < 120 ? "\(seconds)s ago" : "\(seconds / 60)m ago"
    }

    private static func table(_ header: [String], _ rows: [[String]]) -> String {
        guard !rows.isEmpty else { return "  (none)\n" }
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            "  " + cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ") + "\n"
        }
        return line(header) + rows.map(line).joined()
    }
}
