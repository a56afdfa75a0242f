public import NIOCore

/// One value of the Redis serialization protocol, RESP2 or RESP3.
///
/// RESP2 has five types (simple string, error, integer, bulk string, array); RESP3, negotiated with
/// `HELLO 3`, adds null, double, boolean, big number, bulk error, verbatim string, map, set and push.
/// Payloads are kept as `ByteBuffer`s so that binary data round-trips untouched; use ``string``,
/// ``int`` and friends for typed access.
public enum RESPValue: Sendable {
    /// `+OK\r\n`: a short, binary-unsafe status string.
    case simpleString(ByteBuffer)
    /// `-ERR message\r\n`: an error reply. The first word is the error code (`ERR`, `WRONGTYPE`, …).
    case error(ByteBuffer)
    /// `:42\r\n`: a signed 64-bit integer.
    case integer(Int64)
    /// `$3\r\nfoo\r\n`: a binary-safe string; `nil` is RESP2's null bulk string (`$-1\r\n`).
    case bulkString(ByteBuffer?)
    /// `*2\r\n…`: an ordered list of values; `nil` is RESP2's null array (`*-1\r\n`).
    case array([RESPValue]?)
    /// `_\r\n`: RESP3's null.
    case null
    /// `,3.14\r\n`: RESP3 double (also `inf`, `-inf`, `nan`).
    case double(Double)
    /// `#t\r\n` / `#f\r\n`: RESP3 boolean.
    case boolean(Bool)
    /// `(3492890328409238509324850943850943825024385\r\n`: RESP3 big number, kept as its decimal text.
    case bigNumber(ByteBuffer)
    /// `!21\r\nSYNTAX invalid syntax\r\n`: RESP3 binary-safe error.
    case bulkError(ByteBuffer)
    /// `=15\r\ntxt:Some string\r\n`: RESP3 verbatim string; the payload keeps its three-letter format prefix.
    case verbatimString(ByteBuffer)
    /// `%2\r\n…`: RESP3 map, in wire order (duplicate keys are kept as sent).
    case map([RESPMapEntry])
    /// `~3\r\n…`: RESP3 set, in wire order.
    case set([RESPValue])
    /// `>3\r\n…`: RESP3 out-of-band push data (pub/sub messages, invalidations).
    case push([RESPValue])
}

/// One key/value pair of a RESP3 ``RESPValue/map(_:)``.
public struct RESPMapEntry: Sendable, Hashable {
    /// The entry's key.
    public var key: RESPValue
    /// The entry's value.
    public var value: RESPValue

    /// Creates an entry.
    public init(key: RESPValue, value: RESPValue) {
        self.key = key
        self.value = value
    }
}

extension RESPValue: Hashable {
    /// Structural equality; two NaN doubles compare equal so that decoded values round-trip.
    public static func == (lhs: RESPValue, rhs: RESPValue) -> Bool {
        switch (lhs, rhs) {
        case (.simpleString(let a), .simpleString(let b)): return a == b
        case (.error(let a), .error(let b)): return a == b
        case (.integer(let a), .integer(let b)): return a == b
        case (.bulkString(let a), .bulkString(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.null, .null): return true
        case (.double(let a), .double(let b)): return a == b || (a.isNaN && b.isNaN)
        case (.boolean(let a), .boolean(let b)): return a == b
        case (.bigNumber(let a), .bigNumber(let b)): return a == b
        case (.bulkError(let a), .bulkError(let b)): return a == b
        case (.verbatimString(let a), .verbatimString(let b)): return a == b
        case (.map(let a), .map(let b)): return a == b
        case (.set(let a), .set(let b)): return a == b
        case (.push(let a), .push(let b)): return a == b
        default: return false
        }
    }

    /// Hashes the case and payload, consistently with `==`.
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .simpleString(let v): hasher.combine(0); hasher.combine(v)
        case .error(let v): hasher.combine(1); hasher.combine(v)
        case .integer(let v): hasher.combine(2); hasher.combine(v)
        case .bulkString(let v): hasher.combine(3); hasher.combine(v)
        case .array(let v): hasher.combine(4); hasher.combine(v)
        case .null: hasher.combine(5)
        case .double(let v): hasher.combine(6); hasher.combine(v.isNaN ? .nan : v)
        case .boolean(let v): hasher.combine(7); hasher.combine(v)
        case .bigNumber(let v): hasher.combine(8); hasher.combine(v)
        case .bulkError(let v): hasher.combine(9); hasher.combine(v)
        case .verbatimString(let v): hasher.combine(10); hasher.combine(v)
        case .map(let v): hasher.combine(11); hasher.combine(v)
        case .set(let v): hasher.combine(12); hasher.combine(v)
        case .push(let v): hasher.combine(13); hasher.combine(v)
        }
    }
}

// MARK: - Convenient construction

