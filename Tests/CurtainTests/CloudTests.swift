@testable import Curtain
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import Testing

/// The fixture worker executable, built next to the test bundle.
func fixtureWorkerPath() throws -> String { try builtExecutablePath("curtain-test-worker") }

/// An executable of this package, built next to the test bundle.
func builtExecutablePath(_ name: String) throws -> String {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for directory in [bundle, bundle.deletingLastPathComponent()] {
        let candidate = directory.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw TestStoreError(description: "\(name) is not built next to \(bundle.path); run swift build --build-tests")
}

@Suite("Cloud: the same code on every backend")
struct CloudTests {
    static func configurations() throws -> [CloudConfiguration] {
        [
            CloudConfiguration(backend: .inprocess, workers: 2),
            CloudConfiguration(backend: .processes, workers: 2, workerExecutable: try fixtureWorkerPath(), buildID: "fixture"),
        ]
    }

    @Test func sameResultsInProcessAndOnWorkerProcesses() async throws {
        var results: [[Int]] = []
        for configuration in try Self.configurations() {
            let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
            results.append(try await cloud.map(CurtainTestFunctions.Square(offset: 2), over: 0..<300))
            #expect(try await cloud.run(CurtainTestFunctions.Square(offset: 0), 9) == 81)
            await cloud.shutdown()
        }
        #expect(results.count == 2)
        #expect(results[0] == (0..<300).map { $0 * $0 + 2 })
        #expect(results[0] == results[1])
    }

    @Test func tasksRunInOtherProcesses() async throws {
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: try Self.configurations()[1])
        try await cloud.waitForWorkers()
        #expect(await cloud.workerProcessIDs.count == 2)
        let pids = Set(try await cloud.map(WhereAmI(), over: 0..<200))
        #expect(!pids.contains(ProcessInfo.processInfo.processIdentifier))
        #expect(!pids.isEmpty && pids.count <= 2)
        await cloud.shutdown()
    }

    @Test func thrownErrorsSurfaceWithTheirTaskOnEveryBackend() async throws {
        for configuration in try Self.configurations() {
            let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
            do {
                _ = try await cloud.map(AlwaysThrows(), over: ["a"])
                Issue.record("expected a RemoteTaskError on \(configuration.backend)")
            } catch let error as RemoteTaskError {
                #expect(error.function == "AlwaysThrows")
                #expect(error.failure.message == "refused a")
                #expect(error.failure.errorType.hasSuffix("AlwaysThrows.Refused"))
            }
            await cloud.shutdown()
        }
    }

    @Test func workersExitWhenTheDriverGoes() async throws {
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: try Self.configurations()[1])
        let pids = Set(try await cloud.map(WhereAmI(), over: 0..<50))
        await cloud.shutdown()
        for pid in pids {
            #expect(kill(pid, 0) != 0, "worker \(pid) outlived its driver")
        }
    }

    @Test func aFunctionThatKillsItsWorkerOnceSucceedsOnRetry() async throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("curtain-crash-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: try Self.configurations()[1])
        #expect(try await cloud.map(CrashOnce(marker: marker), over: [7]) == [7])
        #expect(FileManager.default.fileExists(atPath: marker))  // it really crashed once
        // The pool was refilled: work still runs on two workers.
        #expect(try await cloud.map(CurtainTestFunctions.Square(offset: 0), over: 0..<20) == (0..<20).map { $0 * $0 })
        await cloud.shutdown()
    }

    @Test func aFunctionThatAlwaysCrashesFailsWithTheCrashAfterTheRetries() async throws {
        var configuration = try Self.configurations()[1]
        configuration.crashRetries = 2
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
        do {
            _ = try await cloud.map(AlwaysCrashes(), over: [1])
            Issue.record("a task that always crashes must fail")
        } catch let error as RemoteTaskError {
            #expect(error.failure.kind == .crashed)
            #expect(error.failure.message.contains("signal 9"))
            #expect(error.failure.message.contains("attempt 3 of 3"))
            #expect(error.description.contains("AlwaysCrashes task #0"))
        }
        await cloud.shutdown()
    }

    @Test func killingAWorkerMidJobLosesNoTask() async throws {
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: try Self.configurations()[1])
        let job = Task { try await cloud.map(SlowSquare(milliseconds: 5), over: 0..<400) }
        try await Task.sleep(for: .milliseconds(300))
        let victim = try #require(await cloud.workerProcessIDs.first)
        kill(victim, SIGKILL)
        let outputs = try await job.value
        #expect(outputs == (0..<400).map { $0 * $0 })
        #expect(!(await cloud.workerProcessIDs.contains(victim)))
        await cloud.shutdown()
    }

    @Test func cancellingAMapStopsItsQueuedTasks() async throws {
        let counter = FileManager.default.temporaryDirectory.appendingPathComponent("curtain-count-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: counter) }
        func calls() -> Int { (try? FileManager.default.attributesOfItem(atPath: counter)[.size] as? Int) ?? 0 }
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: try Self.configurations()[1])
        let job = Task { try await cloud.map(CountedSleep(counter: counter, milliseconds: 50), over: 0..<300) }
        // Cancel once tasks are running, however slowly this machine starts the workers.
        for _ in 0..<3000 where calls() < 4 { try await Task.sleep(for: .milliseconds(10)) }
        job.cancel()
        await #expect(throws: CancellationError.self) { _ = try await job.value }
        // Once the cancellation has gone through (however long a busy machine made it take), at most the
        // tasks already running, and those started before their worker looked again whether the job still
        // runs (every 100 ms), start after it; then nothing more.
        let atCancel = calls()
        try await Task.sleep(for: .milliseconds(300))
        let afterCancel = calls()
        try await Task.sleep(for: .milliseconds(500))
        #expect(calls() == afterCancel)
        #expect(afterCancel - atCancel <= 8, "\(afterCancel - atCancel) tasks started after the job was cancelled")
        #expect(afterCancel > 0 && afterCancel < 300)
        // No late result of the cancelled job leaks into the next one.
        #expect(try await cloud.map(CurtainTestFunctions.Square(offset: 1), over: 0..<50) == (0..<50).map { $0 * $0 + 1 })
        await cloud.shutdown()
    }

    @Test func taskGroupsYieldEveryOutputOnEveryBackend() async throws {
        for configuration in try Self.configurations() {
            let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
            let outputs = try await cloud.withTaskGroup(of: CurtainTestFunctions.Square.self) { group in
                for x in 0..<100 { try await group.addTask(CurtainTestFunctions.Square(offset: x % 2), x) }
                var seen: [Int] = []
                for try await output in group { seen.append(output) }
                return seen
            }
            #expect(outputs.sorted() == (0..<100).map { $0 * $0 + $0 % 2 }.sorted())
            do {
                _ = try await cloud.withTaskGroup(of: AlwaysThrows.self) { group in
                    try await group.addTask(AlwaysThrows(), "g")
                    for try await _ in group {}
                }
                Issue.record("a failing task must make the group throw on \(configuration.backend)")
            } catch let error as RemoteTaskError {
                #expect(error.failure.message == "refused g")
            }
            await cloud.shutdown()
        }
    }

    /// Whether `pid` is gone (or a zombie waiting to be reaped).
    static func isGone(_ pid: Int32) -> Bool {
        if kill(pid, 0) != 0 { return true }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    @Test func workersDieWithADriverKilledBySIGKILL() async throws {
        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: try fixtureWorkerPath())
        var environment = ProcessInfo.processInfo.environment
        environment["CURTAIN_FIXTURE_HOLD"] = "1"
        environment["CURTAIN_WORKERS"] = "2"
        environment["CURTAIN_BACKEND"] = "processes"
        environment.removeValue(forKey: "CURTAIN_ROLE")
        driver.environment = environment
        let output = Pipe()
        driver.standardOutput = output
        try driver.run()
        // Read the "workers:<pid>,<pid>" line.
        var line = ""
        while !line.contains("\n") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line += String(decoding: chunk, as: UTF8.self)
        }
        let pids = line.split(separator: ":").last.map {
            $0.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").compactMap { Int32($0) }
        } ?? []
        #expect(!pids.isEmpty, "the fixture driver printed no worker pids: \(line)")
        #expect(pids.allSatisfy { !Self.isGone($0) })
        kill(driver.processIdentifier, SIGKILL)
        await waitForExit(driver)
        var alive = pids
        for _ in 0..<500 where !alive.isEmpty {
            alive.removeAll(where: Self.isGone)
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(alive.isEmpty, "workers \(alive) outlived their SIGKILLed driver")
    }

    @Test func aProgramThatCannotServeAsWorkerIsNotRespawnedInATightLoop() async throws {
        var configuration = CloudConfiguration(backend: .processes, workers: 2, workerExecutable: "/bin/true", buildID: "fixture")
        configuration.workerArguments = []
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
        do {
            try await cloud.waitForWorkers(timeout: .milliseconds(500))
            Issue.record("/bin/true never becomes a worker")
        } catch let error as ConfigurationError {
            #expect(error.description.contains("0 of 2 workers were ready"))
        }
        // Each death within a second of starting doubles the delay before the next replacement.
        let supervisor = try #require(cloud.supervisor)
        for _ in 0..<3000 where await supervisor.spawned < 7 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(await supervisor.spawned >= 7)
        #expect(await supervisor.respawnDelay >= .milliseconds(160))
        await cloud.shutdown()
    }

    @Test func environmentConfigurationIsValidated() throws {
        #expect(try CloudConfiguration.fromEnvironment(["CURTAIN_BACKEND": "inprocess"]).backend == .inprocess)
        #expect(try CloudConfiguration.fromEnvironment(["CURTAIN_BACKEND": "redis://h:1"]).backend == .store(url: "redis://h:1"))
        #expect(try CloudConfiguration.fromEnvironment(["CURTAIN_WORKERS": "3"]).workers == 3)
        #expect(try CloudConfiguration.fromEnvironment([:]).backend == .processes)
        #expect(throws: ConfigurationError.self) { _ = try CloudConfiguration.fromEnvironment(["CURTAIN_BACKEND": "ray"]) }
        #expect(throws: ConfigurationError.self) { _ = try CloudConfiguration.fromEnvironment(["CURTAIN_WORKERS": "0"]) }
    }
}
