import ArgumentParser
import Curtain
import Foundation

/// `curtain-bench storage`: reading a large object sequentially from the local directory store, against
/// `cat` of the same file to /dev/null.
struct StorageBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract: "Sequential read of a large object from the local directory store vs cat of the same file.")

    @Option(help: "Object size in megabytes.")
    var megabytes: Int = 1_000

    @Option(help: "Bytes per read, in kilobytes.")
    var chunkKilobytes: Int = 1_024

    @Option(help: "Directory for the store (a file:// store is made there and removed afterwards).")
    var directory: String = FileManager.default.temporaryDirectory.path

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    func run() async throws {
        let root = directory + "/curtain-bench-storage-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let storage = try Storage(url: "file://" + root)
        let size = megabytes * 1_000_000
        // Written in 8 MB pieces through the streaming put (the object is never whole in memory).
        try await (try storage.store).put("big.bin", chunks: Pieces(total: size, piece: 8_000_000))
        let file = root + "/big.bin"
        var ours = 0.0
        var cat = 0.0
        for _ in 0..<3 {
            let seconds = try await timed {
                var read = 0
                for try await chunk in storage.chunks("big.bin", chunkSize: chunkKilobytes << 10) { read += chunk.count }
                guard read == size else { throw ValidationError("read \(read) of \(size) bytes") }
            }
            ours = max(ours, Double(size) / 1e6 / seconds)
            let catSeconds = try await timed { try await catToNull(file) }
            cat = max(cat, Double(size) / 1e6 / catSeconds)
        }
        printTable([
            Figure(
                name: "sequential read, \(megabytes) MB object (file://)", value: ours, unit: "MB/s", baseline: cat,
                baselineName: "cat file > /dev/null (best of 3 each, interleaved)", target: 0.8)
        ], json: json)
    }

    private func catToNull(_ path: String) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/cat")
        process.arguments = [path]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        while process.isRunning { try await Task.sleep(for: .milliseconds(1)) }
        guard process.terminationStatus == 0 else { throw ValidationError("cat failed") }
    }
}

/// `total` bytes in pieces of `piece`, generated as they are asked for.
struct Pieces: AsyncSequence, Sendable {
    typealias Element = [UInt8]
    let total: Int
    let piece: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        var left: Int
        let piece: Int
        var n: UInt8 = 0
        mutating func next() async throws -> [UInt8]? {
            guard left > 0 else { return nil }
            let count = Swift.min(piece, left)
            left -= count
            n &+= 1
            return [UInt8](repeating: n, count: count)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(left: total, piece: piece) }
}
