import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Encodes `Encodable` values in Curtain's binary payload format (``PayloadFormat/binary``).
///
/// Numbers are written as fixed-width little-endian bytes, arrays of numbers (`[Double]`, `[UInt16]`, …) as
/// one block of raw bytes (copied, not formatted), strings as UTF-8, and each key name once per payload.
/// The result starts with a marker and a version byte, so a decoder tells it from JSON and from a later
/// version.
///
/// ```swift
/// let bytes = try PayloadEncoder().encode(value)
/// let back = try PayloadDecoder().decode(Value.self, from: bytes)
/// ```
///
/// Containers must be written in order: a value may write to a container it opened earlier only until it
/// writes to an enclosing one again (which every synthesized and almost every hand-written `encode(to:)`
/// does). Writing to a container after that throws an `EncodingError` saying so; Curtain then sends the
/// value as JSON instead.
public struct PayloadEncoder: Sendable {
    /// Values the encoder's user may read (`Encoder.userInfo`).
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    /// Values (below the root) whose encoded form is larger than this many bytes are written once on their
    /// own and referenced by their content hash, ``ContentHash`` (the payload's "shared values"); `nil` keeps
    /// everything inline.
    var shareAbove: Int?
    /// Shared values larger than `above` bytes are kept in the object store at `url`, smaller ones in the
    /// store; `nil` keeps them all in the store.
    var objectStore: (above: Int, url: String)?

    /// Creates an encoder.
    public init() {}

    /// Encodes `value` as one binary payload.
    ///
    /// - Throws: `EncodingError` if the value's `encode(to:)` throws or writes its containers out of order.
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        try encodeSharing(value).bytes
    }

    /// Encodes `value`, returning the payload and the shared values it references (each itself a payload).
    func encodeSharing<T: Encodable>(_ value: T, hoistRoot: Bool = false) throws -> (bytes: [UInt8], shared: [(SharedRef, [UInt8])]) {
        let writer = PayloadWriter(userInfo: userInfo, shareAbove: shareAbove)
        writer.objectStore = objectStore
        if let element = PayloadWire.numericElement(of: T.self), !(hoistRoot && shareAbove != nil) {
            // An array of numbers alone (often large: a capture, a shared value) is written straight into
            // the result, its size known in advance, rather than copied there at the end.
            let (size, _) = writer.writeNumbers(value, element: element, into: nil)
            var count = size / (element.width ?? 1)
            var countLength = 1
            while count >= 0x80 {
                count >>= 7
                countLength += 1
            }
            // Header, tag, element kind, count, elements, and a trailer of no keys and no shared values.
            // (With room to spare: each write asks for room for the longest varint.)
            let total = PayloadWire.headerSize + 2 + countLength + size + 2 + 16
            let bytes = try [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
                writer.out = PayloadBytes(borrowing: UnsafeMutableRawBufferPointer(buffer))
                try writer.encodeRoot(value, hoistRoot: false)
                initialized = writer.out.isBorrowed ? writer.out.count : 0
                writer.out = PayloadBytes()
            }
            if bytes.count > 0 { return (bytes, []) }
            // (Not the size expected: written the general way.)
        }
        do {
            try writer.encodeRoot(value, hoistRoot: hoistRoot)
        } catch where writer.outOfOrder {
            throw PayloadOrderError(description: "\(T.self) writes to a container after moving on from it: \(error)")
        }
        return (writer.out.array, writer.shared)
    }
}

/// The state of one encoding: the bytes, the keys seen, the containers not yet closed.
///
/// The mutable state is touched only by the writer's own methods and containers, and no access to it is
/// open across a call into a value's `encode(to:)`, so its dynamic exclusivity checks (each append paid
/// one, a large share of encoding a small struct) are left out.
final class PayloadWriter {
    @exclusivity(unchecked) var out = PayloadBytes()
    @exclusivity(unchecked) private var keyIndex: [String: Int] = [:]
    @exclusivity(unchecked) private var keys: [String] = []
    /// Containers whose length is not yet written, innermost last.
    @exclusivity(unchecked) private var open: [OpenContainer] = []
    /// The coding path of what is being encoded now.
    @exclusivity(unchecked) var path: [any CodingKey] = []
    let sendableUserInfo: [CodingUserInfoKey: any Sendable]
    var userInfo: [CodingUserInfoKey: Any] { sendableUserInfo }
    let shareAbove: Int?
    var objectStore: (above: Int, url: String)?
    /// Whether a container was written to out of order (the value cannot be written in this format).
    @exclusivity(unchecked) private(set) var outOfOrder = false
    /// The shared values referenced by this payload, in ref-index order, with their bytes.
    @exclusivity(unchecked) private(set) var shared: [(SharedRef, [UInt8])] = []
    @exclusivity(unchecked) private var sharedIndex: [[UInt8]: Int] = [:]

