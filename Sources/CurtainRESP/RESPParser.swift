public import NIOCore

/// A violation of the RESP wire format: the bytes can never become a valid frame.
///
/// The parser throws this instead of crashing or guessing; a connection that receives it should be closed,
/// since the stream position is lost.
public struct RESPProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was wrong, in words (for example `"bulk length 9999999999 exceeds the limit of 536870912"`).
    public var reason: String
    /// Byte offset of the offending frame's start, relative to where parsing of the frame began.
    public var offset: Int

    /// Creates an error.
    public init(_ reason: String, offset: Int = 0) {
        self.reason = reason
        self.offset = offset
    }

    /// The reason with the byte offset, for logs.
    public var description: String { "RESP protocol error at byte \(offset): \(reason)" }
}

/// An incremental RESP2/RESP3 decoder that never crashes on bad bytes and never reads past a frame.
///
/// Feed it the bytes received so far; ``parse(_:)`` returns a whole value and consumes exactly its bytes, or
/// returns `nil` (consuming nothing) when the frame is still incomplete. Declared lengths and nesting are
/// bounded by ``Limits`` so hostile input cannot make it allocate or recurse without bound.
public struct RESPParser: Sendable {
    /// Bounds that protect the parser from hostile input.
    public struct Limits: Sendable, Hashable {
        /// The largest bulk string accepted (Redis' `proto-max-bulk-len` default: 512 MiB).
        public var maxBulkLength: Int
        /// The largest element count accepted for one array, set, map or push.
        public var maxAggregateLength: Int
        /// The deepest nesting of aggregates accepted.
        public var maxDepth: Int
        /// The longest simple line (`+…`, `-…`, `:…`, …) accepted.
        public var maxLineLength: Int

        /// Creates limits.
        public init(
            maxBulkLength: Int = 512 * 1024 * 1024,
            maxAggregateLength: Int = 1 << 28,
            maxDepth: Int = 256,
            maxLineLength: Int = 64 * 1024
        ) {
            self.maxBulkLength = maxBulkLength
            self.maxAggregateLength = maxAggregateLength
            self.maxDepth = maxDepth
            self.maxLineLength = maxLineLength
        }

        /// The defaults: Redis' own limits, nesting up to 256 levels.
        public static let `default` = Limits()
    }

    /// The limits in force.
    public var limits: Limits
    /// Readable bytes needed before a new attempt can succeed (a hint that avoids re-scanning large frames).
    private var needed: Int = 0
    /// Progress through an incomplete aggregate frame, so that a large reply arriving in many reads is scanned
    /// once in total instead of once per read.
    private var scan: FrameScan?

    /// Creates a parser.
    public init(limits: Limits = .default) {
        self.limits = limits
    }

    /// Parses one value from the front of `buffer`.
    ///
    /// - Returns: the value, with its bytes consumed from `buffer`; or `nil` with `buffer` untouched when
    ///   more bytes are needed.
    /// - Throws: ``RESPProtocolError`` when the bytes can never form a valid frame.
    public mutating func parse(_ buffer: inout ByteBuffer) throws(RESPProtocolError) -> RESPValue? {
        if buffer.readableBytes == 0 || buffer.readableBytes < needed { return nil }
        let base = buffer
        let limits = self.limits
        var hint = 0
        var scan = self.scan
        let outcome: Result<(RESPValue, Int)?, RESPProtocolError> = base.withUnsafeReadableBytes { bytes in
            var cursor = Cursor(bytes: bytes, base: base, limits: limits)
            do throws(RESPProtocolError) {
                if var progress = scan {
                    // Continue scanning the incomplete frame where the last attempt stopped.
                    guard try cursor.scanFrame(&progress) else {
                        scan = progress
                        hint = cursor.needed
                        return .success(nil)
                    }
                    scan = nil
                    cursor.index = 0
                }
                if let value = try cursor.value(depth: 0) {
                    return .success((value, cursor.index))
                }
                // Incomplete: remember how far the frame is known to be well-formed, if it is an aggregate.
                hint = cursor.needed
                var progress = FrameScan()
                cursor.index = 0
                cursor.needed = 0
                _ = try cursor.scanFrame(&progress)
                scan = progress
                hint = max(hint, cursor.needed)
                return .success(nil)
            } catch {
                return .failure(error)
            }
        }
        switch outcome {
        case .failure(let error):
            self.scan = nil
            throw error
        case .success(.some(let (value, consumed))):
            buffer.moveReaderIndex(forwardBy: consumed)
            needed = 0
            self.scan = nil
            return value
        case .success(nil):
            needed = hint
            self.scan = scan
            return nil
        }
    }
}

