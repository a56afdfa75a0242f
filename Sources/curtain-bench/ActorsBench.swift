import ArgumentParser
import Curtain
import CurtainExamples
import CurtainTestSupport
import CurtainRESP
import Foundation

/// `curtain-bench actors`: calls to a distributed actor hosted by a worker process, one at a time and with
/// many in flight, on the embedded store and on redis-server.
struct ActorsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "actors",
        abstract: "Distributed actor calls per second (driver → actor on a worker): sequential, and many in flight.")

    @Option(help: "Sequential calls per run (three runs; the best counts).")
    var calls: Int = 20_000

    @Option(help: "Calls made with many in flight, per run (three runs; the best counts).")
    var pipelined: Int = 200_000

    @Option(help: "Calls in flight at once for the pipelined figure.")
    var inFlight: Int = 256

    @Option(help: "Stores to measure: embedded, redis or both.")
    var stores: String = "embedded,redis"

    @Flag(help: "Reach the stores over Unix sockets (as the embedded default does) instead of TCP on loopback.")
    var unixSocket = false

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    func run() async throws {
        if ProcessInfo.processInfo.environment["CURTAIN_ROLE"] == "worker" {
            _ = try await Cloud.start(functions: [], actors: [Counter.self])
        }
        var figures: [Figure] = []
        for kind in stores.split(separator: ",").compactMap({ StoreKind(rawValue: String($0)) }) {
            let store = try await TestStore.start(kind, unixSocket: unixSocket)
            do {
                figures += try await measure(on: store)
            } catch {
                await store.stop()
                throw error
            }
            await store.stop()
        }
        printTable(figures, json: json)
    }

    private func measure(on store: TestStore) async throws -> [Figure] {
        let url = store.unixSocketPath.map { "unix://" + $0 } ?? store.url
        let cloud = try await Cloud.start(
            functions: [], actors: [Counter.self],
            configuration: CloudConfiguration(backend: .store(url: url), buildID: "actors-\(getpid())"))
        let workers = try startWorkerProcesses(
            1, executable: "/proc/self/exe", arguments: Array(CommandLine.arguments.dropFirst()), url: url,
            buildID: cloud.buildID, idPrefix: "bench")
        defer { for worker in workers { kill(worker.processIdentifier, SIGKILL) } }
        let label = store.kind.rawValue + (store.unixSocketPath == nil ? "" : ", unix")
        let counter = try await cloud.spawn(Counter.self)
        for _ in 0..<1_000 { _ = try await counter.add(1) }  // warm: connections, the worker's first calls

        var sequential = 0.0
        var concurrent = 0.0
        var floor = 0.0
        for _ in 0..<3 {
            let seconds = try await timed { for _ in 0..<calls { _ = try await counter.add(1) } }
            floor = max(floor, try await pingPong(url: url, count: calls))
            sequential = max(sequential, Double(calls) / seconds)
            let total = pipelined
            let window = inFlight
            let pipelinedSeconds = try await timed {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    var started = 0
                    while started < min(window, total) {
                        group.addTask { try await counter.add(1) }
                        started += 1
                    }
                    while try await group.next() != nil {
                        if started < total {
                            group.addTask { try await counter.add(1) }
                            started += 1
                        }
                    }
                }
            }
            concurrent = max(concurrent, Double(total) / pipelinedSeconds)
        }
        let expected = 1_000 + 3 * (calls + pipelined)
        guard try await counter.add(0) == expected else { throw ValidationError("the counter lost calls") }
        for worker in workers { await terminate(worker) }
        await cloud.shutdown()
        return [
            Figure(
                name: "actor calls, sequential 1:1 (\(label))", value: sequential, unit: "calls/s",
                baseline: floor, baselineName: "store ping-pong: RPUSH/BLPOP there and back, one process", target: nil,
                minimum: 15_000),
            Figure(name: "actor calls, \(inFlight) in flight (\(label))", value: concurrent, unit: "calls/s", target: nil, minimum: 100_000),
        ]
    }

    /// The floor of any call carried by the store: one connection pushes to a list another waits on, which
    /// pushes back to a list the first waits on (the four legs of a call), in one process; exchanges/s.
    private func pingPong(url: String, count: Int) async throws -> Double {
        let client = try RESPClient(url: url)
        defer { Task { await client.close() } }
        let echo = Task {
            try await client.withDedicatedConnection { connection in
                for _ in 0..<count {
                    let request = try await connection.send(RESPCommand("BLPOP", "bench:ping", 5))
                    guard let bytes = request.array?.last?.buffer else { throw ValidationError("ping-pong timed out") }
                    _ = try await connection.send(RESPCommand("RPUSH", "bench:pong", bytes))
                }
            }
        }
        let seconds = try await timed {
            try await client.withDedicatedConnection { connection in
                for _ in 0..<count {
                    _ = try await connection.send(RESPCommand("RPUSH", "bench:ping", "ping"))
                    _ = try await connection.send(RESPCommand("BLPOP", "bench:pong", 5))
                }
            }
        }
        try await echo.value
        return Double(count) / seconds
    }
}
