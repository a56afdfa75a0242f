@testable import Curtain
import CurtainRESP
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import Synchronization
import Testing

/// Delivery on a shared store, where no supervisor watches the workers: heartbeats and the reaper.
@Suite("Delivery: tasks of workers whose heartbeat lapsed run again; results count once", .serialized)
struct DeliveryTests {
    /// `count` workers started by hand on a redis-server, with a heartbeat TTL of `ttl` ms (300 unless given), and a
    /// cloud on the same store with that TTL.
    func withCluster(workers count: Int, ttl: Int = 300, _ body: (Cloud, [Process], TestStore) async throws -> Void) async throws {
        // (Bodies wait for all the workers' heartbeats first, so every worker can take part.)
        try await withTestStore(.redis) { store in
            let prefix = "delivery-\(getpid())-\(UUID().uuidString.prefix(6))"
            let workers = try startWorkerProcesses(
                count, executable: try fixtureWorkerPath(), url: store.url, buildID: "fixture", idPrefix: prefix,
                environment: ["CURTAIN_HEARTBEAT_MS": "\(ttl)"])
            var configuration = CloudConfiguration(backend: .store(url: store.url), buildID: "fixture")
            configuration.heartbeatTTL = .milliseconds(ttl)
            let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
            do {
                try await waitForHeartbeats(count, prefix: prefix, url: store.url)
                try await body(cloud, workers, store)
            } catch {
                await cloud.shutdown()
                for worker in workers { await terminate(worker) }
                throw error
            }
            await cloud.shutdown()
            for worker in workers { await terminate(worker) }
        }
    }

