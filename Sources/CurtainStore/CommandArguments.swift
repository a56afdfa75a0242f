import NIOCore

/// The arguments of one client request (the command name is argument 0), viewed in place.
///
/// The bytes stay in the buffer they were read into; nothing is copied until a command stores a key or
/// value (``bytes(_:)``) or the request is queued by `MULTI` (``owned()``). A value of this type must not
/// outlive the command execution it was made for, except through ``owned()``.
struct CommandArguments {
    /// Where one argument lies, relative to the buffer's reader index.
    struct Span: Sendable {
        var offset: Int
        var count: Int
    }

    /// The buffer holding the arguments; its reader index is the origin of every span.
    private(set) var buffer: ByteBuffer
    /// One span per argument.
    private(set) var spans: [Span]

    init(buffer: ByteBuffer, spans: [Span]) {
        self.buffer = buffer
        self.spans = spans
    }

    /// Arguments built from values (used by tests and internal re-dispatch).
    init(_ values: [StoreBytes]) {
        var buffer = ByteBuffer()
        var spans: [Span] = []
        spans.reserveCapacity(values.count)
        for value in values {
            let offset = buffer.writerIndex
            value.withUnsafeBytes { _ = buffer.writeBytes($0) }
            spans.append(Span(offset: offset, count: value.count))
        }
        self.init(buffer: buffer, spans: spans)
    }

    /// The number of arguments, including the command name.
    @inline(__always)
    var count: Int { spans.count }

    /// Calls `body` with the bytes of argument `index`.
    @inline(__always)
    func withBytes<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let span = spans[index]
        return try buffer.withUnsafeReadableBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[span.offset..<(span.offset + span.count)]))
        }
    }

    /// A stored copy of argument `index`.
    @inline(__always)
    func bytes(_ index: Int) -> StoreBytes {
        withBytes(index) { StoreBytes($0) }
    }

    /// Argument `index` as text (invalid UTF-8 repaired); for error messages and rare options.
    func string(_ index: Int) -> String {
        withBytes(index) { String(decoding: $0, as: UTF8.self) }
    }

    /// The byte length of argument `index`.
    @inline(__always)
    func length(_ index: Int) -> Int { spans[index].count }

    /// Whether argument `index` equals `lowercased` ignoring ASCII case; `lowercased` must be lowercase ASCII.
    @inline(__always)
    func matches(_ index: Int, _ lowercased: StaticString) -> Bool {
        guard spans[index].count == lowercased.utf8CodeUnitCount else { return false }
        return withBytes(index) { bytes in
            let expected = UnsafeRawBufferPointer(start: lowercased.utf8Start, count: lowercased.utf8CodeUnitCount)
            for i in 0..<bytes.count where ASCII.lowercase(bytes[i]) != expected[i] {
                return false
            }
            return true
        }
    }

    /// Argument `index` parsed as Redis parses integers (`string2ll`), or `nil`.
    @inline(__always)
    func int64(_ index: Int) -> Int64? {
        withBytes(index) { Number.parseInt64($0) }
    }

    /// Argument `index` parsed as a double (`strtod` rules Redis uses for timeouts and floats), or `nil`.
    func double(_ index: Int) -> Double? {
        withBytes(index) { Number.parseDouble($0) }
    }

    /// A copy whose bytes are owned by a fresh, compact buffer (for queuing in `MULTI`).
    func owned() -> CommandArguments {
        var total = 0
        for span in spans { total += span.count }
        var copy = ByteBufferAllocator().buffer(capacity: total)
        var newSpans: [Span] = []
        newSpans.reserveCapacity(spans.count)
        for index in 0..<spans.count {
            let offset = copy.writerIndex
            withBytes(index) { _ = copy.writeBytes($0) }
            newSpans.append(Span(offset: offset, count: spans[index].count))
        }
        return CommandArguments(buffer: copy, spans: newSpans)
    }
}

/// ASCII helpers.
enum ASCII {
    /// `byte` with `A`…`Z` mapped to `a`…`z`.
    @inline(__always)
    static func lowercase(_ byte: UInt8) -> UInt8 {
        byte &- 65 < 26 ? byte | 0x20 : byte
    }

    /// Whether `byte` is whitespace as C's `isspace` sees it.
    @inline(__always)
    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (byte >= 0x09 && byte <= 0x0D)
    }
}
