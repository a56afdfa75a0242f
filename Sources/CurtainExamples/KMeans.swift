public import Curtain

/// A k-means data set: points scattered around known centres, generated from a seed.
///
/// Centre `j` sits on a grid of spacing 10 (its coordinates are the base-`side` digits of `j`, times 10,
/// where `side` is the smallest number with `side^dimensions ≥ k`); each point belongs to a centre drawn
/// at random and lies at that centre plus noise of standard deviation 1 in every coordinate (a sum of four
/// uniforms, so bounded by ±3.5). No `libm` call is involved, so every platform generates the same bits.
public struct KMeansData: Sendable, Hashable {
    /// The points, flat: point `i` is `points[i * dimensions ..< (i + 1) * dimensions]`.
    public var points: [Double]
    /// Coordinates per point.
    public var dimensions: Int
    /// The centres the points were generated around, flat like ``points`` (`k * dimensions` values).
    public var centres: [Double]

    /// The number of points.
    public var count: Int { dimensions > 0 ? points.count / dimensions : 0 }

    /// The number of generating centres.
    public var k: Int { dimensions > 0 ? centres.count / dimensions : 0 }

    /// Creates a data set from flat points and centres.
    public init(points: [Double], dimensions: Int, centres: [Double]) {
        self.points = points
        self.dimensions = dimensions
        self.centres = centres
    }

    /// Generates `count` points of `dimensions` coordinates around `k` centres from `seed`.
    public static func generate(count: Int, k: Int, dimensions: Int = 2, seed: UInt64) -> KMeansData {
        let (count, k, dimensions) = (max(count, 0), max(k, 1), max(dimensions, 1))
        var side = 1
        while (0..<dimensions).reduce(1, { product, _ in product * side }) < k { side += 1 }
        var centres = [Double](repeating: 0, count: k * dimensions)
        for j in 0..<k {
            var digits = j
            for d in 0..<dimensions {
                centres[j * dimensions + d] = 10 * Double(digits % side)
                digits /= side
            }
        }
        var state = seed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
        var points = [Double](repeating: 0, count: count * dimensions)
        for i in 0..<count {
            let j = Int(next() % UInt64(k))
            for d in 0..<dimensions {
                // Four uniforms on [0, 1) sum to mean 2, variance 1/3: centred and scaled by √3, σ = 1.
                let noise = (unit() + unit() + unit() + unit() - 2) * 1.7320508075688772
                points[i * dimensions + d] = centres[j * dimensions + d] + noise
            }
        }
        return KMeansData(points: points, dimensions: dimensions, centres: centres)
    }

    /// The largest distance from a generating centre to the nearest of `centroids` (flat, like
    /// ``centres``): how far a clustering is from the truth.
    public func largestCentreError(_ centroids: [Double]) -> Double {
        let d = dimensions
        guard d > 0 else { return 0 }
        var largest = 0.0
        for j in 0..<k {
            var nearest = Double.infinity
            for c in 0..<centroids.count / d {
                var squared = 0.0
                for i in 0..<d {
                    let delta = centres[j * d + i] - centroids[c * d + i]
                    squared += delta * delta
                }
                nearest = min(nearest, squared)
            }
            largest = max(largest, nearest.squareRoot())
        }
        return largest
    }

    /// Deterministic starting centroids: farthest-first traversal from point 0 (each next centroid is the
    /// point farthest from those chosen so far; the first of equals wins). Flat, `k * dimensions` values.
    public func initialCentroids(k: Int) -> [Double] {
        let n = count
        guard n > 0, k > 0 else { return [] }
        var chosen = Array(points[0..<dimensions])
        var nearest = [Double](repeating: .infinity, count: n)
        var last = 0
        for _ in 1..<k {
            var farthest = 0
            var farthestDistance = -1.0
            for i in 0..<n {
                var distance = 0.0
                for d in 0..<dimensions {
                    let delta = points[i * dimensions + d] - points[last * dimensions + d]
                    distance += delta * delta
                }
                if distance < nearest[i] { nearest[i] = distance }
                if nearest[i] > farthestDistance {
                    farthestDistance = nearest[i]
                    farthest = i
                }
            }
            chosen += points[farthest * dimensions..<(farthest + 1) * dimensions]
            last = farthest
        }
        return chosen
    }
}

/// A k-means task or round that does not add up: accumulators of the wrong size, a slice out of range,
/// or a round whose tasks did not cover every point.
public struct KMeansError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, with the figures.
    public var description: String

    /// Creates the error.
    public init(description: String) { self.description = description }
}

/// What a k-means run ends with.
public struct KMeansResult: Sendable, Hashable {
    /// The centroids after the last round, flat (`k * dimensions` values).
    public var centroids: [Double]
    /// How many points the last round assigned to each centroid.
    public var counts: [Int]
    /// Rounds run.
    public var rounds: Int

