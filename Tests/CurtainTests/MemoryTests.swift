@testable import Curtain
import CurtainRESP
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import Synchronization
import Testing

/// A cloud on `store` (no workers of its own), for shared objects on either kind of server.
func withStoreCloud(_ store: TestStore, _ body: (Cloud) async throws -> Void) async throws {
    let cloud = try await Cloud.start(
        functions: allTestFunctions, configuration: CloudConfiguration(backend: .store(url: store.url), buildID: "fixture"))
    do {
        try await body(cloud)
    } catch {
        await cloud.shutdown()
        throw error
    }
    await cloud.shutdown()
}

/// A flag a task sets when it ends, for a test that works until then.
final class FinishedFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// Starts `count` fixture worker processes on `url` by hand, as a cluster's workers would be.
func startFixtureWorkers(_ count: Int, url: String) throws -> [Process] {
    try startWorkerProcesses(count, executable: try fixtureWorkerPath(), url: url, buildID: "fixture", idPrefix: "manual")
}

@Suite("Shared memory: counters, values, dictionaries, locks")
struct MemoryTests {
    @Test(arguments: StoreKind.allCases)
    func countersValuesAndDictionariesBehaveLikeLocalOnes(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let counter = try cloud.memory.counter("c")
                #expect(try await counter.load() == 0)
                #expect(try await counter.add(5) == 5)
                #expect(try await counter.add(-2) == 3)
                try await counter.store(10)
                #expect(try await counter.compareExchange(expected: 3, desired: 7) == (false, 10))
                #expect(try await counter.compareExchange(expected: 10, desired: 7) == (true, 10))
                #expect(try await counter.load() == 7)

                let value = try cloud.memory.value("v", of: [String].self)
                #expect(try await value.load() == nil)
                try await value.store(["a"])
                let count = try await value.update { list -> Int in
                    list!.append("b")
                    return list!.count
                }
                #expect(count == 2)
                #expect(try await value.load() == ["a", "b"])

                let dictionary = try cloud.memory.dictionary("d", of: [Int: String].self)
                try await dictionary.set("one", forKey: 1)
                try await dictionary.set("two", forKey: 2)
                #expect(try await dictionary.value(forKey: 1) == "one")
                #expect(try await dictionary.count() == 2)
                try await dictionary.update(2) { $0 = $0! + "!" }
                #expect(try await dictionary.all() == [1: "one", 2: "two!"])
                #expect(try await dictionary.removeValue(forKey: 1))
                #expect(try await !dictionary.removeValue(forKey: 1))
                try await dictionary.update(2) { $0 = nil }
                #expect(try await dictionary.count() == 0)
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func wrongUseIsAClearErrorAndChangesNothing(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let asInt = try cloud.memory.value("x", of: Int.self)
                try await asInt.store(41)
                let asText = try cloud.memory.value("x", of: String.self)
                do {
                    _ = try await asText.load()
                    Issue.record("an Int read as a String must fail")
                } catch let error as SharedMemoryError {
                    #expect(error.description.contains("holds a Swift.Int, not a Swift.String"))
                }
                await #expect(throws: SharedMemoryError.self) { try await asText.update { $0 = "overwritten" } }
                #expect(try await asInt.load() == 41)

                // Bytes Curtain did not write: refused, left as they are.
                let raw = try store.client()
                _ = try await raw.send("SET", asInt.key, "not ours")
                await #expect(throws: SharedMemoryError.self) { _ = try await asInt.load() }
                #expect(try await raw.send("GET", asInt.key) == .bulkString(.init(string: "not ours")))
                await raw.close()

                #expect(throws: SharedMemoryError.self) { _ = try cloud.memory.counter("") }
                #expect(throws: SharedMemoryError.self) { _ = try cloud.memory.lock("l", lease: .milliseconds(5)) }
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aLockExcludesAndFencesItsHolders(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let lock = try cloud.memory.lock("l", lease: .seconds(6))
                let clock = ContinuousClock()
                let taken = clock.now
                let first = try #require(try await lock.tryAcquire())
                #expect(try await lock.tryAcquire() == nil)
                await #expect(throws: SharedMemoryError.self) { _ = try await lock.acquire(timeout: .milliseconds(50)) }
                // Renewal keeps it past its lease: wait until a lease has passed since it was taken and the
                // store has seen a renewal since then (its time to live went back up).
                let raw = try RESPClient(url: store.url)
                var lowest = Int.max
                var renewed = false
                while !(renewed && clock.now - taken > .seconds(7)), clock.now - taken < .seconds(60) {
                    let ttl = try await raw.send("PTTL", lock.key).int ?? -2
                    #expect(ttl > 0, "the lock's key lapsed while its holder renews it")
                    if lowest != .max, ttl > lowest + 500 { renewed = true }
                    lowest = min(lowest, ttl)
                    try await Task.sleep(for: .milliseconds(100))
                }
                await raw.close()
                #expect(renewed)
                #expect(first.isHeld)
                #expect(try await lock.tryAcquire() == nil)
                try await first.release()
                let second = try #require(try await lock.tryAcquire())
                #expect(second.fence > first.fence)
                try await second.release()
                #expect(try await lock.withLock { $0.fence } > second.fence)
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aWaiterGetsTheLockHandedOverAndOneThatGaveUpLeavesTheQueue(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let lock = try cloud.memory.lock("handover", lease: .seconds(20))
                let holder = try #require(try await lock.tryAcquire())
                // A waiter that gives up leaves the queue: the next release frees the lock.
                await #expect(throws: SharedMemoryError.self) { _ = try await lock.acquire(timeout: .milliseconds(120)) }
                let raw = try RESPClient(url: store.url)
                #expect(try await raw.send("EXISTS", lock.key + ":queue", lock.key + ":waiters") == .integer(0))
                // A waiter that keeps waiting gets the lock from the release, with the next fence.
                let waiter = Task { try await lock.acquire(timeout: .seconds(30)) }
                let clock = ContinuousClock()
                let deadline = clock.now + .seconds(20)
                while try await raw.send("LLEN", lock.key + ":queue") != .integer(1), clock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                }
                try await holder.release()
                let next = try await waiter.value
                #expect(next.fence > holder.fence)
                #expect(next.isHeld)
                #expect(try await raw.send("GET", lock.key) == .bulkString(.init(string: next.token)))
                try await next.release()
                #expect(try await raw.send("EXISTS", lock.key) == .integer(0))
                // No time to wait still means one attempt: a free lock is taken.
                let quick = try await lock.acquire(timeout: .zero)
                #expect(quick.isHeld)
                try await quick.release()
                #expect(!quick.isHeld)
                await raw.close()
            }
        }
    }

