import ArgumentParser
import Curtain
import CurtainExamples
import CurtainRESP
import Distributed
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `curtain-demo cluster`: the same program as driver and as workers on other hosts, meeting in Redis.
///
/// ```sh
/// redis-server --port 6390 &
/// CURTAIN_ROLE=worker CURTAIN_STORE=redis://10.0.0.5:6390 curtain-demo cluster worker   # on each worker host
/// CURTAIN_BACKEND=redis://10.0.0.5:6390 curtain-demo cluster run                        # on the driver's host
/// ```
struct ClusterDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "A π job and a shared-memory job on workers started anywhere (CURTAIN_BACKEND=redis://…).",
        subcommands: [Run.self, Actors.self, Worker.self, BuildIDCommand.self]
    )

    /// The functions this program's workers run.
    static let functions: [any RemoteFunction.Type] = [CountHits.self, FillSlot.self, ClusterMark.self]

    /// `cluster run`: the driver.
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a π job and a shared-memory job concurrently and check both results exactly.")

        @Option(name: .customLong("pi-tasks"), help: "Tasks of the π job.")
        var piTasks: Int = 64

        @Option(help: "Samples per π task.")
        var samples: Int = 2_000_000

        @Option(name: .customLong("memory-tasks"), help: "Tasks of the shared-memory job (each writes one slot).")
        var memoryTasks: Int = 64

        @Option(name: .customLong("task-ms"), help: "How long each shared-memory task takes, in milliseconds.")
        var taskMilliseconds: Int = 100

        @Option(help: "Retries of a task whose function threw (a store restart can fail a shared-memory write).")
        var retries: Int = 5

        func validate() throws {
            guard piTasks >= 1, memoryTasks >= 1 else { throw ValidationError("--pi-tasks and --memory-tasks must be at least 1") }
            guard samples >= 1, taskMilliseconds >= 0, retries >= 0 else {
                throw ValidationError("--samples must be positive, --task-ms and --retries not negative")
            }
        }

        func run() async throws {
            let cloud = try await Cloud.start(functions: ClusterDemo.functions)
            let slots = try cloud.memory.dictionary("slots", of: [Int: Int].self)
            let summaries = SummaryBox()
            let piOptions = JobOptions(retries: retries, onSummary: { summary in summaries.set("pi", summary) })
            let memoryOptions = JobOptions(retries: retries, onSummary: { summary in summaries.set("memory", summary) })
            print("started")
            fflush(nil)
            async let hits = cloud.map(CountHits(samples: samples), over: 0..<UInt64(piTasks), options: piOptions)
            async let written = cloud.map(
                FillSlot(slots: slots, milliseconds: taskMilliseconds), over: 0..<memoryTasks, options: memoryOptions)
            var failed = false
            func report(_ name: String, _ verdict: String) {
                let summary = summaries.get(name)
                let figures = summary.map { " retried=\($0.retries) duplicates=\($0.duplicates)" } ?? ""
                print("\(name): \(verdict)\(figures)")
            }
            do {
                let counts = try await hits
                // Exact for a sample of seeds (recounted here), and π within what the sample size allows.
                let checked = stride(from: 0, to: counts.count, by: max(1, counts.count / 8))
                let wrong = checked.filter { counts[$0] != CountHits.count(samples: samples, seed: UInt64($0)) }
                let pi = 4 * Double(counts.reduce(0, +)) / (Double(piTasks) * Double(samples))
                if counts.count == piTasks && wrong.isEmpty && abs(pi - Double.pi) < 0.01 {
                    report("pi", "ok estimate=\(pi) tasks=\(counts.count)")
                } else {
                    failed = true
                    report("pi", "FAILED estimate=\(pi) tasks=\(counts.count) wrong seeds=\(wrong)")
                }
            } catch {
                failed = true
                report("pi", "FAILED \(error)")
            }
            do {
                let indices = try await written
                let stored = try await slots.all()
                let missing = (0..<memoryTasks).filter { stored[$0] != FillSlot.value(for: $0) }
                if indices == Array(0..<memoryTasks) && missing.isEmpty && stored.count == memoryTasks {
                    report("memory", "ok slots=\(stored.count)")
                } else {
                    failed = true
                    report("memory", "FAILED slots=\(stored.count) wrong=\(missing.prefix(10))")
                }
            } catch {
                failed = true
                report("memory", "FAILED \(error)")
            }
            fflush(nil)
            await cloud.shutdown()
            if failed { throw ExitCode(1) }
        }
    }

    /// `cluster actors`: direct actor calls between hosts, and what a caller sees when the host is killed
    /// or cut off mid-call (`Scripts/cluster-test.sh` checks the lines it prints).
    struct Actors: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Call an actor on a given worker, then wait on a call while the script kills or cuts off its host.")

        @Option(name: .customLong("kill-worker"), help: "The worker (its CURTAIN_WORKER_ID) whose actor is called, then killed mid-call.")
        var killWorker: String

        @Option(name: .customLong("cut-worker"), help: "The worker whose actor is waited on while its host's link is cut.")
        var cutWorker: String

        @Option(help: "Sequential calls before the waits.")
        var calls: Int = 2_000

        func run() async throws {
            let cloud = try await Cloud.start(functions: ClusterDemo.functions, actors: [ClusterProbe.self])
            let clock = ContinuousClock()
            for (label, worker) in [("kill", killWorker), ("cut", cutWorker)] {
                let probe = try await cloud.spawn(ClusterProbe.self, on: worker)
                let start = clock.now
                var total = 0
                for _ in 0..<calls { total = try await probe.add(1) }
                let seconds = Double((clock.now - start).components.attoseconds) * 1e-18 + Double((clock.now - start).components.seconds)
                print("\(label)-calls \(total == calls ? "ok" : "WRONG total=\(total)") host=\(probe.id.host) per_s=\(Int(Double(calls) / seconds))")
                print("\(label)-wait started")
                fflush(nil)
                let waited = clock.now
                do {
                    _ = try await probe.pause(milliseconds: 120_000)
                    print("\(label)-wait returned")
                } catch let error as ActorCallError {
                    let ms = Int((clock.now - waited) / .milliseconds(1))
                    print("\(label)-wait lost kind=\(error.kind) ms=\(ms) message=\(error.message)")
                }
                fflush(nil)
            }
            await cloud.shutdown()
        }
    }

    /// `cluster worker`: what every worker host runs (`CURTAIN_ROLE=worker CURTAIN_STORE=…`; or
    /// `CURTAIN_ROLE=http-worker` to serve leases on `PORT`, or on AWS Lambda, its Runtime API).
    struct Worker: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve as a worker (needs CURTAIN_ROLE=worker or http-worker, and CURTAIN_STORE=redis://…); never returns.")

        func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            guard ["worker", "http-worker"].contains(environment["CURTAIN_ROLE"] ?? "") || environment["AWS_LAMBDA_RUNTIME_API"] != nil else {
                throw ValidationError("set CURTAIN_ROLE=worker (or http-worker) and CURTAIN_STORE=<the store's URL> to serve as a worker")
            }
            _ = try await Cloud.start(functions: ClusterDemo.functions)
        }
    }

    /// `cluster build-id`: the build id of this executable (its task queue is `curtain:{<id>}:queue`).
    struct BuildIDCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "build-id", abstract: "Print this executable's build id (its queue is curtain:{<id>}:queue).")

        func run() async throws {
            let cloud = try await Cloud.start(functions: ClusterDemo.functions, configuration: CloudConfiguration(backend: .inprocess, workers: 1))
            print(cloud.buildID)
            await cloud.shutdown()
        }
    }
}

