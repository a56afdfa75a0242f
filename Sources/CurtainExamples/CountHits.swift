public import Curtain

/// Monte Carlo samples in the unit square: how many fall inside the quarter circle.
///
/// A remote function: `samples` is its capture, the seed its input. The generator is a 64-bit LCG whose
/// high 53 bits make each coordinate, so the same seed gives the same count on every backend.
public struct CountHits: RemoteFunction {
    /// Samples per task (the capture).
    public var samples: Int

    /// Creates the function.
    public init(samples: Int) { self.samples = samples }

    /// The hits among `samples` points drawn from `seed`.
    public func callAsFunction(_ seed: UInt64) async throws -> Int {
        CountHits.count(samples: samples, seed: seed)
    }

    /// The local baseline: the total hits of every seed, counted in a plain Swift `TaskGroup` in this
    /// process.
    public static func localHits(samples: Int, seeds: Range<UInt64>) async -> Int {
        await withTaskGroup(of: Int.self) { group in
            for seed in seeds { group.addTask { count(samples: samples, seed: seed) } }
            return await group.reduce(0, +)
        }
    }

    /// The same count, as a plain function (the local baseline calls it directly).
    public static func count(samples: Int, seed: UInt64) -> Int {
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

/// A task that does nothing: measures Curtain's own per-task cost.
public struct Noop: RemoteFunction {
    /// Creates the function.
    public init() {}
    /// Returns its input.
    public func callAsFunction(_ input: Int) async throws -> Int { input }
}