    @Test func aHolderWhoseStoreStopsAnsweringStopsBelievingItHoldsTheLock() async throws {
        try await withTestStore(.redis) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let lock = try cloud.memory.lock("frozen", lease: .milliseconds(600))
                let lease = try await lock.acquire(timeout: .seconds(10))
                let server = try #require(store.serverProcessIdentifier)
                kill(server, SIGSTOP)  // the store stops answering: renewals time out
                let clock = ContinuousClock()
                let frozenAt = clock.now
                while lease.isHeld, clock.now - frozenAt < .seconds(30) { try await Task.sleep(for: .milliseconds(20)) }
                let noticed = clock.now - frozenAt
                kill(server, SIGCONT)
                #expect(!lease.isHeld)
                // About one lease (600 ms); the bound only leaves room for a loaded machine's pauses between looks.
                #expect(noticed < .seconds(8), "isHeld stayed true \(noticed) after the store stopped answering")
                try? await lease.release()
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aMutexGuardsItsValueAndStoresNothingOnFailure(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let mutex = try await cloud.memory.mutex("m", initialValue: [1, 2], lease: .seconds(5))
                #expect(try await mutex.withLock { $0.append(3); return $0.count } == 3)
                #expect(try await mutex.load() == [1, 2, 3])
                // An existing mutex keeps its value.
                #expect(try await cloud.memory.mutex("m", initialValue: [9], lease: .seconds(5)).load() == [1, 2, 3])
                // A body that throws stores nothing, and the lock is free again.
                struct Refused: Error {}
                await #expect(throws: Refused.self) { try await mutex.withLock { $0 = []; throw Refused() } }
                #expect(try await mutex.load() == [1, 2, 3])
                #expect(try await mutex.lock.tryAcquire()?.release() != nil)
                // The same name read as another type: a clear error, the stored value unchanged.
                await #expect(throws: SharedMemoryError.self) {
                    _ = try await cloud.memory.mutex("m", initialValue: "text", lease: .seconds(5))
                }
                let asText = SharedMutex<String>(lock: mutex.lock)
                await #expect(throws: SharedMemoryError.self) { try await asText.withLock { $0 = "x" } }
                #expect(try await mutex.load() == [1, 2, 3])
                // A removed value is an error, not a silent fresh start.
                let raw = try RESPClient(url: store.url)
                _ = try await raw.send("DEL", mutex.valueKey)
                await #expect(throws: SharedMemoryError.self) { try await mutex.withLock { $0.append(4) } }
                #expect(try await raw.send("EXISTS", mutex.valueKey, mutex.lock.key) == .integer(0))
                await raw.close()
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func noUpdateIsLostUnderContentionFromWorkerProcesses(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let workers = try startFixtureWorkers(2, url: store.url)
                defer { for worker in workers { kill(worker.processIdentifier, SIGKILL) } }
                let bump = Bump(
                    counter: try cloud.memory.counter("hits"),
                    dictionary: try cloud.memory.dictionary("table", of: [String: Int].self),
                    value: try cloud.memory.value("total", of: Int.self),
                    guarded: try cloud.memory.value("guarded", of: Int.self),
                    lock: try cloud.memory.lock("guard", lease: .seconds(5)),
                    mutex: try await cloud.memory.mutex("tally", initialValue: 0, lease: .seconds(5)))
                let pids = Set(try await cloud.map(WhereAmI(), over: 0..<50))
                #expect(pids.count >= 1 && !pids.contains(getpid()))
                #expect(try await cloud.map(bump, over: [50, 50, 50, 50]) == [50, 50, 50, 50])
                #expect(try await bump.counter.load() == 200)
                #expect(try await bump.dictionary.value(forKey: "hits") == 200)
                #expect(try await bump.value.load() == 200)
                #expect(try await bump.guarded.load() == 200)
                #expect(try await bump.mutex.load() == 200)
                for worker in workers { await terminate(worker) }
            }
        }
    }

    @Test func aLockWhoseHolderIsKilledIsFreeAfterItsLease() async throws {
        var configuration = try CloudTests.configurations()[1]
        configuration.crashRetries = 0  // the holder's task must not run again and re-take the lock
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
        let report = temporaryPath("curtain-lock-holder")
        defer { try? FileManager.default.removeItem(atPath: report) }
        let lock = try cloud.memory.lock("held", lease: .seconds(3))
        let job = Task { try await cloud.run(HoldLock(lock: lock, report: report), 1) }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(120)
        while !FileManager.default.fileExists(atPath: report), clock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let fields = try String(contentsOfFile: report, encoding: .utf8).split(separator: " ")
        let holder = try #require(Int32(fields[0]))
        let holderFence = try #require(Int(fields[1]))
        #expect(try await lock.tryAcquire() == nil)  // held by the worker
        kill(holder, SIGKILL)
        let lease = try await lock.acquire(timeout: .seconds(60))
        #expect(lease.fence > holderFence)
        try await lease.release()
        await #expect(throws: RemoteTaskError.self) { _ = try await job.value }
        await cloud.shutdown()
    }

    /// A worker whose every thread that user code can reach is busy (a CPU-bound spinner on each thread of the
    /// cooperative pool and on each event loop of its store client) keeps renewing a short lease from its
    /// keeper thread: nobody else gets the lock meanwhile, and the holder still has it at the end.
    @Test func aLeaseIsRenewedWhileItsHolderKeepsEveryCoreBusy() async throws {
        var configuration = try CloudTests.configurations()[1]
        configuration.workers = 1
        configuration.crashRetries = 0
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
        let report = temporaryPath("curtain-spin-holder")
        defer {
            try? FileManager.default.removeItem(atPath: report)
            try? FileManager.default.removeItem(atPath: report + ".done")
        }
        // A short lease (the default is 10 s) and three leases of spinning: without renewals it would lapse
        // twice over.
        let lock = try cloud.memory.lock("spun", lease: .seconds(2))
        let finished = FinishedFlag()
        let job = Task {
            defer { finished.value.store(true, ordering: .relaxed) }
            return try await cloud.run(HoldLockWhileSpinning(lock: lock, report: report, milliseconds: 6_000), 0)
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(120)
        while !FileManager.default.fileExists(atPath: report), clock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let fields = try String(contentsOfFile: report, encoding: .utf8).split(separator: " ")
        let holderFence = try #require(Int(fields[1]))
        // Meanwhile nobody else gets it (each try is one round trip; a lapsed lease would hand it over). Once
        // the worker has said it is done, the lock may be free because it released it.
        var tries = 0
        while !finished.value.load(ordering: .relaxed) {
            if let taken = try await lock.tryAcquire() {
                if !FileManager.default.fileExists(atPath: report + ".done") {
                    Issue.record("the lock was taken (fence \(taken.fence)) while the spinning worker held it (fence \(holderFence))")
                }
                try? await taken.release()
                break
            }
            tries += 1
            try await Task.sleep(for: .milliseconds(50))
        }
        let result = try await job.value  // the holder's release throws if its lease was lost
        #expect(result == [holderFence, 1])
        #expect(tries > 0)
        await cloud.shutdown()
    }

    @Test(arguments: StoreKind.allCases)
    func arraysReadWritePullAndPushAcrossChunks(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let count = 200_000  // four chunks of 64 Ki elements
                let array = try await cloud.memory.array("a", of: Double.self, count: count)
                #expect(try await array.elements(in: 0..<3) == [0, 0, 0])
                // A range across a chunk boundary.
                let values = (0..<20).map { Double($0) + 0.5 }
                try await array.write(values, at: 65_530)
                #expect(try await array.elements(in: 65_530..<65_550) == values)
                try await array.set(-1, at: count - 1)
                #expect(try await array.element(at: count - 1) == -1)

                var local = try await array.pull()
                #expect(local.count == count)
                #expect(local[65_531] == 1.5 && local[count - 1] == -1 && local[7] == 0)
                #expect(!local.hasChanges)
                local[10] = 10
                local[150_000] = 15
                local[150_002] = 17
                #expect(local.hasChanges)
                try await array.push(&local)
                #expect(!local.hasChanges)
                #expect(try await array.elements(in: 150_000..<150_003) == [15, 0, 17])
                #expect(try await array.elements(in: 9..<12) == [0, 10, 0])
                #expect(try await array.elements(in: 65_530..<65_550) == values)  // untouched by the push

                // Wrong use: a clear error, nothing changed.
                await #expect(throws: SharedMemoryError.self) { _ = try await array.elements(in: (count - 1)..<(count + 1)) }
                await #expect(throws: SharedMemoryError.self) { try await array.write([1, 2], at: count - 1) }
                #expect(try await array.element(at: count - 1) == -1)
                do {
                    _ = try await cloud.memory.array("a", of: Float.self, count: count)
                    Issue.record("a Double array opened as Float must fail")
                } catch let error as SharedMemoryError {
                    #expect(error.description.contains("holds 200000 Double, not 200000 Float"))
                }
                await #expect(throws: SharedMemoryError.self) { _ = try await cloud.memory.array("a", of: Double.self, count: 5) }
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func replicasExchangeExplicitlyOrInTheBackground(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let array = try await cloud.memory.array("r", of: Double.self, count: 100_000)
                // Explicit: nothing moves until asked.
                let explicit = try await array.replica()
                explicit[1] = 1
                try await explicit.sync()  // a no-op in explicit mode
                #expect(try await array.element(at: 1) == 0)
                try await explicit.push()
                #expect(try await array.element(at: 1) == 1)
                explicit[2] = 2
                try await explicit.pull()  // drops the unpushed change
                #expect(explicit[2] == 0 && explicit[1] == 1)

                // Asynchronous: a push every 10 updates, in the background; finish() flushes the rest.
                let a = try await array.replica(.asynchronous(updates: 10, interval: .seconds(3600)))
                for i in 0..<25 {
                    a[70_000 + i] = Double(i)
                    try await a.sync()
                }
                try await a.finish()
                #expect(try await array.elements(in: 70_000..<70_025) == (0..<25).map(Double.init))

                // Another replica sees a third one's deltas merged in, and keeps its own unpushed change.
                let b = try await array.replica(.asynchronous(updates: 1, interval: .seconds(3600)))
                let c = try await array.replica(.asynchronous(updates: 1, interval: .seconds(3600)))
                c[7] = 42
                try await c.push()
                for _ in 0..<3000 where b[7] != 42 {
                    b[5] = 99  // a change of its own: also what triggers each exchange
                    try await b.sync()
                    try await Task.sleep(for: .milliseconds(1))
                }
                #expect(b[7] == 42)
                #expect(b[5] == 99)
                try await b.finish()
                #expect(try await array.element(at: 5) == 99)
                #expect(try await array.element(at: 7) == 42)
                #expect(b.missedExchanges == 0)

                // A replica that reads the log too late misses exchanges in its own view (and says so); the
                // stored array still gets every delta.
                let late = try await array.replica(.asynchronous(updates: 1, interval: .seconds(3600)))
                for i in 0..<(ArrayReplica<Double>.logLimit + 6) {
                    c[90_000 + i] = 1
                    try await c.push()
                }
                try await late.push()
                #expect(late.missedExchanges >= 6)
                #expect(try await array.elements(in: 90_000..<90_070).allSatisfy { $0 == 1 })

                // Concurrent replicas' deltas add up: nobody's increments are lost.
                let r1 = try await array.replica(.asynchronous(updates: 3, interval: .seconds(3600)))
                let r2 = try await array.replica(.asynchronous(updates: 5, interval: .seconds(3600)))
                let before = try await array.element(at: 3)
                for _ in 0..<100 {
                    r1[3] += 1
                    try await r1.sync()
                    r2[3] += 1
                    try await r2.sync()
                }
                try await r1.finish()
                try await r2.finish()
                #expect(try await array.element(at: 3) == before + 200)

                await #expect(throws: SharedMemoryError.self) {
                    _ = try await array.replica(.asynchronous(updates: 0, interval: .seconds(1)))
                }
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func workersPushingDisjointSlicesLoseNothing(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let workers = try startFixtureWorkers(2, url: store.url)
                defer { for worker in workers { kill(worker.processIdentifier, SIGKILL) } }
                let array = try await cloud.memory.array("slices", of: Double.self, count: 140_000)
                let starts = Array(stride(from: 0, to: 140_000, by: 1000))
                #expect(try await cloud.map(FillSlice(array: array), over: starts).reduce(0, +) == 140_000)
                let local = try await array.pull()
                #expect(local.elements == (0..<140_000).map(Double.init))
                for worker in workers { await terminate(worker) }
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func replicasInWorkerProcessesLoseNoUpdate(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let workers = try startFixtureWorkers(2, url: store.url)
                defer { for worker in workers { kill(worker.processIdentifier, SIGKILL) } }
                let array = try await cloud.memory.array("added", of: Double.self, count: 140_000)
                // Four replicas at once (two per worker), each adding 1 to the same elements 300 times.
                #expect(try await cloud.map(AddThroughReplica(array: array), over: [300, 300, 300, 300]) == [300, 300, 300, 300])
                for i in AddThroughReplica.indices {
                    #expect(try await array.element(at: i) == 1_200)
                }
                #expect(try await array.element(at: 1) == 0)
                for worker in workers { await terminate(worker) }
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func scopedObjectsAreRemovedWhenTheirScopeEnds(kind: StoreKind) async throws {
        struct Boom: Error {}
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let raw = try store.client()
                let outer = try cloud.memory.counter("outer")
                try await outer.add(1)
                var keys: [String] = []
                let seen = try await cloud.memory.scoped { memory in
                    let counter = try memory.counter("seen")
                    let array = try await memory.array("a", of: Double.self, count: 10)
                    let kept = try memory.counter("kept-\(UUID().uuidString)", persistent: true)
                    try await counter.add(3)
                    try await array.set(1, at: 2)
                    try await kept.add(1)
                    keys = [counter.key, array.key, array.chunkKey(0), kept.key]
                    return try await counter.load()
                }
                #expect(seen == 3)
                #expect(try await raw.send("EXISTS", keys[0], keys[1], keys[2]) == .integer(0))
                #expect(try await raw.send("EXISTS", keys[3]) == .integer(1))
                #expect(try await outer.load() == 1)  // the cloud's own objects are untouched
                // A scope that throws is cleaned up too.
                var thrownKey = ""
                await #expect(throws: Boom.self) {
                    try await cloud.memory.scoped { memory -> Int in
                        let counter = try memory.counter("doomed")
                        try await counter.add(1)
                        thrownKey = counter.key
                        throw Boom()
                    }
                }
                #expect(try await raw.send("EXISTS", thrownKey) == .integer(0))
                _ = try await raw.send("DEL", keys[3])
                await raw.close()
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func objectsAreRemovedAtShutdownUnlessPersistent(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            var keys: [String] = []
            try await withStoreCloud(store) { cloud in
                let temporary = try cloud.memory.counter("temporary")
                let kept = try cloud.memory.counter("kept", persistent: true)
                try await temporary.add(1)
                try await kept.add(1)
                keys = [temporary.key, kept.key]
            }
            let raw = try store.client()
            #expect(try await raw.send("EXISTS", keys[0]) == .integer(0))
            #expect(try await raw.send("EXISTS", keys[1]) == .integer(1))
            _ = try await raw.send("DEL", keys[1])
            await raw.close()
        }
    }
}

@Suite("Shared memory: nothing lingers")
struct MemoryJanitorTests {
    @Test(arguments: StoreKind.allCases)
    func objectsOfADriverThatDiedAreRemovedByTheNextCloud(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            let raw = try store.client()
            // A driver that died without shutting down: its objects are there, its liveness key is not.
            let dead = "curtain:mem:00000000deadbeef"
            _ = try await raw.pipeline([
                RESPCommand("SET", "\(dead):counter:c", 5), RESPCommand("SET", "\(dead):array:a:0", "bytes"),
                RESPCommand("SET", "curtain:mem:persistent:counter:kept", 1),
            ])
            // A live neighbour (another driver still running): its liveness key is fresh.
            let live = "curtain:mem:00000000a11ce000"
            _ = try await raw.pipeline([
                RESPCommand("SET", "\(live):alive", 1, "PX", 60_000), RESPCommand("SET", "\(live):counter:c", 9),
            ])
            try await withStoreCloud(store) { cloud in
                // This cloud's own objects, and a live neighbour's, survive the sweep.
                let mine = try cloud.memory.counter("mine")
                try await mine.add(1)
                for _ in 0..<3000 where try await raw.send("EXISTS", "\(dead):counter:c") != .integer(0) {
                    try await Task.sleep(for: .milliseconds(10))
                }
                #expect(try await raw.send("EXISTS", "\(dead):counter:c", "\(dead):array:a:0") == .integer(0))
                #expect(try await raw.send("EXISTS", "curtain:mem:persistent:counter:kept") == .integer(1))
                #expect(try await raw.send("EXISTS", "\(live):counter:c") == .integer(1))
                #expect(try await mine.load() == 1)
                #expect(try await raw.send("EXISTS", "\(cloud.memory.namespace):alive") == .integer(1))
            }
            _ = try await raw.send("DEL", "curtain:mem:persistent:counter:kept", "\(live):alive", "\(live):counter:c")
            await raw.close()
        }
    }
}
