/// How values are written when they cross a process boundary (captures, inputs, outputs, actor arguments).
public enum PayloadFormat: String, Sendable, Hashable, CaseIterable {
    /// Curtain's binary format (the default): numbers as fixed-width little-endian bytes, arrays of
    /// numbers as one block of raw bytes, strings as UTF-8. See ``PayloadEncoder``.
    case binary
    /// JSON, readable in the store and in dead letters: for debugging (`CURTAIN_PAYLOAD_FORMAT=json`).
    case json
}

/// The binary payload format's constants and byte-level helpers, shared by ``PayloadEncoder`` and
/// ``PayloadDecoder``.
///
/// Layout (version 1), little-endian throughout:
///
/// ```
/// payload  := 0xC3 · version (1) · trailer offset (u32) · value · trailer
/// trailer  := key count (varint) · (length (varint) · UTF-8)* · ref count (varint) · ref*
/// ref      := content hash (32 bytes: SHA-256 with the Signing trait, else a fingerprint; see ContentHash) · length (varint) · place (u8: 0 the store, 1 an object store) · [URL (varint + UTF-8)]
/// value    := tag (u8) · body
///   0x00 nil · 0x01 false · 0x02 true
///   0x03…0x0E Int8 Int16 Int32 Int64 UInt8 UInt16 UInt32 UInt64 Float Double Int UInt: fixed width
///   0x10 string: length (varint) · UTF-8
///   0x11 numeric array: element kind (u8, the tag of its element) · count (varint) · raw elements
///        (an array of SIMD2/4/8 vectors is written as its scalars: count = vectors × lanes)
///   0x12 bytes (Data): length (varint) · bytes
///   0x20 unkeyed container: body length (u32) · count (u32) · value*
///   0x21 keyed container: body length (u32) · (key index (varint) · value)*
///   0x30 shared value: ref index (varint): the value is the payload stored under that ref's hash
/// ```
///
/// Keys are written once per payload, in the trailer; containers carry their byte length, so a decoder
/// finds a key out of order, or skips one it does not want, without reading what is inside.
enum PayloadWire {
    /// The first byte of every binary payload. Not ASCII (JSON text starts with ASCII), not the spill
    /// reference's `0xFE` nor the old raw array's `0xFF`.
    static let marker: UInt8 = 0xC3
    /// The format version this build writes and reads.
    static let version: UInt8 = 1
    /// Marker, version and the trailer's offset.
    static let headerSize = 6
    /// Containers nested deeper than this are refused when decoding (hostile bytes must not exhaust the
    /// stack through a recursive type).
    static let maxDepth = 512

    enum Tag: UInt8 {
        case null = 0x00, falseValue = 0x01, trueValue = 0x02
        case int8 = 0x03, int16 = 0x04, int32 = 0x05, int64 = 0x06
        case uint8 = 0x07, uint16 = 0x08, uint32 = 0x09, uint64 = 0x0A
        case float = 0x0B, double = 0x0C, int = 0x0D, uint = 0x0E
        case string = 0x10, numbers = 0x11, bytes = 0x12
        case unkeyed = 0x20, keyed = 0x21
        case shared = 0x30

        /// The byte width of a fixed-width scalar or numeric-array element; `nil` for other tags.
        var width: Int? {
            switch self {
            case .int8, .uint8: 1
            case .int16, .uint16: 2
            case .int32, .uint32, .float: 4
            case .int64, .uint64, .double, .int, .uint: 8
            default: nil
            }
        }

        var name: String {
            switch self {
            case .null: "nil"
            case .falseValue, .trueValue: "Bool"
            case .int8: "Int8"
            case .int16: "Int16"
            case .int32: "Int32"
            case .int64: "Int64"
            case .uint8: "UInt8"
            case .uint16: "UInt16"
            case .uint32: "UInt32"
            case .uint64: "UInt64"
            case .float: "Float"
            case .double: "Double"
            case .int: "Int"
            case .uint: "UInt"
            case .string: "a string"
            case .numbers: "an array of numbers"
            case .bytes: "bytes"
            case .unkeyed: "an unkeyed container (array)"
            case .keyed: "a keyed container (struct or dictionary)"
            case .shared: "a shared value"
            }
        }
    }

