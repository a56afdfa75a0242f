import ArgumentParser
import Curtain
import CurtainExamples

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

    @Flag(help: "Print Curtain's one-line job summary (tasks, workers, cold start, p50/p99 task time, retries) on stderr.")
    var summary = false

    func validate() throws {
        guard tasks >= 1 else { throw ValidationError("--tasks must be at least 1") }
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1") }
    }

    func run() async throws {
        // In a worker process this call never returns.
        let cloud = try await Cloud.start(functions: [CountHits.self, Noop.self])
        let samples = self.samples
        let clock = ContinuousClock()
        // Neither run is charged the workers' start-up: they start before the baseline, not during it.
        try await cloud.waitForWorkers()

        // The local baseline: the same counts in a TaskGroup, in this process.
        var start = clock.now
        let localHits = await CountHits.localHits(samples: samples, seeds: 0..<UInt64(tasks))
        let local = seconds(clock.now - start)

        start = clock.now
        let counts = try await cloud.map(
            CountHits(samples: samples), over: 0..<UInt64(tasks), options: JobOptions(summary: summary))
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
