/// A compact, binary-safe byte string used for every stored key, value, field and member.
///
/// Strings of up to ``inlineCapacity`` bytes live inline in three machine words, so short keys and values
/// (the common case) cost no heap allocation to build, compare or hash; longer ones live in a `[UInt8]`.
/// The representation is canonical (a given byte sequence always has the same form), so equality and
/// hashing can work on the representation directly. Bytes are always copied in: a `StoreBytes` never
/// points into a network read buffer.
struct StoreBytes: Sendable {
    /// The longest byte string stored inline.
    static let inlineCapacity = 23

    /// Inline words: bytes 0..<23 hold the payload (zero padded), byte 23 holds the count.
    private typealias Words = (UInt64, UInt64, UInt64)

    private enum Storage: Sendable {
        case inline(UInt64, UInt64, UInt64)
        case heap([UInt8])
    }

    private var storage: Storage

    /// The empty byte string.
    static let empty = StoreBytes(UnsafeRawBufferPointer(start: nil, count: 0))

    /// Copies `bytes`.
    init(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count <= StoreBytes.inlineCapacity {
            var words: Words = (0, 0, 0)
            withUnsafeMutableBytes(of: &words) { raw in
                if bytes.count > 0 {
                    raw.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                }
                raw[23] = UInt8(truncatingIfNeeded: bytes.count)
            }
            storage = .inline(words.0, words.1, words.2)
        } else {
            storage = .heap(Array(bytes))
        }
    }

    /// Takes ownership of `array`.
    init(_ array: [UInt8]) {
        if array.count <= StoreBytes.inlineCapacity {
            self = array.withUnsafeBytes { StoreBytes($0) }
        } else {
            storage = .heap(array)
        }
    }

    /// The UTF-8 bytes of `string`.
    init(_ string: String) {
        var copy = string
        self = copy.withUTF8 { StoreBytes(UnsafeRawBufferPointer($0)) }
    }

    /// The decimal text of `value`.
    init(decimal value: Int64) {
        // At most 20 characters: fits inline.
        var words: Words = (0, 0, 0)
        withUnsafeMutableBytes(of: &words) { raw in
            var magnitude = value.magnitude
            var scratch: Words = (0, 0, 0)
            var count = 0
            withUnsafeMutableBytes(of: &scratch) { digits in
                var i = 23
                repeat {
                    digits[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
                    magnitude /= 10
                    i -= 1
                    count += 1
                } while magnitude > 0
                if value < 0 {
                    digits[i] = UInt8(ascii: "-")
                    count += 1
                }
                for j in 0..<count { raw[j] = digits[24 - count + j] }
            }
            raw[23] = UInt8(truncatingIfNeeded: count)
        }
        storage = .inline(words.0, words.1, words.2)
    }

    /// The number of bytes.
    var count: Int {
        switch storage {
        case .inline(_, _, let w2): return Int(truncatingIfNeeded: w2.littleEndian >> 56)
        case .heap(let array): return array.count
        }
    }

    /// `true` when there are no bytes.
    var isEmpty: Bool { count == 0 }

    /// Calls `body` with the bytes.
    @inline(__always)
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch storage {
        case .inline(let w0, let w1, let w2):
            var words: Words = (w0, w1, w2)
            let count = Int(truncatingIfNeeded: w2.littleEndian >> 56)
            return try Swift.withUnsafeBytes(of: &words) { raw in
                try body(UnsafeRawBufferPointer(rebasing: raw[0..<count]))
            }
        case .heap(let array):
            return try array.withUnsafeBytes(body)
        }
    }

    /// The bytes as an array.
    var array: [UInt8] {
        switch storage {
        case .inline: return withUnsafeBytes { Array($0) }
        case .heap(let array): return array
        }
    }

    /// The bytes as text (invalid UTF-8 repaired).
    var string: String {
        withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// A hash that is stable across processes and runs (FNV-1a, 64-bit), used as the `SCAN` cursor order.
    var stableHash: UInt64 {
        withUnsafeBytes { bytes in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01b3
            }
            // Finalize (splitmix64) so that short keys spread over the whole range.
            hash ^= hash >> 30
            hash = hash &* 0xbf58_476d_1ce4_e5b9
            hash ^= hash >> 27
            hash = hash &* 0x94d0_49bb_1331_11eb
            hash ^= hash >> 31
            return hash
        }
    }

    /// An approximation of the heap memory this value uses, for `INFO memory`.
    var approximateHeapSize: Int {
        switch storage {
        case .inline: return 0
        case .heap(let array): return array.capacity + 32
        }
    }
}

extension StoreBytes: Hashable {
    @inline(__always)
    static func == (lhs: StoreBytes, rhs: StoreBytes) -> Bool {
        switch (lhs.storage, rhs.storage) {
        case (.inline(let a0, let a1, let a2), .inline(let b0, let b1, let b2)):
            return a0 == b0 && a1 == b1 && a2 == b2
        case (.heap(let a), .heap(let b)):
            return a == b
        default:
            return false
        }
    }

    @inline(__always)
    func hash(into hasher: inout Hasher) {
        switch storage {
        case .inline(let w0, let w1, let w2):
            hasher.combine(w0)
            hasher.combine(w1)
            hasher.combine(w2)
        case .heap(let array):
            array.withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }
}

extension StoreBytes: Comparable {
    /// Byte-wise lexicographic order (as `memcmp`, shorter first on a common prefix).
    static func < (lhs: StoreBytes, rhs: StoreBytes) -> Bool {
        lhs.withUnsafeBytes { a in
            rhs.withUnsafeBytes { b in
                a.lexicographicallyPrecedes(b)
            }
        }
    }
}

extension StoreBytes: ExpressibleByStringLiteral {
    init(stringLiteral value: String) {
        self.init(value)
    }
}

extension StoreBytes: CustomStringConvertible {
    var description: String { string }
}