    /// Creates a result.
    public init(centroids: [Double], counts: [Int], rounds: Int) {
        self.centroids = centroids
        self.counts = counts
        self.rounds = rounds
    }

    /// Whether `other` has the same centroids bit for bit (not merely `==`, which equates `0.0` and
    /// `-0.0`), the same counts and the same number of rounds.
    public func isIdentical(to other: KMeansResult) -> Bool {
        rounds == other.rounds && counts == other.counts
            && centroids.map(\.bitPattern) == other.centroids.map(\.bitPattern)
    }
}

/// One k-means round's work on one slice of the points: assign each point to its nearest centroid, sum
/// the points of each cluster locally, then store those partial sums in the shared accumulators under
/// their ``SharedMutex`` (one lock per task).
///
/// A remote function whose captures are the whole point set (a large capture, the same for every task of
/// every round), the current centroids and the accumulators' handle; its input is a slice index in
/// `0..<slices`. The accumulators hold `slices × k × (dimensions + 1)` values: each task writes its own
/// block (per cluster, the coordinate sums then the count), so the driver can add the blocks in slice
/// order (see ``KMeans/nextCentroids(accumulators:previous:dimensions:slices:)``) and get the same bits
/// whichever task finished first.
public struct KMeansStep: RemoteFunction {
    /// Every point, flat (`count * dimensions` values).
    public var points: [Double]
    /// Coordinates per point.
    public var dimensions: Int
    /// The current centroids, flat (`k * dimensions` values).
    public var centroids: [Double]
    /// Slices the points are cut into (tasks per round).
    public var slices: Int
    /// The shared per-slice partial sums, `slices * k * (dimensions + 1)` values.
    public var accumulators: SharedMutex<[Double]>

    /// Creates one round's function.
    public init(points: [Double], dimensions: Int, centroids: [Double], slices: Int, accumulators: SharedMutex<[Double]>) {
        self.points = points
        self.dimensions = dimensions
        self.centroids = centroids
        self.slices = slices
        self.accumulators = accumulators
    }

    /// Sums slice `slice`'s clusters and stores them in its block of the accumulators.
    ///
    /// - Returns: the number of points of the slice.
    /// - Throws: ``SharedMemoryError`` from the mutex; ``KMeansError`` when the accumulators are not of
    ///   the expected size or `slice` is not in `0..<slices` (nothing is stored then).
    public func callAsFunction(_ slice: Int) async throws -> Int {
        let partial = KMeans.partialSums(points: points, dimensions: dimensions, centroids: centroids, slice: slice, slices: slices)
        let block = partial.count
        try await accumulators.withLock { values in
            guard values.count == block * slices, (0..<slices).contains(slice) else {
                throw KMeansError(
                    description: "k-means accumulators hold \(values.count) values, not \(block * slices), or slice \(slice) is outside 0..<\(slices)")
            }
            values.replaceSubrange(slice * block..<(slice + 1) * block, with: partial)
        }
        return KMeans.sliceRange(slice, of: points.count / max(dimensions, 1), slices: slices).count
    }
}

/// The k-means algorithm (Lloyd's) run locally and through Curtain with the same arithmetic, so that both
/// give bit-for-bit the same centroids.
public enum KMeans {
    /// The points of slice `slice` of `count` points cut into `slices` near-equal contiguous ranges.
    public static func sliceRange(_ slice: Int, of count: Int, slices: Int) -> Range<Int> {
        guard slices > 0, (0..<slices).contains(slice) else { return 0..<0 }
        return count * slice / slices..<count * (slice + 1) / slices
    }

    /// One slice's partial sums: for each centroid (in order), the sum of each coordinate of the slice's
    /// points nearest to it, then their count, as `k * (dimensions + 1)` values. Points are added in index
    /// order; a tie goes to the lower-numbered centroid.
    public static func partialSums(points: [Double], dimensions: Int, centroids: [Double], slice: Int, slices: Int) -> [Double] {
        guard dimensions > 0 else { return [] }
        let k = centroids.count / dimensions
        let stride = dimensions + 1
        var sums = [Double](repeating: 0, count: k * stride)
        guard k > 0 else { return sums }
        points.withUnsafeBufferPointer { p in
            centroids.withUnsafeBufferPointer { c in
                sums.withUnsafeMutableBufferPointer { s in
                    for i in sliceRange(slice, of: p.count / dimensions, slices: slices) {
                        let base = i * dimensions
                        var best = 0
                        var bestDistance = Double.infinity
                        for j in 0..<k {
                            var distance = 0.0
                            for d in 0..<dimensions {
                                let delta = p[base + d] - c[j * dimensions + d]
                                distance += delta * delta
                            }
                            if distance < bestDistance {
                                bestDistance = distance
                                best = j
                            }
                        }
                        for d in 0..<dimensions { s[best * stride + d] += p[base + d] }
                        s[best * stride + dimensions] += 1
                    }
                }
            }
        }
        return sums
    }

