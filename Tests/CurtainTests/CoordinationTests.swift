@testable import Curtain
import CurtainTestSupport
import Testing

@Suite("Shared memory: barriers, events, semaphores, queues")
struct CoordinationTests {
    @Test(arguments: StoreKind.allCases)
    func aBarrierReleasesEveryRoundAndReportsAMissingParty(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let barrier = try cloud.memory.barrier("b", parties: 3)
                for _ in 0..<2 {  // two rounds
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for _ in 0..<3 { group.addTask { try await barrier.arrive(timeout: .seconds(30)) } }
                        try await group.waitForAll()
                    }
                }
                // A party that never comes: the others get a clear error, not a hang.
                let errors = await withTaskGroup(of: String?.self) { group in
                    for _ in 0..<2 {
                        group.addTask {
                            do {
                                try await barrier.arrive(timeout: .milliseconds(300))
                                return nil
                            } catch {
                                return "\(error)"
                            }
                        }
                    }
                    return await group.reduce(into: [String]()) { if let e = $1 { $0.append(e) } }
                }
                #expect(errors.count == 2)
                #expect(errors.allSatisfy { $0.contains("round 2 incomplete") && $0.contains("2 of 3 parties arrived") })
                #expect(throws: SharedMemoryError.self) { _ = try cloud.memory.barrier("zero", parties: 0) }
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func anEventWakesEveryWaiter(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let event = try cloud.memory.event("ready")
                #expect(try await !event.isSet())
                await #expect(throws: SharedMemoryError.self) { try await event.wait(timeout: .milliseconds(100)) }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<3 { group.addTask { try await event.wait(timeout: .seconds(30)) } }
                    try await event.set()
                    try await group.waitForAll()
                }
                try await event.wait(timeout: .milliseconds(100))  // already set: returns at once
                try await event.clear()
                #expect(try await !event.isSet())
                await #expect(throws: SharedMemoryError.self) { try await event.wait(timeout: .milliseconds(100)) }
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aSemaphoreCountsItsPermits(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let semaphore = try await cloud.memory.semaphore("s", permits: 2)
                try await semaphore.acquire()
                try await semaphore.acquire()
                await #expect(throws: SharedMemoryError.self) { try await semaphore.acquire(timeout: .milliseconds(100)) }
                try await semaphore.release()
                #expect(try await semaphore.withPermit(timeout: .seconds(5)) { 7 } == 7)
                // Another handle must agree on the number of permits.
                _ = try await cloud.memory.semaphore("s", permits: 2)
                await #expect(throws: SharedMemoryError.self) { _ = try await cloud.memory.semaphore("s", permits: 3) }
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aBoundedQueueAppliesBackpressureAndEndsWhenClosed(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let queue = try await cloud.memory.queue("q", of: String.self, capacity: 2)
                try await queue.send("a")
                try await queue.send("b")
                do {
                    try await queue.send("c", timeout: .milliseconds(100))
                    Issue.record("a full queue must refuse")
                } catch let error as SharedMemoryError {
                    #expect(error.description.contains("stayed full"))
                }
                #expect(try await queue.receive() == "a")
                try await queue.send("c")
                try await queue.close()
                do {
                    try await queue.send("d", timeout: .seconds(30))
                    Issue.record("a closed queue must refuse")
                } catch let error as SharedMemoryError {
                    #expect(error.description.hasSuffix("is closed"))
                }
                var rest: [String] = []
                for try await item in queue { rest.append(item) }
                #expect(rest == ["b", "c"])
                #expect(try await queue.receive() == nil)  // closed and drained, for every receiver
                // Another type under the same name: refused.
                let other = try await cloud.memory.queue("q2", of: Int.self)
                try await other.send(1)
                let misread = try await cloud.memory.queue("q2", of: String.self)
                await #expect(throws: SharedMemoryError.self) { _ = try await misread.receive() }
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func consumersShareAQueueWithoutLossOrDuplication(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withStoreCloud(store) { cloud in
                let queue = try await cloud.memory.queue("work", of: Int.self, capacity: 10)
                let received = try await withThrowingTaskGroup(of: [Int].self) { group in
                    for _ in 0..<3 {
                        group.addTask {
                            var mine: [Int] = []
                            for try await item in queue { mine.append(item) }
                            return mine
                        }
                    }
                    for i in 0..<200 { try await queue.send(i) }
                    try await queue.close()
                    return try await group.reduce(into: [Int]()) { $0 += $1 }
                }
                #expect(received.sorted() == Array(0..<200))
            }
        }
    }
}
