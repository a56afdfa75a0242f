import ArgumentParser
import Curtain
import CurtainTestSupport
import Foundation

/// `n` locked increments of a shared value: take the lock, read, write the value plus one, release.
struct LockedIncrements: RemoteFunction {
    var lock: SharedLock
    var value: SharedValue<Int>

    func callAsFunction(_ n: Int) async throws -> Int {
        for _ in 0..<n {
            try await lock.withLock(timeout: .seconds(60)) { _ in
                let seen = try await value.load() ?? 0
                try await value.store(seen + 1)
            }
        }
        return n
    }
}

/// `n` locked increments of a shared mutex's value: `withLock { $0 += 1 }` (the value travels with the lock),
/// optionally with the loop inside `withAffinity`.
struct MutexIncrements: RemoteFunction {
    var mutex: SharedMutex<Int>
    /// Whether the loop runs on the store connection's I/O thread (`withAffinity`).
    var affine = false

    func callAsFunction(_ n: Int) async throws -> Int {
        if affine {
            try await mutex.withAffinity {
                for _ in 0..<n { try await mutex.withLock(timeout: .seconds(60)) { $0 += 1 } }
            }
            return n
        }
        for _ in 0..<n {
            try await mutex.withLock(timeout: .seconds(60)) { $0 += 1 }
        }
        return n
    }
}

/// `curtain-bench memory-ops`: shared-memory operations on the embedded store and on redis-server.
struct MemoryOpsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory-ops",
        abstract: "Shared memory: atomic adds vs redis-benchmark INCR, locked increments by 2 workers, pull/push of 10M Doubles.")

    @Option(help: "Atomic adds from one client (three runs, interleaved with redis-benchmark's).")
    var adds: Int = 20_000

    @Option(help: "Locked increments per worker.")
    var increments: Int = 2_000

    @Option(help: "Elements of the pulled and pushed array.")
    var elements: Int = 10_000_000

    @Option(help: "Stores to measure: embedded, redis or both.")
    var stores: String = "embedded,redis"

    @Flag(help: "Reach the stores over Unix sockets (as the embedded default does) instead of TCP on loopback.")
    var unixSocket = false

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    func run() async throws {
        // A worker started below by hand re-enters here and never returns from Cloud.start.
        if ProcessInfo.processInfo.environment["CURTAIN_ROLE"] == "worker" {
            _ = try await Cloud.start(functions: [LockedIncrements.self, MutexIncrements.self])
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
            functions: [LockedIncrements.self, MutexIncrements.self],
            configuration: CloudConfiguration(backend: .store(url: url), buildID: "memory-ops-\(getpid())"))
        // Copies of this executable, started by hand as a cluster's workers would be.
        let workers = try startWorkerProcesses(
            2, executable: "/proc/self/exe", arguments: Array(CommandLine.arguments.dropFirst()), url: url,
            buildID: cloud.buildID, idPrefix: "bench")
        defer { for worker in workers { kill(worker.processIdentifier, SIGKILL) } }
        let label = store.kind.rawValue + (store.unixSocketPath == nil ? "" : ", unix")
        var figures: [Figure] = []

        // Atomic adds, one client, one at a time, against redis-benchmark's INCR with one connection; the loop
        // runs on the store connection's I/O thread (`withAffinity`), as a latency-bound loop should.
        // Three of each, interleaved, best of each: round trips on this kind of machine drift by 2× from
        // one second to the next, and both sides should get the good moments.
        let counter = try cloud.memory.counter("adds")
        var (addRate, incr) = (0.0, 0.0)
        for _ in 0..<3 {
            let seconds = try await timed {
                try await cloud.memory.withAffinity { for _ in 0..<adds { try await counter.add(1) } }
            }
            addRate = max(addRate, Double(adds) / seconds)
            incr = max(incr, try RedisBenchmark.run(
                port: store.port, socket: store.unixSocketPath, test: "incr", clients: 1, requests: adds))
        }
        figures.append(Figure(
            name: "atomic add, 1 client (\(label))", value: addRate, unit: "ops/s", baseline: incr,
            baselineName: "redis-benchmark -c 1 INCR (best of 3 each, interleaved)", target: 0.9))

        // Locked increments from two worker processes: a mutex (lock and value in one), then a lock around a
        // separate value (four round trips per increment), for contrast.
        let mutexJob = MutexIncrements(mutex: try await cloud.memory.mutex("counter", initialValue: 0, lease: .seconds(10)))
        _ = try await cloud.map(mutexJob, over: [1, 1])  // both workers connected and warm
        let mutexStart = try await mutexJob.mutex.load()
        let mutexSeconds = try await timed { _ = try await cloud.map(mutexJob, over: [increments, increments]) }
        guard try await mutexJob.mutex.load() == mutexStart + 2 * increments else {
            throw ValidationError("mutex increments lost updates")
        }
        figures.append(Figure(
            name: "locked increments, 2 workers, mutex (\(label))", value: Double(2 * increments) / mutexSeconds,
            unit: "ops/s", target: nil, minimum: 10_000))
        var affine = mutexJob
        affine.affine = true
        let affineStart = try await affine.mutex.load()
        let affineSeconds = try await timed { _ = try await cloud.map(affine, over: [increments, increments]) }
        guard try await affine.mutex.load() == affineStart + 2 * increments else {
            throw ValidationError("mutex increments lost updates")
        }
        figures.append(Figure(
            name: "  the same loop inside withAffinity (\(label))", value: Double(2 * increments) / affineSeconds,
            unit: "ops/s", target: nil, minimum: 10_000))
        let job = LockedIncrements(
            lock: try cloud.memory.lock("counter-lock", lease: .seconds(10)), value: try cloud.memory.value("locked", of: Int.self))
        _ = try await cloud.map(job, over: [1, 1])
        try await job.value.store(0)
        let lockedSeconds = try await timed { _ = try await cloud.map(job, over: [increments, increments]) }
        guard try await job.value.load() == 2 * increments else { throw ValidationError("locked increments lost updates") }
        figures.append(Figure(
            name: "locked increments, 2 workers, lock + value (\(label))", value: Double(2 * increments) / lockedSeconds,
            unit: "ops/s", target: nil))

        // Pull and push of a large array of Doubles.
        let array = try await cloud.memory.array("big", of: Double.self, count: elements)
        var local = try await array.pull()
        for i in stride(from: 0, to: elements, by: 1) { local[i] = Double(i) }
        let megabytes = Double(elements * 8) / 1_000_000
        let pushSeconds = try await timed { try await array.push(&local) }
        let pullSeconds = try await timed { local = try await array.pull() }
        guard local[elements - 1] == Double(elements - 1) else { throw ValidationError("pull returned wrong data") }
        figures.append(Figure(name: "push \(elements / 1_000_000)M Doubles (\(label))", value: megabytes / pushSeconds, unit: "MB/s", target: nil, minimum: 500))
        figures.append(Figure(name: "pull \(elements / 1_000_000)M Doubles (\(label))", value: megabytes / pullSeconds, unit: "MB/s", target: nil, minimum: 500))
        for worker in workers { await terminate(worker) }
        await cloud.shutdown()
        return figures
    }
}
