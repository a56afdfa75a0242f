@testable import Curtain
import CurtainRESP
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import Synchronization
import Testing

/// A temporary file path, removed by the caller.
func temporaryPath(_ prefix: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
}

/// Collects what a closure is handed, across tasks.
final class Collected<T: Sendable>: Sendable {
    private let items = Mutex<[T]>([])
    func append(_ item: T) { items.withLock { $0.append(item) } }
    var all: [T] { items.withLock { $0 } }
}

@Suite("Jobs: timeouts, retries, streaming, summaries, progress")
struct JobTests {
    @Test func thrownErrorsAreRetriedOnlyWhenAsked() async throws {
        for configuration in try CloudTests.configurations() {
            let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
            let marker = temporaryPath("curtain-fails-once")
            defer { try? FileManager.default.removeItem(atPath: marker) }
            // Not asked: the first failure is the answer.
            await #expect(throws: RemoteTaskError.self) { _ = try await cloud.map(FailsOnce(marker: marker), over: [5]) }
            try FileManager.default.removeItem(atPath: marker)
            // Asked: the second run succeeds, and the summary counts the retry.
            let summaries = Collected<JobSummary>()
            let options = JobOptions(retries: 1, onSummary: { summaries.append($0) })
            #expect(try await cloud.map(FailsOnce(marker: marker), over: [5], options: options) == [5])
            let summary = try #require(summaries.all.first)
            #expect(summary.retries == 1)
            #expect(summary.tasks == 1)
            await cloud.shutdown()
        }
    }

    @Test func aTaskOverItsTimeoutFailsAsTimedOutOnEveryBackend() async throws {
        for configuration in try CloudTests.configurations() {
            let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
            let before = await cloud.workerProcessIDs
            do {
                _ = try await cloud.map(
                    SlowSquare(milliseconds: 20_000), over: [3], options: JobOptions(timeout: .milliseconds(200)))
                Issue.record("a 20 s task must time out after 200 ms on \(configuration.backend)")
            } catch let error as RemoteTaskError {
                #expect(error.failure.kind == .timedOut)
                #expect(error.failure.message.contains("200 ms"))
                #expect(error.description.contains("SlowSquare task #0 (input 3) timed out"))
            }
            // The sleeping function honoured cancellation: no worker had to be replaced.
            #expect(await cloud.workerProcessIDs == before)
            // Tasks within their timeout are untouched.
            #expect(try await cloud.map(SlowSquare(milliseconds: 1), over: [4], options: JobOptions(timeout: .seconds(30))) == [16])
            await cloud.shutdown()
        }
    }