    struct OpenContainer {
        /// Offset of the container's tag.
        var start: Int
        var kind: Kind
        var count = 0

        enum Kind { case keyed, unkeyed, slot }
    }

    init(userInfo: [CodingUserInfoKey: any Sendable], shareAbove: Int?) {
        self.sendableUserInfo = userInfo
        self.shareAbove = shareAbove
    }

    func encodeRoot<T: Encodable>(_ value: T, hoistRoot: Bool) throws {
        out.append(PayloadWire.marker)
        out.append(PayloadWire.version)
        out.appendLittleEndian(UInt32(0))
        try writeValue(value, hoistable: hoistRoot)
        closeAll(above: 0)
        let trailer = out.count
        guard trailer <= Int(UInt32.max) else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "the payload is over 4 GiB"))
        }
        out.patchUInt32(trailer, at: 2)
        out.appendVarint(keys.count)
        for key in keys {
            out.appendVarint(key.utf8.count)
            out.append(contentsOf: key)
        }
        out.appendVarint(shared.count)
        for (ref, _) in shared {
            out.append(contentsOf: ref.hash)
            out.appendVarint(ref.length)
            switch ref.place {
            case .store: out.append(0)
            case .objects(let url):
                out.append(1)
                out.appendVarint(url.utf8.count)
                out.append(contentsOf: url)
            }
        }
    }

    // MARK: containers

    /// Makes the container starting at `start` the innermost open one, closing those opened inside it since.
    ///
    /// - Throws: `EncodingError` if that container was closed already (written to out of order).
    @inline(__always)
    func focus(_ start: Int) throws {
        if let last = open.last, last.start == start { return }
        guard let i = open.lastIndex(where: { $0.start == start }) else {
            outOfOrder = true
            throw EncodingError.invalidValue(
                start,
                .init(
                    codingPath: path,
                    debugDescription: "a container was written to after an enclosing one moved on (the binary payload format needs containers written in order)"))
        }
        closeAll(above: i + 1)
    }

    /// Closes the open containers at positions `level` and above.
    func closeAll(above level: Int) {
        while open.count > level {
            let container = open.removeLast()
            switch container.kind {
            case .keyed:
                out.patchUInt32(out.count - container.start - 5, at: container.start + 1)
            case .unkeyed:
                out.patchUInt32(out.count - container.start - 9, at: container.start + 1)
                out.patchUInt32(container.count, at: container.start + 5)
            case .slot:
                // A super encoder that wrote nothing stands for an empty keyed container.
                if out.count == container.start {
                    out.append(PayloadWire.Tag.keyed.rawValue)
                    out.appendLittleEndian(UInt32(0))
                }
            }
        }
    }

    var openCount: Int { open.count }

    /// Opens a keyed container at the current position.
    func openKeyed() -> Int {
        let start = out.count
        out.append(PayloadWire.Tag.keyed.rawValue)
        out.appendLittleEndian(UInt32(0))
        open.append(OpenContainer(start: start, kind: .keyed))
        return start
    }

    /// Opens an unkeyed container at the current position.
    func openUnkeyed() -> Int {
        let start = out.count
        out.append(PayloadWire.Tag.unkeyed.rawValue)
        out.appendLittleEndian(UInt64(0))
        open.append(OpenContainer(start: start, kind: .unkeyed))
        return start
    }

    /// Reserves the position for one value written later through a super encoder.
    func openSlot() -> Int {
        open.append(OpenContainer(start: out.count, kind: .slot))
        return out.count
    }

    /// The container of `kind` a value's encoder already opened at `frame`, if that is one.
    func existing(_ kind: OpenContainer.Kind, at frame: Int) -> Int? {
        open.last(where: { $0.start == frame && $0.kind == kind })?.start
    }

    /// Counts one element of the innermost (unkeyed) container.
    @inline(__always)
    func countElement() { open[open.count - 1].count += 1 }

    /// The number of elements written so far to the (unkeyed) container starting at `start`.
    func elementCount(of start: Int) -> Int { open.last(where: { $0.start == start })?.count ?? 0 }

    /// Which key followed each key last time (structs of one type write the same keys in the same order,
    /// so the next key is usually known without hashing its name).
    @exclusivity(unchecked) private var successor: [Int] = []
    /// The first key last written by containers of each key type (a short list: a payload has few
    /// container types, and comparing identifiers is cheaper than hashing them).
    @exclusivity(unchecked) private var firstKeys: [(type: ObjectIdentifier, key: Int)] = []

    private func firstKey(of type: ObjectIdentifier) -> Int {
        for entry in firstKeys where entry.type == type { return entry.key }
        return -1
    }

    private func setFirstKey(_ key: Int, of type: ObjectIdentifier) {
        if let i = firstKeys.firstIndex(where: { $0.type == type }) { firstKeys[i].key = key } else { firstKeys.append((type, key)) }
    }

    /// Writes `name`'s index, given the key written before it in this container (`-1` for none) and the
    /// container's key type; returns the index.
    @inline(__always)
    func writeKey(_ name: String, after previous: Int, type: ObjectIdentifier) -> Int {
        let predicted = previous >= 0 ? successor[previous] : firstKey(of: type)
        let index: Int
        if predicted >= 0, keys[predicted] == name {
            index = predicted
        } else {
            if let known = keyIndex[name] {
                index = known
            } else {
                index = keys.count
                keyIndex[name] = index
                keys.append(name)
                successor.append(-1)
            }
            if previous >= 0 { successor[previous] = index } else { setFirstKey(index, of: type) }
        }
        out.appendVarint(index)
        return index
    }

    // MARK: values

    @inline(__always) func writeNil() { out.append(PayloadWire.Tag.null.rawValue) }
    @inline(__always) func write(_ value: Bool) { out.append(value ? PayloadWire.Tag.trueValue.rawValue : PayloadWire.Tag.falseValue.rawValue) }

    @inline(__always)
    func write<T: FixedWidthInteger>(_ value: T, tag: PayloadWire.Tag) {
        out.append(tag: tag.rawValue, value)
    }

    @inline(__always) func write(_ value: Int) { write(Int64(value), tag: .int) }
    @inline(__always) func write(_ value: UInt) { write(UInt64(value), tag: .uint) }
    @inline(__always) func write(_ value: Int8) { write(value, tag: .int8) }
    @inline(__always) func write(_ value: Int16) { write(value, tag: .int16) }
    @inline(__always) func write(_ value: Int32) { write(value, tag: .int32) }
    @inline(__always) func write(_ value: Int64) { write(value, tag: .int64) }
    @inline(__always) func write(_ value: UInt8) { write(value, tag: .uint8) }
    @inline(__always) func write(_ value: UInt16) { write(value, tag: .uint16) }
    @inline(__always) func write(_ value: UInt32) { write(value, tag: .uint32) }
    @inline(__always) func write(_ value: UInt64) { write(value, tag: .uint64) }
    @inline(__always) func write(_ value: Float) { write(value.bitPattern, tag: .float) }
    @inline(__always) func write(_ value: Double) { write(value.bitPattern, tag: .double) }

    @inline(__always)
    func write(_ value: String) {
        out.append(PayloadWire.Tag.string.rawValue)
        var value = value
        value.withUTF8 { utf8 in
            out.appendVarint(utf8.count)
            out.append(contentsOf: utf8)
        }
    }

    /// Writes any `Encodable` value: numeric arrays, strings and `Data` directly, anything else through its
    /// `encode(to:)`. A value larger than ``shareAbove`` is written once on its own and referenced.
    func writeValue<T: Encodable>(_ value: T, hoistable: Bool = true) throws {
        if let element = PayloadWire.numericElement(of: T.self) {
            let (size, address) = writeNumbers(value, element: element, into: nil)
            if hoistable, let limit = shareAbove, size > limit {
                // The same array as before (its storage kept alive by the memo, so unchanged) is neither
                // copied nor hashed again.
                let key = SharedArrayMemo.Key(address: address, bytes: size, element: element.rawValue)
                if let known = SharedArrayMemo.lookup(key) {
                    share(known.bytes, hash: known.hash, nested: [])
                } else {
                    let bytes = try PayloadEncoder().encodeSharing(value).bytes
                    let hash = share(bytes, nested: [])
                    SharedArrayMemo.remember(key, keeping: SharedValueCache.Box(value), bytes: bytes, hash: hash)
                }
            } else {
                _ = writeNumbers(value, element: element, into: self)
            }
            return
        }
        if T.self == String.self { return write(value as! String) }
        if T.self == Data.self {
            let data = value as! Data
            out.append(PayloadWire.Tag.bytes.rawValue)
            out.appendVarint(data.count)
            data.withUnsafeBytes { out.append(contentsOf: $0) }
            return
        }
        let start = out.count
        let level = open.count
        let sharedBefore = shared.count
        try value.encode(to: PayloadValueEncoder(writer: self, frame: start))
        closeAll(above: level)
        if out.count == start {
            // Encoded nothing at all: an empty keyed container, as JSON writes `{}`.
            out.append(PayloadWire.Tag.keyed.rawValue)
            out.appendLittleEndian(UInt32(0))
        }
        if hoistable, let limit = shareAbove, out.count - start > limit {
            // Written again on its own (its keys must be its own for its hash to be the same in every
            // payload that contains it), then referenced here.
            let standalone = PayloadWriter(userInfo: sendableUserInfo, shareAbove: shareAbove)
            standalone.objectStore = objectStore
            try standalone.encodeRoot(value, hoistRoot: false)
            out.truncate(to: start)
            dropShared(from: sharedBefore)
            share(standalone.out.array, nested: standalone.shared)
        }
    }

    /// Writes a numeric array (when `writer` is given) and returns the byte size of its elements and the
    /// address of its storage.
    func writeNumbers<T>(_ value: T, element: PayloadWire.Tag, into writer: PayloadWriter?) -> (Int, UInt) {
        let lanes = PayloadWire.lanes(of: T.self)
        if lanes > 1 {
            switch (element, lanes) {
            case (.double, 2): return raw(value as! [SIMD2<Double>], element, writer, lanes: 2)
            case (.double, 4): return raw(value as! [SIMD4<Double>], element, writer, lanes: 4)
            case (.double, 8): return raw(value as! [SIMD8<Double>], element, writer, lanes: 8)
            case (.float, 2): return raw(value as! [SIMD2<Float>], element, writer, lanes: 2)
            case (.float, 4): return raw(value as! [SIMD4<Float>], element, writer, lanes: 4)
            case (.float, 8): return raw(value as! [SIMD8<Float>], element, writer, lanes: 8)
            case (.int32, 2): return raw(value as! [SIMD2<Int32>], element, writer, lanes: 2)
            case (.int32, 4): return raw(value as! [SIMD4<Int32>], element, writer, lanes: 4)
            case (.int, 2): return raw(value as! [SIMD2<Int>], element, writer, lanes: 2)
            default: return raw(value as! [SIMD4<Int>], element, writer, lanes: 4)
            }
        }
        switch element {
        case .double: return raw(value as! [Double], element, writer)
        case .float: return raw(value as! [Float], element, writer)
        case .int: return raw(value as! [Int], element, writer)
        case .uint8: return raw(value as! [UInt8], element, writer)
        case .uint16: return raw(value as! [UInt16], element, writer)
        case .int32: return raw(value as! [Int32], element, writer)
        case .int64: return raw(value as! [Int64], element, writer)
        case .uint32: return raw(value as! [UInt32], element, writer)
        case .uint64: return raw(value as! [UInt64], element, writer)
        case .int16: return raw(value as! [Int16], element, writer)
        case .int8: return raw(value as! [Int8], element, writer)
        default: return raw(value as! [UInt], element, writer)
        }
    }

    private func raw<E>(_ array: [E], _ element: PayloadWire.Tag, _ writer: PayloadWriter?, lanes: Int = 1) -> (Int, UInt) {
        array.withUnsafeBytes { bytes in
            if let writer {
                writer.out.reserveCapacity(extra: 2 + 10 + bytes.count)
                writer.out.append(PayloadWire.Tag.numbers.rawValue)
                writer.out.append(element.rawValue)
                writer.out.appendVarint(array.count * lanes)
                writer.out.append(contentsOf: bytes)
            }
            return (bytes.count, UInt(bitPattern: bytes.baseAddress))
        }
    }

    /// References `bytes` (a complete payload) by hash from here, adding it (and the values it references
    /// itself) to the shared values.
    @discardableResult
    private func share(_ bytes: [UInt8], hash known: [UInt8]? = nil, nested: [(SharedRef, [UInt8])]) -> [UInt8] {
        let hash = known ?? ContentHash.of(bytes)
        let index: Int
        if let known = sharedIndex[hash] {
            index = known
        } else {
            index = shared.count
            sharedIndex[hash] = index
            let place: SharedRef.Place = objectStore.map { bytes.count > $0.above ? .objects(url: $0.url) : .store } ?? .store
            shared.append((SharedRef(hash: hash, length: bytes.count, place: place), bytes))
        }
        out.append(PayloadWire.Tag.shared.rawValue)
        out.appendVarint(index)
        // The values a shared value references travel with this payload's (they are fetched when it is).
        for (ref, nestedBytes) in nested where sharedIndex[ref.hash] == nil {
            sharedIndex[ref.hash] = shared.count
            shared.append((ref, nestedBytes))
        }
        return hash
    }

    /// Forgets the shared values added from position `index` on (a value written again on its own took
    /// them along).
    private func dropShared(from index: Int) {
        guard shared.count > index else { return }
        for (ref, _) in shared[index...] { sharedIndex[ref.hash] = nil }
        shared.removeSubrange(index...)
    }
}

