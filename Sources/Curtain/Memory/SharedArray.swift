import CurtainRESP
import NIOCore

/// A number type a ``SharedArray`` can hold: stored as its raw little-endian bytes.
public protocol SharedArrayElement: BitwiseCopyable, Codable, Sendable, Equatable {
    /// The stored type's name, checked when a handle is made for an existing array.
    static var sharedTypeName: String { get }
    /// Zero, for elements never written.
    static var zero: Self { get }
    /// `current` plus the change from `base` to `local` (wrapping for integers): how a replica's delta is
    /// added to a value others may have changed meanwhile.
    static func adding(_ local: Self, minus base: Self, to current: Self) -> Self
}

extension SharedArrayElement where Self: BinaryFloatingPoint {
    /// `current + (local - base)`.
    @inlinable public static func adding(_ local: Self, minus base: Self, to current: Self) -> Self {
        current + (local - base)
    }
}

extension SharedArrayElement where Self: FixedWidthInteger {
    /// `current &+ (local &- base)`.
    @inlinable public static func adding(_ local: Self, minus base: Self, to current: Self) -> Self {
        current &+ (local &- base)
    }
}

extension Double: SharedArrayElement {
    /// `Double`.
    public static var sharedTypeName: String { "Double" }
}

extension Float: SharedArrayElement {
    /// `Float`.
    public static var sharedTypeName: String { "Float" }
}

extension Int: SharedArrayElement {
    /// `Int64` (Swift's `Int` on 64-bit platforms).
    public static var sharedTypeName: String { "Int64" }
}

extension Int32: SharedArrayElement {
    /// `Int32`.
    public static var sharedTypeName: String { "Int32" }
}

extension UInt8: SharedArrayElement {
    /// `UInt8`.
    public static var sharedTypeName: String { "UInt8" }
}

/// A fixed-size array of numbers in the store, split into chunks (64 Ki elements each) so that arrays of
/// tens of millions of elements work: element and range reads and writes go to the chunks concerned, a
/// whole-array ``pull()`` fetches every chunk in one pipeline, and ``push(_:)`` writes back only the dirty
/// ranges of a ``LocalArray``.
///
/// ```swift
/// let weights = try await cloud.memory.array("weights", of: Double.self, count: 10_000_000)
/// var local = try await weights.pull()          // a worker-local copy: memory-speed reads and writes
/// local[42] += 0.5
/// try await weights.push(&local)                 // only what changed goes back
/// ```
///
/// Elements never written read as zero. Writes of overlapping ranges by several processes are not merged:
/// the last write of each element wins (the consistency of HOGWILD!-style training).
public struct SharedArray<Element: SharedArrayElement>: Codable, Sendable, Hashable {
    /// The store key of the array's description; chunk `n` is at `key:n`.
    public let key: String
    let scope: String
    /// The number of elements.
    public let count: Int
    /// Elements per chunk.
    let chunkElements: Int

    static var elementSize: Int { MemoryLayout<Element>.stride }
    var object: String { "array \(key)" }

    func chunkKey(_ chunk: Int) -> String { "\(key):\(chunk)" }
    var chunkCount: Int { (count + chunkElements - 1) / chunkElements }

    /// Makes a handle, creating the array if it does not exist, or checking that the existing one has this
    /// element type and count.
    static func open(key: String, scope: String, count: Int) async throws -> SharedArray {
        guard count >= 0, count <= 1 << 40 else {
            throw SharedMemoryError(description: "array \(key): count \(count) is out of range")
        }
        let array = SharedArray(key: key, scope: scope, count: count, chunkElements: 65_536)
        let description = "curtain-array 1 \(Element.sharedTypeName) \(count) \(array.chunkElements)"
        let client = try MemoryBinding.client(for: key, scope: scope)
        let replies = try await client.pipeline([
            RESPCommand("SET", key, description, "NX"), RESPCommand("GET", key),
        ])
        guard let stored = replies[1].string else {
            throw SharedMemoryError(description: "array \(key): its description is not readable")
        }
        guard stored == description else {
            let parts = stored.split(separator: " ")
            let what = parts.count == 5 ? "\(parts[3]) \(parts[2])" : "something else"
            throw SharedMemoryError(description: "array \(key) holds \(what), not \(count) \(Element.sharedTypeName)")
        }
        return array
    }

    private func client() throws -> RESPClient { try MemoryBinding.client(for: key, scope: scope) }

