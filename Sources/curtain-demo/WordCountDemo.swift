import ArgumentParser
import Curtain
import CurtainExamples
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `curtain-demo wordcount`: word count over a generated corpus stored as objects, in one process and as a
/// Curtain map-reduce over partitions of the objects.
struct WordCountDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wordcount",
        abstract: "Word count over a generated corpus in the object store: one local process vs a Curtain map-reduce.")

    @Option(help: "Corpus size in megabytes (generated once per size and seed, then reused).")
    var megabytes: Int = 320

    @Option(help: "Objects the corpus is split into.")
    var objects: Int = 8

    @Option(help: "Bytes per task, in megabytes.")
    var chunkMegabytes: Int = 16

    @Option(help: "Distinct words in the vocabulary.")
    var vocabulary: Int = 20_000

    @Option(help: "The corpus's seed.")
    var seed: UInt64 = 3

    @Flag(help: "Print one JSON line instead of text.")
    var json = false

    func validate() throws {
        guard megabytes >= 1, objects >= 1, chunkMegabytes >= 1, vocabulary >= 1 else {
            throw ValidationError("every count must be positive")
        }
    }

    func run() async throws {
        // In a worker process this call never returns.
        let cloud = try await Cloud.start(functions: [CountWords.self])
        try await cloud.waitForWorkers()
        let prefix = "curtain-demo/wordcount/\(megabytes)mb-\(objects)-\(vocabulary)-\(seed)/"
        let clock = ContinuousClock()
        var start = clock.now
        let generated = try await ensureCorpus(in: cloud.storage, prefix: prefix)
        let generateSeconds = seconds(clock.now - start)
        let inventory = try await cloud.storage.objects(prefix: prefix)
        let bytes = inventory.reduce(0) { $0 + $1.size }

        // Local: one process reads each object whole, in order, with the same counting code.
        start = clock.now
        var local: [String: Int] = [:]
        for object in inventory {
            let counts = try await WordCount.count(ObjectPartition(storage: cloud.storage, key: object.key, range: 0..<object.size))
            local.merge(counts, uniquingKeysWith: +)
        }
        let localSeconds = seconds(clock.now - start)

        // Curtain: map over partitions of the objects, reduce in the driver.
        start = clock.now
        let partials = try await cloud.map(CountWords(), overObjects: prefix, chunkSize: chunkMegabytes << 20)
        var distributed: [String: Int] = [:]
        for partial in partials { distributed.merge(partial, uniquingKeysWith: +) }
        let curtainSeconds = seconds(clock.now - start)
        await cloud.shutdown()

        let identical = local == distributed
        let words = local.values.reduce(0, +)
        let backend = PiDemo.describe(cloud.configuration)
        let ratio = localSeconds / curtainSeconds
        if json {
            print(
                "{\"megabytes\":\(round4(Double(bytes) / 1e6)),\"objects\":\(inventory.count),\"tasks\":\(partials.count),\"words\":\(words),\"distinct\":\(local.count),\"backend\":\"\(backend)\",\"generated\":\(generated),\"local_s\":\(round4(localSeconds)),\"curtain_s\":\(round4(curtainSeconds)),\"ratio\":\(round4(ratio)),\"identical\":\(identical)}")
        } else {
            print("word count, \(round4(Double(bytes) / 1e6)) MB in \(inventory.count) objects at \(cloud.storage.url), \(backend)")
            if generated { print("corpus generated in \(round4(generateSeconds)) s") }
            print("local, one process:   \(round4(localSeconds)) s   \(words) words, \(local.count) distinct")
            print("Curtain map-reduce:   \(round4(curtainSeconds)) s   \(partials.count) tasks of \(chunkMegabytes) MB")
            print("ratio local/curtain:  \(round4(ratio))   counts identical: \(identical)")
        }
        guard identical else { throw ValidationError("the counts differ") }
    }

    /// Writes the corpus unless every object of it is already there; returns whether it wrote it.
    private func ensureCorpus(in storage: Storage, prefix: String) async throws -> Bool {
        let present = try await storage.objects(prefix: prefix)
        if present.count == objects && present.allSatisfy({ $0.size > 0 }) { return false }
        let words = WordCount.vocabulary(size: vocabulary, seed: seed)
        let each = (megabytes << 20) / objects
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<objects {
                group.addTask {
                    let text = WordCount.text(bytes: each, vocabulary: words, seed: seed &* 1000 &+ UInt64(i))
                    try await storage.write(prefix + "part-\(String(repeating: "0", count: max(0, 4 - String(i).count)))\(i).txt", text)
                }
            }
            try await group.waitForAll()
        }
        return true
    }
}