    @Test func aWorkerStuckInATimedOutTaskIsReplacedAndLosesNothing() async throws {
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: try CloudTests.configurations()[1])
        let before = Set(await cloud.workerProcessIDs)
        let summaries = Collected<JobSummary>()
        do {
            _ = try await cloud.map(
                Spin(milliseconds: 60_000), over: [1],
                options: JobOptions(timeout: .milliseconds(300), retries: 1, onSummary: { summaries.append($0) }))
            Issue.record("a task spinning for a minute must time out")
        } catch let error as RemoteTaskError {
            #expect(error.failure.kind == .timedOut)
        }
        #expect(summaries.all.first?.retries == 1)  // it was retried once, and timed out again
        // The spinning workers were replaced; the pool still answers every task.
        var after = Set(await cloud.workerProcessIDs)
        for _ in 0..<500 where after == before {
            try await Task.sleep(for: .milliseconds(10))
            after = Set(await cloud.workerProcessIDs)
        }
        #expect(after != before)
        #expect(after.count == 2)
        #expect(try await cloud.map(CurtainTestFunctions.Square(offset: 0), over: 0..<100) == (0..<100).map { $0 * $0 })
        await cloud.shutdown()
    }

    @Test func aCrashIsChargedToItsOwnTaskNotToItsBatchMates() async throws {
        var configuration = try CloudTests.configurations()[1]
        configuration.crashRetries = 2
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
        // Quick tasks are taken in batches, so the crashing one shares its worker with others each time.
        let (outputs, failures) = try await cloud.withTaskGroup(of: CrashOn.self) { group in
            for x in 0..<200 { try await group.addTask(CrashOn(bad: 17), x) }
            var outputs: [Int] = []
            var failures: [RemoteTaskError] = []
            while true {
                do {
                    guard let output = try await group.next() else { break }
                    outputs.append(output)
                } catch let error as RemoteTaskError {
                    failures.append(error)
                }
            }
            return (outputs, failures)
        }
        #expect(outputs.sorted() == (0..<200).filter { $0 != 17 })
        #expect(failures.count == 1)
        #expect(failures.first?.index == 17)
        #expect(failures.first?.failure.kind == .crashed)
        #expect(failures.first?.failure.message.contains("exited with status 4") == true)
        await cloud.shutdown()
    }

    @Test func mapStreamsItsInputsThroughTheWindow() async throws {
        try await withTestStore(.embedded) { (store) async throws in
            try await withWorkers(store) { client in
                let dispatcher = TaskDispatcher(client: client, buildID: "test-build")
                let queue = StoreKeys(buildID: "test-build").queue
                let sampling = Task {
                    var longest = 0
                    while !Task.isCancelled {
                        if let length = try? await client.send("LLEN", queue).int { longest = max(longest, length) }
                        try? await Task.sleep(for: .milliseconds(1))
                    }
                    return longest
                }
                // A lazy sequence: inputs are produced only as the window has room.
                let produced = Atomic<Int>(0)
                let inputs = (0..<5_000).lazy.map { x -> Int in
                    produced.add(1, ordering: .relaxed)
                    return x
                }
                let outputs = try await dispatcher.map(Square(offset: 1), over: inputs, options: JobOptions(window: 64))
                sampling.cancel()
                let longest = await sampling.value
                #expect(outputs == (0..<5_000).map { $0 * $0 + 1 })
                #expect(produced.load(ordering: .relaxed) == 5_000)
                #expect(longest <= 64, "the queue held \(longest) tasks; the window is 64")
            }
        }
    }

    @Test func aBadInputLaterInTheStreamEndsTheJobWithItsIndex() async throws {
        try await withTestStore(.embedded) { (store) async throws in
            try await withWorkers(store) { client in
                let dispatcher = TaskDispatcher(client: client, buildID: "test-build")
                let inputs = (0..<1000).map { Picky(value: $0, refused: $0 == 700) }
                do {
                    _ = try await dispatcher.map(EchoPicky(), over: inputs, options: JobOptions(window: 100))
                    Issue.record("input 700 refuses to be encoded")
                } catch let error as InputEncodingError {
                    #expect(error.index == 700)
                }
                #expect(try await dispatcher.map(Square(offset: 0), over: [3]) == [9])
            }
        }
    }

    @Test func badOptionsAreRefusedByName() async throws {
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: CloudConfiguration(backend: .inprocess, workers: 1))
        for (options, field) in [
            (JobOptions(timeout: .zero), "timeout"), (JobOptions(retries: -1), "retries"), (JobOptions(window: 0), "window"),
        ] {
            do {
                _ = try await cloud.map(CurtainTestFunctions.Square(offset: 0), over: [1], options: options)
                Issue.record("JobOptions with a bad \(field) must be refused")
            } catch let error as ConfigurationError {
                #expect(error.description.contains(field))
            }
        }
        await cloud.shutdown()
    }

    @Test func theSummaryCountsTasksWorkersAndTimes() async throws {
        for configuration in try CloudTests.configurations() {
            let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
            let summaries = Collected<JobSummary>()
            _ = try await cloud.map(
                SlowSquare(milliseconds: 2), over: 0..<100, options: JobOptions(onSummary: { summaries.append($0) }))
            let summary = try #require(summaries.all.first)
            #expect(summary.tasks == 100)
            #expect(summary.failed == 0)
            #expect(summary.workers >= 1 && summary.workers <= 2)
            #expect(summary.p50 >= .milliseconds(2) && summary.p50 <= summary.p99)
            #expect(summary.retries == 0)
            // Only a cloud that starts its workers has a cold start to report.
            let startsWorkers = configuration.backend == .processes
            #expect((summary.coldStart != nil) == startsWorkers)
            let line = summary.description
            #expect(!line.contains("\n"))
            #expect(line.contains("cold start") == startsWorkers)
            for part in ["SlowSquare", "100 tasks", "p50", "p99", "0 retries"] {
                #expect(line.contains(part), "summary line lacks \(part): \(line)")
            }
            await cloud.shutdown()
        }
    }

    @Test func inProcessTasksRunAtMostWorkersAtOnce() async throws {
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: CloudConfiguration(backend: .inprocess, workers: 3))
        let counter = temporaryPath("curtain-width")
        defer { try? FileManager.default.removeItem(atPath: counter) }
        // 3 at a time, 300 ms each: half-way through the first round, at most 3 of the 12 have started.
        let job = Task { try await cloud.map(CountedSleep(counter: counter, milliseconds: 300), over: 0..<12) }
        try await Task.sleep(for: .milliseconds(150))
        let started = (try? FileManager.default.attributesOfItem(atPath: counter)[.size] as? Int) ?? 0
        #expect(started <= 3)
        #expect(try await job.value == Array(0..<12))
        await cloud.shutdown()
    }
}

