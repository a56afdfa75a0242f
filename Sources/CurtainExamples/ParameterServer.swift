public import Curtain
public import Distributed

/// A counter actor for the benchmarks: the smallest useful remote call.
public distributed actor Counter: SpawnableActor {
    var total = 0

    /// Creates a counter at 0.
    public init(actorSystem: CurtainActorSystem) {
        self.actorSystem = actorSystem
    }

    /// Adds `n`; returns the new total.
    public distributed func add(_ n: Int) -> Int {
        total += n
        return total
    }

    /// Adds how many values were sent (a call that carries data); returns the new total.
    public distributed func addCount(of values: [Double]) -> Int {
        total += values.count
        return total
    }
}

/// Sends data to a ``Counter`` from wherever it lives: what `curtain-bench actors` places beside the counter,
/// or not, to show the bytes that placement keeps off the network.
public distributed actor Feeder: SpawnableActor {
    /// Creates a feeder.
    public init(actorSystem: CurtainActorSystem) {
        self.actorSystem = actorSystem
    }

    /// Calls `counter.addCount(of: values)` `times` times; returns the counter's last total.
    public distributed func feed(_ counter: Counter, values: [Double], times: Int) async throws -> Int {
        var last = 0
        for _ in 0..<times { last = try await counter.addCount(of: values) }
        return last
    }
}

/// A parameter server: holds the weights of a linear model and applies the gradients its trainers send
/// (asynchronous SGD, as in the parameter-server architecture).
public distributed actor ParameterServer: SpawnableActor {
    var weights: [Double] = []
    var rate = 0.0
    var updates = 0

    /// Creates an empty server; ``configure(dimensions:rate:)`` sizes it.
    public init(actorSystem: CurtainActorSystem) {
        self.actorSystem = actorSystem
    }

    /// Resets the weights to `dimensions` zeros and sets the learning rate.
    public distributed func configure(dimensions: Int, rate: Double) {
        weights = Array(repeating: 0, count: dimensions)
        self.rate = rate
        updates = 0
    }

    /// The current weights.
    public distributed func pull() -> [Double] { weights }

    /// Applies one gradient and returns the weights after it (so a trainer needs one call per step).
    public distributed func push(_ gradient: [Double]) -> [Double] {
        for j in 0..<min(weights.count, gradient.count) { weights[j] -= rate * gradient[j] }
        updates += 1
        return weights
    }

    /// How many gradients were applied.
    public distributed func applied() -> Int { updates }
}

/// A dense linear-regression problem generated from a seed (like ``SparseRegression``, nothing is stored):
/// sample `i` has `dimensions` features in [-1, 1) and the label `w*·x + noise`.
public struct DenseRegression: Codable, Sendable, Hashable {
    /// Features per sample.
    public var dimensions: Int
    /// Samples in the dataset.
    public var samples: Int
    /// The dataset's seed.
    public var seed: UInt64

    /// Creates a problem.
    public init(dimensions: Int, samples: Int, seed: UInt64) {
        self.dimensions = dimensions
        self.samples = samples
        self.seed = seed
    }

    @inline(__always) func value(_ i: Int, _ j: Int) -> Double {
        2 * SparseRegression.unit(SparseRegression.mix(seed &+ UInt64(i) &* 0x9E37_79B9 &+ UInt64(j) &* 0xD1B5_4A32_D192_ED03)) - 1
    }

    @inline(__always) func trueWeight(_ j: Int) -> Double {
        2 * SparseRegression.unit(SparseRegression.mix(seed ^ 0x5A5A_5A5A &+ UInt64(j))) - 1
    }

    /// The mean-squared-error gradient of `weights` over samples `range` (squared loss / 2).
    public func gradient(_ weights: [Double], over range: Range<Int>) -> [Double] {
        var gradient = [Double](repeating: 0, count: dimensions)
        var x = [Double](repeating: 0, count: dimensions)
        for i in range {
            var prediction = 0.0
            var label = 0.0
            for j in 0..<dimensions {
                x[j] = value(i, j)
                prediction += weights[j] * x[j]
                label += trueWeight(j) * x[j]
            }
            let error = prediction - label
            for j in 0..<dimensions { gradient[j] += error * x[j] }
        }
        let scale = 1 / Double(Swift.max(1, range.count))
        return gradient.map { $0 * scale }
    }

    /// The loss (mean squared error / 2) of `weights` over the first `count` samples.
    public func loss(_ weights: [Double], count: Int = 2_000) -> Double {
        var total = 0.0
        for i in 0..<Swift.min(count, samples) {
            var error = 0.0
            for j in 0..<dimensions { error += (weights[j] - trueWeight(j)) * value(i, j) }
            total += error * error / 2
        }
        return total / Double(Swift.max(1, Swift.min(count, samples)))
    }
}

/// A trainer: `steps` mini-batch steps on its shard, each computing a gradient locally and pushing it to
/// the parameter server, which returns the updated weights.
public struct Trainer: RemoteFunction {
    /// The shared server.
    public var server: ParameterServer
    /// The problem.
    public var problem: DenseRegression
    /// Samples per mini-batch.
    public var batch: Int
    /// Steps to take.
    public var steps: Int

    /// Creates a trainer.
    public init(server: ParameterServer, problem: DenseRegression, batch: Int, steps: Int) {
        self.server = server
        self.problem = problem
        self.batch = batch
        self.steps = steps
    }

    /// Trains on shard `shard` (of `problem.samples / batch` mini-batches, taken round-robin); returns the
    /// steps taken.
    public func callAsFunction(_ shard: Int) async throws -> Int {
        var weights = try await server.pull()
        let batches = Swift.max(1, problem.samples / batch)
        for step in 0..<steps {
            let start = ((shard + step * 7919) % batches) * batch
            let gradient = problem.gradient(weights, over: start..<(start + batch))
            weights = try await server.push(gradient)
        }
        return steps
    }
}
