@testable import Curtain
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import Testing

/// A fresh local directory store under the temporary directory.
func temporaryStorage() throws -> (Storage, String) {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("curtain-objects-\(UUID().uuidString)").path
    return (try Storage(url: "file://" + path), path)
}

/// A chunk sequence that fails after `good` chunks, like a writer that dies mid-upload.
struct FailingChunks: AsyncSequence, Sendable {
    let good: Int
    struct Died: Error {}
    struct AsyncIterator: AsyncIteratorProtocol {
        var sent = 0
        let good: Int
        mutating func next() async throws -> [UInt8]? {
            guard sent < good else { throw Died() }
            sent += 1
            return Array(repeating: UInt8(ascii: "x"), count: 1000)
        }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(good: good) }
}

@Suite("Storage: a local object store, files over it, partitions")
struct StorageTests {
    @Test func objectsAreWrittenReadListedAndDeleted() async throws {
        let (storage, path) = try temporaryStorage()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await storage.write("a/b/one.txt", "hello\nworld\n")
        try await storage.write("a/two.bin", [0, 1, 2, 255])
        try await storage.write("top", "t")
        #expect(try await storage.readString("a/b/one.txt") == "hello\nworld\n")
        #expect(try await storage.read("a/two.bin") == [0, 1, 2, 255])
        #expect(try await storage.read("a/b/one.txt", range: 6..<11) == Array("world".utf8))
        #expect(try await storage.read("a/b/one.txt", range: 10..<100) == Array("d\n".utf8))  // cut at the end
        #expect(try await storage.read("a/b/one.txt", range: 50..<60) == [])
        #expect(try await storage.info("a/two.bin")?.size == 4)
        #expect(try await storage.info("a/missing") == nil)
        #expect(try await storage.objects(prefix: "a/").map(\.key) == ["a/b/one.txt", "a/two.bin"])
        #expect(try await storage.objects(prefix: "a/b").map(\.key) == ["a/b/one.txt"])
        #expect(try await storage.objects(prefix: "").map(\.key) == ["a/b/one.txt", "a/two.bin", "top"])
        let listing = try await storage.list("a")
        #expect(listing.files.map(\.key) == ["a/two.bin"])
        #expect(listing.directories == ["a/b/"])
        #expect(try await storage.list().directories == ["a/"])
        // Overwrite replaces; delete removes; deleting again is fine.
        try await storage.write("top", "new")
        #expect(try await storage.readString("top") == "new")
        try await storage.delete("top")
        try await storage.delete("top")
        #expect(try await storage.info("top") == nil)
        // Chunks and lines.
        var joined: [UInt8] = []
        for try await chunk in storage.chunks("a/b/one.txt", chunkSize: 5) {
            #expect(chunk.count <= 5)
            joined += chunk
        }
        #expect(joined == Array("hello\nworld\n".utf8))
        var lines: [String] = []
        for try await line in storage.lines("a/b/one.txt") { lines.append(line) }
        #expect(lines == ["hello", "world"])
        lines = []
        for try await line in storage.lines("a/b/one.txt", range: 1..<7) { lines.append(line) }
        #expect(lines == ["world"])  // the line that starts in the range, read to its end
        // Codable as its URL.
        let decoded = try JSONDecoder().decode(Storage.self, from: JSONEncoder().encode(storage))
        #expect(decoded == storage)
    }

    @Test func badKeysMissingObjectsAndBadURLsAreClearErrors() async throws {
        let (storage, path) = try temporaryStorage()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await storage.write("keep", "kept")
        for key in ["", "/abs", "a//b", "../escape", "a/./b", "trailing/", ".curtain-partial/x", "nul\u{0}byte"] {
            do {
                try await storage.write(key, "x")
                Issue.record("key '\(key)' was accepted")
            } catch let error as StorageError {
                #expect(error.kind == .invalidKey, "\(key): \(error)")
            }
        }
        do {
            _ = try await storage.read("nope/missing.txt")
            Issue.record("expected notFound")
        } catch let error as StorageError {
            #expect(error.kind == .notFound)
            #expect(error.message.contains("nope/missing.txt"))
        }
        await #expect(throws: StorageError.self) { for try await _ in storage.lines("missing") {} }
        #expect(throws: StorageError.self) { try Storage(url: "ftp://host/x") }
        #expect(throws: StorageError.self) { try Storage(url: "file://relative/path") }
        #expect(throws: StorageError.self) { try Storage(url: "not a url") }
        // Nothing stored was touched by the refusals.
        #expect(try await storage.objects(prefix: "").map(\.key) == ["keep"])
        #expect(try await storage.readString("keep") == "kept")
    }

    @Test func anInterruptedWriteLeavesNothingVisible() async throws {
        let (storage, path) = try temporaryStorage()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try storage.store
        try await storage.write("big", "old")
        await #expect(throws: FailingChunks.Died.self) { try await store.put("big", chunks: FailingChunks(good: 50)) }
        await #expect(throws: FailingChunks.Died.self) { try await store.put("fresh", chunks: FailingChunks(good: 3)) }
        #expect(try await storage.readString("big") == "old")  // the old object, whole
        #expect(try await storage.info("fresh") == nil)
        #expect(try await storage.objects(prefix: "").map(\.key) == ["big"])
        // No partial file is left behind either.
        #expect(try FileManager.default.contentsOfDirectory(atPath: path + "/.curtain-partial").isEmpty)
    }

