import ArgumentParser
import Curtain
import Foundation
import CurtainExamples

/// `curtain-bench tasks`: no-op task throughput on local worker processes.
struct TasksBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks", abstract: "No-op task throughput (tasks/s) on local worker processes.")

    @Option(help: "Number of no-op tasks.")
    var tasks: Int = 100_000

    @Option(help: "Worker processes.")
    var workers: Int = 2

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    func run() async throws {
        // In a worker process this never returns.
        let cloud = try await Cloud.start(
            functions: [Noop.self], configuration: CloudConfiguration(backend: .processes, workers: workers))
        _ = try await cloud.map(Noop(), over: 0..<1000)  // warm up
        let elapsed = try await timed { _ = try await cloud.map(Noop(), over: 0..<tasks) }
        let rate = Double(tasks) / elapsed
        // What the driver's task records cost: the same map with recording on and off, interleaved, the
        // best of five each (single runs here swing by more than the cost).
        var best = (on: 0.0, off: 0.0)
        for _ in 0..<5 {
            for on in [false, true] {
                TaskRecorder.shared.isEnabled = on
                let seconds = try await timed { _ = try await cloud.map(Noop(), over: 0..<tasks) }
                if on { best.on = max(best.on, Double(tasks) / seconds) } else { best.off = max(best.off, Double(tasks) / seconds) }
            }
        }
        TaskRecorder.shared.isEnabled = true
        await cloud.shutdown()
        printTable([
            Figure(name: "no-op tasks, \(workers) workers", value: rate, unit: "tasks/s", target: nil, minimum: 50_000),
            Figure(
                name: "no-op tasks with task records (best of 5)", value: best.on, unit: "tasks/s", baseline: best.off,
                baselineName: "records off", target: 0.97),
        ], json: json)
    }
}

/// `curtain-bench coldstart`: `Cloud.start` with fresh worker processes to the first result.
struct ColdstartBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coldstart", abstract: "Cloud.start with fresh workers to the first result (ms).")

    @Option(help: "Repetitions; the median is reported.")
    var repeats: Int = 5

    @Option(help: "Worker processes.")
    var workers: Int = 2

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    func run() async throws {
        // Also with the workers started from the demo program beside this executable, linked as a deployed
        // worker is (the Swift runtime static), when it is there; rounds interleaved.
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let demo = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("curtain-demo").path
        let executables: [String?] = FileManager.default.isExecutableFile(atPath: demo) ? [nil, demo] : [nil]
        var samples = Array(repeating: [Double](), count: executables.count)
        for _ in 0..<max(1, repeats) {
            for (index, executable) in executables.enumerated() {
                var cloud: Cloud?
                var configuration = CloudConfiguration(backend: .processes, workers: workers, workerExecutable: executable)
                if executable != nil { configuration.workerArguments = [] }
                let elapsed = try await timed {
                    let started = try await Cloud.start(functions: [Noop.self], configuration: configuration)
                    _ = try await started.run(Noop(), 1)
                    cloud = started
                }
                await cloud?.shutdown()
                samples[index].append(elapsed * 1000)
            }
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        var figures = [Figure(name: "cold start to first result, \(workers) workers", value: median(samples[0]), unit: "ms", target: nil, maximum: 25)]
        if executables.count > 1 {
            figures.append(Figure(
                name: "  for comparison: the workers started from curtain-demo (runtime linked statically)", value: median(samples[1]),
                unit: "ms", target: nil))
        }
        printTable(figures, json: json)
    }
}

/// `curtain-bench pi`: Monte Carlo π through Curtain against the same work in a local `TaskGroup`.
struct PiBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pi", abstract: "Monte Carlo π: local TaskGroup time / Curtain time (target ≥ 0.95).")

    @Option(help: "Number of tasks.")
    var tasks: Int = 64

    @Option(help: "Samples per task.")
    var samples: Int = 10_000_000

    @Option(help: "Worker processes.")
    var workers: Int = 2

    @Option(help: "Repetitions; the median ratio is reported.")
    var repeats: Int = 3

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    func run() async throws {
        // In a worker process this never returns. Workers are started once, as a user's program would.
        let cloud = try await Cloud.start(
            functions: [CountHits.self], configuration: CloudConfiguration(backend: .processes, workers: workers))
        try await cloud.waitForWorkers()
        let samples = self.samples
        let seeds = 0..<UInt64(tasks)
        var pairs: [(local: Double, curtain: Double)] = []
        for _ in 0..<max(1, repeats) {
            var localHits = 0
            let local = await timed {
                localHits = await CountHits.localHits(samples: samples, seeds: seeds)
            }
            var hits = 0
            let curtain = try await timed { hits = try await cloud.map(CountHits(samples: samples), over: seeds).reduce(0, +) }
            guard hits == localHits else { throw ValidationError("Curtain counted \(hits) hits, the local run \(localHits)") }
            pairs.append((local, curtain))
        }
        await cloud.shutdown()
        let median = pairs.sorted { $0.local / $0.curtain < $1.local / $1.curtain }[pairs.count / 2]
        printTable([
            Figure(
                name: "pi \(tasks)×\(samples / 1_000_000)M, \(workers) workers", value: 1 / median.curtain, unit: "runs/s",
                baseline: 1 / median.local, baselineName: "local TaskGroup", target: 0.95)
        ], json: json)
    }
}