    private func check(_ range: Range<Int>) throws {
        guard range.lowerBound >= 0, range.upperBound <= count else {
            throw SharedMemoryError(description: "\(object): range \(range) is out of bounds 0..<\(count)")
        }
    }

    /// The element at `index`.
    public func element(at index: Int) async throws -> Element {
        try await elements(in: index..<(index + 1))[0]
    }

    /// Replaces the element at `index`.
    public func set(_ value: Element, at index: Int) async throws {
        try await write([value], at: index)
    }

    /// The elements in `range`.
    ///
    /// - Throws: ``SharedMemoryError`` if `range` is out of bounds.
    public func elements(in range: Range<Int>) async throws -> [Element] {
        try check(range)
        if range.isEmpty { return [] }
        var commands: [RESPCommand] = []
        var spans: [Range<Int>] = []
        var start = range.lowerBound
        while start < range.upperBound {
            let chunk = start / chunkElements
            let end = min(range.upperBound, (chunk + 1) * chunkElements)
            let offset = (start - chunk * chunkElements) * Self.elementSize
            commands.append(RESPCommand("GETRANGE", chunkKey(chunk), offset, offset + (end - start) * Self.elementSize - 1))
            spans.append(start..<end)
            start = end
        }
        let replies = try await client().pipeline(commands)
        var result = [Element](repeating: .zero, count: range.count)
        result.withUnsafeMutableBytes { out in
            for (reply, span) in zip(replies, spans) {
                guard let buffer = reply.buffer else { continue }
                let at = (span.lowerBound - range.lowerBound) * Self.elementSize
                let target = UnsafeMutableRawBufferPointer(rebasing: out[at..<(at + span.count * Self.elementSize)])
                buffer.withUnsafeReadableBytes { _ = Self.copy($0, into: target) }
            }
        }
        return result
    }

    /// Writes `values` starting at `start`.
    ///
    /// - Throws: ``SharedMemoryError`` if the values would run past the end (nothing is written).
    public func write(_ values: [Element], at start: Int) async throws {
        try check(start..<(start + values.count))
        let commands = values.withUnsafeBytes { bytes in
            setRanges(bytes, covering: start..<(start + values.count))
        }
        try await run(commands)
    }

    /// The `SETRANGE`s that write `bytes` (the elements of `range`) into their chunks.
    private func setRanges(_ bytes: UnsafeRawBufferPointer, covering range: Range<Int>) -> [RESPCommand] {
        var commands: [RESPCommand] = []
        var index = range.lowerBound
        while index < range.upperBound {
            let chunk = index / chunkElements
            let end = min(range.upperBound, (chunk + 1) * chunkElements)
            let from = (index - range.lowerBound) * Self.elementSize
            let slice = UnsafeRawBufferPointer(rebasing: bytes[from..<(from + (end - index) * Self.elementSize)])
            commands.append(RESPCommand(
                "SETRANGE", chunkKey(chunk), (index - chunk * chunkElements) * Self.elementSize, ByteBuffer(bytes: slice)))
            index = end
        }
        return commands
    }

    private func run(_ commands: [RESPCommand]) async throws {
        guard !commands.isEmpty else { return }
        try SharedMemoryError.check(try await client().pipeline(commands), object: object)
    }

    /// Adds `delta` over `span` (indices of chunk `chunk`; `delta[0]` is for `span.lowerBound`) to the stored
    /// chunk atomically: an optimistic `WATCH` / `GET` / `MULTI SET EXEC`, retried on conflict.
    @_specialize(where Element == Double)
    @_specialize(where Element == Float)
    @_specialize(where Element == Int)
    func addDelta(chunk: Int, span: Range<Int>, delta: [Element]) async throws {
        let key = chunkKey(chunk)
        let start = chunk * chunkElements
        _ = try await client().watching(key) { connection -> (commands: [RESPCommand], result: Bool)? in
            var values = elements(ofChunk: chunk, from: try await connection.send(RESPCommand("GET", key)))
            for i in span {
                values[i - start] = Element.adding(delta[i - span.lowerBound], minus: .zero, to: values[i - start])
            }
            let bytes = values.withUnsafeBytes { ByteBuffer(bytes: $0) }
            return ([RESPCommand("SET", key, bytes)], true)
        }
    }

    /// The key of the replicas' delta log (see ``ArrayReplica``).
    var logKey: String { key + ":log" }