/// The jobs' summaries, by name.
final class SummaryBox: Sendable {
    private let summaries = Mutex<[String: JobSummary]>([:])
    func set(_ name: String, _ summary: JobSummary) { summaries.withLock { $0[name] = summary } }
    func get(_ name: String) -> JobSummary? { summaries.withLock { $0[name] } }
}

/// Writes one slot of a shared dictionary after `milliseconds` of work: idempotent, so a task run twice
/// (its worker died, or a store restart failed its write and it was retried) leaves the same state.
struct FillSlot: RemoteFunction {
    var slots: SharedDictionary<Int, Int>
    var milliseconds: Int

    static func value(for index: Int) -> Int { index &* index &+ 7 }

    func callAsFunction(_ index: Int) async throws -> Int {
        try await Task.sleep(for: .milliseconds(milliseconds))
        try await slots.set(Self.value(for: index), forKey: index)
        return index
    }
}

/// The actor `cluster actors` calls across hosts.
distributed actor ClusterProbe: SpawnableActor {
    var total = 0

    init(actorSystem: CurtainActorSystem) {
        self.actorSystem = actorSystem
    }

    /// Adds `n`; returns the new total.
    distributed func add(_ n: Int) -> Int {
        total += n
        return total
    }

    /// Waits `milliseconds`, then returns them (a call that is in flight when its host goes away).
    distributed func pause(milliseconds: Int) async throws -> Int {
        try await Task.sleep(for: .milliseconds(milliseconds))
        return milliseconds
    }
}

/// Registered so that forged queue entries can name a real function: it sets `curtain:test:marker` in the
/// workers' store, so a test can see whether a forgery ever ran.
struct ClusterMark: RemoteFunction {
    func callAsFunction(_ input: Int) async throws -> Int {
        guard let url = ProcessInfo.processInfo.environment["CURTAIN_STORE"] else { return 0 }
        let client = try RESPClient(url: url)
        _ = try await client.send(RESPCommand("SET", "curtain:test:marker", "1"))
        await client.close()
        return 1
    }
}