/// The `Encoder` handed to one value's `encode(to:)`.
struct PayloadValueEncoder: Encoder {
    let writer: PayloadWriter
    /// Where this value starts in the output.
    let frame: Int

    var codingPath: [any CodingKey] { writer.path }
    var userInfo: [CodingUserInfoKey: Any] { writer.userInfo }

    func container<Key: CodingKey>(keyedBy _: Key.Type) -> KeyedEncodingContainer<Key> {
        let start: Int
        if writer.out.count == frame {
            start = writer.openKeyed()
        } else {
            // Asked again: the same container, if this value's one is still open (else writes will throw).
            start = writer.existing(.keyed, at: frame) ?? -1
        }
        return KeyedEncodingContainer(PayloadKeyedEncoder<Key>(writer: writer, start: start))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let start = writer.out.count == frame ? writer.openUnkeyed() : (writer.existing(.unkeyed, at: frame) ?? -1)
        return PayloadUnkeyedEncoder(writer: writer, start: start)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        PayloadSingleValueEncoder(writer: writer, frame: frame, level: writer.openCount)
    }
}

struct PayloadKeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let writer: PayloadWriter
    let start: Int
    /// The index of the key written last (`-1` before the first).
    private var previous = -1

    init(writer: PayloadWriter, start: Int) {
        self.writer = writer
        self.start = start
    }

    var codingPath: [any CodingKey] { writer.path }

    @inline(__always)
    private mutating func begin(_ key: Key) throws { try begin(key.stringValue) }

    @inline(__always)
    private mutating func begin(_ name: String) throws {
        try writer.focus(start)
        previous = writer.writeKey(name, after: previous, type: ObjectIdentifier(Key.self))
    }

    mutating func encodeNil(forKey key: Key) throws { try begin(key); writer.writeNil() }
    mutating func encode(_ value: Bool, forKey key: Key) throws { try begin(key); writer.write(value) }
    mutating func encode(_ value: String, forKey key: Key) throws { try begin(key); writer.write(value) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try begin(key); writer.write(value) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try begin(key); writer.write(value) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try begin(key); writer.write(value) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try begin(key); writer.write(value) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try begin(key); writer.write(value) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try begin(key); writer.write(value) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try begin(key); writer.write(value) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try begin(key); writer.write(value) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try begin(key); writer.write(value) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try begin(key); writer.write(value) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try begin(key); writer.write(value) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try begin(key); writer.write(value) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try begin(key)
        writer.path.append(key)
        defer { writer.path.removeLast() }
        try writer.writeValue(value)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy _: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        guard (try? begin(key)) != nil else { return KeyedEncodingContainer(PayloadKeyedEncoder<NestedKey>(writer: writer, start: -1)) }
        return KeyedEncodingContainer(PayloadKeyedEncoder<NestedKey>(writer: writer, start: writer.openKeyed()))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        guard (try? begin(key)) != nil else { return PayloadUnkeyedEncoder(writer: writer, start: -1) }
        return PayloadUnkeyedEncoder(writer: writer, start: writer.openUnkeyed())
    }

    mutating func superEncoder() -> any Encoder { superEncoder(named: "super") }

    mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(named: key.stringValue) }

    private mutating func superEncoder(named name: String) -> any Encoder {
        guard (try? begin(name)) != nil else { return PayloadValueEncoder(writer: writer, frame: -1) }
        return PayloadValueEncoder(writer: writer, frame: writer.openSlot())
    }
}

