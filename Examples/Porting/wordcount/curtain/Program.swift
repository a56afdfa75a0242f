// A map over files on disk: the words of every file of a directory counted, one child task per file.
import CurtainRemote
import Foundation

/// How often each word occurs in the file at `path`.
@Remote
func countWords(inFileAt path: String) throws -> [String: Int] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var counts: [String: Int] = [:]
    for word in text.split(whereSeparator: { !$0.isLetter }) {
        counts[word.lowercased(), default: 0] += 1
    }
    return counts
}

/// Writes 40 files of generated text into a new directory and returns its path.
func writeSampleFiles() throws -> String {
    let words = ["the", "curtain", "rises", "on", "a", "stage", "of", "many", "workers", "and", "one", "store"]
    let directory = NSTemporaryDirectory() + "wordcount-\(getpid())"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    var seed: UInt64 = 7
    for file in 0..<40 {
        var text = ""
        for _ in 0..<8_000 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            text += words[Int(seed >> 33) % words.count] + ((seed >> 20) % 9 == 0 ? ".\n" : " ")
        }
        try text.write(toFile: directory + "/part-\(file).txt", atomically: true, encoding: .utf8)
    }
    return directory
}

@main
struct WordCount {
    static func main() async throws {
        await Cloud.start()
        let directory = try writeSampleFiles()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).sorted().map { directory + "/" + $0 }
        let totals = try await withThrowingTaskGroup(of: [String: Int].self) { group in
            for file in files {
                group.addTask { try await $countWords(inFileAt: file) }
            }
            var totals: [String: Int] = [:]
            for try await counts in group { totals.merge(counts) { $0 + $1 } }
            return totals
        }
        let top = totals.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(5)
        print("\(files.count) files, \(totals.values.reduce(0, +)) words; most frequent: "
            + top.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }
}