    /// Appends `entry` (if any) to the replicas' delta log, keeping the latest `limit` entries, and reads the
    /// entries numbered after `position` except those starting with `tag` (one round trip).
    func appendAndReadLog(
        _ entry: [UInt8]?, limit: Int, after position: Int, except tag: [UInt8]
    ) async throws -> (last: Int, missed: Int, entries: [ByteBuffer]) {
        var commands: [RESPCommand] = []
        if let entry {
            commands.append(StoreFunctions.call(StoreFunctions.logAppend, keys: [logKey], arguments: [ByteBuffer(bytes: entry), limit]))
        }
        commands.append(StoreFunctions.call(StoreFunctions.logRead, keys: [logKey], arguments: [position, ByteBuffer(bytes: tag)]))
        let client = try client()
        let replies = try await StoreFunctions.pipeline(commands, using: client) { try await client.pipeline($0) }
        try SharedMemoryError.check(replies, object: object)
        return try logEntries(from: replies[replies.count - 1])
    }

    /// The log's last number (no entries).
    func logPosition() async throws -> Int {
        let command = StoreFunctions.call(StoreFunctions.logRead, keys: [logKey], arguments: [1 << 62])
        return try logEntries(from: try await StoreFunctions.send(command, using: try client())).last
    }

    private func logEntries(from reply: RESPValue) throws -> (last: Int, missed: Int, entries: [ByteBuffer]) {
        guard let items = reply.array, items.count >= 2, let last = items[0].int, let missed = items[1].int else {
            throw SharedMemoryError(description: "\(object): unexpected reply to a log read: \(reply)")
        }
        return (last, missed, items.dropFirst(2).compactMap(\.buffer))
    }

    /// Chunk `chunk`'s elements from the reply to its `GET` (zeros where the stored bytes stop short).
    private func elements(ofChunk chunk: Int, from reply: RESPValue) -> [Element] {
        var values = [Element](repeating: .zero, count: Swift.min(chunkElements, count - chunk * chunkElements))
        if let buffer = reply.buffer {
            values.withUnsafeMutableBytes { out in
                buffer.withUnsafeReadableBytes { _ = Self.copy($0, into: out) }
            }
        }
        return values
    }

    /// Copies as much of `bytes` as fits at the start of `out`; returns how many bytes it copied.
    @discardableResult
    static func copy(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int {
        let n = Swift.min(bytes.count, out.count)
        if n > 0 { out.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: n) }
        return n
    }

    /// Fetches the whole array into a local copy (one pipelined `GET` per chunk).
    public func pull() async throws -> LocalArray<Element> {
        // Not zero-filled first: `refresh` writes every element (zeros where the store has none), and one
        // pass over fresh pages instead of two is a measurable part of a large pull.
        var local = LocalArray<Element>(uninitializedCount: count, chunkElements: chunkElements)
        try await refresh(&local)
        return local
    }

    /// Overwrites `local` with the array's current contents and forgets its unpushed changes.
    public func refresh(_ local: inout LocalArray<Element>) async throws {
        guard local.elements.count == count else {
            throw SharedMemoryError(description: "\(object): a local copy of \(local.elements.count) elements cannot track \(count)")
        }
        // Rounds of four chunks (2 MB), each copied out and freed before the next arrives: the allocator then
        // reuses the same memory for every round instead of mapping (and the kernel zeroing) fresh pages
        // for the whole array's worth of replies at once.
        let client = try client()
        for first in stride(from: 0, to: chunkCount, by: 4) {
            let round = first..<Swift.min(first + 4, chunkCount)
            let replies = try await client.pipeline(round.map { RESPCommand("GET", chunkKey($0)) })
            copy(replies, startingAt: first, into: &local)
        }
        local.markClean()
    }

    private func copy(_ replies: [RESPValue], startingAt firstChunk: Int, into local: inout LocalArray<Element>) {
        local.storage.withUnsafeMutableBytes { out in
            for (offset, reply) in replies.enumerated() {
                let chunk = firstChunk + offset
                let at = chunk * chunkElements * Self.elementSize
                let room = min(chunkElements, count - chunk * chunkElements) * Self.elementSize
                let target = UnsafeMutableRawBufferPointer(rebasing: out[at..<(at + room)])
                guard let buffer = reply.buffer else {
                    target.initializeMemory(as: UInt8.self, repeating: 0)
                    continue
                }
                buffer.withUnsafeReadableBytes { bytes in
                    let n = Self.copy(bytes, into: target)
                    if n < room { UnsafeMutableRawBufferPointer(rebasing: target[n...]).initializeMemory(as: UInt8.self, repeating: 0) }
                }
            }
        }
    }