    /// The process id of a worker holding a task (polled for up to 60 s: call it while tasks are surely in
    /// flight, as ``GatedSquare``'s are until their gate opens).
    func holder(_ client: RESPClient) async throws -> Int32? {
        let keys = StoreKeys(buildID: "fixture")
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while clock.now < deadline {
            let lists = try await client.send(RESPCommand("KEYS", keys.inflight(worker: "") + "*")).array ?? []
            for list in lists.compactMap(\.string) where try await client.send(RESPCommand("LLEN", list)).int ?? 0 > 0 {
                let worker = String(list.dropFirst(keys.inflight(worker: "").count))
                if let pid = try await client.send(RESPCommand("HGET", keys.worker(worker), "pid")).string.flatMap({ Int32($0) }) {
                    return pid
                }
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    @Test func aKilledWorkersTasksRunElsewhereAndTheJobSucceeds() async throws {
        try await withCluster(workers: 2, ttl: 1_000) { cloud, workers, store in
            // The tasks wait at a closed gate, so a worker surely holds some when it is looked for, however
            // late that is on a loaded machine; the gate opens once the holder is dead.
            let gate = temporaryPath("curtain-gate")
            defer { try? FileManager.default.removeItem(atPath: gate) }
            let summary = Mutex<JobSummary?>(nil)
            let job = Task {
                try await cloud.map(
                    GatedSquare(gate: gate, milliseconds: 20), over: 0..<40,
                    options: JobOptions(onSummary: { s in summary.withLock { $0 = s } }))
            }
            let client = try RESPClient(url: store.url)
            defer { Task { await client.close() } }
            let keys = StoreKeys(buildID: "fixture")
            let pid = try #require(try await holder(client))
            #expect(workers.contains { $0.processIdentifier == pid })
            kill(pid, SIGKILL)
            _ = FileManager.default.createFile(atPath: gate, contents: nil)
            #expect(try await job.value == (0..<40).map { $0 * $0 })
            let seen = try #require(summary.withLock { $0 })
            #expect(seen.retries >= 1)  // the killed worker's tasks ran again
            #expect(seen.tasks == 40)
            // Its heartbeat is gone and nothing is left in flight.
            let lists = try await client.send(RESPCommand("KEYS", keys.inflight(worker: "") + "*")).array ?? []
            for list in lists.compactMap(\.string) { #expect(try await client.send(RESPCommand("LLEN", list)).int == 0) }
        }
    }

    /// The id and process of a worker holding a task other than `index` (polled for up to 60 s).
    func holder(_ client: RESPClient, holdingOtherThan index: UInt64) async throws -> (id: String, pid: Int32)? {
        let keys = StoreKeys(buildID: "fixture")
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while clock.now < deadline {
            let lists = try await client.send(RESPCommand("KEYS", keys.inflight(worker: "") + "*")).array ?? []
            for list in lists.compactMap(\.string) {
                let held = (try await client.send(RESPCommand("LRANGE", list, 0, -1)).array ?? []).compactMap(\.buffer)
                guard held.contains(where: { (try? TaskEnvelope(decoding: $0))?.index != index }) else { continue }
                let worker = String(list.dropFirst(keys.inflight(worker: "").count))
                if let pid = try await client.send(RESPCommand("HGET", keys.worker(worker), "pid")).string.flatMap({ Int32($0) }) {
                    return (worker, pid)
                }
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// Waits (up to 60 s) until `condition` holds; records an issue naming `what` if it never does.
    func waitUntil(_ what: String, _ condition: () async throws -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while clock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("gave up waiting until \(what)")
    }

    @Test func aWorkerPresumedDeadThatAnswersLateIsCountedAsADuplicate() async throws {
        try await withCluster(workers: 2) { cloud, workers, store in
            // Every step waits for its condition, so a loaded machine only makes it slower: the tasks wait at
            // a gate until a worker holding some is frozen and presumed dead, and the last task waits at a
            // second gate until the frozen worker's late answers are in, so the job is surely still running.
            let gate = temporaryPath("curtain-gate")
            let lastGate = temporaryPath("curtain-last-gate")
            defer {
                try? FileManager.default.removeItem(atPath: gate)
                try? FileManager.default.removeItem(atPath: lastGate)
            }
            let summary = Mutex<JobSummary?>(nil)
            let job = Task {
                try await cloud.map(
                    GatedSquare(gate: gate, holdBack: 29, lastGate: lastGate), over: 0..<30,
                    options: JobOptions(retries: 10_000, onSummary: { s in summary.withLock { $0 = s } }))
            }
            let client = try RESPClient(url: store.url)
            defer { Task { await client.close() } }
            let keys = StoreKeys(buildID: "fixture")
            let frozen = try #require(try await holder(client, holdingOtherThan: 29))
            #expect(workers.contains { $0.processIdentifier == frozen.pid })
            // Frozen (as a cut link would leave it): its heartbeat lapses and its tasks go back to the queue.
            kill(frozen.pid, SIGSTOP)
            try await waitUntil("the frozen worker's tasks were recovered") {
                try await client.send(RESPCommand("EXISTS", keys.worker(frozen.id), keys.inflight(worker: frozen.id))) == .integer(0)
            }
            // Outputs that reached the store (waiting to be read, or read and kept); the held-back task's
            // failures are not counted.
            let answers = { () async throws -> Int in
                var count = 0
                for key in try await client.send(RESPCommand("KEYS", "curtain:job:*")).array?.compactMap(\.string) ?? []
                where key.hasSuffix(":results") || key.hasSuffix(":received") {
                    for entry in try await client.send(RESPCommand("LRANGE", key, 0, -1)).array?.compactMap(\.buffer) ?? [] {
                        if case .success = try TaskResult(decoding: entry).outcome { count += 1 }
                    }
                }
                return count
            }
            // The other worker runs them all (the frozen one's again) but the last; only then does the frozen
            // one wake and answer its copies, late. At most 29 tasks are answered before the last gate opens,
            // so a 30th answer is a second one for some task.
            _ = FileManager.default.createFile(atPath: gate, contents: nil)
            try await waitUntil("the other worker answered all but the last task") { try await answers() >= 29 }
            kill(frozen.pid, SIGCONT)
            try await waitUntil("the late answers reached the store") { try await answers() >= 30 }
            _ = FileManager.default.createFile(atPath: lastGate, contents: nil)
            #expect(try await job.value == (0..<30).map { $0 * $0 })
            let seen = try #require(summary.withLock { $0 })
            #expect(seen.tasks == 30)
            #expect(seen.retries >= 1)
            #expect(seen.duplicates >= 1)
            #expect(seen.description.contains("duplicate"))
        }
    }

    @Test func aTaskThatKillsEveryWorkerIsGivenUpAndDeadLettered() async throws {
        try await withCluster(workers: 4) { cloud, _, store in
            do {
                _ = try await cloud.map(AlwaysCrashes(), over: [5])
                Issue.record("expected a crash failure")
            } catch let error as RemoteTaskError {
                #expect(error.failure.kind == .crashed)
                #expect(error.failure.message.contains("stopped sending heartbeats"))
                #expect(error.failure.message.contains("attempt 3 of 3"))
            }
            let client = try RESPClient(url: store.url)
            defer { Task { await client.close() } }
            let letters = try await client.send(RESPCommand("LRANGE", StoreKeys(buildID: "fixture").deadLetters, 0, -1)).array ?? []
            #expect(letters.count == 1)
            let letter = try PayloadCodec.decode(DeadLetter.self, from: Array(try #require(letters.first?.buffer).readableBytesView))
            #expect(letter.function == "AlwaysCrashes" && letter.index == 0 && letter.attempts == 3)
            // A fourth worker is still alive and works.
            #expect(try await cloud.run(CurtainTestFunctions.Square(offset: 1), 3) == 10)
        }
    }

    @Test func recoveryHappensOnceWhenSeveralProcessesNoticeTheDeath() async throws {
        try await withTestStore(.redis) { store in
            let client = try RESPClient(url: store.url)
            defer { Task { await client.close() } }
            let keys = StoreKeys(buildID: "race")
            let envelope = TaskEnvelope(buildID: "race", jobID: "j", index: 0, function: "F", functionPayload: [], input: [])
            _ = try await client.send(RESPCommand("RPUSH", keys.inflight(worker: "gone"), try envelope.encoded()))
            // Two reapers at once: the task goes back exactly once.
            async let a = TaskRecovery.recover(workerID: "gone", how: "test", keys: keys, crashRetries: 2, client: client)
            async let b = TaskRecovery.recover(workerID: "gone", how: "test", keys: keys, crashRetries: 2, client: client)
            let outcomes = try await [a, b]
            #expect(outcomes.compactMap { $0 }.reduce(0) { $0 + $1.requeued } == 1)
            #expect(try await client.send(RESPCommand("LLEN", keys.queue)).int == 1)
            #expect(try await client.send(RESPCommand("EXISTS", keys.inflight(worker: "gone"))).int == 0)
            let back = try TaskEnvelope(decoding: try #require(try await client.send(RESPCommand("LPOP", keys.queue)).buffer))
            #expect(back.attempt == 2 && back.crashes == 1)
        }
    }
}