struct PayloadUnkeyedEncoder: UnkeyedEncodingContainer {
    let writer: PayloadWriter
    let start: Int

    var codingPath: [any CodingKey] { writer.path }
    var count: Int { writer.elementCount(of: start) }

    @inline(__always)
    private func begin() throws {
        try writer.focus(start)
        writer.countElement()
    }

    mutating func encodeNil() throws { try begin(); writer.writeNil() }
    mutating func encode(_ value: Bool) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: String) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Double) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Float) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Int) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Int8) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Int16) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Int32) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Int64) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: UInt) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: UInt8) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: UInt16) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: UInt32) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: UInt64) throws { try begin(); writer.write(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let index = writer.elementCount(of: start)
        try begin()
        writer.path.append(PayloadIndexKey(intValue: index))
        defer { writer.path.removeLast() }
        try writer.writeValue(value)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy _: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        guard (try? begin()) != nil else { return KeyedEncodingContainer(PayloadKeyedEncoder<NestedKey>(writer: writer, start: -1)) }
        return KeyedEncodingContainer(PayloadKeyedEncoder<NestedKey>(writer: writer, start: writer.openKeyed()))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        guard (try? begin()) != nil else { return PayloadUnkeyedEncoder(writer: writer, start: -1) }
        return PayloadUnkeyedEncoder(writer: writer, start: writer.openUnkeyed())
    }

    mutating func superEncoder() -> any Encoder {
        guard (try? begin()) != nil else { return PayloadValueEncoder(writer: writer, frame: -1) }
        return PayloadValueEncoder(writer: writer, frame: writer.openSlot())
    }
}

