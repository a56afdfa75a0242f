#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decodes `Decodable` values from Curtain's binary payload format (see ``PayloadEncoder``).
///
/// Every length and count is checked against the bytes actually present before anything is read or
/// allocated, nesting is limited, and text must be valid UTF-8: bytes that are not a payload of the
/// expected type give a `DecodingError` naming the type and the byte offset, never a crash and never an
/// allocation larger than the input.
public struct PayloadDecoder: Sendable {
    /// Values the decoded types may read (`Decoder.userInfo`).
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    /// Creates a decoder.
    public init() {}

    /// Decodes a `T` from all of `bytes`.
    ///
    /// - Throws: `DecodingError` naming the type and offset when `bytes` are not a payload of a `T`.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { try decode(type, from: $0) }
    }

    /// Decodes a `T` from all of `bytes` (read in place; nothing of them is kept).
    public func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        try decode(type, from: bytes, shared: nil)
    }

    func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer, shared: (any SharedValueSource)?) throws -> T {
        let reader = try PayloadReader(bytes, userInfo: userInfo, shared: shared, root: T.self)
        var end = 0
        let value = try reader.decodeValue(T.self, at: PayloadWire.headerSize, end: &end)
        guard end == reader.bodyEnd else {
            throw reader.corrupt(end, "\(reader.bodyEnd - end) stray bytes after the value", T.self)
        }
        return value
    }

    /// The shared values a binary payload references (none for other bytes).
    static func references(in bytes: UnsafeRawBufferPointer) throws -> [SharedRef] {
        guard PayloadWire.isBinary(bytes) else { return [] }
        return try PayloadReader(bytes, userInfo: [:], shared: nil, root: Any.self).refs
    }
}

/// Where a decoder finds the values a payload shares by reference.
protocol SharedValueSource: Sendable {
    /// The value stored under `ref`, decoded as `T` (decoding it with `decode` if it is not at hand yet).
    func value<T: Decodable>(_ ref: SharedRef, as type: T.Type, decode: (UnsafeRawBufferPointer) throws -> T) throws -> T
}

/// The state of one decoding.
final class PayloadReader {
    let bytes: UnsafeRawBufferPointer
    /// Where the value ends and the trailer starts.
    let bodyEnd: Int
    @exclusivity(unchecked) private(set) var keys: [String] = []
    @exclusivity(unchecked) private(set) var refs: [SharedRef] = []
    // The mutable state below is touched only by this reader's own methods and containers, never across a
    // call into a value's `init(from:)` while an access is open, so the dynamic exclusivity checks (a
    // large share of decoding a small struct) are left out.
    @exclusivity(unchecked) var path: [any CodingKey] = []
    @exclusivity(unchecked) var depth = 0
    /// The keyed container read last (its body offset, which identifies it) and where its next entry
    /// starts: keys are usually read in the order they were written, so the next one is found without a
    /// search. Only a hint, used when `hintBody` is the asking container's.
    @exclusivity(unchecked) var hintBody = -1
    @exclusivity(unchecked) var hintCursor = 0
    let sendableUserInfo: [CodingUserInfoKey: any Sendable]
    var userInfo: [CodingUserInfoKey: Any] { sendableUserInfo }
    let shared: (any SharedValueSource)?

