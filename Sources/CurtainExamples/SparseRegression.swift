public import Curtain

/// A synthetic sparse linear-regression problem, generated from a seed: sample `i` has `nonzeros` features
/// at pseudo-random positions among `dimensions`, values in [0, 1), and the label `w*·x + noise` for a
/// fixed hidden `w*`. Nothing is stored: any process regenerates any sample, so workers need no data
/// transfer, and every run of the same seed sees the same data.
public struct SparseRegression: Codable, Sendable, Hashable {
    /// The number of weights.
    public var dimensions: Int
    /// Features per sample.
    public var nonzeros: Int
    /// Samples in the dataset.
    public var samples: Int
    /// The dataset's seed.
    public var seed: UInt64

    /// Creates a problem.
    public init(dimensions: Int, nonzeros: Int, samples: Int, seed: UInt64) {
        self.dimensions = dimensions
        self.nonzeros = nonzeros
        self.samples = samples
        self.seed = seed
    }

    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always) static func unit(_ x: UInt64) -> Double { Double(x >> 11) * 0x1p-53 }

    /// The hidden weight `j`, in [-1, 1).
    @inline(__always) func trueWeight(_ j: Int) -> Double {
        2 * Self.unit(Self.mix(seed ^ 0xA5A5_A5A5 &+ UInt64(j))) - 1
    }

    /// Calls `body(position, value)` for each feature of sample `i`, and returns the sample's label.
    @inline(__always) func features(of i: Int, _ body: (Int, Double) -> Void) -> Double {
        var state = Self.mix(seed &+ UInt64(i) &* 0xD1B5_4A32_D192_ED03)
        var label = 0.0
        for _ in 0..<nonzeros {
            state = Self.mix(state)
            let j = Int(state % UInt64(dimensions))
            state = Self.mix(state)
            let x = Self.unit(state)
            body(j, x)
            label += trueWeight(j) * x
        }
        return label + 0.01 * (Self.unit(Self.mix(state)) - 0.5)
    }

    /// One SGD step on sample `i` through `read`/`write` of weights (squared loss).
    @inline(__always) public func step(_ i: Int, rate: Double, read: (Int) -> Double, write: (Int, Double) -> Void) {
        var prediction = 0.0
        let label = features(of: i) { j, x in prediction += read(j) * x }
        let error = prediction - label
        _ = features(of: i) { j, x in write(j, read(j) - rate * error * x) }
    }

    /// Mean squared error / 2 of `weights` over the samples in `range`.
    public func loss(_ weights: [Double], over range: Range<Int>? = nil) -> Double {
        let range = range ?? 0..<samples
        var total = 0.0
        for i in range {
            var prediction = 0.0
            let label = features(of: i) { j, x in prediction += weights[j] * x }
            total += (prediction - label) * (prediction - label) / 2
        }
        return total / Double(Swift.max(1, range.count))
    }
}

/// HOGWILD! SGD on a shard of a ``SparseRegression``, on a two-tier replica of the shared weights.
public struct TwoTierSGD: RemoteFunction {
    /// The problem.
    public var problem: SparseRegression
    /// The shared weights.
    public var weights: SharedArray<Double>
    /// Passes over the shard.
    public var epochs: Int
    /// The learning rate.
    public var rate: Double
    /// Writes between pushes.
    public var pushEvery: Int
    /// Milliseconds between pushes at most.
    public var intervalMilliseconds: Int

    /// Creates the function.
    public init(problem: SparseRegression, weights: SharedArray<Double>, epochs: Int, rate: Double, pushEvery: Int, intervalMilliseconds: Int) {
        self.problem = problem
        self.weights = weights
        self.epochs = epochs
        self.rate = rate
        self.pushEvery = pushEvery
        self.intervalMilliseconds = intervalMilliseconds
    }

    /// Trains on samples `shard.lowerBound..<shard.upperBound` (the input, as two integers); returns the
    /// number of steps.
    public func callAsFunction(_ shard: [Int]) async throws -> Int {
        let replica = try await weights.replica(
            .asynchronous(updates: pushEvery, interval: .milliseconds(intervalMilliseconds)))
        let (problem, rate) = (self.problem, self.rate)
        var steps = 0
        for _ in 0..<epochs {
            var i = shard[0]
            while i < shard[1] {
                let end = Swift.min(i + 256, shard[1])
                replica.withLocal { local in
                    for s in i..<end {
                        problem.step(s, rate: rate, read: { local[$0] }, write: { local[$0] = $1 })
                    }
                }
                steps += end - i
                i = end
                try await replica.sync()
            }
        }
        try await replica.finish()
        return steps
    }
}

/// The same SGD with every weight read and write going to the store: the naive remote-memory baseline.
public struct NaiveRemoteSGD: RemoteFunction {
    /// The problem.
    public var problem: SparseRegression
    /// The shared weights.
    public var weights: SharedArray<Double>
    /// The learning rate.
    public var rate: Double

    /// Creates the function.
    public init(problem: SparseRegression, weights: SharedArray<Double>, rate: Double) {
        self.problem = problem
        self.weights = weights
        self.rate = rate
    }

    /// Trains on samples `shard[0]..<shard[1]` once, a store round trip per weight access.
    public func callAsFunction(_ shard: [Int]) async throws -> Int {
        for i in shard[0]..<shard[1] {
            var positions: [(Int, Double)] = []
            let label = problem.features(of: i) { j, x in positions.append((j, x)) }
            var prediction = 0.0
            var current: [Double] = []
            for (j, x) in positions {
                let w = try await weights.element(at: j)
                current.append(w)
                prediction += w * x
            }
            let error = prediction - label
            for (k, (j, x)) in positions.enumerated() {
                try await weights.set(current[k] - rate * error * x, at: j)
            }
        }
        return shard[1] - shard[0]
    }
}
