@testable import Curtain
import CurtainTestFunctions
import Foundation
import Testing

/// `@Remote` calls at run time: found without a list, local outside a cloud, remote and batched inside one.
/// (The functions are the macro's expansion written out by hand: see Fixtures/RemoteCalls.swift.)
@Suite("@Remote calls: records, the ambient cloud, batching", .serialized)
struct RemoteCallTests {
    @Test func recordsNameTheRemoteFunctionsLinkedIn() {
        let names = Set(RemoteRecords.functions.map { $0.name })
        #expect(names.contains("CurtainTestFunctions.placedSquare"))
        #expect(names.contains("CurtainTestFunctions.halveEven"))
        // Each type once, though a record is read for each.
        #expect(RemoteRecords.functions.count == names.count)
        #expect(RemoteRecords.actors.map { $0.name }.contains(Tally.name))
        // Functions are not actors, nor actors functions.
        #expect(!RemoteRecords.functions.contains { $0.name == Tally.name })
    }

    @Test func outsideAnyCloudACallRunsLocally() async throws {
        #expect(Cloud.current == nil)
        let placed = await remotePlacedSquare(12)
        #expect(placed == Placed(pid: getpid(), square: 144))
        await #expect(throws: OddInput.self) { try await remoteHalveEven(3) }
        #expect(try await remoteHalveEven(8) == 4)
    }

    @Test(arguments: [CloudConfiguration.Backend.inprocess, .processes])
    func insideACloudConcurrentCallsRunOnWorkersInFewJobs(backend: CloudConfiguration.Backend) async throws {
        let cloud = try await Cloud.start(
            functions: allTestFunctions,
            configuration: CloudConfiguration(backend: backend, workers: 2, workerExecutable: try fixtureWorkerPath(), buildID: "fixture"))
        defer { Task { await cloud.shutdown() } }
        let calls = 2_000
        let results = await cloud.withAmbient {
            #expect(Cloud.ambient === cloud)
            return await withTaskGroup(of: (Int, Placed).self) { group in
                for x in 0..<calls { group.addTask { (x, await remotePlacedSquare(x)) } }
                var results = [Placed?](repeating: nil, count: calls)
                for await (x, placed) in group { results[x] = placed }
                return results
            }
        }
        for (x, placed) in results.enumerated() { #expect(placed?.square == x * x) }
        if backend == .processes {
            #expect(!results.contains { $0?.pid == getpid() }, "every call ran in a worker process")
        }
        let jobs = cloud.callBatchers.jobs(of: __curtain_placedSquare.self)
        #expect(jobs >= 1 && jobs < calls / 10, "\(calls) concurrent calls went out in \(jobs) jobs")
        await cloud.shutdown()
    }

    @Test func aThrowingFunctionsErrorComesBackNamed() async throws {
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: CloudConfiguration(backend: .inprocess, workers: 2))
        await cloud.withAmbient {
            await #expect(throws: RemoteTaskError.self) { try await remoteHalveEven(7) }
            do {
                _ = try await remoteHalveEven(7)
            } catch let error as RemoteTaskError {
                #expect(error.failure.errorType.hasSuffix("OddInput"))
                #expect(error.failure.message == "7 is odd")
                #expect(error.function == "CurtainTestFunctions.halveEven")
            } catch {
                Issue.record("unexpected \(error)")
            }
            #expect((try? await remoteHalveEven(10)) == 5)
        }
        await cloud.shutdown()
    }

    @Test func startWithoutAListFindsTheRecordsAndBecomesTheProgramsCloud() async throws {
        let cloud = try await Cloud.start(configuration: CloudConfiguration(backend: .inprocess, workers: 1))
        #expect(Cloud.ambient === cloud)
        #expect(await remotePlacedSquare(9).square == 81)
        #expect(cloud.callBatchers.jobs(of: __curtain_placedSquare.self) == 1, "the call went to the cloud")
        await cloud.shutdown()
        #expect(Cloud.ambient == nil, "after shutdown, calls run locally again")
    }
}

/// Shared state made like the standard library's (`Mutex(v)`, `Atomic<Int>(v)`) on the ambient cloud.
@Suite("Shared state spelled like Mutex and Atomic")
struct AmbientSharedStateTests {
    @Test func madeWithoutARoundTripTheyStartAtTheirInitialValues() async throws {
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: CloudConfiguration(backend: .inprocess, workers: 2))
        try await cloud.withAmbient {
            let hits = SharedCounter(40)
            #expect(try await hits.load(ordering: .relaxed) == 40)
            #expect(try await hits.add(2, ordering: .relaxed) == (oldValue: 40, newValue: 42))
            #expect(try await hits.subtract(50, ordering: .relaxed) == (oldValue: 42, newValue: -8))
            #expect(try await hits.compareExchange(expected: -8, desired: 3, ordering: .sequentiallyConsistent) == (true, -8))
            #expect(try await hits.compareExchange(expected: -8, desired: 5, ordering: .relaxed) == (false, 3))
            try await hits.store(11, ordering: .relaxed)
            #expect(try await hits.load() == 11)
            // A thousand mutexes, none in the store until used.
            let accounts = (0..<1_000).map { SharedMutex($0) }
            #expect(try await accounts[999].withLock { $0 } == 999)
            try await accounts[3].withLock { $0 += 10 }
            #expect(try await accounts[3].withLock { $0 } == 13)
            #expect(Set(accounts.map(\.lock.key)).count == 1_000)
        }
        await cloud.shutdown()
    }

    @Test func theirHandlesCrossToWorkersWithTheirInitialValues() async throws {
        let cloud = try await Cloud.start(
            functions: allTestFunctions,
            configuration: CloudConfiguration(backend: .processes, workers: 2, workerExecutable: try fixtureWorkerPath(), buildID: "fixture"))
        try await cloud.withAmbient {
            let bump = Bump(
                counter: SharedCounter(100), dictionary: try cloud.memory.dictionary("d", of: [String: Int].self),
                value: try cloud.memory.value("v", of: Int.self), guarded: try cloud.memory.value("g", of: Int.self),
                lock: try cloud.memory.lock("l"), mutex: SharedMutex(7))
            _ = try await cloud.map(bump, over: Array(repeating: 5, count: 4))
            #expect(try await bump.counter.load() == 120)
            #expect(try await bump.mutex.withLock { $0 } == 27)
        }
        await cloud.shutdown()
    }
}
