import ArgumentParser
import Curtain
import CurtainExamples
import Foundation
import Synchronization

/// `curtain-bench placement`: the bytes workers fetch when the same partitions are processed job after job
/// (an iterative algorithm over a partitioned dataset), with tasks placed on the workers that hold their
/// partition and without, in the same run.
struct PlacementBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "placement",
        abstract: "Bytes moved, and partitions per second, with and without placing tasks near their cached data.")

    @Option(help: "Worker processes.")
    var workers: Int = 2

    @Option(help: "Partitions (one task each per round).")
    var partitions: Int = 16

    @Option(help: "Doubles per partition (131072 = 1 MiB).")
    var doubles: Int = 131_072

    @Option(help: "Rounds (jobs over all partitions); the first fills the caches and is not counted.")
    var rounds: Int = 8

    @Option(help: "Partitions each worker's cache holds (default: its share of them, plus two).")
    var cachePartitions: Int?

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    func run() async throws {
        guard workers >= 1, partitions >= 1, doubles >= 16_384, rounds >= 2 else {
            throw ValidationError("need workers ≥ 1, partitions ≥ 1, doubles ≥ 16384 (above the share size), rounds ≥ 2")
        }
        // Each worker's cache holds its share of the partitions and a little more: enough when every
        // worker keeps seeing the same ones, too little when each sees any of them.
        let held = cachePartitions ?? ((partitions + workers - 1) / workers + 2)
        let partitionBytes = doubles * MemoryLayout<Double>.size + 64
        setenv("CURTAIN_CACHE_BYTES", String(held * partitionBytes), 1)
        let data = (0..<partitions).map { p in (0..<doubles).map { Double(($0 &* 31 &+ p) % 1000) } }
        let expected = data.map { $0.reduce(0, +) }

        var results: [(fetched: Int, seconds: Double)] = []
        for placement in [false, true] {
            var configuration = CloudConfiguration(backend: .processes, workers: workers)
            configuration.placement = placement
            // In a worker process this never returns.
            let cloud = try await Cloud.start(functions: [SumPartition.self], configuration: configuration)
            try await cloud.waitForWorkers()
            var fetched = 0
            var seconds = 0.0
            for round in 0..<rounds {
                let summary = Mutex<JobSummary?>(nil)
                var sums: [Double] = []
                let elapsed = try await timed {
                    sums = try await cloud.map(
                        SumPartition(), over: data, options: JobOptions(onSummary: { report in summary.withLock { $0 = report } }))
                }
                guard sums == expected else { throw ValidationError("the partition sums came back wrong") }
                guard round > 0 else { continue }
                fetched += summary.withLock { $0?.sharedBytesFetched ?? 0 }
                seconds += elapsed
            }
            await cloud.shutdown()
            results.append((fetched, seconds))
        }
        let (off, on) = (results[0], results[1])
        let counted = Double(partitions * (rounds - 1))
        let megabytes = 1_048_576.0
        let shape = "\(partitions) x \(format(Double(partitionBytes) / megabytes)) MiB, cache \(held) each, \(workers) workers"
        printTable([
            Figure(
                name: "placement: MiB fetched per round (\(shape))", value: Double(on.fetched) / megabytes / Double(rounds - 1),
                unit: "MiB", baseline: Double(off.fetched) / megabytes / Double(rounds - 1), baselineName: "without placement",
                target: nil),
            Figure(
                name: "placement: partitions/s after the first round", value: counted / on.seconds, unit: "tasks/s",
                baseline: counted / off.seconds, baselineName: "without placement", target: nil),
        ], json: json)
    }
}