struct PayloadSingleValueEncoder: SingleValueEncodingContainer {
    let writer: PayloadWriter
    let frame: Int
    /// How many containers were open when the value began (its single value goes at that level).
    let level: Int

    var codingPath: [any CodingKey] { writer.path }

    @inline(__always)
    private func begin() throws {
        guard writer.out.count == frame, writer.openCount == level else {
            throw EncodingError.invalidValue(
                frame,
                .init(codingPath: writer.path, debugDescription: "a single value container was asked to encode a second value (or out of order)"))
        }
    }

    mutating func encodeNil() throws { try begin(); writer.writeNil() }
    mutating func encode(_ value: Bool) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: String) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Double) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Float) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Int) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Int8) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Int16) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Int32) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: Int64) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: UInt) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: UInt8) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: UInt16) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: UInt32) throws { try begin(); writer.write(value) }
    mutating func encode(_ value: UInt64) throws { try begin(); writer.write(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try begin()
        try writer.writeValue(value)
    }
}

/// The coding key of an element of an unkeyed container.
struct PayloadIndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { "Index \(intValue ?? 0)" }
    init(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { nil }
}

/// A value whose `encode(to:)` writes its containers out of order, which the binary format cannot hold
/// (Curtain sends such a value as JSON).
struct PayloadOrderError: Error, CustomStringConvertible {
    var description: String
}

