public import Curtain

/// Word counting over text objects: a seeded corpus generator, the counting itself, and the remote
/// function that counts one partition.
public enum WordCount {
    /// The corpus's vocabulary: `size` pseudo-words of 2 to 9 letters, from a seed.
    public static func vocabulary(size: Int, seed: UInt64) -> [[UInt8]] {
        var state = seed
        var words = Set<[UInt8]>()
        var ordered: [[UInt8]] = []
        while ordered.count < size {
            state = SparseRegression.mix(state)
            let length = 2 + Int(state % 8)
            var word: [UInt8] = []
            for _ in 0..<length {
                state = SparseRegression.mix(state)
                word.append(UInt8(ascii: "a") + UInt8(state % 26))
            }
            if words.insert(word).inserted { ordered.append(word) }
        }
        return ordered
    }

    /// About `bytes` bytes of text: lines of 1 to 16 words drawn from `vocabulary` (skewed towards the
    /// first words, as in natural text), each line ended by `\n`.
    public static func text(bytes: Int, vocabulary: [[UInt8]], seed: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes + 200)
        var state = seed
        while out.count < bytes {
            state = SparseRegression.mix(state)
            let words = 1 + Int(state % 16)
            for w in 0..<words {
                state = SparseRegression.mix(state)
                // The minimum of two draws: frequent words are frequent.
                let a = Int(state % UInt64(vocabulary.count))
                let b = Int((state >> 32) % UInt64(vocabulary.count))
                if w > 0 { out.append(UInt8(ascii: " ")) }
                out += vocabulary[Swift.min(a, b)]
            }
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    /// Adds the words of `line` (separated by spaces or tabs) to `counts`.
    @inlinable
    public static func count(line: ArraySlice<UInt8>, into counts: inout [ArraySlice<UInt8>: Int]) {
        var start = line.startIndex
        var i = line.startIndex
        while i < line.endIndex {
            let c = line[i]
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") {
                if i > start { counts[line[start..<i], default: 0] += 1 }
                start = i + 1
            }
            i += 1
        }
        if i > start { counts[line[start..<i], default: 0] += 1 }
    }

    /// Counts the words of a partition's lines.
    public static func count(_ partition: ObjectPartition) async throws -> [String: Int] {
        var counts: [ArraySlice<UInt8>: Int] = [:]
        for try await line in partition.records { count(line: line, into: &counts) }
        var result: [String: Int] = [:]
        result.reserveCapacity(counts.count)
        for (word, n) in counts { result[String(decoding: word, as: UTF8.self), default: 0] += n }
        return result
    }
}

/// Counts the words of one partition: the map step of a word-count job.
public struct CountWords: RemoteFunction {
    /// Creates the function.
    public init() {}

    /// Word → occurrences in the partition.
    public func callAsFunction(_ partition: ObjectPartition) async throws -> [String: Int] {
        try await WordCount.count(partition)
    }
}
