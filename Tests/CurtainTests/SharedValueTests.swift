@testable import Curtain
import CurtainRESP
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import Synchronization
import Testing

@Suite("Shared values: large captures cross to each worker once")
struct SharedValueTests {
    /// Runs `map` and returns its outputs and summary.
    func mapWithSummary(_ cloud: Cloud, _ function: CapturedElement, over inputs: Range<Int>) async throws -> ([Double], JobSummary) {
        let summary = Mutex<JobSummary?>(nil)
        var options = JobOptions()
        options.onSummary = { report in summary.withLock { $0 = report } }
        let outputs = try await cloud.map(function, over: inputs, options: options)
        return (outputs, try #require(summary.withLock { $0 }))
    }

    @Test(arguments: ["processes", "inprocess"])
    func aCaptureUsedByEveryTaskOfEveryJobIsSentAndFetchedOnce(backend: String) async throws {
        var configuration = backend == "processes"
            ? CloudConfiguration(backend: .processes, workers: 2, workerExecutable: try fixtureWorkerPath(), buildID: "fixture")
            : CloudConfiguration(backend: .inprocess, workers: 2)
        // An object store of its own: a value already there is not sent again (right), and a run of this
        // test that crashed before cleaning up leaves its values in the default one.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curtain-storage-\(UUID().uuidString)").path
        configuration.storage = "file://" + directory
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
        defer { Task { await cloud.shutdown() } }
        // 400 KB: shared by hash (above 64 KiB), kept in the object store (above the 256 KiB spill size).
        // Values of this test's own (by backend), so no cache holds them yet.
        let scale = backend == "processes" ? 0.25 : 0.75
        let values = (0..<50_000).map { Double($0) * scale }
        let function = CapturedElement(values: values)
        var fetched = 0
        for round in 0..<3 {
            let (outputs, summary) = try await mapWithSummary(cloud, function, over: 0..<40)
            #expect(outputs == (0..<40).map { values[$0] })
            if round == 0 {
                // The value itself went out once, with forty small envelopes.
                #expect(summary.bytesSent > 400_000 && summary.bytesSent < 420_000)
            } else {
                #expect(summary.bytesSent < 10_000, "round \(round) sent the value again")
                #expect(summary.sharedHits > 0)
            }
            fetched += summary.sharedBytesFetched
        }
        // Each of the two worker processes (or this one, in-process) fetched it at most once over all three jobs.
        #expect(fetched >= 400_000 && fetched <= (backend == "processes" ? 2 : 1) * 400_100)
        await cloud.shutdown()
    }

    @Test func aValueTheStoreLostIsPutBackAndTheTasksRunAgain() async throws {
        try await withTestStore(.redis) { store in
            try await ClusterTests().withWorkers(2, store: store, environment: ["CURTAIN_CACHE_BYTES": "0"]) { cloud, _, _ in
                // 160 KB: shared by hash, kept in the store (below the spill size); workers keep nothing.
                let values = (0..<20_000).map(Double.init)
                let function = CapturedElement(values: values)
                let (first, _) = try await mapWithSummary(cloud, function, over: 0..<10)
                #expect(first == (0..<10).map { values[$0] })
                // The store loses it (flushed, evicted); the driver still believes it is there.
                let client = try store.client()
                let keys = try await client.send("KEYS", "curtain:shared:*").array ?? []
                #expect(keys.count == 1)
                for key in keys { _ = try await client.send(RESPCommand("DEL", arguments: [key.buffer!])) }
                await client.close()
                let (second, summary) = try await mapWithSummary(cloud, function, over: 0..<10)
                #expect(second == first)
                #expect(summary.failed == 0)
                // It was put back (sent again) and fetched again.
                #expect(summary.bytesSent > 160_000)
                #expect(summary.sharedBytesFetched >= 160_000)
            }
        }
    }

    @Test func theCacheKeepsRecentValuesWithinItsLimit() {
        let cache = SharedValueCache(limit: 1_000)
        let box = SharedValueCache.Box(0)
        cache.insert([1], type: ObjectIdentifier(Int.self), value: box, cost: 400)
        cache.insert([2], type: ObjectIdentifier(Int.self), value: box, cost: 400)
        _ = cache.pin([1])  // used more recently than [2]
        cache.insert([3], type: ObjectIdentifier(Int.self), value: box, cost: 400)
        #expect(cache.pin([1]) != nil)
        #expect(cache.pin([2]) == nil)
        #expect(cache.pin([3]) != nil)
        #expect(cache.used == 800)
        // A value larger than the whole cache is not kept.
        cache.insert([4], type: ObjectIdentifier(Int.self), value: box, cost: 5_000)
        #expect(cache.pin([4]) == nil)
        #expect(cache.pin([3]) != nil)
        #expect(cache.used == 800)
    }
}