    init(_ bytes: UnsafeRawBufferPointer, userInfo: [CodingUserInfoKey: any Sendable], shared: (any SharedValueSource)?, root: Any.Type) throws {
        self.bytes = bytes
        self.sendableUserInfo = userInfo
        self.shared = shared
        func fail(_ offset: Int, _ message: String) -> DecodingError {
            DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "cannot decode \(root) at byte \(offset): \(message)"))
        }
        guard bytes.count >= PayloadWire.headerSize, bytes[0] == PayloadWire.marker else {
            throw fail(0, "not a binary payload (\(bytes.count) bytes, first byte \(bytes.first.map { "0x" + String($0, radix: 16) } ?? "none"))")
        }
        guard bytes[1] == PayloadWire.version else {
            throw fail(1, "a payload of format version \(bytes[1]); this build reads version \(PayloadWire.version)")
        }
        let trailer = Int(bytes.loadUnaligned(fromByteOffset: 2, as: UInt32.self).littleEndian)
        guard trailer >= PayloadWire.headerSize, trailer <= bytes.count else {
            throw fail(2, "trailer offset \(trailer) outside the payload's \(bytes.count) bytes")
        }
        bodyEnd = trailer
        var p = trailer
        let keyCount = try varint(at: &p, root)
        guard keyCount <= bytes.count - p else { throw fail(p, "\(keyCount) keys cannot fit in \(bytes.count - p) bytes") }
        keys.reserveCapacity(keyCount)
        for _ in 0..<keyCount {
            let length = try varint(at: &p, root)
            guard length <= bytes.count - p else { throw fail(p, "a key of \(length) bytes runs past the end") }
            guard let key = String(validating: UnsafeRawBufferPointer(rebasing: bytes[p..<(p + length)]), as: UTF8.self) else {
                throw fail(p, "a key is not valid UTF-8")
            }
            keys.append(key)
            p += length
        }
        let refCount = try varint(at: &p, root)
        guard refCount <= (bytes.count - p) / 34 else { throw fail(p, "\(refCount) shared values cannot fit in \(bytes.count - p) bytes") }
        for _ in 0..<refCount {
            guard bytes.count - p >= 32 else { throw fail(p, "a shared value's hash runs past the end") }
            let hash = Array(bytes[p..<(p + 32)])
            p += 32
            let length = try varint(at: &p, root)
            guard p < bytes.count else { throw fail(p, "a shared value's place runs past the end") }
            let place = bytes[p]
            p += 1
            switch place {
            case 0: refs.append(SharedRef(hash: hash, length: length, place: .store))
            case 1:
                let urlLength = try varint(at: &p, root)
                guard urlLength <= bytes.count - p,
                    let url = String(validating: UnsafeRawBufferPointer(rebasing: bytes[p..<(p + urlLength)]), as: UTF8.self)
                else { throw fail(p, "a shared value's URL is cut short or not UTF-8") }
                p += urlLength
                refs.append(SharedRef(hash: hash, length: length, place: .objects(url: url)))
            default: throw fail(p - 1, "unknown place \(place) of a shared value")
            }
        }
        guard p == bytes.count else { throw fail(p, "\(bytes.count - p) stray bytes after the trailer") }
    }

    // MARK: errors

    func corrupt(_ offset: Int, _ message: String, _ type: Any.Type) -> DecodingError {
        DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "cannot decode \(type) at byte \(offset): \(message)"))
    }

    func mismatch(_ offset: Int, _ tag: PayloadWire.Tag, _ type: Any.Type) -> DecodingError {
        DecodingError.typeMismatch(type, .init(codingPath: path, debugDescription: "cannot decode \(type) at byte \(offset): found \(tag.name)"))
    }

    // MARK: primitives

    @inline(__always)
    func varint(at p: inout Int, _ type: Any.Type) throws -> Int {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let start = p
        while true {
            guard p < bytes.count else { throw corrupt(start, "a length runs past the end", type) }
            let byte = bytes[p]
            p += 1
            if shift == 63 && byte > 1 { throw corrupt(start, "a length overflows 64 bits", type) }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { break }
            shift += 7
            if shift > 63 { throw corrupt(start, "a length overflows 64 bits", type) }
        }
        guard result <= UInt64(Int.max) else { throw corrupt(start, "a length of \(result) is too large", type) }
        return Int(result)
    }


    @inline(__always)
    func tag(at p: Int, _ type: Any.Type) throws -> PayloadWire.Tag {
        guard p < bodyEnd else { throw corrupt(p, "the value is cut short", type) }
        guard let tag = PayloadWire.Tag(rawValue: bytes[p]) else {
            throw corrupt(p, "unknown tag 0x\(String(bytes[p], radix: 16))", type)
        }
        return tag
    }

    @inline(__always)
    func fixed<T: FixedWidthInteger>(_: T.Type, at p: Int, _ type: Any.Type) throws -> T {
        guard p + MemoryLayout<T>.size <= bodyEnd else { throw corrupt(p, "a number is cut short", type) }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: p, as: T.self))
    }

    /// The offset just past the value at `p`.
    func skip(_ p: Int) throws -> Int {
        let tag = try tag(at: p, Any.self)
        var q = p + 1
        let end: Int
        switch tag {
        case .null, .falseValue, .trueValue: end = q
        case .string, .bytes:
            let length = try varint(at: &q, Any.self)
            guard length <= bodyEnd - q else { throw corrupt(p, "\(tag.name) of \(length) bytes runs past the end", Any.self) }
            end = q + length
        case .numbers:
            guard q < bodyEnd, let element = PayloadWire.Tag(rawValue: bytes[q]), let width = element.width else {
                throw corrupt(q, "an array of numbers of an unknown element kind", Any.self)
            }
            q += 1
            let count = try varint(at: &q, Any.self)
            guard count <= (bodyEnd - q) / width else { throw corrupt(p, "\(count) numbers run past the end", Any.self) }
            end = q + count * width
        case .unkeyed, .keyed:
            let length = Int(try fixed(UInt32.self, at: q, Any.self))
            let header = tag == .unkeyed ? 8 : 4
            guard q + header <= bodyEnd, length <= bodyEnd - q - header else {
                throw corrupt(p, "a container of \(length) bytes runs past the end", Any.self)
            }
            end = q + header + length
        case .shared:
            _ = try varint(at: &q, Any.self)
            end = q
        default:
            end = q + tag.width!
            guard end <= bodyEnd else { throw corrupt(p, "a number is cut short", Any.self) }
        }
        return end
    }

    func decodeNil(at p: Int) throws -> Bool { try tag(at: p, Any.self) == .null }

    func bool(at p: Int) throws -> Bool {
        switch try tag(at: p, Bool.self) {
        case .trueValue: return true
        case .falseValue: return false
        case let other: throw mismatch(p, other, Bool.self)
        }
    }

    /// An integer of any width, converted to `T` if it fits.
    func integer<T: FixedWidthInteger>(_: T.Type, at p: Int) throws -> T {
        let tag = try tag(at: p, T.self)
        let value: T?
        switch tag {
        case .int8: value = T(exactly: try fixed(Int8.self, at: p + 1, T.self))
        case .int16: value = T(exactly: try fixed(Int16.self, at: p + 1, T.self))
        case .int32: value = T(exactly: try fixed(Int32.self, at: p + 1, T.self))
        case .int64, .int: value = T(exactly: try fixed(Int64.self, at: p + 1, T.self))
        case .uint8: value = T(exactly: try fixed(UInt8.self, at: p + 1, T.self))
        case .uint16: value = T(exactly: try fixed(UInt16.self, at: p + 1, T.self))
        case .uint32: value = T(exactly: try fixed(UInt32.self, at: p + 1, T.self))
        case .uint64, .uint: value = T(exactly: try fixed(UInt64.self, at: p + 1, T.self))
        default: throw mismatch(p, tag, T.self)
        }
        guard let value else { throw corrupt(p, "the \(tag.name) does not fit in \(T.self)", T.self) }
        return value
    }

    func double(at p: Int) throws -> Double {
        switch try tag(at: p, Double.self) {
        case .double: return Double(bitPattern: try fixed(UInt64.self, at: p + 1, Double.self))
        case .float: return Double(Float(bitPattern: try fixed(UInt32.self, at: p + 1, Double.self)))
        case let other: throw mismatch(p, other, Double.self)
        }
    }

    func float(at p: Int) throws -> Float {
        switch try tag(at: p, Float.self) {
        case .float: return Float(bitPattern: try fixed(UInt32.self, at: p + 1, Float.self))
        case .double:
            let double = Double(bitPattern: try fixed(UInt64.self, at: p + 1, Float.self))
            guard let float = Float(exactly: double) ?? (double.isNaN ? Float.nan : nil) else {
                throw corrupt(p, "the Double \(double) does not fit in Float", Float.self)
            }
            return float
        case let other: throw mismatch(p, other, Float.self)
        }
    }

    func string(at p: Int) throws -> String {
        let tag = try tag(at: p, String.self)
        guard tag == .string else { throw mismatch(p, tag, String.self) }
        var q = p + 1
        let length = try varint(at: &q, String.self)
        guard length <= bodyEnd - q else { throw corrupt(p, "a string of \(length) bytes runs past the end", String.self) }
        guard let text = text(at: q, length: length) else {
            throw corrupt(q, "the string is not valid UTF-8", String.self)
        }
        return text
    }

    /// The `length` bytes at `q` (which the caller checked are within the value) as text, if they are
    /// valid UTF-8. ASCII, the usual case, is recognized in one pass without the generic validation.
    @inline(__always)
    func text(at q: Int, length: Int) -> String? {
        let raw = UnsafeRawBufferPointer(rebasing: bytes[q..<(q + length)])
        var ascii = true
        for byte in raw where byte >= 0x80 {
            ascii = false
            break
        }
        if ascii { return raw.withMemoryRebound(to: UInt8.self) { String(decoding: $0, as: UTF8.self) } }
        return String(validating: raw, as: UTF8.self)
    }

    // MARK: values

    /// Decodes any `Decodable` at `p`, setting `end` to the offset just past it. (No tuple with `T` is
    /// returned: in unspecialized code each would cost a lookup of its type's metadata.)
    func decodeValue<T: Decodable>(_ type: T.Type, at p: Int, end: inout Int) throws -> T {
        let tag = try tag(at: p, T.self)
        if tag == .shared {
            var q = p + 1
            let index = try varint(at: &q, T.self)
            guard index < refs.count else { throw corrupt(p, "shared value #\(index) of \(refs.count)", T.self) }
            guard let shared else {
                throw corrupt(p, "the payload shares a value by reference (\(refs[index].hex.prefix(12))…) and nothing here can fetch it", T.self)
            }
            let userInfo = sendableUserInfo
            let value = try shared.value(refs[index], as: T.self) { bytes in
                var decoder = PayloadDecoder()
                decoder.userInfo = userInfo
                return try decoder.decode(T.self, from: bytes, shared: shared)
            }
            end = q
            return value
        }
        if let element = PayloadWire.numericElement(of: T.self), tag == .numbers {
            return try numbers(T.self, element: element, at: p, end: &end)
        }
        if T.self == String.self {
            end = try skip(p)
            return try string(at: p) as! T
        }
        if T.self == Data.self, tag == .bytes {
            var q = p + 1
            let length = try varint(at: &q, T.self)
            guard length <= bodyEnd - q else { throw corrupt(p, "\(length) bytes run past the end", T.self) }
            end = q + length
            return Data(UnsafeRawBufferPointer(rebasing: bytes[q..<(q + length)])) as! T
        }
        depth += 1
        defer { depth -= 1 }
        guard depth <= PayloadWire.maxDepth else { throw corrupt(p, "nested deeper than \(PayloadWire.maxDepth) levels", T.self) }
        end = try skip(p)
        return try T(from: PayloadValueDecoder(reader: self, offset: p))
    }

    private func numbers<T>(_: T.Type, element: PayloadWire.Tag, at p: Int, end: inout Int) throws -> T {
        let lanes = PayloadWire.lanes(of: T.self)
        if lanes > 1 {
            switch (element, lanes) {
            case (.double, 2): return try raw(SIMD2<Double>.self, element, at: p, end: &end, lanes: 2) as! T
            case (.double, 4): return try raw(SIMD4<Double>.self, element, at: p, end: &end, lanes: 4) as! T
            case (.double, 8): return try raw(SIMD8<Double>.self, element, at: p, end: &end, lanes: 8) as! T
            case (.float, 2): return try raw(SIMD2<Float>.self, element, at: p, end: &end, lanes: 2) as! T
            case (.float, 4): return try raw(SIMD4<Float>.self, element, at: p, end: &end, lanes: 4) as! T
            case (.float, 8): return try raw(SIMD8<Float>.self, element, at: p, end: &end, lanes: 8) as! T
            case (.int32, 2): return try raw(SIMD2<Int32>.self, element, at: p, end: &end, lanes: 2) as! T
            case (.int32, 4): return try raw(SIMD4<Int32>.self, element, at: p, end: &end, lanes: 4) as! T
            case (.int, 2): return try raw(SIMD2<Int>.self, element, at: p, end: &end, lanes: 2) as! T
            default: return try raw(SIMD4<Int>.self, element, at: p, end: &end, lanes: 4) as! T
            }
        }
        switch element {
        case .double: return try raw(Double.self, element, at: p, end: &end) as! T
        case .float: return try raw(Float.self, element, at: p, end: &end) as! T
        case .int: return try raw(Int.self, element, at: p, end: &end) as! T
        case .uint8: return try raw(UInt8.self, element, at: p, end: &end) as! T
        case .uint16: return try raw(UInt16.self, element, at: p, end: &end) as! T
        case .int32: return try raw(Int32.self, element, at: p, end: &end) as! T
        case .int64: return try raw(Int64.self, element, at: p, end: &end) as! T
        case .uint32: return try raw(UInt32.self, element, at: p, end: &end) as! T
        case .uint64: return try raw(UInt64.self, element, at: p, end: &end) as! T
        case .int16: return try raw(Int16.self, element, at: p, end: &end) as! T
        case .int8: return try raw(Int8.self, element, at: p, end: &end) as! T
        default: return try raw(UInt.self, element, at: p, end: &end) as! T
        }
    }

    private func raw<E>(_: E.Type, _ element: PayloadWire.Tag, at p: Int, end: inout Int, lanes: Int = 1) throws -> [E] {
        var q = p + 1
        guard q < bodyEnd else { throw corrupt(p, "an array of numbers is cut short", [E].self) }
        guard bytes[q] == element.rawValue else {
            let found = PayloadWire.Tag(rawValue: bytes[q]).map(\.name) ?? "kind 0x\(String(bytes[q], radix: 16))"
            throw corrupt(q, "an array of \(found), not of \(E.self)", [E].self)
        }
        q += 1
        var count = try varint(at: &q, [E].self)
        let width = MemoryLayout<E>.size
        guard count % lanes == 0 else { throw corrupt(p, "\(count) numbers do not make vectors of \(lanes)", [E].self) }
        count /= lanes  // elements (vectors of `lanes` numbers, or numbers)
        guard count <= (bodyEnd - q) / width else { throw corrupt(p, "\(count) elements run past the end", [E].self) }
        let source = UnsafeRawBufferPointer(rebasing: bytes[q..<(q + count * width)])
        let array = [E](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source) }
            initialized = count
        }
        end = q + count * width
        return array
    }

    /// The body of the container at `p` (after its header) and its end, checking its tag.
    func container(_ expected: PayloadWire.Tag, at p: Int, _ type: Any.Type) throws -> (body: Int, end: Int, count: Int) {
        let tag = try tag(at: p, type)
        guard tag == expected else { throw mismatch(p, tag, type) }
        let end = try skip(p)
        if expected == .unkeyed {
            let count = Int(try fixed(UInt32.self, at: p + 5, type))
            guard count <= end - (p + 9) else { throw corrupt(p, "\(count) elements cannot fit in \(end - p - 9) bytes", type) }
            return (p + 9, end, count)
        }
        return (p + 5, end, 0)
    }

    @inline(__always)
    func key(_ index: Int, at p: Int) throws -> String {
        guard index < keys.count else { throw corrupt(p, "key #\(index) of \(keys.count)", Any.self) }
        return keys[index]
    }
}

