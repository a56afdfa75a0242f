@testable import Curtain
import CurtainRESP
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import NIOCore
import Synchronization
import Testing

/// Waits until `count` workers whose ids start with `prefix` keep a heartbeat (build "fixture").
func waitForHeartbeats(_ count: Int, prefix: String, url: String) async throws {
    let client = try RESPClient(url: url)
    defer { Task { await client.close() } }
    for _ in 0..<3_000 {
        let beating = try await client.send(RESPCommand("KEYS", StoreKeys(buildID: "fixture").worker(prefix) + "*")).array?.count ?? 0
        if beating == count { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("the workers' heartbeats did not appear")
}

/// Cluster mode on a real redis-server: drain on SIGTERM, surviving dropped connections, `curtain status`,
/// telling a driver why nothing happens, payload limits, the local launcher.
@Suite("Cluster: drain, reconnection, status, diagnosis, limits, launcher", .serialized)
struct ClusterTests {
    /// A cloud on `store` for build "fixture" with `count` workers started by hand (ids `<prefix>-<i>`).
    func withWorkers(
        _ count: Int, store: TestStore, environment: [String: String] = [:], _ body: (Cloud, [Process], String) async throws -> Void
    ) async throws {
        let prefix = "cluster-\(getpid())-\(UUID().uuidString.prefix(6))"
        let workers = try startWorkerProcesses(
            count, executable: try fixtureWorkerPath(), url: store.url, buildID: "fixture", idPrefix: prefix,
            environment: environment)
        let cloud = try await Cloud.start(
            functions: allTestFunctions, configuration: CloudConfiguration(backend: .store(url: store.url), buildID: "fixture"))
        do {
            try await waitForHeartbeats(count, prefix: prefix, url: store.url)
            try await body(cloud, workers, prefix)
        } catch {
            await cloud.shutdown()
            for worker in workers { await terminate(worker) }
            throw error
        }
        await cloud.shutdown()
        for worker in workers { await terminate(worker) }
    }

    @Test func aWorkerToldToStopFinishesItsTaskHandsBackTheRestAndExitsZero() async throws {
        try await withTestStore(.redis) { store in
            try await withWorkers(2, store: store) { cloud, workers, _ in
                // The tasks wait at a closed gate: a worker surely holds one when it is told to stop, and it
                // must finish that one (once the gate opens) rather than drop it or run out its drain timeout.
                let gate = temporaryPath("curtain-gate")
                defer { try? FileManager.default.removeItem(atPath: gate) }
                let summary = Mutex<JobSummary?>(nil)
                let job = Task {
                    try await cloud.map(
                        GatedSquare(gate: gate, milliseconds: 100), over: 0..<24,
                        options: JobOptions(onSummary: { s in summary.withLock { $0 = s } }))
                }
                let client = try RESPClient(url: store.url)
                defer { Task { await client.close() } }
                let pid = try #require(try await DeliveryTests().holder(client))
                let worker = try #require(workers.first { $0.processIdentifier == pid })
                kill(pid, SIGTERM)
                _ = FileManager.default.createFile(atPath: gate, contents: nil)
                let clock = ContinuousClock()
                let start = clock.now
                await waitForExit(worker)
                // Well inside the 25 s drain timeout: it finished its task and left, it did not wait it out.
                #expect(clock.now - start < .seconds(20))
                #expect(worker.terminationReason == .exit)
                #expect(worker.terminationStatus == 0)
                // Every task is answered once (nothing lost, nothing charged as a crash).
                #expect(try await job.value == (0..<24).map { $0 * $0 })
                let seen = try #require(summary.withLock { $0 })
                #expect(seen.tasks == 24 && seen.failed == 0)
                #expect(seen.duplicates == 0)
                // It left nothing in flight and removed its heartbeat.
                let keys = StoreKeys(buildID: "fixture")
                let lists = try await client.send(RESPCommand("KEYS", keys.inflight(worker: "") + "*")).array ?? []
                for list in lists.compactMap(\.string) { #expect(try await client.send(RESPCommand("LLEN", list)).int == 0) }
            }
        }
    }

    @Test func workersAndDriverRideOutDroppedConnections() async throws {
        try await withTestStore(.redis) { store in
            try await withWorkers(2, store: store) { cloud, workers, _ in
                let job = Task { try await cloud.map(SlowSquare(milliseconds: 40), over: 0..<120) }
                // A named job too: its results are moved, not popped, and read back after a lost connection.
                let named = Task {
                    try await cloud.map(SlowSquare(milliseconds: 40), over: 0..<120, options: JobOptions(id: "ride-\(getpid())"))
                }
                let client = try RESPClient(url: store.url)
                defer { Task { await client.close() } }
                // Drop every client connection twice mid-job (as a store restart or failover does); the
                // admin connection that does it is dropped too and reconnects.
                for _ in 0..<2 {
                    try await Task.sleep(for: .milliseconds(600))
                    _ = try? await client.send(RESPCommand("CLIENT", "KILL", "TYPE", "normal"))
                }
                #expect(try await job.value == (0..<120).map { $0 * $0 })
                #expect(try await named.value == (0..<120).map { $0 * $0 })
                // The workers are still alive and still work.
                #expect(workers.allSatisfy { $0.isRunning })
                #expect(try await cloud.run(CurtainTestFunctions.Square(offset: 1), 4) == 17)
            }
        }
    }

    @Test func statusListsWorkersQueuesRunningJobsAndDeadLetters() async throws {
        try await withTestStore(.redis) { store in
            try await withWorkers(2, store: store) { cloud, _, prefix in
                let job = Task { try await cloud.map(SlowSquare(milliseconds: 200), over: 0..<30) }
                let client = try RESPClient(url: store.url)
                defer { Task { await client.close() } }
                // A dead letter of another build, as recovery writes them.
                let letter = DeadLetter(job: "j1", index: 7, function: "Boom", attempts: 3, worker: "w9", reason: "the worker crashed", at: 1)
                _ = try await client.send(RESPCommand("RPUSH", StoreKeys(buildID: "old").deadLetters, ByteBuffer(bytes: try PayloadCodec.encode(letter))))
                var status = try await ClusterStatus.read(from: client)
                for _ in 0..<200 where status.jobs.isEmpty {
                    try await Task.sleep(for: .milliseconds(50))
                    status = try await ClusterStatus.read(from: client)
                }
                #expect(status.workers.filter { $0.id.hasPrefix(prefix) }.count == 2)
                #expect(status.workers.allSatisfy { $0.build == "fixture" && $0.pid > 0 && $0.lastBeat > 0 })
                #expect(status.queues.contains { $0.build == "fixture" && $0.key == "curtain:{fixture}:queue" })
                let running = try #require(status.jobs.first)
                #expect(running.function == "SlowSquare" && running.build == "fixture" && running.submitted == 30)
                #expect(status.deadLetters == [ClusterStatus.DeadLetter(
                    build: "old", job: "j1", index: 7, function: "Boom", attempts: 3, worker: "w9", reason: "the worker crashed", at: 1)])
                _ = try await job.value
                // The CLI prints the same as JSON.
                let output = try await runBlocking {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: try builtExecutablePath("curtain"))
                    process.arguments = ["status", "--store", store.url, "--json"]
                    let pipe = Pipe()
                    process.standardOutput = pipe
                    try process.run()
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    return data
                }
                let printed = try JSONDecoder().decode(ClusterStatus.self, from: output)
                #expect(printed.workers.filter { $0.id.hasPrefix(prefix) }.count == 2)
                #expect(printed.jobs.isEmpty)  // the job is over: its record is gone
                #expect(printed.deadLetters.count == 1)
            }
        }
    }

    @Test func aDriverIsToldWhenOnlyWorkersOfAnotherBuildAreConnected() async throws {
        try await withTestStore(.redis) { store in
            try await withWorkers(1, store: store) { _, _, _ in
                let client = try RESPClient(url: store.url)
                defer { Task { await client.close() } }
                let census = try await WorkerCensus.take(client: client)
                #expect(census.complaint(for: "fixture") == nil)
                let complaint = try #require(census.complaint(for: "newer"))
                #expect(complaint.contains("no worker of this build (newer)"))
                #expect(complaint.contains("1 of build fixture"))
                #expect(WorkerCensus(hostsByBuild: [:]).complaint(for: "x")?.contains("no worker is connected") == true)
            }
        }
    }

    @Test func payloadsOverTheLimitFailClearlyAndNothingRuns() async throws {
        var configuration = CloudConfiguration(backend: .inprocess, workers: 1)
        configuration.maxPayloadBytes = 4_096
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
        defer { Task { await cloud.shutdown() } }
        let probe = SpillProbe(storage: cloud.storage, ballast: "")
        // An input over the limit.
        await #expect {
            _ = try await cloud.map(probe, over: ["ok", String(repeating: "x", count: 5_000)])
        } throws: { error in
            let error = try #require(error as? InputEncodingError)
            return error.index == 1 && error.description.contains("over the limit of 4096") && error.description.contains("CURTAIN_MAX_PAYLOAD_BYTES")
        }
        // A function value over the limit.
        await #expect {
            _ = try await cloud.run(SpillProbe(storage: cloud.storage, ballast: String(repeating: "b", count: 5_000)), "in")
        } throws: { error in
            (error as? InputEncodingError)?.index == -1
        }
        // An output over the limit (the input just fits): the task fails, naming the limit.
        await #expect {
            _ = try await cloud.run(probe, String(repeating: "y", count: 4_080))
        } throws: { error in
            let error = try #require(error as? RemoteTaskError)
            return error.failure.kind == .encoding && error.failure.message.contains("over the limit")
        }
        #expect(throws: ConfigurationError.self) { try CloudConfiguration.fromEnvironment(["CURTAIN_MAX_PAYLOAD_BYTES": "12"]) }
        #expect(throws: ConfigurationError.self) { try CloudConfiguration.fromEnvironment(["CURTAIN_DRAIN_SECONDS": "0"]) }
    }

    @Test func aWorkerRefusesAnOversizedQueueEntryUnreadAndLivesOn() async throws {
        try await withTestStore(.redis) { store in
            try await withWorkers(1, store: store, environment: ["CURTAIN_MAX_PAYLOAD_BYTES": "2048"]) { cloud, workers, _ in
                let client = try RESPClient(url: store.url)
                defer { Task { await client.close() } }
                let big = try TaskEnvelope(
                    buildID: "fixture", jobID: "big", index: 0, function: "Square", functionPayload: Array("{\"offset\":0}".utf8),
                    input: Array(repeating: UInt8(ascii: "1"), count: 4_000)
                ).encoded()
                _ = try await client.send(RESPCommand("RPUSH", StoreKeys(buildID: "fixture").queue, big))
                #expect(try await cloud.run(CurtainTestFunctions.Square(offset: 1), 2) == 5)
                #expect(try await client.send(RESPCommand("EXISTS", StoreKeys.results(job: "big"))).int == 0)
                #expect(workers.allSatisfy { $0.isRunning })
            }
        }
    }

    @Test func theLauncherScalesWithTheQueueAndBackToZero() async throws {
        try await withTestStore(.redis) { store in
            let launcher = try WorkerLauncher(
                executable: try fixtureWorkerPath(), storeURL: store.url, buildID: "fixture",
                policy: ScalingPolicy(minimum: 0, maximum: 2, idleTimeout: .milliseconds(800), interval: .milliseconds(50)))
            #expect(launcher.processIDs.isEmpty)
            let running = Task { try await launcher.run() }
            let cloud = try await Cloud.start(
                functions: allTestFunctions, configuration: CloudConfiguration(backend: .store(url: store.url), buildID: "fixture"))
            defer { Task { await cloud.shutdown() } }
            let peak = Mutex(0)
            let watcher = Task {
                while !Task.isCancelled {
                    let count = launcher.processIDs.count
                    peak.withLock { $0 = max($0, count) }
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(try await cloud.map(SlowSquare(milliseconds: 100), over: 0..<12) == (0..<12).map { $0 * $0 })
            watcher.cancel()
            #expect(peak.withLock { $0 } == 2)
            // Idle: back to zero (the workers drain and exit).
            for _ in 0..<1_000 where !launcher.processIDs.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
            #expect(launcher.processIDs.isEmpty)
            // Stopping the launcher returns once its workers have exited.
            running.cancel()
            try await running.value
            #expect(throws: ConfigurationError.self) {
                _ = try WorkerLauncher(executable: "/nonexistent", storeURL: store.url, policy: ScalingPolicy())
            }
            #expect(throws: ConfigurationError.self) { try ScalingPolicy(minimum: 3, maximum: 2).validated() }
        }
    }

    @Test func aRestartedDriverReattachesToItsNamedJobAndNoTaskRunsTwice() async throws {
        try await withTestStore(.redis) { store in
            let prefix = "reattach-\(getpid())"
            let workers = try startWorkerProcesses(2, executable: try fixtureWorkerPath(), url: store.url, buildID: "fixture", idPrefix: prefix)
            defer { for worker in workers { kill(worker.processIdentifier, SIGKILL) } }
            try await waitForHeartbeats(2, prefix: prefix, url: store.url)
            let counter = FileManager.default.temporaryDirectory.appendingPathComponent("reattach-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: counter) }
            func driver() throws -> (Process, Pipe) {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: try fixtureWorkerPath())
                var environment = ProcessInfo.processInfo.environment
                environment["CURTAIN_ROLE"] = nil
                environment["CURTAIN_BACKEND"] = store.url
                environment["CURTAIN_BUILD_ID"] = "fixture"
                environment["CURTAIN_FIXTURE_REATTACH"] = "nightly-\(getpid())"
                environment["CURTAIN_FIXTURE_COUNTER"] = counter
                process.environment = environment
                let pipe = Pipe()
                process.standardOutput = pipe
                try process.run()
                return (process, pipe)
            }
            func calls() -> Int { (try? FileManager.default.attributesOfItem(atPath: counter)[.size] as? Int) ?? 0 }
            // The first driver dies (SIGKILL) a few tasks into the job.
            let (first, _) = try driver()
            for _ in 0..<2_000 where calls() < 6 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(calls() >= 6)
            kill(first.processIdentifier, SIGKILL)
            await waitForExit(first)
            // The second reattaches: it submits nothing again and collects every output, including those the
            // first had already received.
            let (second, pipe) = try driver()
            let output = try await runBlocking { String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
            await waitForExit(second)
            #expect(second.terminationStatus == 0)
            #expect(output.contains("sum:\((0..<40).reduce(0, +))"))
            #expect(calls() == 40)
            // The job's keys are gone once it ends.
            let client = try RESPClient(url: store.url)
            defer { Task { await client.close() } }
            let left = try await client.send(RESPCommand("KEYS", "*nightly-\(getpid())*")).array ?? []
            #expect(left.compactMap(\.string).allSatisfy { $0.hasSuffix(":cancelled") })
        }
    }

    @Test func aJobIDMustBeShortAndPlain() {
        #expect(throws: ConfigurationError.self) { try JobOptions(id: "has space").validated() }
        #expect(throws: ConfigurationError.self) { try JobOptions(id: "").validated() }
        #expect(throws: ConfigurationError.self) { try JobOptions(id: String(repeating: "a", count: 65)).validated() }
        #expect(throws: Never.self) { try JobOptions(id: "nightly-2026.11_29").validated() }
    }

    @Test func oneLiveDriverPerNamedJobAndAFreshRunUnderAUsedName() async throws {
        try await withTestStore(.redis) { store in
            try await withWorkers(2, store: store) { cloud, _, _ in
                let name = "owned-\(getpid())"
                // Longer (about 12 s) than a second driver waits for the lease (6 s).
                let first = Task {
                    try await cloud.map(SlowSquare(milliseconds: 800), over: 0..<30, options: JobOptions(id: name))
                }
                let client = try RESPClient(url: store.url)
                defer { Task { await client.close() } }
                for _ in 0..<500 where try await client.send(RESPCommand("EXISTS", StoreKeys(buildID: "fixture").owner(name))).int != 1 {
                    try await Task.sleep(for: .milliseconds(10))
                }
                // A second driver (here a second map in the same process) cannot take a job a live one runs.
                await #expect {
                    _ = try await cloud.map(SlowSquare(milliseconds: 200), over: 0..<30, options: JobOptions(id: name))
                } throws: { error in
                    (error as? ConfigurationError)?.description.contains("being run by a live driver") == true
                }
                #expect(try await first.value == (0..<30).map { $0 * $0 })
                // Once it is over, the name starts a fresh run: other function, other inputs, its own results.
                let again = try await cloud.map(CurtainTestFunctions.Square(offset: 1), over: [2, 3], options: JobOptions(id: name))
                #expect(again == [5, 10])
            }
        }
    }

    @Test func aTaskOverTheWorkersLimitAsAWholeFailsBeforeItIsSent() async throws {
        var configuration = CloudConfiguration(backend: .processes, workers: 1, workerExecutable: try fixtureWorkerPath(), buildID: "fixture")
        configuration.maxPayloadBytes = 4_096
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
        defer { Task { await cloud.shutdown() } }
        // Input and function value are each under the limit; the task carrying both is not.
        let probe = SpillProbe(storage: cloud.storage, ballast: String(repeating: "b", count: 2_500))
        await #expect {
            _ = try await cloud.run(probe, String(repeating: "i", count: 2_500))
        } throws: { error in
            let error = try #require(error as? InputEncodingError)
            return error.index == 0 && error.description.contains("that workers accept")
        }
        #expect(try await cloud.run(probe, "ok")[0] == "ko")
    }

    @Test func aTaskThatIgnoresTheDrainCannotKeepItsWorkerAndIsHandedBack() async throws {
        try await withTestStore(.redis) { store in
            try await withWorkers(1, store: store, environment: ["CURTAIN_DRAIN_SECONDS": "1"]) { cloud, workers, _ in
                let job = Task { try await cloud.map(Spin(milliseconds: 30_000), over: [7]) }
                defer { job.cancel() }
                let client = try RESPClient(url: store.url)
                defer { Task { await client.close() } }
                let pid = try #require(try await DeliveryTests().holder(client))
                let worker = try #require(workers.first { $0.processIdentifier == pid })
                let clock = ContinuousClock()
                let start = clock.now
                kill(pid, SIGTERM)
                await waitForExit(worker)
                // Drain timeout (1 s) + backstop (5 s), less than the 30 s the task would spin (the rest is room
                // for a loaded machine).
                #expect(clock.now - start < .seconds(25))
                #expect(worker.terminationStatus == 0)
                // The task it could not finish is back in the queue for another worker.
                #expect(try await client.send(RESPCommand("LLEN", StoreKeys(buildID: "fixture").queue)).int == 1)
            }
        }
    }

    @Test func aStoreOutOfMemoryForAWhileLosesNoTask() async throws {
        try await withTestStore(.redis) { store in
            try await withWorkers(1, store: store) { cloud, workers, _ in
                let job = Task { try await cloud.map(SlowSquare(milliseconds: 300), over: 0..<8) }
                let client = try RESPClient(url: store.url)
                defer { Task { await client.close() } }
                _ = try #require(try await DeliveryTests().holder(client))
                // Every write that needs memory is refused for a while (`maxmemory` 1 byte, no eviction):
                // the worker's answers must not be half applied (in-flight removals without the results).
                _ = try await client.send(RESPCommand("CONFIG", "SET", "maxmemory-policy", "noeviction"))
                _ = try await client.send(RESPCommand("CONFIG", "SET", "maxmemory", "1"))
                try await Task.sleep(for: .milliseconds(1_500))
                _ = try await client.send(RESPCommand("CONFIG", "SET", "maxmemory", "0"))
                #expect(try await job.value == (0..<8).map { $0 * $0 })
                #expect(workers.allSatisfy { $0.isRunning })
            }
        }
    }

    @Test func theBuildIDFollowsTheCodeNotTheFile() throws {
        let original = try fixtureWorkerPath()
        let id = BuildID.of(path: original)
        #expect(id.count == 16 && id.allSatisfy(\.isHexDigit))
        // A copy (another inode, another modification time, as on another host) has the same id ...
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("copied-worker-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: original, toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        #expect(BuildID.of(path: copy) == id)
        // ... and other code another.
        #expect(BuildID.of(path: try builtExecutablePath("curtain")) != id)
        #expect(BuildID.gnuBuildID(path: "/nonexistent") == nil)
        #expect(BuildID.gnuBuildID(path: "/etc/hostname") == nil)
    }

    @Test func theLauncherBacksOffWhenWorkersFailYoung() async throws {
        try await withTestStore(.redis) { store in
            let client = try RESPClient(url: store.url)
            defer { Task { await client.close() } }
            _ = try await client.send(RESPCommand("RPUSH", StoreKeys(buildID: "doomed").queue, "a task no worker will live to take"))
            // /bin/false exits 1 at once, as a worker with a bad setting would.
            let launcher = try WorkerLauncher(
                executable: "/bin/false", storeURL: store.url, buildID: "doomed",
                policy: ScalingPolicy(minimum: 0, maximum: 2, interval: .milliseconds(50)))
            let running = Task { try await launcher.run() }
            try await Task.sleep(for: .milliseconds(2_500))
            running.cancel()
            try await running.value
            // Without the back-off: 2 starts every 50 ms (about 100); with it, a handful.
            #expect(launcher.startedCount >= 2)
            #expect(launcher.startedCount <= 10)
        }
    }
}
