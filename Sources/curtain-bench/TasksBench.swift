import ArgumentParser
import Curtain

/// A task that does nothing: measures Curtain's own per-task cost.
struct Noop: RemoteFunction {
    func callAsFunction(_ input: Int) async throws -> Int { input }
}

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
        await cloud.shutdown()
        let rate = Double(tasks) / elapsed
        printTable([Figure(name: "no-op tasks, \(workers) workers", value: rate, unit: "tasks/s", target: nil)], json: json)
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
        var samples: [Double] = []
        for _ in 0..<max(1, repeats) {
            var cloud: Cloud?
            let elapsed = try await timed {
                let started = try await Cloud.start(
                    functions: [Noop.self], configuration: CloudConfiguration(backend: .processes, workers: workers))
                _ = try await started.run(Noop(), 1)
                cloud = started
            }
            await cloud?.shutdown()
            samples.append(elapsed * 1000)
        }
        samples.sort()
        let median = samples[samples.count / 2]
        printTable([Figure(name: "cold start to first result, \(workers) workers", value: median, unit: "ms", target: nil)], json: json)
    }
}