/// How far an incomplete frame has been scanned: the offset of the next unscanned element (relative to the
/// buffer's reader index) and, per open aggregate, how many elements it still expects.
struct FrameScan: Sendable {
    var offset = 0
    var remaining: [Int] = []
}

extension Cursor {
    /// Scans (without building values) from `scan.offset`; returns true when the frame is complete, false
    /// (with `scan` updated to resume later) when more bytes are needed.
    mutating func scanFrame(_ scan: inout FrameScan) throws(RESPProtocolError) -> Bool {
        index = scan.offset
        while true {
            let itemStart = index
            guard index < bytes.count else { return false }
            let type = bytes[index]
            index += 1
            var opened = 0
            switch type {
            case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"):
                if index < bytes.count, bytes[index] == UInt8(ascii: "?") {
                    throw RESPProtocolError("streamed aggregates are not supported", offset: itemStart)
                }
                let isMap = type == UInt8(ascii: "%") || type == UInt8(ascii: "|")
                let max = isMap ? limits.maxAggregateLength / 2 : limits.maxAggregateLength
                guard let count = try lengthLine(max: max, what: isMap ? "map" : "aggregate") else {
                    scan.offset = itemStart
                    return false
                }
                if count == -1 {
                    if isMap { throw RESPProtocolError("null is not valid for maps", offset: itemStart) }
                    if type != UInt8(ascii: "*") {
                        throw RESPProtocolError("null is only valid for arrays", offset: itemStart)
                    }
                }
                if count > 0 { opened = isMap ? count * 2 : count }
                // An attribute is followed by the value it annotates.
                if type == UInt8(ascii: "|") { opened += 1 }
            default:
                // Scalars are parsed (and so validated) exactly as a whole-frame parse would.
                index = itemStart
                guard try value(depth: scan.remaining.count) != nil else {
                    scan.offset = itemStart
                    return false
                }
            }
            if opened > 0 {
                if scan.remaining.count >= limits.maxDepth {
                    throw RESPProtocolError("aggregates nested deeper than \(limits.maxDepth)", offset: itemStart)
                }
                scan.remaining.append(opened)
                scan.offset = index
                continue
            }
            // One element finished: close every aggregate it completes.
            while let last = scan.remaining.indices.last {
                scan.remaining[last] -= 1
                if scan.remaining[last] > 0 { break }
                scan.remaining.removeLast()
            }
            if scan.remaining.isEmpty {
                scan.offset = index
                return true
            }
            scan.offset = index
        }
    }
}

/// A bounds-checked reader over the readable bytes of one buffer.
struct Cursor: ~Copyable {
    let bytes: UnsafeRawBufferPointer
    let base: ByteBuffer
    let limits: RESPParser.Limits
    var index: Int = 0
    /// Bytes the whole buffer must hold before the frame can complete (set when a bulk payload is short).
    var needed: Int = 0

    init(bytes: UnsafeRawBufferPointer, base: ByteBuffer, limits: RESPParser.Limits) {
        self.bytes = bytes
        self.base = base
        self.limits = limits
    }

    /// Finds the CRLF that ends the line starting at `index`; returns the index of CR, or nil if not yet there.
    mutating func lineEnd() throws(RESPProtocolError) -> Int? {
        let start = index
        // The CR may sit at most maxLineLength bytes after the start.
        let limit = min(bytes.count, start + limits.maxLineLength + 1)
        var i = start
        while i < limit {
            if bytes[i] == UInt8(ascii: "\r") {
                if i + 1 >= bytes.count { return nil }
                if bytes[i + 1] != UInt8(ascii: "\n") {
                    throw RESPProtocolError("CR not followed by LF", offset: i)
                }
                return i
            }
            if bytes[i] == UInt8(ascii: "\n") {
                throw RESPProtocolError("bare LF inside a line", offset: i)
            }
            i += 1
        }
        if limit - start >= limits.maxLineLength + 1 {
            throw RESPProtocolError("line longer than \(limits.maxLineLength) bytes", offset: start)
        }
        return nil
    }