/// The driver's memory of the numeric arrays it shared lately: the same array again (the same storage,
/// which the memo keeps alive, so that any change to the caller's array copies it first) is neither
/// copied nor hashed again. A k-means round that captures the same point set costs nothing for it.
enum SharedArrayMemo {
    struct Key: Hashable {
        var address: UInt
        var bytes: Int
        var element: UInt8
    }

    private struct Entry {
        var keep: SharedValueCache.Box
        var bytes: [UInt8]
        var hash: [UInt8]
        var lastUse: UInt64
    }

    /// Arrays remembered at most, and the most bytes they may hold.
    static let capacity = 8
    static let byteCapacity = 1 << 30
    private static let state = Mutex<(entries: [Key: Entry], tick: UInt64)>(([:], 0))

    static func lookup(_ key: Key) -> (bytes: [UInt8], hash: [UInt8])? {
        state.withLock { state in
            guard var entry = state.entries[key] else { return nil }
            state.tick += 1
            entry.lastUse = state.tick
            state.entries[key] = entry
            return (entry.bytes, entry.hash)
        }
    }

    static func remember(_ key: Key, keeping: SharedValueCache.Box, bytes: [UInt8], hash: [UInt8]) {
        state.withLock { state in
            state.tick += 1
            state.entries[key] = Entry(keep: keeping, bytes: bytes, hash: hash, lastUse: state.tick)
            while state.entries.count > capacity || state.entries.values.reduce(0, { $0 + 2 * $1.bytes.count }) > byteCapacity,
                state.entries.count > 1, let oldest = state.entries.min(by: { $0.value.lastUse < $1.value.lastUse })
            {
                state.entries[oldest.key] = nil
            }
        }
    }
}