/// The `Decoder` handed to one value's `init(from:)`.
struct PayloadValueDecoder: Decoder {
    let reader: PayloadReader
    let offset: Int

    var codingPath: [any CodingKey] { reader.path }
    var userInfo: [CodingUserInfoKey: Any] { reader.userInfo }

    func container<Key: CodingKey>(keyedBy _: Key.Type) throws -> KeyedDecodingContainer<Key> {
        let (body, end, _) = try reader.container(.keyed, at: offset, [String: Any].self)
        return KeyedDecodingContainer(PayloadKeyedDecoder<Key>(reader: reader, body: body, end: end))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (body, end, count) = try reader.container(.unkeyed, at: offset, [Any].self)
        return PayloadUnkeyedDecoder(reader: reader, body: body, end: end, count: count)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        PayloadSingleValueDecoder(reader: reader, offset: offset)
    }
}

struct PayloadKeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let reader: PayloadReader
    let body: Int
    let end: Int

    init(reader: PayloadReader, body: Int, end: Int) {
        self.reader = reader
        self.body = body
        self.end = end
        reader.hintBody = body
        reader.hintCursor = body
    }

    var codingPath: [any CodingKey] { reader.path }

    var allKeys: [Key] {
        var keys: [Key] = []
        var q = body
        while q < end, let index = try? reader.varint(at: &q, Key.self), let name = try? reader.key(index, at: q),
            let next = try? reader.skip(q)
        {
            if let key = Key(stringValue: name) { keys.append(key) }
            q = next
        }
        return keys
    }

    /// Where the next entry starts (the reader's hint, if it is this container's).
    @inline(__always)
    private var cursor: Int {
        get { reader.hintBody == body ? reader.hintCursor : end }
        nonmutating set {
            reader.hintBody = body
            reader.hintCursor = newValue
        }
    }

    /// The offset of `key`'s value, if present.
    @inline(__always)
    private func find(_ key: Key) throws -> Int? { try find(named: key.stringValue) }

    private func find(named name: String) throws -> Int? {
        let cursor = self.cursor
        if cursor < end {
            var q = cursor
            let index = try reader.varint(at: &q, Key.self)
            if try reader.key(index, at: q) == name { return q }
        }
        var q = body
        while q < end {
            let index = try reader.varint(at: &q, Key.self)
            if try reader.key(index, at: q) == name { return q }
            q = try reader.skip(q)
        }
        return nil
    }

    private func value(_ key: Key, _ type: Any.Type) throws -> Int {
        guard let p = try find(key) else {
            throw DecodingError.keyNotFound(
                key, .init(codingPath: reader.path, debugDescription: "no value for key '\(key.stringValue)' (\(type)) in the container at byte \(body - 5)"))
        }
        return p
    }

    /// Decodes the scalar at `p` (the value of `key`) with `read`, moving the cursor past it.
    private func scalar<T>(at p: Int, _ key: Key, _ type: T.Type, _ read: (Int) throws -> T) throws -> T {
        let result: T
        do {
            result = try read(p)
        } catch {
            // Read again with the key on the path, for the error (the path is not kept up for every scalar).
            reader.path.append(key)
            defer { reader.path.removeLast() }
            result = try read(p)
        }
        cursor = try reader.skip(p)
        return result
    }

    /// The fixed-width scalar at `p` if it was written with exactly `tag` and fits in this container (the
    /// usual case: no conversion, and its end known without a second look at the tag), moving the cursor
    /// past it; `nil` otherwise (the caller then reads it the general way, which throws if it must).
    @inline(__always)
    private func exact<T: FixedWidthInteger>(at p: Int, _: T.Type, _ tag: PayloadWire.Tag) -> T? {
        let next = p + 1 + MemoryLayout<T>.size
        guard next <= end, reader.bytes[p] == tag.rawValue else { return nil }
        cursor = next
        return T(littleEndian: reader.bytes.loadUnaligned(fromByteOffset: p + 1, as: T.self))
    }

    /// Decodes the integer at `key`: directly if it was written as `tag`, else converted if it fits. (No
    /// closure is formed on the direct path: its capture of the reader cost a retain and a release.)
    @inline(__always)
    private func integer<T: FixedWidthInteger>(_ key: Key, _ type: T.Type, _ tag: PayloadWire.Tag) throws -> T {
        let p = try value(key, type)
        if let value = exact(at: p, type, tag) { return value }
        return try scalar(at: p, key, type) { [reader] in try reader.integer(T.self, at: $0) }
    }

    func contains(_ key: Key) -> Bool { ((try? find(key)) ?? nil) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { try reader.decodeNil(at: try value(key, Any.self)) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
        let p = try value(key, type)
        if p < end {
            let byte = reader.bytes[p]
            if byte == PayloadWire.Tag.trueValue.rawValue || byte == PayloadWire.Tag.falseValue.rawValue {
                cursor = p + 1
                return byte == PayloadWire.Tag.trueValue.rawValue
            }
        }
        return try scalar(at: p, key, type) { [reader] in try reader.bool(at: $0) }
    }
    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        let p = try value(key, type)
        if p < end, reader.bytes[p] == PayloadWire.Tag.string.rawValue {
            // Read in one pass when it is whole and valid; otherwise again the general way, for the error.
            var q = p + 1
            if let length = try? reader.varint(at: &q, String.self), length <= end - q, let text = reader.text(at: q, length: length) {
                cursor = q + length
                return text
            }
        }
        return try scalar(at: p, key, type) { [reader] in try reader.string(at: $0) }
    }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double {
        let p = try value(key, type)
        if let bits = exact(at: p, UInt64.self, .double) { return Double(bitPattern: bits) }
        return try scalar(at: p, key, type) { [reader] in try reader.double(at: $0) }
    }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float {
        let p = try value(key, type)
        if let bits = exact(at: p, UInt32.self, .float) { return Float(bitPattern: bits) }
        return try scalar(at: p, key, type) { [reader] in try reader.float(at: $0) }
    }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try integer(key, type, .int) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try integer(key, type, .int8) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try integer(key, type, .int16) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try integer(key, type, .int32) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try integer(key, type, .int64) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try integer(key, type, .uint) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(key, type, .uint8) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(key, type, .uint16) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(key, type, .uint32) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(key, type, .uint64) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let p = try value(key, type)
        reader.path.append(key)
        defer { reader.path.removeLast() }
        var next = 0
        let result = try reader.decodeValue(T.self, at: p, end: &next)
        cursor = next
        return result
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let p = try find(key) else { return nil }
        if try reader.decodeNil(at: p) {
            cursor = p + 1
            return nil
        }
        reader.path.append(key)
        defer { reader.path.removeLast() }
        var next = 0
        let result = try reader.decodeValue(T.self, at: p, end: &next)
        cursor = next
        return result
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy _: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        let p = try value(key, [String: Any].self)
        let (body, end, _) = try reader.container(.keyed, at: p, [String: Any].self)
        return KeyedDecodingContainer(PayloadKeyedDecoder<NestedKey>(reader: reader, body: body, end: end))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let p = try value(key, [Any].self)
        let (body, end, count) = try reader.container(.unkeyed, at: p, [Any].self)
        return PayloadUnkeyedDecoder(reader: reader, body: body, end: end, count: count)
    }

    func superDecoder() throws -> any Decoder {
        guard let p = try find(named: "super") else {
            throw DecodingError.keyNotFound(
                PayloadIndexKey(intValue: 0), .init(codingPath: reader.path, debugDescription: "no value for key 'super' in the container at byte \(body - 5)"))
        }
        return PayloadValueDecoder(reader: reader, offset: p)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        PayloadValueDecoder(reader: reader, offset: try value(key, Any.self))
    }
}