    /// Parses a strict signed decimal integer from `bytes[from..<to]`.
    func integer(from: Int, to: Int) throws(RESPProtocolError) -> Int64 {
        var i = from
        var negative = false
        if i < to, bytes[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        } else if i < to, bytes[i] == UInt8(ascii: "+") {
            i += 1
        }
        if i >= to { throw RESPProtocolError("empty integer", offset: from) }
        var value: Int64 = 0
        while i < to {
            let c = bytes[i]
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else {
                throw RESPProtocolError("invalid digit in integer", offset: i)
            }
            let digit = Int64(c - UInt8(ascii: "0"))
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(digit) : m.addingReportingOverflow(digit)
            if o1 || o2 { throw RESPProtocolError("integer overflows 64 bits", offset: from) }
            value = s
            i += 1
        }
        return value
    }

    func slice(_ from: Int, _ length: Int) -> ByteBuffer {
        // Indices were bounds-checked against `bytes`, which views exactly the readable bytes of `base`.
        base.getSlice(at: base.readerIndex + from, length: length)!
    }

    /// Reads a length line (`N\r\n`) after the type byte; returns nil if incomplete. -1 means null.
    mutating func lengthLine(max: Int, what: String) throws(RESPProtocolError) -> Int? {
        let start = index
        guard let end = try lineEnd() else { return nil }
        let n = try integer(from: start, to: end)
        if n < -1 { throw RESPProtocolError("negative \(what) length \(n)", offset: start) }
        if n > Int64(max) { throw RESPProtocolError("\(what) length \(n) exceeds the limit of \(max)", offset: start) }
        index = end + 2
        return Int(n)
    }

    /// Reads a bulk payload of `length` bytes plus CRLF; returns nil if incomplete.
    mutating func bulkPayload(_ length: Int) throws(RESPProtocolError) -> ByteBuffer? {
        guard bytes.count - index >= length + 2 else {
            needed = index + length + 2
            return nil
        }
        guard bytes[index + length] == UInt8(ascii: "\r"), bytes[index + length + 1] == UInt8(ascii: "\n") else {
            throw RESPProtocolError("bulk payload not terminated by CRLF", offset: index + length)
        }
        let payload = slice(index, length)
        index += length + 2
        return payload
    }

    mutating func aggregate(_ count: Int, depth: Int) throws(RESPProtocolError) -> [RESPValue]? {
        var elements: [RESPValue] = []
        elements.reserveCapacity(Swift.min(count, 1024))
        for _ in 0..<count {
            guard let element = try value(depth: depth + 1) else { return nil }
            elements.append(element)
        }
        return elements
    }