    /// Every record of `text`, as a reader of whole lines sees them.
    static func records(of text: String) -> [String] {
        guard !text.isEmpty else { return [] }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if text.hasSuffix("\n") { lines.removeLast() }
        return lines
    }

    @Test func partitionsOfEverySizeReadEveryRecordExactlyOnce() async throws {
        let (storage, path) = try temporaryStorage()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var random = SplitMix64(seed: 42)
        // Awkward data: empty lines, runs of newlines, long and one-byte records, a last line with and
        // without its newline, and the degenerate objects.
        var long = ""
        for i in 0..<120 {
            let length = Int(random.next() % 9 == 0 ? 0 : random.next() % 40)
            long += String(repeating: Character(UnicodeScalar(UInt8(97 + i % 26))), count: length) + "\n"
            if random.next() % 7 == 0 { long += "\n\n" }
        }
        let texts = [
            "", "\n", "\n\n", "a", "a\n", "\na", "ab\ncd", "ab\ncd\n", "x\n\ny\n\n\nz", long, long + "tail without newline",
        ]
        for (n, text) in texts.enumerated() {
            let key = "awkward/\(n).txt"
            try await storage.write(key, text)
            let expected = Self.records(of: text)
            let size = text.utf8.count
            for chunkSize in Set([1, 2, 3, 4, 5, 7, 8, 13, 64, 100, 1000, max(1, size - 1), max(1, size), size + 1]) {
                var seen: [String] = []
                for partition in ObjectPartition.split([ObjectInfo(key: key, size: size)], in: storage, chunkSize: chunkSize) {
                    for try await line in partition.lines { seen.append(line) }
                }
                #expect(seen == expected, "object \(n) (\(size) bytes), chunk size \(chunkSize)")
            }
            // Small read sizes inside the reader too: records straddle every read boundary.
            for readSize in [1, 2, 3, 17] {
                var seen: [String] = []
                for partition in ObjectPartition.split([ObjectInfo(key: key, size: size)], in: storage, chunkSize: 11) {
                    var records = partition.records
                    records.chunkSize = readSize
                    for try await record in records { seen.append(String(decoding: record, as: UTF8.self)) }
                }
                #expect(seen == expected, "object \(n), read size \(readSize)")
            }
        }
    }

    @Test(arguments: [CloudConfiguration.Backend.inprocess, .processes])
    func mapOverObjectsHandsEachTaskItsRecords(backend: CloudConfiguration.Backend) async throws {
        let (storage, path) = try temporaryStorage()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var configuration = CloudConfiguration(backend: backend, workers: 2, workerExecutable: try fixtureWorkerPath(), buildID: "fixture")
        configuration.storage = storage.url
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
        var expected: [String] = []
        for part in 0..<3 {
            let lines = (0..<500).map { "part \(part) line \($0)" + String(repeating: "·", count: $0 % 13) }
            expected += lines
            try await cloud.storage.write("input/part-\(part).txt", lines.joined(separator: "\n") + (part == 2 ? "" : "\n"))
        }
        try await cloud.storage.write("other/ignored.txt", "not under the prefix\n")
        let outputs = try await cloud.map(PartitionLines(), overObjects: "input/", chunkSize: 1000)
        #expect(outputs.count > 3)  // several tasks per object
        #expect(outputs.flatMap { $0 } == expected)
        await #expect(throws: ConfigurationError.self) { _ = try await cloud.map(PartitionLines(), overObjects: "input/", chunkSize: 0) }
        await cloud.shutdown()
    }
}

@Suite("Spill: large payloads travel by reference")
struct SpillTests {
    @Test(arguments: [CloudConfiguration.Backend.inprocess, .processes])
    func largeInputsCapturesAndOutputsSpillAndAreCleanedUp(backend: CloudConfiguration.Backend) async throws {
        let (storage, path) = try temporaryStorage()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var configuration = CloudConfiguration(backend: backend, workers: 2, workerExecutable: try fixtureWorkerPath(), buildID: "fixture")
        configuration.storage = storage.url
        configuration.spillThreshold = 4_096
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
        let big = String(repeating: "abcdefgh", count: 100_000)  // 800 KB
        let inputs = ["small", big, "x" + big]
        // Small captures: only the big inputs (and the outputs, as large) spill.
        let outputs = try await cloud.map(SpillProbe(storage: storage, ballast: "b"), over: inputs)
        #expect(outputs.map { $0[0] } == inputs.map { String($0.reversed()) })
        #expect(outputs.map { $0[1] } == ["1", "1", "1"])
        #expect(Int(outputs[1][2])! >= 1)  // its own input was in the store while it ran
        #expect(try await storage.objects(prefix: "curtain-spill/").isEmpty)  // cleaned when the job ended
        // Large captures travel once per job, by reference.
        let heavy = SpillProbe(storage: storage, ballast: String(repeating: "z", count: 50_000))
        let again = try await cloud.map(heavy, over: ["a", "b"])
        #expect(again.map { $0[1] } == ["50000", "50000"])
        #expect(again.allSatisfy { Int($0[2])! >= 1 })
        #expect(try await storage.objects(prefix: "curtain-spill/").isEmpty)
        await cloud.shutdown()
    }
}
