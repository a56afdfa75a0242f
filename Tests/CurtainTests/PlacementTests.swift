@testable import Curtain
import CurtainRESP
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import NIOCore
import Synchronization
import Testing

@Suite("Placement: tasks go to workers that hold their shared values, idle workers steal")
struct PlacementTests {
    /// A hash standing for a shared value.
    func hash(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: 32) }

    func strings(_ reply: RESPValue) -> [String] { (reply.array ?? []).compactMap(\.string) }

    @Test func aTaskGoesToTheLeastLoadedHolderWithinItsFairShare() {
        let targets = [
            Placement.Target(worker: "a", connection: 1, waiting: 0),
            Placement.Target(worker: "b", connection: 2, waiting: 3),
        ]
        // Four live workers; value 1 held by a and b, value 2 by a only, value 3 by nobody.
        let near: [[UInt8]?] = [hash(1), hash(1), hash(2), hash(2), hash(2), hash(3), nil, hash(1)]
        let plan = Placement(near: near, holders: [hash(1): [0, 1], hash(2): [0]], targets: targets, liveWorkers: 4)
        // Seven tasks name a value: a fair share is ceil(7 / 4) = 2 per worker.
        #expect(plan.targets.map(\.assigned) == [2, 1])
        // Value 1 goes to a (nothing waiting) then a again (1 < 3 + 0), value 2 has only a, now full; the
        // last task of value 1 goes to b.
        #expect(plan.assignments == [0, 0, nil, nil, nil, nil, nil, 1])
        #expect(plan.placesAny)
    }

    @Test func aValueEveryLiveWorkerHoldsPlacesNothing() {
        let targets = [Placement.Target(worker: "a", connection: 1, waiting: 0), Placement.Target(worker: "b", connection: 2, waiting: 0)]
        let plan = Placement(near: [hash(1), hash(1)], holders: [hash(1): [0, 1]], targets: targets, liveWorkers: 2)
        #expect(plan.assignments == [nil, nil])
        #expect(!plan.placesAny)
    }

    @Test func theLargestSharedValueDecides() {
        let small = SharedBlob(ref: SharedRef(hash: hash(1), length: 70_000, place: .store), bytes: [])
        let large = SharedBlob(ref: SharedRef(hash: hash(2), length: 900_000, place: .store), bytes: [])
        #expect(Placement.nearest([small], [large]) == hash(2))
        #expect(Placement.nearest([large, small]) == hash(2))
        #expect(Placement.nearest([]) == nil)
    }

    @Test(arguments: StoreKind.allCases)
    func aWorkerTakesItsOwnQueueFirstThenTheSharedOne(kind: StoreKind) async throws {
        try await withTestStore(kind) { store in
            let client = try store.client()
            defer { Task { await client.close() } }
            let keys = StoreKeys(buildID: "placement-own")
            let loop = WorkerLoop(
                client: client, registry: try FunctionRegistry([]), buildID: keys.buildID, workerID: "w0", spill: nil, sealer: nil)
            _ = try await client.send("RPUSH", keys.ownQueue(worker: "w0"), "own-1", "own-2")
            _ = try await client.send("RPUSH", keys.queue, "shared-1", "shared-2", "shared-3")
            let taken = try await client.withDedicatedConnection { try await loop.take($0, batch: 4) }
            #expect(taken.map { String(buffer: $0) } == ["own-1", "own-2", "shared-1", "shared-2"])
            // Everything taken sits in the worker's in-flight list (recoverable if it dies).
            #expect(strings(try await client.send("LRANGE", keys.inflight(worker: "w0"), 0, -1)) == ["own-1", "own-2", "shared-1", "shared-2"])
            #expect(strings(try await client.send("LRANGE", keys.queue, 0, -1)) == ["shared-3"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func anIdleWorkerStealsFromTheTailOfTheLongestOwnQueue(kind: StoreKind) async throws {
        try await withTestStore(kind) { store in
            let client = try store.client()
            defer { Task { await client.close() } }
            let keys = StoreKeys(buildID: "placement-steal")
            let loop = WorkerLoop(
                client: client, registry: try FunctionRegistry([]), buildID: keys.buildID, workerID: "thief", spill: nil, sealer: nil)
            _ = try await client.send("RPUSH", keys.ownQueue(worker: "a"), "a0", "a1", "a2", "a3", "a4", "a5")
            _ = try await client.send("RPUSH", keys.ownQueue(worker: "b"), "b0", "b1")
            _ = try await client.send("SADD", keys.placed, "a", "b", "thief")
            // Nothing of its own, nothing shared: after its wait it takes half of the longest queue, from the
            // tail (the tasks its holder would reach last).
            let first = try await client.withDedicatedConnection { try await loop.take($0, batch: 8) }
            #expect(first.map { String(buffer: $0) } == ["a5", "a4", "a3"])
            // Still stealing: the next take does not wait, and finds the longest queue again.
            let second = try await client.withDedicatedConnection { try await loop.take($0, batch: 8) }
            #expect(second.map { String(buffer: $0) } == ["a2"])
            #expect(strings(try await client.send("LRANGE", keys.ownQueue(worker: "a"), 0, -1)) == ["a0", "a1"])
            #expect(strings(try await client.send("LRANGE", keys.inflight(worker: "thief"), 0, -1)) == ["a5", "a4", "a3", "a2"])
            // With nothing of its own, the thief left the set of workers with own queues.
            #expect(Set(strings(try await client.send("SMEMBERS", keys.placed))) == ["a", "b"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aDeadWorkersOwnQueueAndInFlightTasksGoBack(kind: StoreKind) async throws {
        try await withTestStore(kind) { store in
            let client = try store.client()
            defer { Task { await client.close() } }
            let keys = StoreKeys(buildID: "placement-dead")
            let running = TaskEnvelope(buildID: keys.buildID, jobID: "j", index: 7, function: "Square", functionPayload: [], input: [])
            _ = try await client.send(RESPCommand("RPUSH", keys.inflight(worker: "dead"), try running.encoded()))
            _ = try await client.send("RPUSH", keys.ownQueue(worker: "dead"), "placed-1", "placed-2")
            _ = try await client.send("RPUSH", keys.queue, "queued")
            _ = try await client.send("SADD", keys.placed, "dead")
            _ = try await client.send("HSET", keys.worker("dead"), "conn", "12")
            _ = try await client.send("SADD", keys.workers, "dead")
            let counts = try #require(
                try await TaskRecovery.recover(workerID: "dead", how: "was killed", keys: keys, crashRetries: 3, client: client, forget: true))
            #expect(counts.requeued == 3 && counts.givenUp == 0)
            // At the head, in order: the placed tasks, then the one it was running, then what was queued.
            let queue = (try await client.send("LRANGE", keys.queue, 0, -1).array ?? []).compactMap(\.buffer)
            #expect(queue.count == 4)
            #expect(queue.prefix(2).map { String(buffer: $0) } == ["placed-1", "placed-2"])
            #expect(try TaskEnvelope(decoding: queue[2]).index == 7)
            #expect(String(buffer: queue[3]) == "queued")
            #expect(try await client.send("EXISTS", keys.ownQueue(worker: "dead")).int == 0)
            #expect(strings(try await client.send("SMEMBERS", keys.placed)).isEmpty)
            // Forgotten: no driver places anything on it any more.
            #expect(try await client.send("EXISTS", keys.worker("dead")).int == 0)
            #expect(strings(try await client.send("SMEMBERS", keys.workers)).isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aStoppingWorkerHandsBackItsOwnQueue(kind: StoreKind) async throws {
        try await withTestStore(kind) { store in
            let client = try store.client()
            defer { Task { await client.close() } }
            let keys = StoreKeys(buildID: "placement-stop")
            let loop = WorkerLoop(
                client: client, registry: try FunctionRegistry([]), buildID: keys.buildID, workerID: "leaving", spill: nil, sealer: nil)
            _ = try await client.send("RPUSH", keys.ownQueue(worker: "leaving"), "p1", "p2")
            _ = try await client.send("RPUSH", keys.queue, "q1")
            _ = try await client.send("SADD", keys.placed, "leaving")
            _ = try await client.send("HSET", keys.worker("leaving"), "conn", "5")
            #expect(try await loop.handBackAll() == 2)
            #expect(strings(try await client.send("LRANGE", keys.queue, 0, -1)) == ["p1", "p2", "q1"])
            #expect(strings(try await client.send("SMEMBERS", keys.placed)).isEmpty)
            #expect(try await client.send("EXISTS", keys.worker("leaving")).int == 0)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func theDriverPlacesOnLiveHoldersAndWakesThem(kind: StoreKind) async throws {
        try await withTestStore(kind) { store in
            let client = try store.client()
            defer { Task { await client.close() } }
            let keys = StoreKeys(buildID: "placement-driver")
            // Three live workers, each with its loop's connection and its process's token.
            _ = try await client.send("SADD", keys.workers, "a", "b", "c")
            _ = try await client.send("HSET", keys.worker("a"), "conn", "1001", "token", "ta")
            _ = try await client.send("HSET", keys.worker("b"), "conn", "1002", "token", "tb")
            _ = try await client.send("HSET", keys.worker("c"), "conn", "1003", "token", "tc")
            // Value 1 is held by a (and by a dead worker), value 2 by everyone; value 4 by an earlier
            // process of b (another token: the live b does not hold it).
            _ = try await client.send("SADD", keys.holders(SharedRef.hex(hash(1))), "a ta", "gone tg")
            _ = try await client.send("SADD", keys.holders(SharedRef.hex(hash(2))), "a ta", "b tb", "c tc")
            _ = try await client.send("SADD", keys.holders(SharedRef.hex(hash(4))), "b old")
            let transport = try await StoreTransport(client: client, buildID: keys.buildID, jobID: "job-placed")
            let envelopes = (0..<5).map {
                TaskEnvelope(buildID: keys.buildID, jobID: "job-placed", index: UInt64($0), function: "Square", functionPayload: [], input: [])
            }
            try await transport.submit(envelopes, near: [hash(1), hash(2), nil, hash(3), hash(4)])
            let own = (try await client.send("LRANGE", keys.ownQueue(worker: "a"), 0, -1).array ?? []).compactMap(\.buffer)
            #expect(try own.map { try TaskEnvelope(decoding: $0).index } == [0])
            let shared = (try await client.send("LRANGE", keys.queue, 0, -1).array ?? []).compactMap(\.buffer)
            #expect(try shared.map { try TaskEnvelope(decoding: $0).index } == [1, 2, 3, 4])
            #expect(strings(try await client.send("SMEMBERS", keys.placed)) == ["a"])
            #expect(try await client.send("EXISTS", keys.ownQueue(worker: "b")).int == 0)

            // A holder that is draining (no `conn`) or whose heartbeat is gone gets nothing.
            _ = try await client.send("HDEL", keys.worker("a"), "conn")
            try await transport.submit([envelopes[0]], near: [hash(1)])
            _ = try await client.send("DEL", keys.worker("a"))
            try await transport.submit([envelopes[0]], near: [hash(1)])
            #expect(try await client.send("LLEN", keys.ownQueue(worker: "a")).int == 1)
            #expect(try await client.send("LLEN", keys.queue).int == 6)

            // Turned off, nothing is placed.
            _ = try await client.send("HSET", keys.worker("a"), "conn", "1001", "token", "ta")
            let unplaced = try await StoreTransport(client: client, buildID: keys.buildID, jobID: "job-unplaced", placement: false)
            try await unplaced.submit([envelopes[0]], near: [hash(1)])
            #expect(try await client.send("LLEN", keys.ownQueue(worker: "a")).int == 1)
            #expect(try await client.send("LLEN", keys.queue).int == 7)
            await transport.finish()
            await unplaced.finish()
        }
    }

    @Test func partitionsStayOnTheWorkersThatHoldThemAcrossJobs() async throws {
        try await withTestStore(.redis) { store in
            // Each worker's cache holds five of the eight partitions: without placement, every round sends
            // each worker some it has not got (or evicted); with it, rounds after the first find theirs.
            let partitions = (0..<8).map { p in (0..<20_000).map { Double($0 * 8 + p) } }
            let expected = partitions.map { $0.reduce(0, +) }
            try await ClusterTests().withWorkers(2, store: store, environment: ["CURTAIN_CACHE_BYTES": "850000"]) { cloud, _, prefix in
                var fetched: [Int] = []
                for _ in 0..<6 {
                    let summary = Mutex<JobSummary?>(nil)
                    let sums = try await cloud.map(
                        PartitionSum(), over: partitions, options: JobOptions(onSummary: { s in summary.withLock { $0 = s } }))
                    #expect(sums == expected)
                    fetched.append(try #require(summary.withLock { $0 }).sharedBytesFetched)
                }
                // The workers said what they hold.
                let client = try RESPClient(url: store.url)
                defer { Task { await client.close() } }
                let keys = StoreKeys(buildID: "fixture")
                let held = (try await client.send(RESPCommand("KEYS", keys.holders("*"))).array ?? []).compactMap(\.string)
                #expect(held.count >= 5)
                // Each holder is `<worker> <its process's token>`, one of this test's workers. (Who has tasks
                // placed on them is not checked here: an idle worker leaves that set.)
                for key in held {
                    let members = strings(try await client.send(RESPCommand("SMEMBERS", key)))
                    #expect(!members.isEmpty && members.allSatisfy { $0.hasPrefix(prefix) && $0.split(separator: " ").count == 2 })
                }
                // The first round fetches every partition at least once (160 KB each); after two rounds to
                // settle, at most two partitions' worth move in three more jobs.
                #expect(fetched[0] >= 8 * 160_000)
                #expect(fetched[3...].reduce(0, +) <= 321_000, "bytes fetched per round: \(fetched)")
            }
        }
    }
}
