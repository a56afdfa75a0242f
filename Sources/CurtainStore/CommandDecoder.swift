import NIOCore

/// A request the decoder can never turn into a command; the connection is answered with
/// `-ERR Protocol error: <reason>` and closed, as Redis does.
struct CommandProtocolError: Error, Sendable, Hashable {
    /// The Redis wording, e.g. `"invalid multibulk length"`.
    var reason: String
}

/// An incremental decoder of client requests: RESP arrays of bulk strings, and inline commands.
///
/// ``next(_:authenticated:)`` is called with the bytes received so far. It either returns one complete
/// request (consuming its bytes), or `nil` having consumed nothing of a partial request. Progress within a
/// large multibulk request is remembered, so a request arriving in many reads is scanned once.
/// Declared sizes are checked against ``Limits`` before anything is reserved.
struct CommandDecoder {
    /// Bounds on what one request may declare.
    struct Limits: Sendable {
        /// The most arguments in one multibulk request.
        var maxArguments: Int = 1 << 24
        /// The largest bulk argument (Redis' `proto-max-bulk-len`).
        var maxBulkLength: Int = 512 * 1024 * 1024
        /// The longest inline command line, and the longest `*`/`$` header line.
        var maxInlineLength: Int = 64 * 1024
        /// The most arguments before authentication (Redis: 10).
        var maxUnauthenticatedArguments: Int = 10
        /// The largest bulk argument before authentication (Redis: 16 KiB).
        var maxUnauthenticatedBulkLength: Int = 16 * 1024
    }

    /// Where the decoder is within the current request.
    private enum State {
        /// Between requests.
        case idle
        /// Inside a multibulk request: `remaining` bulks to go, the next one starting at `cursor`
        /// (relative to the buffer's reader index).
        case multibulk(remaining: Int, cursor: Int)
    }

    var limits: Limits
    private var state: State = .idle
    private var spans: [CommandArguments.Span] = []
    /// Readable bytes required before another attempt can make progress.
    private var needed = 0
    /// Inline arguments, unescaped.
    private var inlineScratch = ByteBuffer()

    init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Whether a partially received request is pending.
    var isMidRequest: Bool {
        if case .multibulk = state { return true }
        return false
    }

