import ArgumentParser
import Curtain
import CurtainExamples

/// Weights shared by local threads without locks, as HOGWILD! does: races between threads are the method.
struct RacyWeights: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Double>
}

/// `curtain-demo sgd`: HOGWILD! SGD on a sparse regression, locally, on naive remote memory, and two-tier.
struct SGDDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sgd",
        abstract: "HOGWILD! SGD three ways: local threads, Curtain with every weight access remote, Curtain two-tier.")

    @Option(help: "Samples in the synthetic dataset.")
    var samples: Int = 500_000

    @Option(help: "Weights.")
    var dimensions: Int = 1_000_000

    @Option(help: "Features per sample.")
    var nonzeros: Int = 20

    @Option(help: "Passes over the data.")
    var epochs: Int = 10

    @Option(help: "Learning rate.")
    var rate: Double = 0.05

    @Option(help: "Samples for the naive remote-memory run (one pass; its time is also scaled to the full run).")
    var naiveSamples: Int = 2_000

    @Option(help: "Two-tier: writes between exchanges (and at most this many more while one runs).")
    var pushEvery: Int = 100_000

    @Option(help: "Two-tier: milliseconds between exchanges at most.")
    var intervalMs: Int = 50

    @Option(name: .customLong("local-runs"), help: "Local baseline runs; their median time and loss are the baseline.")
    var localRuns_: Int = 3

    @Option(help: "The dataset's seed.")
    var seed: UInt64 = 7

    @Flag(help: "Print one JSON line instead of text.")
    var json = false

    func validate() throws {
        guard samples >= 2, dimensions >= 1, nonzeros >= 1, epochs >= 1, naiveSamples >= 2, pushEvery >= 1, intervalMs >= 1,
            localRuns_ >= 1
        else {
            throw ValidationError("every count must be positive (samples and naive samples at least 2)")
        }
    }

    func run() async throws {
        // In a worker process this call never returns.
        let cloud = try await Cloud.start(functions: [CountHits.self, Noop.self, TwoTierSGD.self, NaiveRemoteSGD.self])
        try await cloud.waitForWorkers()
        let problem = SparseRegression(dimensions: dimensions, nonzeros: nonzeros, samples: samples, seed: seed)
        let parts = max(1, cloud.configuration.workers)
        func shards(_ n: Int) -> [[Int]] {
            (0..<parts).map { p in [n * p / parts, n * (p + 1) / parts] }
        }
        let clock = ContinuousClock()

        // (a) Local threads sharing a plain array: the median of a few runs, since HOGWILD!'s races make one
        // run's loss (and time) vary by several percent.
        let buffer = UnsafeMutableBufferPointer<Double>.allocate(capacity: dimensions)
        defer { buffer.deallocate() }
        let shared = RacyWeights(buffer: buffer)
        let (epochs, rate) = (self.epochs, self.rate)
        var localRuns: [(seconds: Double, loss: Double)] = []
        for _ in 0..<localRuns_ {
            buffer.initialize(repeating: 0)
            let began = clock.now
            await withTaskGroup(of: Void.self) { group in
                for shard in shards(samples) {
                    group.addTask {
                        let w = shared.buffer
                        for _ in 0..<epochs {
                            for i in shard[0]..<shard[1] {
                                problem.step(i, rate: rate, read: { w[$0] }, write: { w[$0] = $1 })
                            }
                        }
                    }
                }
            }
            localRuns.append((seconds(clock.now - began), problem.loss(Array(buffer))))
        }
        let localSeconds = median(localRuns.map(\.seconds))
        let localLoss = median(localRuns.map(\.loss))
        let localLossRange = (localRuns.map(\.loss).min()!, localRuns.map(\.loss).max()!)
        var start = clock.now

        // (b) Naive remote memory: every weight access is a store round trip (a smaller run, one pass).
        let naiveWeights = try await cloud.memory.array("naive", of: Double.self, count: dimensions)
        start = clock.now
        _ = try await cloud.map(NaiveRemoteSGD(problem: problem, weights: naiveWeights, rate: rate), over: shards(naiveSamples))
        let naiveSeconds = seconds(clock.now - start)
        let naiveScaled = naiveSeconds * Double(samples * epochs) / Double(naiveSamples)
        let naiveLoss = problem.loss(try await naiveWeights.pull().elements)

        // (c) Two-tier: each worker trains on a local replica, exchanging in the background.
        let weights = try await cloud.memory.array("weights", of: Double.self, count: dimensions)
        let job = TwoTierSGD(
            problem: problem, weights: weights, epochs: epochs, rate: rate, pushEvery: pushEvery,
            intervalMilliseconds: intervalMs)
        start = clock.now
        _ = try await cloud.map(job, over: shards(samples))
        let twoTierSeconds = seconds(clock.now - start)
        let twoTierLoss = problem.loss(try await weights.pull().elements)
        await cloud.shutdown()

        let backend = PiDemo.describe(cloud.configuration)
        if json {
            print(
                "{\"samples\":\(samples),\"epochs\":\(epochs),\"backend\":\"\(backend)\",\"local_runs\":\(localRuns.count),\"local_s\":\(round4(localSeconds)),\"local_loss\":\(localLoss),\"local_loss_min\":\(localLossRange.0),\"local_loss_max\":\(localLossRange.1),\"naive_samples\":\(naiveSamples),\"naive_s\":\(round4(naiveSeconds)),\"naive_scaled_s\":\(round4(naiveScaled)),\"naive_loss\":\(naiveLoss),\"two_tier_s\":\(round4(twoTierSeconds)),\"two_tier_loss\":\(twoTierLoss),\"ratio_naive\":\(round4(localSeconds / naiveScaled)),\"ratio_two_tier\":\(round4(localSeconds / twoTierSeconds)),\"loss_gap\":\(round4(twoTierLoss / localLoss - 1))}")
        } else {
            print("HOGWILD! SGD, \(samples) samples × \(epochs) epochs, \(dimensions) weights, \(nonzeros) features per sample, \(backend)")
            print("local threads:      \(round4(localSeconds)) s   loss \(localLoss)   (median of \(localRuns.count) runs; loss \(localLossRange.0)–\(localLossRange.1))")
            print("naive remote:       \(round4(naiveSeconds)) s for \(naiveSamples) samples × 1 epoch (≈ \(round4(naiveScaled)) s for the full run)   loss \(naiveLoss)   ratio local/naive ≈ \(round4(localSeconds / naiveScaled))")
            print("Curtain two-tier:   \(round4(twoTierSeconds)) s   loss \(twoTierLoss)   ratio local/two-tier \(round4(localSeconds / twoTierSeconds))   loss vs local \(round4(100 * (twoTierLoss / localLoss - 1)))%")
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count).
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