    /// The element tag of a numeric array type (`[Double]`, `[UInt16]`, `[SIMD2<Double>]`, …: its scalars'
    /// tag); `nil` for any other type.
    @inline(__always)
    static func numericElement<T>(of _: T.Type) -> Tag? {
        let id = ObjectIdentifier(T.self)
        for (type, tag) in numericArrays where type == id { return tag }
        for (type, tag, _) in vectorArrays where type == id { return tag }
        return nil
    }

    /// The lanes of the element of a numeric array type: 1 for scalars, 2, 4 or 8 for SIMD vectors (whose
    /// lanes are packed, without padding: SIMD3 is not among them, and takes the general path).
    @inline(__always)
    static func lanes<T>(of _: T.Type) -> Int {
        let id = ObjectIdentifier(T.self)
        for (type, _, lanes) in vectorArrays where type == id { return lanes }
        return 1
    }

    /// Arrays of packed SIMD vectors of the common scalars, written as their scalars.
    private static let vectorArrays: [(ObjectIdentifier, Tag, Int)] = [
        (ObjectIdentifier([SIMD2<Double>].self), .double, 2), (ObjectIdentifier([SIMD4<Double>].self), .double, 4),
        (ObjectIdentifier([SIMD8<Double>].self), .double, 8), (ObjectIdentifier([SIMD2<Float>].self), .float, 2),
        (ObjectIdentifier([SIMD4<Float>].self), .float, 4), (ObjectIdentifier([SIMD8<Float>].self), .float, 8),
        (ObjectIdentifier([SIMD2<Int32>].self), .int32, 2), (ObjectIdentifier([SIMD4<Int32>].self), .int32, 4),
        (ObjectIdentifier([SIMD2<Int>].self), .int, 2), (ObjectIdentifier([SIMD4<Int>].self), .int, 4),
    ]

    /// The numeric array types, looked up once (comparing metatypes on every value costs a metadata
    /// lookup each).
    private static let numericArrays: [(ObjectIdentifier, Tag)] = [
        (ObjectIdentifier([Double].self), .double), (ObjectIdentifier([Float].self), .float),
        (ObjectIdentifier([Int].self), .int), (ObjectIdentifier([UInt8].self), .uint8),
        (ObjectIdentifier([UInt16].self), .uint16), (ObjectIdentifier([Int32].self), .int32),
        (ObjectIdentifier([Int64].self), .int64), (ObjectIdentifier([UInt32].self), .uint32),
        (ObjectIdentifier([UInt64].self), .uint64), (ObjectIdentifier([Int16].self), .int16),
        (ObjectIdentifier([Int8].self), .int8), (ObjectIdentifier([UInt].self), .uint),
    ]

    /// Whether `bytes` start like a binary payload.
    static func isBinary(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= headerSize && bytes[0] == marker
    }
}

#if _endian(big)
#error("the binary payload format writes numbers in the host's byte order, which must be little-endian")
#endif

/// A value stored once under its content hash and referenced from payloads (see ``PayloadEncoder/shareAbove``).
struct SharedRef: Sendable, Hashable {
    /// Where a shared value is kept.
    enum Place: Sendable, Hashable {
        /// In the store, under ``SharedRef/storeKey`` (with an expiry).
        case store
        /// In an object store, under ``SharedRef/objectKey``.
        case objects(url: String)
    }

    /// The content hash (``ContentHash``) of the stored bytes (themselves a complete payload).
    var hash: [UInt8]
    /// The stored bytes' length.
    var length: Int
    var place: Place

    /// The hash in hexadecimal.
    var hex: String { Self.hex(hash) }

    /// A hash in hexadecimal.
    static func hex(_ hash: [UInt8]) -> String {
        var text = ""
        text.reserveCapacity(64)
        for byte in hash {
            let digits = Array("0123456789abcdef".utf8)
            text.unicodeScalars.append(UnicodeScalar(digits[Int(byte >> 4)]))
            text.unicodeScalars.append(UnicodeScalar(digits[Int(byte & 15)]))
        }
        return text
    }

    /// The store key of a value kept in the store.
    var storeKey: String { "curtain:shared:" + hex }
    /// The object key of a value kept in an object store.
    var objectKey: String { "curtain-shared/" + hex }
}

