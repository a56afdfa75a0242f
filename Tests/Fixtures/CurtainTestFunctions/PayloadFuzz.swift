import Curtain
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// A leaf of ``FuzzRecord``: a small mixed struct.
public struct FuzzLeaf: Codable, Equatable, Sendable {
    /// An identifier.
    public var id: Int32
    /// A weight.
    public var weight: Float
    /// A label.
    public var label: String
    /// A flag.
    public var on: Bool
    /// Creates a leaf.
    public init(id: Int32, weight: Float, label: String, on: Bool) {
        self.id = id
        self.weight = weight
        self.label = label
        self.on = on
    }
}

/// An enum with associated values (synthesized Codable: nested keyed containers, read through `allKeys`).
public enum FuzzKind: Codable, Equatable, Sendable {
    /// No payload.
    case none
    /// A count.
    case count(Int)
    /// A named point.
    case point(x: Double, y: Double, name: String?)
}

/// A recursive type: hostile bytes must not exhaust the stack through it.
public indirect enum FuzzTree: Codable, Equatable, Sendable {
    /// A leaf.
    case leaf(UInt8)
    /// Children.
    case node([FuzzTree])
}

/// A value touching every part of the binary payload format.
public struct FuzzRecord: Codable, Equatable, Sendable {
    /// A signed integer.
    public var int: Int
    /// An unsigned integer.
    public var unsigned: UInt64
    /// A finite double.
    public var double: Double
    /// Text, possibly non-ASCII.
    public var text: String
    /// An optional (written or left out).
    public var maybe: Int16?
    /// Small structs.
    public var leaves: [FuzzLeaf]
    /// An enum with associated values.
    public var kind: FuzzKind
    /// A dictionary with string keys.
    public var map: [String: Int]
    /// Raw numbers.
    public var numbers: [Double]
    /// Raw small numbers.
    public var small: [UInt16]
    /// Bytes.
    public var data: Data
    /// A tree.
    public var tree: FuzzTree
}

/// Seeded fuzzing of ``PayloadDecoder``: valid payloads must round-trip exactly; random, cut and mutated
/// bytes must decode or fail with a `DecodingError`, never crash or throw anything else.
public enum PayloadFuzz {
    /// What a run saw.
    public struct Counts: Sendable {
        /// Inputs tried.
        public var inputs = 0
        /// Valid payloads that round-tripped exactly.
        public var roundTrips = 0
        /// Inputs that decoded as some type.
        public var decoded = 0
        /// Inputs every type refused with a `DecodingError`.
        public var rejected = 0
        /// Bytes fed in all.
        public var bytes = 0
        /// Creates empty counts.
        public init() {}
    }

    /// A broken invariant.
    public struct Violation: Error, CustomStringConvertible {
        /// What went wrong, with the input's bytes.
        public var description: String
    }