    /// Decodes the next request at the front of `buffer`.
    ///
    /// - Returns: the request's arguments, with its bytes consumed; `nil` when more bytes are needed.
    ///   Empty requests (`*0`, blank inline lines) are skipped.
    /// - Throws: ``CommandProtocolError`` when the bytes can never form a request.
    mutating func next(_ buffer: inout ByteBuffer, authenticated: Bool) throws(CommandProtocolError) -> CommandArguments? {
        while true {
            let readable = buffer.readableBytes
            if readable == 0 || readable < needed { return nil }
            switch state {
            case .idle:
                let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self)!
                if first == UInt8(ascii: "*") {
                    guard let (count, headerLength) = try parseHeader(buffer, at: 0, tooBig: "too big mbulk count string") else {
                        return nil
                    }
                    guard let count, count <= Int64(Int32.max), count <= Int64(limits.maxArguments) else {
                        reset()
                        throw CommandProtocolError(reason: "invalid multibulk length")
                    }
                    guard authenticated || count <= Int64(limits.maxUnauthenticatedArguments) else {
                        reset()
                        throw CommandProtocolError(reason: "unauthenticated multibulk length")
                    }
                    if count <= 0 {
                        buffer.moveReaderIndex(forwardBy: headerLength)
                        continue
                    }
                    spans.removeAll(keepingCapacity: true)
                    spans.reserveCapacity(min(Int(count), 1024))
                    state = .multibulk(remaining: Int(count), cursor: headerLength)
                } else {
                    guard let consumed = try parseInline(buffer) else { return nil }
                    buffer.moveReaderIndex(forwardBy: consumed)
                    if spans.isEmpty { continue }
                    return CommandArguments(buffer: inlineScratch, spans: spans)
                }
            case .multibulk(var remaining, var cursor):
                while remaining > 0 {
                    guard cursor < readable else {
                        needed = cursor + 1
                        state = .multibulk(remaining: remaining, cursor: cursor)
                        return nil
                    }
                    let marker = buffer.getInteger(at: buffer.readerIndex + cursor, as: UInt8.self)!
                    guard marker == UInt8(ascii: "$") else {
                        reset()
                        throw CommandProtocolError(reason: "expected '$', got '\(Character(Unicode.Scalar(marker)))'")
                    }
                    guard let (length, headerLength) = try parseHeader(buffer, at: cursor, tooBig: "too big bulk count string") else {
                        state = .multibulk(remaining: remaining, cursor: cursor)
                        return nil
                    }
                    guard let length, length >= 0, length <= Int64(limits.maxBulkLength) else {
                        reset()
                        throw CommandProtocolError(reason: "invalid bulk length")
                    }
                    guard authenticated || length <= Int64(limits.maxUnauthenticatedBulkLength) else {
                        reset()
                        throw CommandProtocolError(reason: "unauthenticated bulk length")
                    }
                    let payload = cursor + headerLength
                    let end = payload + Int(length) + 2
                    guard end <= readable else {
                        needed = end
                        state = .multibulk(remaining: remaining, cursor: cursor)
                        return nil
                    }
                    let terminator = buffer.getInteger(at: buffer.readerIndex + end - 2, endianness: .big, as: UInt16.self)!
                    guard terminator == 0x0D0A else {
                        reset()
                        throw CommandProtocolError(reason: "expected CRLF after bulk argument")
                    }
                    spans.append(CommandArguments.Span(offset: payload, count: Int(length)))
                    cursor = end
                    remaining -= 1
                }
                let arguments = CommandArguments(buffer: buffer, spans: spans)
                buffer.moveReaderIndex(forwardBy: cursor)
                state = .idle
                needed = 0
                return arguments
            }
        }
    }

    /// Forgets any partial request.
    mutating func reset() {
        state = .idle
        needed = 0
        spans.removeAll(keepingCapacity: true)
    }

    /// Parses a `*N\r\n` or `$N\r\n` header line starting at `offset`.
    ///
    /// - Returns: `nil` when the line is incomplete; otherwise the parsed number (`nil` if not an integer)
    ///   and the header's length including CRLF.
    private mutating func parseHeader(
        _ buffer: ByteBuffer,
        at offset: Int,
        tooBig: String
    ) throws(CommandProtocolError) -> (Int64?, Int)? {
        let limit = limits.maxInlineLength
        let result: (Int64?, Int)?? = buffer.withUnsafeReadableBytes { raw -> (Int64?, Int)?? in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[offset...])
            guard let cr = bytes.firstIndex(of: UInt8(ascii: "\r")) else {
                return bytes.count > limit ? .some(nil) : nil
            }
            guard cr + 2 <= bytes.count else { return nil }
            let number = Number.parseInt64(UnsafeRawBufferPointer(rebasing: bytes[1..<cr]))
            return .some((number, cr + 2))
        }
        switch result {
        case .none:
            needed = 0
            return nil
        case .some(.none):
            reset()
            throw CommandProtocolError(reason: tooBig)
        case .some(.some(let parsed)):
            return parsed
        }
    }

    /// Parses an inline command line into ``inlineScratch`` and ``spans``.
    ///
    /// - Returns: the bytes consumed (line and newline), or `nil` when the line is incomplete.
    private mutating func parseInline(_ buffer: ByteBuffer) throws(CommandProtocolError) -> Int? {
        let limit = limits.maxInlineLength
        let newline: Int? = buffer.withUnsafeReadableBytes { $0.firstIndex(of: UInt8(ascii: "\n")) }
        guard let newline else {
            if buffer.readableBytes > limit {
                reset()
                throw CommandProtocolError(reason: "too big inline request")
            }
            needed = 0
            return nil
        }
        spans.removeAll(keepingCapacity: true)
        inlineScratch.clear()
        var scratch = inlineScratch
        inlineScratch = ByteBuffer()
        var splitSpans = spans
        spans = []
        let ok = buffer.withUnsafeReadableBytes { raw -> Bool in
            var line = UnsafeRawBufferPointer(rebasing: raw[0..<newline])
            if let last = line.last, last == UInt8(ascii: "\r") {
                line = UnsafeRawBufferPointer(rebasing: line[0..<(line.count - 1)])
            }
            return InlineSplitter.split(line, into: &scratch, spans: &splitSpans)
        }
        inlineScratch = scratch
        spans = splitSpans
        guard ok else {
            reset()
            throw CommandProtocolError(reason: "unbalanced quotes in request")
        }
        needed = 0
        return newline + 1
    }
}