extension RESPValue {
    /// A bulk string holding the UTF-8 bytes of `string`.
    public static func bulk(_ string: String) -> RESPValue {
        .bulkString(ByteBuffer(string: string))
    }

    /// A bulk string holding `bytes`.
    public static func bulk<Bytes: Sequence>(bytes: Bytes) -> RESPValue where Bytes.Element == UInt8 {
        .bulkString(ByteBuffer(bytes: bytes))
    }

    /// A simple string (`+…`) holding `string`.
    public static func simple(_ string: String) -> RESPValue {
        .simpleString(ByteBuffer(string: string))
    }

    /// An array of bulk strings.
    public static func bulkArray(_ strings: [String]) -> RESPValue {
        .array(strings.map { .bulk($0) })
    }

    /// The `+OK` reply.
    public static let ok: RESPValue = .simple("OK")
}

// MARK: - Typed access

extension RESPValue {
    /// `true` for every spelling of null: RESP3 `_`, RESP2's null bulk string and null array.
    public var isNull: Bool {
        switch self {
        case .null, .bulkString(nil), .array(nil): return true
        default: return false
        }
    }

    /// The payload as UTF-8 text for string-like values and numbers, `nil` for null and aggregates.
    ///
    /// Bytes that are not valid UTF-8 are repaired with U+FFFD; use ``bytes`` for binary payloads.
    public var string: String? {
        switch self {
        case .simpleString(let b), .bulkString(.some(let b)), .bigNumber(let b), .error(let b), .bulkError(let b):
            return String(buffer: b)
        case .verbatimString(let b):
            // Strip the three-letter format and colon ("txt:").
            var copy = b
            if copy.readableBytes >= 4 { copy.moveReaderIndex(forwardBy: 4) }
            return String(buffer: copy)
        case .integer(let i): return String(i)
        case .double(let d): return String(d)
        case .boolean(let b): return b ? "1" : "0"
        default: return nil
        }
    }

    /// The payload of a string-like value as raw bytes; `nil` for null, numbers and aggregates.
    public var bytes: [UInt8]? {
        switch self {
        case .simpleString(let b), .bulkString(.some(let b)), .verbatimString(let b), .bigNumber(let b):
            return Array(b.readableBytesView)
        default: return nil
        }
    }

    /// The payload as a `ByteBuffer` for string-like values; `nil` otherwise.
    public var buffer: ByteBuffer? {
        switch self {
        case .simpleString(let b), .bulkString(.some(let b)), .verbatimString(let b), .bigNumber(let b):
            return b
        default: return nil
        }
    }

    /// An integer reply, or a string reply that spells a 64-bit integer (as Redis sends for `GET` of a counter).
    public var int: Int? {
        switch self {
        case .integer(let i): return Int(i)
        case .boolean(let b): return b ? 1 : 0
        case .simpleString(let b), .bulkString(.some(let b)): return Int(String(buffer: b))
        default: return nil
        }
    }

    /// A double reply, or a string or integer reply that spells a number.
    public var double: Double? {
        switch self {
        case .double(let d): return d
        case .integer(let i): return Double(i)
        case .simpleString(let b), .bulkString(.some(let b)): return Double(String(buffer: b))
        default: return nil
        }
    }

    /// The elements of an array, set or push reply; the flattened key, value, key, value… of a map
    /// (which is how RESP2 sends the same data); `nil` for null and scalars.
    public var array: [RESPValue]? {
        switch self {
        case .array(.some(let a)), .set(let a), .push(let a): return a
        case .map(let entries):
            var flat: [RESPValue] = []
            flat.reserveCapacity(entries.count * 2)
            for e in entries {
                flat.append(e.key)
                flat.append(e.value)
            }
            return flat
        default: return nil
        }
    }

    /// The message of an error reply (`-…` or `!…`), `nil` for every other value.
    public var errorMessage: String? {
        switch self {
        case .error(let b), .bulkError(let b): return String(buffer: b)
        default: return nil
        }
    }
}

extension RESPValue: CustomStringConvertible {
    /// A compact, human-readable rendering, similar to what `redis-cli` prints.
    public var description: String {
        switch self {
        case .simpleString(let b): return String(buffer: b)
        case .error(let b), .bulkError(let b): return "(error) " + String(buffer: b)
        case .integer(let i): return "(integer) \(i)"
        case .bulkString(nil), .array(nil), .null: return "(nil)"
        case .bulkString(.some(let b)): return "\"" + String(buffer: b) + "\""
        case .array(.some(let a)), .set(let a), .push(let a):
            return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .double(let d): return "(double) \(d)"
        case .boolean(let b): return "(boolean) \(b)"
        case .bigNumber(let b): return "(big number) " + String(buffer: b)
        case .verbatimString(let b): return "\"" + String(buffer: b) + "\""
        case .map(let entries):
            return "{" + entries.map { "\($0.key.description): \($0.value.description)" }.joined(separator: ", ") + "}"
        }
    }
}
