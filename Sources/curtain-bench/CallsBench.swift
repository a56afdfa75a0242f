import ArgumentParser
@_spi(Testing) import Curtain
import CurtainExamples

/// `curtain-bench calls`: `@Remote` calls made one by one from a task group, against `map` over the same
/// function, in the same run.
struct CallsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calls",
        abstract: "@Remote calls from a task group (batched into jobs) against map over the same no-op function.")

    @Option(help: "Calls (and map inputs).")
    var calls: Int = 100_000

    @Option(help: "Worker processes.")
    var workers: Int = 2

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    func run() async throws {
        // In a worker process this never returns. (No list needed; given here to say what runs.)
        let cloud = try await Cloud.start(
            functions: [Noop.self, __curtain_echo.self], configuration: CloudConfiguration(backend: .processes, workers: workers))
        try await cloud.waitForWorkers()
        let calls = self.calls
        _ = try await cloud.map(Noop(), over: 0..<1000)
        _ = await cloud.withAmbient { await Self.callAll(1000) }
        let mapped = try await timed { _ = try await cloud.map(Noop(), over: 0..<calls) }
        var sum = 0
        let called = await timed { sum = await cloud.withAmbient { await Self.callAll(calls) } }
        guard sum == calls * (calls - 1) / 2 else { throw ValidationError("the calls answered wrong: sum \(sum)") }
        let jobs = cloud.callBatchJobs(of: __curtain_echo.self)
        printTable([
            Figure(
                name: "\(calls) @Remote calls from a task group (\(jobs) jobs in all), \(workers) workers",
                value: Double(calls) / called, unit: "tasks/s", baseline: Double(calls) / mapped, baselineName: "map",
                target: 0.7)
        ], json: json)
        await cloud.shutdown()
    }

    /// A plain task group of `count` calls, each child awaiting one remote call; returns their sum.
    static func callAll(_ count: Int) async -> Int {
        await withTaskGroup(of: Int.self) { group in
            for x in 0..<count { group.addTask { await remoteEcho(x) } }
            var sum = 0
            for await x in group { sum += x }
            return sum
        }
    }
}