/// The bytes of a payload being written: raw memory that grows by doubling. Appending a byte is a
/// capacity check and a store (an append to a `[UInt8]` held by a class also checked uniqueness and, unless
/// the optimizer could prove otherwise, exclusive access).
struct PayloadBytes: ~Copyable {
    private var base: UnsafeMutableRawPointer
    private var capacity: Int
    /// The number of bytes written.
    private(set) var count = 0
    /// Whether the bytes are still in memory lent by the creator (``init(borrowing:)``), not grown out of it.
    private(set) var isBorrowed = false

    init(capacity: Int = 64) {
        self.capacity = Swift.max(capacity, 16)
        base = .allocate(byteCount: self.capacity, alignment: 16)
    }

    /// Writes into `buffer` (which must outlive this value and is not freed by it) until it is full, then
    /// into memory of its own.
    init(borrowing buffer: UnsafeMutableRawBufferPointer) {
        if let start = buffer.baseAddress, buffer.count > 0 {
            base = start
            capacity = buffer.count
            isBorrowed = true
        } else {
            capacity = 16
            base = .allocate(byteCount: capacity, alignment: 16)
        }
    }

    deinit {
        if !isBorrowed { base.deallocate() }
    }

    /// The bytes written, as an array (one copy).
    var array: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(start: base, count: count)) }
            initialized = count
        }
    }

    /// Makes room for `extra` more bytes.
    @inline(__always)
    mutating func reserveCapacity(extra: Int) {
        if capacity - count < extra { grow(extra) }
    }

    @inline(never)
    private mutating func grow(_ extra: Int) {
        let (needed, overflow) = count.addingReportingOverflow(extra)
        precondition(!overflow, "a payload larger than memory")
        var newCapacity = Swift.max(capacity, 16)
        while newCapacity < needed { newCapacity = newCapacity <= Int.max / 2 ? newCapacity * 2 : needed }
        let grown = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        grown.copyMemory(from: base, byteCount: count)
        if !isBorrowed { base.deallocate() }
        isBorrowed = false
        base = grown
        capacity = newCapacity
    }

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        reserveCapacity(extra: 1)
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always)
    mutating func append(contentsOf bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        reserveCapacity(extra: bytes.count)
        (base + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    @inline(__always)
    mutating func append(contentsOf bytes: UnsafeBufferPointer<UInt8>) {
        append(contentsOf: UnsafeRawBufferPointer(bytes))
    }

    mutating func append(contentsOf bytes: [UInt8]) {
        bytes.withUnsafeBytes { append(contentsOf: $0) }
    }

    mutating func append(contentsOf text: String) {
        var text = text
        text.withUTF8 { append(contentsOf: $0) }
    }

    @inline(__always)
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        reserveCapacity(extra: MemoryLayout<T>.size)
        base.storeBytes(of: value.littleEndian, toByteOffset: count, as: T.self)
        count += MemoryLayout<T>.size
    }

    /// A tag byte and a fixed-width number after it.
    @inline(__always)
    mutating func append<T: FixedWidthInteger>(tag: UInt8, _ value: T) {
        reserveCapacity(extra: 1 + MemoryLayout<T>.size)
        base.storeBytes(of: tag, toByteOffset: count, as: UInt8.self)
        base.storeBytes(of: value.littleEndian, toByteOffset: count + 1, as: T.self)
        count += 1 + MemoryLayout<T>.size
    }

    @inline(__always)
    mutating func appendVarint(_ value: Int) {
        reserveCapacity(extra: 10)
        var v = UInt64(value)
        while v >= 0x80 {
            base.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: count, as: UInt8.self)
            count += 1
            v >>= 7
        }
        base.storeBytes(of: UInt8(v), toByteOffset: count, as: UInt8.self)
        count += 1
    }

    /// Overwrites the four bytes at `offset` (within what was written) with `value` as a `UInt32`.
    @inline(__always)
    mutating func patchUInt32(_ value: Int, at offset: Int) {
        precondition(offset >= 0 && offset <= count - 4, "a patch outside the payload")
        base.storeBytes(of: UInt32(truncatingIfNeeded: value).littleEndian, toByteOffset: offset, as: UInt32.self)
    }

    /// Forgets the bytes from `offset` on.
    mutating func truncate(to offset: Int) {
        precondition(offset >= 0 && offset <= count, "a truncation outside the payload")
        count = offset
    }
}