    /// A random record.
    public static func record(_ rng: inout some RandomNumberGenerator) -> FuzzRecord {
        func text() -> String {
            let alphabet = ["a", "b", "z", "é", "日本", "🙂", " ", "\"", "\\", "\u{0}"]
            return (0..<Int.random(in: 0...6, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }.joined()
        }
        func tree(_ depth: Int) -> FuzzTree {
            depth > 3 || Bool.random(using: &rng)
                ? .leaf(UInt8.random(in: 0...255, using: &rng))
                : .node((0..<Int.random(in: 0...3, using: &rng)).map { _ in tree(depth + 1) })
        }
        let kinds: [FuzzKind] = [
            .none, .count(Int.random(in: -1000...1000, using: &rng)),
            .point(x: Double.random(in: -1...1, using: &rng), y: 2.5, name: Bool.random(using: &rng) ? text() : nil),
        ]
        return FuzzRecord(
            int: Int.random(in: Int.min...Int.max, using: &rng), unsigned: UInt64.random(in: 0...UInt64.max, using: &rng),
            double: Double.random(in: -1e9...1e9, using: &rng), text: text(),
            maybe: Bool.random(using: &rng) ? Int16.random(in: -5...5, using: &rng) : nil,
            leaves: (0..<Int.random(in: 0...4, using: &rng)).map { i in
                FuzzLeaf(id: Int32(i), weight: Float(i) / 3, label: text(), on: i % 2 == 0)
            },
            kind: kinds.randomElement(using: &rng)!,
            map: Dictionary(uniqueKeysWithValues: (0..<Int.random(in: 0...3, using: &rng)).map { ("k\($0)", $0) }),
            numbers: (0..<Int.random(in: 0...8, using: &rng)).map { Double($0) * 1.5 },
            small: (0..<Int.random(in: 0...8, using: &rng)).map { UInt16($0 * 1000) },
            data: Data((0..<Int.random(in: 0...6, using: &rng)).map { UInt8($0) }),
            tree: tree(0))
    }

    /// `bytes` changed at random: bits flipped, bytes set to edge values, cut, spliced, repeated.
    public static func mutate(_ bytes: [UInt8], _ rng: inout some RandomNumberGenerator) -> [UInt8] {
        var out = bytes
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            guard !out.isEmpty else { break }
            let i = Int.random(in: 0..<out.count, using: &rng)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: out[i] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
            case 1: out[i] = [0x00, 0x7F, 0x80, 0xFF, 0x20, 0x21, 0x30, 0x11].randomElement(using: &rng)!
            case 2: out.removeSubrange(i...)
            case 3: out.insert(contentsOf: out[i...].prefix(8), at: i)
            case 4: out.remove(at: i)
            default:
                // A huge varint or length where one may be.
                out.replaceSubrange(i..<min(out.count, i + 5), with: [0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
            }
        }
        return out
    }

    /// Input `index` of a run: a valid payload, a mutated one, or random bytes behind a valid header.
    public static func input(_ index: Int, _ rng: inout some RandomNumberGenerator) throws -> (bytes: [UInt8], original: FuzzRecord?) {
        let record = record(&rng)
        let valid = try PayloadEncoder().encode(record)
        switch index % 4 {
        case 0: return (valid, record)
        case 3:
            var bytes: [UInt8] = [0xC3, 1]
            let length = Int.random(in: 0...64, using: &rng)
            let trailer = UInt32(6 + Int.random(in: 0...length, using: &rng))
            withUnsafeBytes(of: trailer.littleEndian) { bytes.append(contentsOf: $0) }
            bytes += (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            return (bytes, nil)
        default: return (mutate(valid, &rng), nil)
        }
    }

    /// Checks one input: decodes it as several types.
    ///
    /// - Returns: whether any type decoded it.
    /// - Throws: ``Violation`` if a valid payload does not round-trip or any decode throws something other
    ///   than a `DecodingError`.
    public static func check(_ bytes: [UInt8], original: FuzzRecord?) throws -> Bool {
        var decodedAny = false
        func attempt<T: Decodable>(_ type: T.Type) throws -> T? {
            do {
                let value = try PayloadDecoder().decode(T.self, from: bytes)
                decodedAny = true
                return value
            } catch is DecodingError {
                return nil
            } catch {
                throw Violation(description: "decoding \(T.self) threw \(Swift.type(of: error)) (\(error)), not a DecodingError, for \(bytes)")
            }
        }
        let record = try attempt(FuzzRecord.self)
        if let original {
            guard record == original else {
                throw Violation(description: "a valid payload did not round-trip: \(original) became \(String(describing: record))")
            }
        }
        _ = try attempt(FuzzTree.self)
        _ = try attempt([FuzzLeaf].self)
        _ = try attempt([String: Int].self)
        _ = try attempt(FuzzKind.self)
        _ = try attempt([Double].self)
        _ = try attempt(String.self)
        _ = try attempt(Int?.self)
        return decodedAny
    }

    /// Runs `count` inputs from `start`, each from its own generator (`generator(index)`), so any one can be
    /// replayed alone.
    public static func run<G: RandomNumberGenerator>(
        count: Int, start: Int = 0, generator: (Int) -> G, onInput: (Int) -> Void = { _ in }
    ) throws -> Counts {
        var counts = Counts()
        for index in start..<(start + count) {
            onInput(index)
            var rng = generator(index)
            let (bytes, original) = try input(index, &rng)
            counts.inputs += 1
            counts.bytes += bytes.count
            if try check(bytes, original: original) { counts.decoded += 1 } else { counts.rejected += 1 }
            if original != nil { counts.roundTrips += 1 }
        }
        return counts
    }
}