/// `curtain-bench memory`: the driver's peak memory for a map over a million small inputs, and an idle
/// worker's resident memory.
struct MemoryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Driver peak RSS for a map over 1,000,000 inputs (target ≤ 300 MB); idle worker RSS (≤ 20 MB).")

    @Option(help: "Number of inputs.")
    var inputs: Int = 1_000_000

    @Option(help: "Worker processes.")
    var workers: Int = 2

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    @Option(help: "The worker executable; by default curtain-demo next to this one (a user's program, which does not link the benchmark harness).")
    var workerExecutable: String?

    func run() async throws {
        var configuration = CloudConfiguration(backend: .processes, workers: workers)
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        configuration.workerExecutable = workerExecutable ?? here.appendingPathComponent("curtain-demo").path
        configuration.workerArguments = ["pi"]  // its path to Cloud.start, which registers Noop too
        guard FileManager.default.isExecutableFile(atPath: configuration.workerExecutable!) else {
            throw ValidationError("no worker executable at \(configuration.workerExecutable!); build curtain-demo first")
        }
        let cloud = try await Cloud.start(functions: [Noop.self], configuration: configuration)
        // Idle workers: started, warmed by one task, then left waiting.
        _ = try await cloud.run(Noop(), 0)
        try await Task.sleep(for: .seconds(1))
        let pids = await cloud.workerProcessIDs
        let idle = pids.compactMap(Self.residentMegabytes).max() ?? 0
        // Proportional set size: shared pages (the executable's, libc's) divided among the processes mapping them.
        let idlePSS = pids.compactMap(Self.proportionalMegabytes).max() ?? 0
        let executableSize = (try? FileManager.default.attributesOfItem(atPath: configuration.workerExecutable!)[.size] as? Int)
            .map { Double($0) / 1_048_576 } ?? 0
        let before = Self.peakMegabytes()
        let outputs = try await cloud.map(Noop(), over: 0..<inputs)
        guard outputs.count == inputs, outputs.last == inputs - 1 else { throw ValidationError("wrong outputs") }
        let peak = Self.peakMegabytes()
        await cloud.shutdown()
        printTable([
            Figure(name: "driver peak RSS, map over \(inputs)", value: peak, unit: "MB", target: nil, maximum: 300),
            Figure(name: "driver peak RSS before the map", value: before, unit: "MB", target: nil),
            Figure(name: "idle worker RSS, largest", value: idle, unit: "MB", target: nil, maximum: 20),
            Figure(name: "idle worker PSS, largest", value: idlePSS, unit: "MB", target: nil),
            Figure(name: "worker executable size", value: executableSize, unit: "MB", target: nil),
        ], json: json)
    }

    /// This process's peak resident set (`VmHWM`), in MB.
    static func peakMegabytes() -> Double {
        statusField("VmHWM", pid: nil) ?? 0
    }

    /// A process's resident set (`VmRSS`), in MB.
    static func residentMegabytes(_ pid: Int32) -> Double? {
        statusField("VmRSS", pid: pid)
    }

    /// A process's proportional set size (`Pss` of `smaps_rollup`), in MB.
    static func proportionalMegabytes(_ pid: Int32) -> Double? {
        statusField("Pss", pid: pid, file: "smaps_rollup")
    }

    static func statusField(_ field: String, pid: Int32?, file: String = "status") -> Double? {
        let path = pid.map { "/proc/\($0)/\(file)" } ?? "/proc/self/\(file)"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let kilobytes = line.split(separator: " ").compactMap { Double($0) }.first
            return kilobytes.map { $0 / 1024 }
        }
        return nil
    }
}
