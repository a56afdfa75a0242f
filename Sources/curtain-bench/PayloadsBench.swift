import ArgumentParser
import Curtain
import CurtainExamples
import Foundation
import Synchronization

/// `curtain-bench payloads`: what real data costs on the way through, against baselines measured in the
/// same run.
struct PayloadsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "payloads",
        abstract: "Payload costs: 8 KB outputs against no-op tasks, a shared 80 MB capture, the binary format against JSON.")

    @Option(help: "Tasks of the no-op and 8 KB maps.")
    var tasks: Int = 20_000

    @Option(help: "Doubles in the captured value (and in the encode + decode figure).")
    var doubles: Int = 10_000_000

    @Option(help: "Tasks capturing the value.")
    var captureTasks: Int = 64

    @Option(help: "Small structs in the binary-against-JSON figure.")
    var structs: Int = 100_000

    @Option(help: "Worker processes.")
    var workers: Int = 2

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    @Flag(help: "Only the format's own figures (no workers).")
    var formatOnly = false

    func run() async throws {
        var figures: [Figure] = []
        if !formatOnly { figures += try await throughCloud() }
        figures += try formatFigures()
        printTable(figures, json: json)
    }

    /// The figures measured through worker processes.
    private func throughCloud() async throws -> [Figure] {
        // In a worker process this never returns.
        let cloud = try await Cloud.start(
            functions: [Noop.self, EightKilobytes.self, ReadCaptured.self],
            configuration: CloudConfiguration(backend: .processes, workers: workers))
        try await cloud.waitForWorkers()
        var figures: [Figure] = []

        // 1. Outputs of 8 KB against no outputs at all, in the same run.
        _ = try await cloud.map(Noop(), over: 0..<1000)
        _ = try await cloud.map(EightKilobytes(), over: 0..<1000)
        let noop = try await timed { _ = try await cloud.map(Noop(), over: 0..<tasks) }
        var outputs: [[UInt16]] = []
        let eight = try await timed { outputs = try await cloud.map(EightKilobytes(), over: 0..<tasks) }
        guard outputs.count == tasks, outputs[tasks / 2] == EightKilobytes.values(tasks / 2) else {
            throw ValidationError("the 8 KB outputs came back wrong")
        }
        figures.append(Figure(
            name: "map returning 8 KB ([UInt16] x 4096), \(workers) workers", value: Double(tasks) / eight, unit: "tasks/s",
            baseline: Double(tasks) / noop, baselineName: "no-op map", target: 0.5))

        // 2. Many tasks capturing the same large value: it crosses to each worker once.
        let values = (0..<doubles).map { Double($0) * 0.5 }
        let valueBytes = doubles * MemoryLayout<Double>.size
        _ = try await cloud.map(ReadCaptured(values: [1, 2, 3]), over: 0..<(4 * workers))  // warm, tiny capture
        let summary = Mutex<JobSummary?>(nil)
        var options = JobOptions()
        options.onSummary = { report in summary.withLock { $0 = report } }
        var sums: [Double] = []
        let captured = try await timed {
            sums = try await cloud.map(ReadCaptured(values: values), over: 0..<captureTasks, options: options)
        }
        guard sums == (0..<captureTasks).map({ values[$0 % values.count] + Double(values.count) }) else {
            throw ValidationError("the capture tasks answered wrong")
        }
        let report = try summary.withLock { report in
            guard let report else { throw ValidationError("no job summary") }
            return report
        }
        // What each worker received: the shared value fetched, plus its share of the task envelopes (what
        // the driver sent besides the value itself).
        let envelopes = max(0, report.bytesSent - valueBytes)
        let perWorker = Double(report.sharedBytesFetched + envelopes) / Double(max(1, report.workers))
        figures.append(Figure(
            name: "\(captureTasks) tasks capturing \(doubles) Doubles: bytes to each worker / value size",
            value: perWorker / Double(valueBytes), unit: "x", target: nil, maximum: 1.1))
        let local = try timedSync {
            let bytes = try PayloadEncoder().encode(values)
            let back = try PayloadDecoder().decode([Double].self, from: bytes)
            precondition(back.count == values.count)
        }
        figures.append(Figure(
            name: "\(captureTasks) tasks capturing \(doubles) Doubles, wall time (1/s)", value: 1 / captured, unit: "1/s",
            baseline: 1 / local, baselineName: "local encode + decode", target: 1.0 / 3))
        await cloud.shutdown()
        return figures
    }

    /// The format itself: raw numbers, and small structs against JSON.
    private func formatFigures() throws -> [Figure] {
        var figures: [Figure] = []
        let values = (0..<doubles).map { Double($0) * 0.5 }
        let valueBytes = doubles * MemoryLayout<Double>.size
        var best = Double.infinity
        for _ in 0..<3 {
            best = min(best, try timedSync {
                let bytes = try PayloadEncoder().encode(values)
                _ = try PayloadDecoder().decode([Double].self, from: bytes)
            })
        }
        figures.append(Figure(
            name: "encode + decode \(doubles) Doubles (binary)", value: Double(valueBytes) / best / 1e9, unit: "GB/s",
            target: nil, minimum: 2))
        // The floor on this machine: copying the values into a new byte array and back into a new
        // [Double] (what any encode + decode into fresh memory must do; the kernel zeroes every new page).
        var floor = Double.infinity
        for _ in 0..<3 {
            floor = min(floor, timedSync {
                let bytes = [UInt8](unsafeUninitializedCapacity: valueBytes) { buffer, count in
                    values.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
                    count = valueBytes
                }
                let back = [Double](unsafeUninitializedCapacity: values.count) { buffer, count in
                    bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
                    count = values.count
                }
                precondition(back.count == values.count)
            })
        }
        figures.append(Figure(
            name: "encode + decode \(doubles) Doubles against two copies into fresh memory", value: Double(valueBytes) / best / 1e9,
            unit: "GB/s", baseline: Double(valueBytes) / floor / 1e9, baselineName: "memcpy floor", target: 0.9))
        let records = SmallRecord.sample(structs)
        var binary = Double.infinity
        var jsonTime = Double.infinity
        for _ in 0..<3 {
            binary = min(binary, try timedSync {
                let back = try PayloadDecoder().decode([SmallRecord].self, from: PayloadEncoder().encode(records))
                precondition(back == records)
            })
            jsonTime = min(jsonTime, try timedSync {
                let back = try JSONDecoder().decode([SmallRecord].self, from: JSONEncoder().encode(records))
                precondition(back == records)
            })
        }
        figures.append(Figure(
            name: "encode + decode \(structs) small structs (1/s)", value: 1 / binary, unit: "1/s",
            baseline: 1 / jsonTime, baselineName: "JSONEncoder + JSONDecoder", target: 5))
        return figures
    }

    /// Seconds taken by `body`.
    private func timedSync(_ body: () throws -> Void) rethrows -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        try body()
        let elapsed = clock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
