// Iterative, over a large read-only dataset: k-means whose tasks each assign a slice of the points to the
// nearest centroid and add their partial sums to shared accumulators under a lock.
import Synchronization

/// Per centroid, the sum of the coordinates of the points of slice `slice` (of `slices`) nearest to it, and
/// how many there are: (x, y, count).
func assign(_ points: [SIMD2<Double>], slice: Int, of slices: Int, centroids: [SIMD2<Double>]) -> [SIMD3<Double>] {
    var partial = [SIMD3<Double>](repeating: .zero, count: centroids.count)
    let size = (points.count + slices - 1) / slices
    for point in points[slice * size..<min(points.count, (slice + 1) * size)] {
        var (best, bestDistance) = (0, Double.infinity)
        for (k, centroid) in centroids.enumerated() {
            let distance = ((point - centroid) * (point - centroid)).sum()
            if distance < bestDistance { (best, bestDistance) = (k, distance) }
        }
        partial[best] += SIMD3(point.x, point.y, 1)
    }
    return partial
}

/// Sums shared by the tasks of a round.
final class Totals: Sendable {
    let sums: Mutex<[SIMD3<Double>]>
    init(count: Int) { sums = Mutex([SIMD3<Double>](repeating: .zero, count: count)) }
    func add(_ partial: [SIMD3<Double>]) {
        sums.withLock { sums in for k in sums.indices { sums[k] += partial[k] } }
    }
}

@main
struct KMeans {
    static func main() async {
        var seed: UInt64 = 42
        func random() -> Double {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Double(seed >> 11) / Double(1 << 53)
        }
        let centres: [SIMD2<Double>] = [[1, 1], [-2, 3], [4, -1], [0, -4]]
        let points = (0..<400_000).map { i in centres[i % 4] + SIMD2(random() - 0.5, random() - 0.5) * 3 }
        var centroids = Array(points.prefix(4))
        let slices = 8
        for _ in 0..<10 {
            let totals = Totals(count: centroids.count)
            let current = centroids
            await withTaskGroup(of: Void.self) { group in
                for slice in 0..<slices {
                    group.addTask {
                        let partial = assign(points, slice: slice, of: slices, centroids: current)
                        totals.add(partial)
                    }
                }
            }
            centroids = totals.sums.withLock { $0.map { SIMD2($0.x / $0.z, $0.y / $0.z) } }
        }
        let rounded = centroids.map { "(\(($0.x * 1e4).rounded() / 1e4), \(($0.y * 1e4).rounded() / 1e4))" }
        print("k-means, 10 rounds over \(points.count) points: " + rounded.joined(separator: " "))
    }
}