    /// The next centroids from the accumulators of a round: each cluster's sums and counts added over the
    /// slices in slice order, then the mean (a centroid that attracted no point stays where it was).
    ///
    /// - Returns: the centroids (flat) and each cluster's count.
    public static func nextCentroids(accumulators: [Double], previous: [Double], dimensions: Int, slices: Int) -> (centroids: [Double], counts: [Int]) {
        guard dimensions > 0, slices > 0 else { return (previous, []) }
        let k = previous.count / dimensions
        let stride = dimensions + 1
        var centroids = previous
        var counts = [Int](repeating: 0, count: k)
        for j in 0..<k {
            var sums = [Double](repeating: 0, count: dimensions)
            var count = 0.0
            for slice in 0..<slices {
                let base = (slice * k + j) * stride
                guard base + dimensions < accumulators.count else { continue }
                for d in 0..<dimensions { sums[d] += accumulators[base + d] }
                count += accumulators[base + dimensions]
            }
            counts[j] = Int(count)
            if count > 0 {
                for d in 0..<dimensions { centroids[j * dimensions + d] = sums[d] / count }
            }
        }
        return (centroids, counts)
    }

    /// The local baseline: `rounds` rounds of k-means from `initial`, each a plain Swift `TaskGroup` over
    /// `slices` slices in this process, whose partial sums land in their slice's block of a local array,
    /// reduced like the Curtain run's accumulators.
    public static func runLocally(data: KMeansData, initial: [Double], rounds: Int, slices: Int = 8) async -> KMeansResult {
        let points = data.points
        let dimensions = data.dimensions
        var centroids = initial
        var counts: [Int] = []
        for _ in 0..<rounds {
            let current = centroids
            let block = (current.count / max(dimensions, 1)) * (dimensions + 1)
            let accumulators = await withTaskGroup(of: (Int, [Double]).self) { group in
                for slice in 0..<slices {
                    group.addTask {
                        (slice, partialSums(points: points, dimensions: dimensions, centroids: current, slice: slice, slices: slices))
                    }
                }
                var accumulators = [Double](repeating: 0, count: block * slices)
                for await (slice, partial) in group {
                    accumulators.replaceSubrange(slice * block..<(slice + 1) * block, with: partial)
                }
                return accumulators
            }
            (centroids, counts) = nextCentroids(accumulators: accumulators, previous: current, dimensions: dimensions, slices: slices)
        }
        return KMeansResult(centroids: centroids, counts: counts, rounds: rounds)
    }

    /// The same rounds through Curtain: each round is one `cloud.map` of a ``KMeansStep`` (capturing the
    /// whole point set and the round's centroids) over `0..<slices`; the driver then takes the accumulators
    /// and zeroes them in one critical section, and computes the next centroids.
    ///
    /// The accumulators are a ``SharedMutex`` named `name` made in `cloud.memory` (and deleted with the
    /// cloud's other objects at shutdown).
    ///
    /// - Throws: what `cloud.map` and the mutex throw; ``KMeansError`` if a round's tasks did not cover
    ///   every point.
    public static func run(
        on cloud: Cloud, data: KMeansData, initial: [Double], rounds: Int, slices: Int = 8, name: String = "kmeans-accumulators",
        options: JobOptions = JobOptions()
    ) async throws -> KMeansResult {
        let dimensions = data.dimensions
        let block = (initial.count / max(dimensions, 1)) * (dimensions + 1)
        let zeros = [Double](repeating: 0, count: block * slices)
        let accumulators = try await cloud.memory.mutex(name, initialValue: zeros)
        try await accumulators.withLock { $0 = zeros }
        var centroids = initial
        var counts: [Int] = []
        for _ in 0..<rounds {
            let step = KMeansStep(points: data.points, dimensions: dimensions, centroids: centroids, slices: slices, accumulators: accumulators)
            let processed = try await cloud.map(step, over: 0..<slices, options: options)
            guard processed.reduce(0, +) == data.count else {
                throw KMeansError(description: "a k-means round processed \(processed.reduce(0, +)) points of \(data.count)")
            }
            let sums = try await accumulators.withLock { values in
                let sums = values
                values = zeros
                return sums
            }
            (centroids, counts) = nextCentroids(accumulators: sums, previous: centroids, dimensions: dimensions, slices: slices)
        }
        return KMeansResult(centroids: centroids, counts: counts, rounds: rounds)
    }
}
