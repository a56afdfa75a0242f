@testable import Curtain
import CurtainRESP
import CurtainTestSupport
import NIOCore
import Testing

/// Runs `workers` worker loops in this process against `store` while `body` runs.
func withWorkers<T>(
    _ store: TestStore, workers: Int = 2, buildID: String = "test-build",
    _ body: (RESPClient) async throws -> T
) async throws -> T {
    let registry = try FunctionRegistry([Square.self, Fails.self, Renamed.self, EchoPicky.self])
    let client = try store.client()
    let loops = (0..<workers).map { i in
        Task {
            try await WorkerLoop(client: client, registry: registry, buildID: buildID, workerID: "w\(i)", batchSize: 16).run()
        }
    }
    defer { loops.forEach { $0.cancel() } }
    let result = try await body(client)
    for loop in loops {
        loop.cancel()
        _ = await loop.result
    }
    await client.close()
    return result
}

@Suite("Dispatch through the store")
struct DispatchTests {
    @Test(arguments: StoreKind.allCases)
    func mapReturnsOutputsInInputOrder(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withWorkers(store) { client in
                let dispatcher = TaskDispatcher(client: client, buildID: "test-build")
                let outputs = try await dispatcher.map(Square(offset: 3), over: 0..<1000)
                #expect(outputs == (0..<1000).map { $0 * $0 + 3 })
                #expect(try await dispatcher.map(Square(offset: 0), over: []) == [])
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aThrownErrorNamesTheTaskAndStopsTheJob(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withWorkers(store) { client in
                let dispatcher = TaskDispatcher(client: client, buildID: "test-build")
                do {
                    _ = try await dispatcher.map(Fails(), over: ["only"])
                    Issue.record("the job should fail")
                } catch let error as RemoteTaskError {
                    #expect(error.function == "Fails")
                    #expect(error.index == 0)
                    #expect(error.failure.kind == .thrown)
                    #expect(error.description.contains("\"only\""))
                    #expect(error.description.contains("refused only"))
                    #expect(error.description.contains("Fails.Refused"))
                }
                // The workers live on.
                #expect(try await dispatcher.map(Square(offset: 0), over: [4]) == [16])
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func workersSurviveGarbageAndUnknownFunctions(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            try await withWorkers(store) { client in
                let keys = StoreKeys(buildID: "test-build")
                _ = try await client.send("RPUSH", keys.queue, "not an envelope at all")
                let dispatcher = TaskDispatcher(client: client, buildID: "test-build")
                // An envelope naming a function no worker has: answered with a clear refusal.
                let stranger = TaskEnvelope(
                    buildID: "test-build", jobID: "manual", index: 0, function: "Missing", functionPayload: [], input: [])
                _ = try await client.send("RPUSH", keys.queue, try stranger.encoded())
                let reply = try await client.send("BLPOP", StoreKeys.results(job: "manual"), 10)
                let result = try TaskResult(decoding: try #require(reply.array?.last?.buffer))
                guard case .failure(let failure) = result.outcome else {
                    Issue.record("an unknown function must be refused")
                    return
                }
                #expect(failure.kind == .unknownFunction)
                #expect(try await dispatcher.map(Square(offset: 1), over: [1, 2]) == [2, 5])
                // Nothing is left in flight.
                for worker in ["w0", "w1"] {
                    #expect(try await client.send("LLEN", keys.inflight(worker: worker)) == .integer(0))
                }
            }
        }
    }

    @Test func inputsThatCannotBeEncodedAreReportedBeforeDispatch() async throws {
        try await withTestStore(.embedded) { (store) async throws in
            let client = try store.client()
            let dispatcher = TaskDispatcher(client: client, buildID: "test-build")
            do {
                _ = try await dispatcher.map(EchoPicky(), over: [1, 2, 3].map { Picky(value: $0, refused: $0 == 2) })
                Issue.record("input 1 refuses to be encoded")
            } catch let error as InputEncodingError {
                #expect(error.index == 1)
                #expect(error.function == "EchoPicky")
            }
            #expect(try await client.send("LLEN", StoreKeys(buildID: "test-build").queue) == .integer(0))
            await client.close()
        }
    }

    @Test func otherBuildsNeverSeeTheTasks() async throws {
        try await withTestStore(.embedded) { (store) async throws in
            try await withWorkers(store, buildID: "other-build") { client in
                let dispatcher = TaskDispatcher(client: client, buildID: "test-build")
                let job = Task { try await dispatcher.map(Square(offset: 0), over: [1, 2, 3]) }
                let queue = StoreKeys(buildID: "test-build").queue
                // Wait (however loaded the machine) until the three tasks are queued, then give the other
                // build's workers time to (wrongly) take them.
                let clock = ContinuousClock()
                let deadline = clock.now + .seconds(30)
                while try await client.send("LLEN", queue) != .integer(3), clock.now < deadline {
                    try await Task.sleep(for: .milliseconds(10))
                }
                try await Task.sleep(for: .milliseconds(300))
                // The other build's workers left the tasks alone.
                #expect(try await client.send("LLEN", queue) == .integer(3))
                job.cancel()
                await #expect(throws: CancellationError.self) { _ = try await job.value }
            }
        }
    }
}
