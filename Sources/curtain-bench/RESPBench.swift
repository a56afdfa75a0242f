import ArgumentParser
import CurtainRESP
import CurtainStore
import CurtainTestSupport
import Foundation
import NIOCore

/// `curtain-bench resp`: the wire layer against Redis' own tools.
///
/// - our client vs `redis-benchmark` against the same `redis-server`: one connection sequential GET,
///   50 concurrent callers, 32 commands pipelined on one connection;
/// - the embedded store vs `redis-server`, both driven by `redis-benchmark -c 50 -t set,get,incr,lpush,lpop`.
struct RESPBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resp",
        abstract: "RESP client and embedded store vs redis-benchmark and redis-server."
    )

    @Option(help: "Requests per measurement.")
    var requests: Int = 200_000

    @Option(help: "Repetitions of each measurement (the best is kept, as redis-benchmark users do).")
    var repeats: Int = 3

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    @Option(help: "Measure only these parts (comma-separated): sequential, concurrent, pipelined, store.")
    var only: String = "sequential,concurrent,pipelined,store"

    func validate() throws {
        let known: Set<Substring> = ["sequential", "concurrent", "pipelined", "store"]
        for part in only.split(separator: ",") where !known.contains(part) {
            throw ValidationError("--only: unknown part '\(part)'; use sequential, concurrent, pipelined or store")
        }
        guard requests >= 1000 else { throw ValidationError("--requests must be at least 1000") }
    }

    func run() async throws {
        // The same harness the conformance tests use: redis-server on a free port, killed afterwards.
        try await withTestStore(.redis) { redis in try await measure(redis: redis) }
    }

    private func measure(redis: TestStore) async throws {
        let store = try await StoreServer.start(configuration: StoreConfiguration(port: 0))
        var figures: [Figure] = []

        let parts = Set(only.split(separator: ",").map(String.init))
        // 1. One connection, sequential GET.
        let seed = try RESPClient(url: redis.url)
        _ = try await seed.send("SET", "key:__rand_int__", "xxx")
        await seed.close()
        if parts.contains("sequential") {
        let rbSequential = try best { try RedisBenchmark.run(port: redis.port, test: "get", clients: 1, requests: requests / 2) }
        let ourSequential = try await bestAsync {
            try await sequentialGets(url: redis.url, requests: requests / 2, onEventLoop: false)
        }
        figures.append(Figure(
            name: "client 1 conn sequential GET", value: ourSequential, unit: "ops/s", baseline: rbSequential,
            baselineName: "redis-benchmark -c 1"))
        let ourPinned = try await bestAsync {
            try await sequentialGets(url: redis.url, requests: requests / 2, onEventLoop: true)
        }
        figures.append(Figure(
            name: "client 1 conn sequential GET (EL exec)", value: ourPinned, unit: "ops/s", baseline: rbSequential,
            baselineName: "redis-benchmark -c 1", target: 0.9))
        }

        // 2. 50 concurrent callers.
        if parts.contains("concurrent") {
        let rbConcurrent = try best { try RedisBenchmark.run(port: redis.port, test: "get", clients: 50, requests: requests) }
        let ourConcurrent = try await bestAsync { try await concurrentGets(url: redis.url, callers: 50, requests: requests) }
        figures.append(Figure(
            name: "client 50 concurrent GET", value: ourConcurrent, unit: "ops/s", baseline: rbConcurrent,
            baselineName: "redis-benchmark -c 50"))
        }

        // 3. 32 pipelined on one connection.
        if parts.contains("pipelined") {
        let rbPipelined = try best {
            try RedisBenchmark.run(port: redis.port, test: "get", clients: 1, requests: requests * 5, pipeline: 32)
        }
        let ourPipelined = try await bestAsync { try await pipelinedGets(url: redis.url, depth: 32, requests: requests * 5) }
        figures.append(Figure(
            name: "client 1 conn 32 pipelined GET (EL exec)", value: ourPipelined, unit: "ops/s", baseline: rbPipelined,
            baselineName: "redis-benchmark -c 1 -P 32", target: 0.5))
        }

        // 4. The embedded store vs redis-server under redis-benchmark -c 50.
        guard let storePort = store.port else { throw ValidationError("the embedded store bound no TCP port") }
        for test in ["set", "get", "incr", "lpush", "lpop"] where parts.contains("store") {
            let onRedis = try best { try RedisBenchmark.run(port: redis.port, test: test, clients: 50, requests: requests) }
            let onStore = try best { try RedisBenchmark.run(port: storePort, test: test, clients: 50, requests: requests) }
            figures.append(Figure(
                name: "store \(test.uppercased()) -c 50", value: onStore, unit: "ops/s", baseline: onRedis,
                baselineName: "redis-server", target: 0.7))
        }
        try await store.shutdown()
        printTable(figures, json: json)
    }

    private func best(_ measure: () throws -> Double) throws -> Double {
        var result = 0.0
        for _ in 0..<max(repeats, 1) { result = max(result, try measure()) }
        return result
    }

    private func bestAsync(_ measure: () async throws -> Double) async throws -> Double {
        var result = 0.0
        for _ in 0..<max(repeats, 1) { result = max(result, try await measure()) }
        return result
    }

    private func sequentialGets(url: String, requests: Int, onEventLoop: Bool) async throws -> Double {
        let connection = try await RESPConnection.connect(configuration: RESPConfiguration(url: url))
        let command = RESPCommand("GET", "key:__rand_int__")
        let loop: @Sendable () async throws -> Void = {
            for _ in 0..<requests { _ = try await connection.send(command) }
        }
        let elapsed = try await timed {
            if onEventLoop {
                try await withTaskExecutorPreference(connection.taskExecutor) { try await loop() }
            } else {
                try await loop()
            }
        }
        await connection.close()
        return Double(requests) / elapsed
    }

    private func concurrentGets(url: String, callers: Int, requests: Int) async throws -> Double {
        let client = try RESPClient(url: url)
        try await client.ping()
        let command = RESPCommand("GET", "key:__rand_int__")
        let perCaller = requests / callers
        let elapsed = try await timed {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<callers {
                    group.addTask {
                        for _ in 0..<perCaller { _ = try await client.send(command) }
                    }
                }
                try await group.waitForAll()
            }
        }
        await client.close()
        return Double(perCaller * callers) / elapsed
    }

    private func pipelinedGets(url: String, depth: Int, requests: Int) async throws -> Double {
        let connection = try await RESPConnection.connect(configuration: RESPConfiguration(url: url))
        let batch = Array(repeating: RESPCommand("GET", "key:__rand_int__"), count: depth)
        let rounds = requests / depth
        // Like the sequential figure's second variant, the caller runs on the connection's event loop.
        let elapsed = try await timed {
            try await withTaskExecutorPreference(connection.taskExecutor) {
                for _ in 0..<rounds { _ = try await connection.pipeline(batch) }
            }
        }
        await connection.close()
        return Double(rounds * depth) / elapsed
    }
}

/// Wall-clock seconds taken by `body`.
func timed(_ body: () async throws -> Void) async rethrows -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    try await body()
    let d = clock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

/// Runs Redis' own tools.
enum RedisBenchmark {
    /// Runs `redis-benchmark` for one test and returns its requests per second.
    static func run(
        port: Int, socket: String? = nil, test: String, clients: Int, requests: Int, pipeline: Int = 1
    ) throws -> Double {
        let server = socket.map { ["-s", $0] } ?? ["-p", String(port)]
        let output = try tool(
            "redis-benchmark",
            server + ["-t", test, "-c", String(clients), "-n", String(requests), "-P", String(pipeline), "-q"])
        // The last line looks like "GET: 41322.31 requests per second, p50=0.023 msec".
        for line in output.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).reversed() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let rest = line[line.index(after: colon)...].split(separator: " ")
            if let first = rest.first, let value = Double(first) { return value }
        }
        throw ValidationError("could not read redis-benchmark's output: \(output)")
    }

    static func tool(_ name: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestStore.executablePath(name))
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