/// Splits an inline command line into arguments the way Redis' `sdssplitargs` does: whitespace
/// separated, with `"double quoted"` strings (supporting `\n`, `\r`, `\t`, `\b`, `\a`, `\xHH` and `\<c>`)
/// and `'single quoted'` strings (supporting `\'`).
enum InlineSplitter {
    /// Appends each argument's bytes to `scratch` and its span to `spans`.
    ///
    /// - Returns: `false` for unbalanced quotes or a closing quote not followed by whitespace.
    static func split(
        _ line: UnsafeRawBufferPointer,
        into scratch: inout ByteBuffer,
        spans: inout [CommandArguments.Span]
    ) -> Bool {
        // C strings end at the first NUL; so does the line here.
        let end = line.firstIndex(of: 0) ?? line.count
        var p = 0
        @inline(__always) func at(_ i: Int) -> UInt8 { i < end ? line[i] : 0 }
        let base = scratch.readerIndex
        while true {
            while p < end && ASCII.isSpace(line[p]) { p += 1 }
            if p >= end { return true }
            var inDouble = false
            var inSingle = false
            let start = scratch.writerIndex
            var done = false
            while !done {
                let c = at(p)
                if inDouble {
                    if c == UInt8(ascii: "\\") && at(p + 1) == UInt8(ascii: "x"),
                       let high = hexValue(at(p + 2)), let low = hexValue(at(p + 3)) {
                        scratch.writeInteger(high << 4 | low)
                        p += 3
                    } else if c == UInt8(ascii: "\\") && at(p + 1) != 0 {
                        p += 1
                        switch at(p) {
                        case UInt8(ascii: "n"): scratch.writeInteger(UInt8(ascii: "\n"))
                        case UInt8(ascii: "r"): scratch.writeInteger(UInt8(ascii: "\r"))
                        case UInt8(ascii: "t"): scratch.writeInteger(UInt8(ascii: "\t"))
                        case UInt8(ascii: "b"): scratch.writeInteger(UInt8(0x08))
                        case UInt8(ascii: "a"): scratch.writeInteger(UInt8(0x07))
                        default: scratch.writeInteger(at(p))
                        }
                    } else if c == UInt8(ascii: "\"") {
                        if at(p + 1) != 0 && !ASCII.isSpace(at(p + 1)) { return false }
                        done = true
                    } else if c == 0 {
                        return false
                    } else {
                        scratch.writeInteger(c)
                    }
                } else if inSingle {
                    if c == UInt8(ascii: "\\") && at(p + 1) == UInt8(ascii: "'") {
                        p += 1
                        scratch.writeInteger(UInt8(ascii: "'"))
                    } else if c == UInt8(ascii: "'") {
                        if at(p + 1) != 0 && !ASCII.isSpace(at(p + 1)) { return false }
                        done = true
                    } else if c == 0 {
                        return false
                    } else {
                        scratch.writeInteger(c)
                    }
                } else {
                    switch c {
                    case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"), 0:
                        done = true
                    case UInt8(ascii: "\""):
                        inDouble = true
                    case UInt8(ascii: "'"):
                        inSingle = true
                    default:
                        scratch.writeInteger(c)
                    }
                }
                if p < end { p += 1 }
            }
            spans.append(CommandArguments.Span(offset: start - base, count: scratch.writerIndex - start))
        }
    }

    @inline(__always)
    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