    /// Writes back the ranges of `local` changed since it was pulled (or last pushed), one `SETRANGE` per
    /// changed span of each chunk, in one pipeline; then marks `local` clean.
    public func push(_ local: inout LocalArray<Element>) async throws {
        guard local.elements.count == count else {
            throw SharedMemoryError(description: "\(object): a local copy of \(local.elements.count) elements cannot update \(count)")
        }
        // In rounds of a few chunks' spans, for the same reason as `refresh`: each round's copies are freed
        // before the next is made.
        let spans = local.dirtySpans
        for first in stride(from: 0, to: spans.count, by: 8) {
            try await run(commands(writing: spans[first..<Swift.min(first + 8, spans.count)], of: local))
        }
        local.markClean()
    }

    /// The `SETRANGE`s that store `spans` of `local` (their bytes copied now).
    func commands(writing spans: ArraySlice<Range<Int>>, of local: LocalArray<Element>) -> [RESPCommand] {
        local.storage.withUnsafeBytes { bytes in
            spans.flatMap { span -> [RESPCommand] in
                let from = span.lowerBound * Self.elementSize
                let slice = UnsafeRawBufferPointer(rebasing: bytes[from..<(span.upperBound * Self.elementSize)])
                return setRanges(slice, covering: span)
            }
        }
    }

    /// Sends prepared `SETRANGE` rounds in order.
    func send(_ rounds: [[RESPCommand]]) async throws {
        for commands in rounds { try await run(commands) }
    }
}

/// A worker-local copy of a ``SharedArray``: reads and writes at memory speed, with the elements written
/// remembered (one bit each) for ``SharedArray/push(_:)`` and for replicas' deltas.
///
/// The subscript is inlinable, so loops over a local copy compile to plain array accesses plus the setting of
/// one bit per write in the caller's module.
public struct LocalArray<Element: SharedArrayElement>: Sendable {
    @usableFromInline var storage: [Element]
    /// The elements.
    public var elements: [Element] { storage }
    let chunkElements: Int
    /// Writes through the subscript since this copy was made (never reset: replicas count from it).
    @usableFromInline var writes = 0
    /// One bit per element written since the last pull, push or exchange.
    @usableFromInline var touched: [UInt64]

    init(count: Int, chunkElements: Int) {
        self.init(storage: [Element](repeating: .zero, count: count), chunkElements: chunkElements)
    }

    /// A copy whose elements are left uninitialized, for a caller that writes every one before use.
    init(uninitializedCount count: Int, chunkElements: Int) {
        // Elements are BitwiseCopyable: uninitialized memory needs no deinitialization.
        self.init(storage: [Element](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }, chunkElements: chunkElements)
    }

    private init(storage: [Element], chunkElements: Int) {
        precondition(chunkElements >= 64 && chunkElements & (chunkElements - 1) == 0, "chunks are a power of two ≥ 64")
        self.storage = storage
        self.chunkElements = chunkElements
        touched = [UInt64](repeating: 0, count: (storage.count + 63) / 64)
    }

    /// The number of elements.
    @inlinable public var count: Int { storage.count }

    /// Reads or writes one element (a write marks it for the next push).
    @inlinable public subscript(index: Int) -> Element {
        get { storage[index] }
        set {
            storage[index] = newValue
            writes &+= 1
            touched[index &>> 6] |= 1 &<< UInt64(index & 63)
        }
    }

    /// Whether anything changed since the last pull or push.
    public var hasChanges: Bool { touched.contains { $0 != 0 } }

    /// The span from the first to one past the last element written, of each chunk with writes, in order.
    var dirtySpans: [Range<Int>] {
        let words = chunkElements / 64
        var spans: [Range<Int>] = []
        for first in stride(from: 0, to: touched.count, by: words) {
            let chunk = first..<Swift.min(first + words, touched.count)
            guard let low = chunk.first(where: { touched[$0] != 0 }), let high = chunk.last(where: { touched[$0] != 0 }) else {
                continue
            }
            let start = low &* 64 &+ touched[low].trailingZeroBitCount
            let end = high &* 64 &+ 64 &- touched[high].leadingZeroBitCount
            spans.append(start..<end)
        }
        return spans
    }

    mutating func markClean() {
        for i in touched.indices where touched[i] != 0 { touched[i] = 0 }
    }

}
