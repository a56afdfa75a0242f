import ArgumentParser
import Curtain
import CurtainExamples

/// `curtain-demo kmeans`: k-means over a large read-only point set, locally in a TaskGroup per round and
/// through Curtain with the point set captured by every task and the partial sums in a `SharedMutex`.
struct KMeansDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kmeans",
        abstract: "k-means: a TaskGroup per round (the local baseline) vs a cloud.map per round with shared accumulators.",
        discussion: """
            Every task of every round captures the whole point set (points × dimensions Doubles: 6.4 MB by \
            default) and the round's centroids; it sums its slice's clusters and stores them in its block of a \
            SharedMutex of accumulators. The driver adds the blocks in slice order, so both runs give the same \
            bits. The Curtain time excludes the cloud's start-up (workers are started and connected before \
            either run is timed) and includes everything else: encoding the captures, transfer, the shared \
            memory's round trips. Generating the points and the starting centroids is timed in neither.
            """
    )

    @Option(help: "Points in the data set.")
    var points: Int = 400_000

    @Option(help: "Coordinates per point.")
    var dimensions: Int = 2

    @Option(help: "Clusters (and the centres the points are generated around).")
    var k: Int = 8

    @Option(help: "Rounds (one cloud.map each).")
    var rounds: Int = 10

    @Option(help: "Slices of the points (tasks per round).")
    var slices: Int = 8

    @Option(help: "The data set's seed.")
    var seed: UInt64 = 1

    @Flag(help: "Print one JSON line instead of text.")
    var json = false

    @OptionGroup var cloudOptions: CloudOptions

    func validate() throws {
        guard points >= 1, dimensions >= 1, k >= 1, rounds >= 1, slices >= 1 else {
            throw ValidationError("--points, --dimensions, --k, --rounds and --slices must be at least 1")
        }
        guard k <= points else { throw ValidationError("--k must not exceed --points") }
    }

    func run() async throws {
        // In a worker process this call never returns (so workers never generate the data).
        let cloud = try await Cloud.start(functions: [KMeansStep.self], configuration: try cloudOptions.configuration())
        try await cloud.waitForWorkers()
        let data = KMeansData.generate(count: points, k: k, dimensions: dimensions, seed: seed)
        let initial = data.initialCentroids(k: k)
        let clock = ContinuousClock()

        var start = clock.now
        let local = await KMeans.runLocally(data: data, initial: initial, rounds: rounds, slices: slices)
        let localSeconds = seconds(clock.now - start)

        let log = SummaryLog()
        start = clock.now
        let remote = try await KMeans.run(
            on: cloud, data: data, initial: initial, rounds: rounds, slices: slices, options: log.options(print: cloudOptions.summary))
        let curtainSeconds = seconds(clock.now - start)
        await cloud.shutdown()

        let identical = local.isIdentical(to: remote)
        let error = data.largestCentreError(local.centroids)
        let backend = PiDemo.describe(cloud.configuration)
        let workers = cloud.configuration.workers
        let megabytes = Double(data.points.count * MemoryLayout<Double>.size) / 1e6
        let ratio = localSeconds / curtainSeconds
        let (p50, p99) = (log.taskP50Milliseconds, log.taskP99Milliseconds)
        if json {
            print(
                "{\"points\":\(points),\"dimensions\":\(dimensions),\"k\":\(k),\"rounds\":\(rounds),\"slices\":\(slices),\"tasks\":\(rounds * slices),\"capture_mb\":\(round4(megabytes)),\"backend\":\"\(backend)\",\"workers\":\(workers),\"local_s\":\(round4(localSeconds)),\"curtain_s\":\(round4(curtainSeconds)),\"ratio\":\(round4(ratio)),\"identical\":\(identical),\"centre_error\":\(round4(error)),\"task_p50_ms\":\(round4(p50)),\"task_p99_ms\":\(round4(p99))}")
        } else {
            print("k-means, \(points) points × \(dimensions) (\(round4(megabytes)) MB captured by every task), k = \(k), \(rounds) rounds × \(slices) tasks, \(backend)")
            print("local TaskGroup:            \(round4(localSeconds)) s")
            print("Curtain map + SharedMutex:  \(round4(curtainSeconds)) s   task p50 \(round4(p50)) ms, p99 \(round4(p99)) ms")
            print("ratio local/curtain:        \(round4(ratio))   centroids identical: \(identical)   farthest generating centre from its centroid: \(round4(error))")
        }
        guard identical else { throw ValidationError("the centroids differ") }
    }
}