@Suite("Progress bar")
struct ProgressBarTests {
    @Test func theLineShowsCountsRateEtaAndFailures() {
        let line = ProgressBar.line(
            function: "Square", done: 250, total: 1000, totalIsFinal: true, failures: 2, elapsed: .seconds(1), columns: 100)
        #expect(line.hasPrefix("Square ["))
        #expect(line.contains("250/1000 25%"))
        #expect(line.contains("250/s"))
        #expect(line.contains("ETA 3.00 s"))
        #expect(line.contains("2 failed"))
        #expect(line.count <= 100)
        let narrow = ProgressBar.line(
            function: "Square", done: 5, total: 0, totalIsFinal: false, failures: 0, elapsed: .seconds(1), columns: 30)
        #expect(narrow.contains("5 done"))
        #expect(!narrow.contains("ETA"))
        #expect(narrow.count < 30)
    }

    @Test func itRedrawsInPlaceAndEndsTheLine() async throws {
        let written = Collected<String>()
        let bar = ProgressBar(
            function: "Square", output: { written.append($0) }, columns: { 80 }, delay: .zero, interval: .milliseconds(5))
        bar.total.store(10, ordering: .relaxed)
        bar.totalIsFinal.store(true, ordering: .relaxed)
        bar.begin()
        bar.done.store(3, ordering: .relaxed)
        for _ in 0..<1000 where written.all.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        #expect(written.all.first?.contains("3/10 30%") == true)
        bar.done.store(10, ordering: .relaxed)
        await bar.end()
        let text = written.all.joined()
        #expect(text.hasPrefix("\r\u{1B}[2K"))
        #expect(text.contains("10/10 100%"))
        #expect(text.hasSuffix("\n"))
    }

    @Test func nothingIsDrawnUnlessAsked() {
        #expect(ProgressBar.make(function: "f", display: .never, enabled: true) == nil)
        #expect(ProgressBar.make(function: "f", display: .automatic, enabled: false) == nil)
        #expect((ProgressBar.make(function: "f", display: .automatic, enabled: true) != nil) == (isatty(2) == 1))
    }

    /// Runs the fixture driver's one-second job with stderr on a pseudo-terminal (via `script`) or a pipe,
    /// waiting on a Dispatch thread so the cooperative pool (two threads here) stays free for other tests.
    static func runFixtureJob(onTerminal: Bool) async throws -> String {
        try await runBlocking { try runFixtureJobBlocking(onTerminal: onTerminal) }
    }

    static func runFixtureJobBlocking(onTerminal: Bool) throws -> String {
        let worker = try fixtureWorkerPath()
        let process = Process()
        var environment = ProcessInfo.processInfo.environment
        environment["CURTAIN_FIXTURE_PROGRESS"] = "1"
        environment["CURTAIN_WORKERS"] = "2"
        environment["CURTAIN_BACKEND"] = "processes"
        environment.removeValue(forKey: "CURTAIN_ROLE")
        environment.removeValue(forKey: "CURTAIN_PROGRESS")
        process.environment = environment
        if onTerminal {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
            process.arguments = ["-q", "-e", "-c", worker, "/dev/null"]
        } else {
            process.executableURL = URL(fileURLWithPath: worker)
        }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    @Test func aTerminalGetsTheBarAndAPipeDoesNot() async throws {
        let terminal = try await Self.runFixtureJob(onTerminal: true)
        #expect(terminal.contains("sum:2646700"))
        #expect(terminal.contains("\u{1B}[2K"), "no progress bar on a terminal: \(terminal.prefix(300))")
        #expect(terminal.contains("200/200 100%"))
        let piped = try await Self.runFixtureJob(onTerminal: false)
        #expect(piped.contains("sum:2646700"))
        #expect(!piped.contains("\u{1B}["))
    }
}

/// An input that refuses to be encoded when told to.
struct Picky: Codable, Sendable {
    var value: Int
    var refused = false
    init(value: Int, refused: Bool) {
        self.value = value
        self.refused = refused
    }
    init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(Int.self) }
    func encode(to encoder: any Encoder) throws {
        if refused { throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "refused")) }
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// Returns the value of a ``Picky`` input.
struct EchoPicky: RemoteFunction {
    func callAsFunction(_ input: Picky) async throws -> Int { input.value }
}
