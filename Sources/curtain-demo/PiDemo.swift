import ArgumentParser
import Curtain
import Foundation

/// Monte Carlo samples in the unit square: how many fall inside the quarter circle.
///
/// A remote function: `samples` is its capture, the seed its input. The generator is a 64-bit LCG whose
/// high 53 bits make each coordinate, so the same seed gives the same count on every backend.
struct CountHits: RemoteFunction {
    var samples: Int

    func callAsFunction(_ seed: UInt64) async throws -> Int {
        CountHits.count(samples: samples, seed: seed)
    }

    static func count(samples: Int, seed: UInt64) -> Int {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        var hits = 0
        for _ in 0..<samples {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let x = Double(state >> 11) * 0x1p-53
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let y = Double(state >> 11) * 0x1p-53
            if x * x + y * y <= 1 { hits += 1 }
        }
        return hits
    }
}

/// `curtain-demo pi`: π by Monte Carlo, locally with a TaskGroup and through Curtain, with the time ratio.
struct PiDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pi",
        abstract: "Monte Carlo π: a plain Swift TaskGroup (the local baseline) vs Curtain on the configured backend."
    )

    @Option(help: "Number of tasks.")
    var tasks: Int = 64

    @Option(help: "Samples per task.")
    var samples: Int = 10_000_000

    @Flag(help: "Print one JSON line instead of text.")
    var json = false

    func validate() throws {
        guard tasks >= 1 else { throw ValidationError("--tasks must be at least 1") }
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1") }
    }

    func run() async throws {
        // In a worker process this call never returns.
        let cloud = try await Cloud.start(functions: [CountHits.self])
        let samples = self.samples
        let clock = ContinuousClock()

        // The local baseline: the same counts in a TaskGroup, in this process.
        var start = clock.now
        let localHits = await withTaskGroup(of: Int.self) { group in
            for seed in 0..<UInt64(tasks) { group.addTask { CountHits.count(samples: samples, seed: seed) } }
            return await group.reduce(0, +)
        }
        let local = seconds(clock.now - start)

        start = clock.now
        let counts = try await cloud.map(CountHits(samples: samples), over: 0..<UInt64(tasks))
        let remote = seconds(clock.now - start)
        await cloud.shutdown()

        let hits = counts.reduce(0, +)
        guard hits == localHits else {
            throw ValidationError("Curtain counted \(hits) hits but the local run \(localHits): results differ")
        }
        let pi = 4 * Double(hits) / (Double(tasks) * Double(samples))
        let backend = Self.describe(cloud.configuration)
        if json {
            print(
                "{\"pi\":\(pi),\"tasks\":\(tasks),\"backend\":\"\(backend)\",\"local_s\":\(round4(local)),\"curtain_s\":\(round4(remote)),\"ratio\":\(round4(local / remote))}")
        } else {
            print("π ≈ \(pi)  (\(tasks) tasks × \(samples) samples, error \(abs(pi - Double.pi)))")
            print("local TaskGroup: \(round4(local)) s   Curtain (\(backend)): \(round4(remote)) s   ratio local/curtain: \(round4(local / remote))")
        }
    }

    static func describe(_ configuration: CloudConfiguration) -> String {
        switch configuration.backend {
        case .inprocess: return "inprocess"
        case .processes: return "processes(\(configuration.workers))"
        case .store(let url): return url.hasPrefix("unix") ? "unix" : "redis"
        }
    }
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

func round4(_ x: Double) -> Double { (x * 10_000).rounded() / 10_000 }