struct PayloadUnkeyedDecoder: UnkeyedDecodingContainer {
    let reader: PayloadReader
    let body: Int
    let end: Int
    let elements: Int
    private var cursor: Int
    private(set) var currentIndex = 0

    init(reader: PayloadReader, body: Int, end: Int, count: Int) {
        self.reader = reader
        self.body = body
        self.end = end
        self.elements = count
        self.cursor = body
    }

    var codingPath: [any CodingKey] { reader.path }
    var count: Int? { elements }
    var isAtEnd: Bool { currentIndex >= elements }

    private func next(_ type: Any.Type) throws -> Int {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(
                type, .init(codingPath: reader.path, debugDescription: "the array at byte \(body - 9) has only \(elements) elements"))
        }
        guard cursor < end else { throw reader.corrupt(cursor, "the array's elements run past its end", type) }
        return cursor
    }

    private mutating func scalar<T>(_ type: T.Type, _ read: (Int) throws -> T) throws -> T {
        let p = try next(type)
        let value: T
        do {
            value = try read(p)
        } catch {
            reader.path.append(PayloadIndexKey(intValue: currentIndex))
            defer { reader.path.removeLast() }
            value = try read(p)
        }
        cursor = try reader.skip(p)
        currentIndex += 1
        return value
    }

    mutating func decodeNil() throws -> Bool {
        let p = try next(Any.self)
        guard try reader.decodeNil(at: p) else { return false }
        cursor = p + 1
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try scalar(type, reader.bool) }
    mutating func decode(_ type: String.Type) throws -> String { try scalar(type, reader.string) }
    mutating func decode(_ type: Double.Type) throws -> Double { try scalar(type, reader.double) }
    mutating func decode(_ type: Float.Type) throws -> Float { try scalar(type, reader.float) }
    mutating func decode(_ type: Int.Type) throws -> Int { try scalar(type) { [reader] in try reader.integer(Int.self, at: $0) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try scalar(type) { [reader] in try reader.integer(Int8.self, at: $0) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try scalar(type) { [reader] in try reader.integer(Int16.self, at: $0) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try scalar(type) { [reader] in try reader.integer(Int32.self, at: $0) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try scalar(type) { [reader] in try reader.integer(Int64.self, at: $0) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try scalar(type) { [reader] in try reader.integer(UInt.self, at: $0) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try scalar(type) { [reader] in try reader.integer(UInt8.self, at: $0) } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try scalar(type) { [reader] in try reader.integer(UInt16.self, at: $0) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try scalar(type) { [reader] in try reader.integer(UInt32.self, at: $0) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try scalar(type) { [reader] in try reader.integer(UInt64.self, at: $0) } }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let p = try next(type)
        reader.path.append(PayloadIndexKey(intValue: currentIndex))
        defer { reader.path.removeLast() }
        var after = 0
        let value = try reader.decodeValue(T.self, at: p, end: &after)
        cursor = after
        currentIndex += 1
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy _: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let p = try next([String: Any].self)
        let (body, end, _) = try reader.container(.keyed, at: p, [String: Any].self)
        cursor = end
        currentIndex += 1
        return KeyedDecodingContainer(PayloadKeyedDecoder<NestedKey>(reader: reader, body: body, end: end))
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let p = try next([Any].self)
        let (body, end, count) = try reader.container(.unkeyed, at: p, [Any].self)
        cursor = end
        currentIndex += 1
        return PayloadUnkeyedDecoder(reader: reader, body: body, end: end, count: count)
    }

    mutating func superDecoder() throws -> any Decoder {
        let p = try next(Any.self)
        cursor = try reader.skip(p)
        currentIndex += 1
        return PayloadValueDecoder(reader: reader, offset: p)
    }
}

struct PayloadSingleValueDecoder: SingleValueDecodingContainer {
    let reader: PayloadReader
    let offset: Int

    var codingPath: [any CodingKey] { reader.path }

    func decodeNil() -> Bool { (try? reader.decodeNil(at: offset)) ?? false }
    func decode(_ type: Bool.Type) throws -> Bool { try reader.bool(at: offset) }
    func decode(_ type: String.Type) throws -> String { try reader.string(at: offset) }
    func decode(_ type: Double.Type) throws -> Double { try reader.double(at: offset) }
    func decode(_ type: Float.Type) throws -> Float { try reader.float(at: offset) }
    func decode(_ type: Int.Type) throws -> Int { try reader.integer(Int.self, at: offset) }
    func decode(_ type: Int8.Type) throws -> Int8 { try reader.integer(Int8.self, at: offset) }
    func decode(_ type: Int16.Type) throws -> Int16 { try reader.integer(Int16.self, at: offset) }
    func decode(_ type: Int32.Type) throws -> Int32 { try reader.integer(Int32.self, at: offset) }
    func decode(_ type: Int64.Type) throws -> Int64 { try reader.integer(Int64.self, at: offset) }
    func decode(_ type: UInt.Type) throws -> UInt { try reader.integer(UInt.self, at: offset) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try reader.integer(UInt8.self, at: offset) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try reader.integer(UInt16.self, at: offset) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try reader.integer(UInt32.self, at: offset) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try reader.integer(UInt64.self, at: offset) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        var end = 0
        return try reader.decodeValue(T.self, at: offset, end: &end)
    }
}