    /// Parses the value at `index`; returns nil (index unspecified) when incomplete.
    mutating func value(depth: Int) throws(RESPProtocolError) -> RESPValue? {
        if depth > limits.maxDepth {
            throw RESPProtocolError("aggregates nested deeper than \(limits.maxDepth)", offset: index)
        }
        guard index < bytes.count else { return nil }
        let type = bytes[index]
        let typeOffset = index
        index += 1
        switch type {
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "("):
            let start = index
            guard let end = try lineEnd() else { return nil }
            let payload = slice(start, end - start)
            index = end + 2
            if type == UInt8(ascii: "+") { return .simpleString(payload) }
            if type == UInt8(ascii: "-") { return .error(payload) }
            // Big number: digits with an optional sign.
            if end == start { throw RESPProtocolError("empty big number", offset: typeOffset) }
            if end == start + 1, bytes[start] == UInt8(ascii: "-") || bytes[start] == UInt8(ascii: "+") {
                throw RESPProtocolError("big number without digits", offset: typeOffset)
            }
            for i in start..<end {
                let c = bytes[i]
                let ok = (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                    || (i == start && (c == UInt8(ascii: "-") || c == UInt8(ascii: "+")))
                if !ok { throw RESPProtocolError("invalid big number", offset: i) }
            }
            return .bigNumber(payload)
        case UInt8(ascii: ":"):
            let start = index
            guard let end = try lineEnd() else { return nil }
            let n = try integer(from: start, to: end)
            index = end + 2
            return .integer(n)
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            if index < bytes.count, bytes[index] == UInt8(ascii: "?") {
                throw RESPProtocolError("streamed strings are not supported", offset: typeOffset)
            }
            guard let length = try lengthLine(max: limits.maxBulkLength, what: "bulk") else { return nil }
            if length == -1 {
                if type == UInt8(ascii: "$") { return .bulkString(nil) }
                throw RESPProtocolError("null is only valid for bulk strings", offset: typeOffset)
            }
            guard let payload = try bulkPayload(length) else { return nil }
            if type == UInt8(ascii: "$") { return .bulkString(payload) }
            if type == UInt8(ascii: "!") { return .bulkError(payload) }
            guard length >= 4, bytes[index - length - 2 + 3] == UInt8(ascii: ":") else {
                throw RESPProtocolError("verbatim string without a format prefix", offset: typeOffset)
            }
            return .verbatimString(payload)
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"):
            if index < bytes.count, bytes[index] == UInt8(ascii: "?") {
                throw RESPProtocolError("streamed aggregates are not supported", offset: typeOffset)
            }
            guard let count = try lengthLine(max: limits.maxAggregateLength, what: "aggregate") else { return nil }
            if count == -1 {
                if type == UInt8(ascii: "*") { return .array(nil) }
                throw RESPProtocolError("null is only valid for arrays", offset: typeOffset)
            }
            guard let elements = try aggregate(count, depth: depth) else { return nil }
            if type == UInt8(ascii: "*") { return .array(elements) }
            if type == UInt8(ascii: "~") { return .set(elements) }
            return .push(elements)
        case UInt8(ascii: "%"), UInt8(ascii: "|"):
            if index < bytes.count, bytes[index] == UInt8(ascii: "?") {
                throw RESPProtocolError("streamed aggregates are not supported", offset: typeOffset)
            }
            guard let count = try lengthLine(max: limits.maxAggregateLength / 2, what: "map") else { return nil }
            if count == -1 { throw RESPProtocolError("null is not valid for maps", offset: typeOffset) }
            var entries: [RESPMapEntry] = []
            entries.reserveCapacity(Swift.min(count, 1024))
            for _ in 0..<count {
                guard let key = try value(depth: depth + 1) else { return nil }
                guard let value = try value(depth: depth + 1) else { return nil }
                entries.append(RESPMapEntry(key: key, value: value))
            }
            if type == UInt8(ascii: "%") { return .map(entries) }
            // An attribute annotates the value that follows it; Curtain has no use for attributes, so the
            // annotated value is returned on its own.
            // Chains of attributes count as nesting, so they cannot recurse without bound.
            return try value(depth: depth + 1)
        case UInt8(ascii: "_"):
            guard let end = try lineEnd() else { return nil }
            if end != index { throw RESPProtocolError("null with a payload", offset: typeOffset) }
            index = end + 2
            return .null
        case UInt8(ascii: "#"):
            let start = index
            guard let end = try lineEnd() else { return nil }
            guard end == start + 1 else { throw RESPProtocolError("boolean must be t or f", offset: typeOffset) }
            index = end + 2
            switch bytes[start] {
            case UInt8(ascii: "t"): return .boolean(true)
            case UInt8(ascii: "f"): return .boolean(false)
            default: throw RESPProtocolError("boolean must be t or f", offset: typeOffset)
            }
        case UInt8(ascii: ","):
            let start = index
            guard let end = try lineEnd() else { return nil }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
            index = end + 2
            switch text {
            case "inf", "+inf": return .double(.infinity)
            case "-inf": return .double(-.infinity)
            case "nan", "-nan": return .double(.nan)
            default:
                guard let d = Double(text), d.isFinite else {
                    throw RESPProtocolError("invalid double", offset: typeOffset)
                }
                return .double(d)
            }
        default:
            throw RESPProtocolError("unknown type byte 0x\(String(type, radix: 16))", offset: typeOffset)
        }
    }
}
