public import NIOCore

/// Why bytes could not be read as a ``TaskEnvelope``.
public struct EnvelopeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was wrong, naming the field.
    public var description: String
}

/// One task as it travels to a worker: which build, job and function it belongs to, its index in the job,
/// its attempt and crash counts, its timeout, the function's encoded captures and the encoded input.
///
/// The wire form is a small binary header plus length-prefixed fields (see ``encode(into:)``). Decoding
/// checks every length against the bytes actually present and never traps: malformed bytes produce an
/// ``EnvelopeError`` naming the field, so a worker can log and reject them and live on.
public struct TaskEnvelope: Sendable, Hashable {
    /// The build id of the executable that created the task; a worker of another build never runs it.
    public var buildID: String
    /// The job the task belongs to.
    public var jobID: String
    /// The task's position in its job (the input's index for `map`).
    public var index: UInt64
    /// 1 for the first run; incremented each time the task is handed out again (after a crash, or a thrown
    /// error or timeout its job retries).
    public var attempt: UInt16
    /// How many workers died while this task was the only one in their hands.
    public var crashes: UInt16
    /// Set when a worker died holding this task among others: it runs alone next time, so a second crash
    /// is charged to the task that caused it and not to its batch mates.
    public var suspect: Bool
    /// The longest the function may run, in milliseconds; 0 for no limit.
    public var timeoutMilliseconds: UInt32
    /// The registered name of the function to run.
    public var function: String
    /// The function value's encoded stored properties (its captures).
    public var functionPayload: [UInt8]
    /// The encoded input.
    public var input: [UInt8]
    /// The trace context of the job that sent it, as the tracer injected it (W3C `traceparent` and
    /// `tracestate` with an OpenTelemetry tracer); empty when nothing traces. The worker's span for the
    /// task is its child.
    public var traceContext: [String: String] = [:]

    /// Creates an envelope.
    public init(
        buildID: String, jobID: String, index: UInt64, attempt: UInt16 = 1, crashes: UInt16 = 0,
        suspect: Bool = false, timeoutMilliseconds: UInt32 = 0, function: String,
        functionPayload: [UInt8], input: [UInt8]
    ) {
        self.buildID = buildID
        self.jobID = jobID
        self.index = index
        self.attempt = attempt
        self.crashes = crashes
        self.suspect = suspect
        self.timeoutMilliseconds = timeoutMilliseconds
        self.function = function
        self.functionPayload = functionPayload
        self.input = input
    }

    /// The four bytes every envelope starts with: `CTE` and the format version.
    static let magic: [UInt8] = [UInt8(ascii: "C"), UInt8(ascii: "T"), UInt8(ascii: "E"), 2]

    /// Appends the wire form to `buffer`.
    ///
    /// Layout: magic (4) · buildID (u16 length + UTF-8) · jobID (u16 + UTF-8) · index (u64) · attempt (u16) ·
    /// crashes (u16) · flags (u8: bit 0 suspect, bit 1 trace context) · timeout (u32 ms) · function (u16 +
    /// UTF-8) · captures (u32 + bytes) · input (u32 + bytes) · with bit 1, the trace context: a count (u8)
    /// and that many name and value pairs (each u16 + UTF-8); integers big-endian.
    public func encode(into buffer: inout ByteBuffer) throws(EnvelopeError) {
        buffer.writeBytes(Self.magic)
        try buffer.writeShortString(buildID, field: "buildID")
        try buffer.writeShortString(jobID, field: "jobID")
        buffer.writeInteger(index)
        buffer.writeInteger(attempt)
        buffer.writeInteger(crashes)
        let traced = !traceContext.isEmpty && traceContext.count <= 255
        buffer.writeInteger(UInt8(suspect ? 1 : 0) | (traced ? 2 : 0))
        buffer.writeInteger(timeoutMilliseconds)
        try buffer.writeShortString(function, field: "function")
        try Self.writeBlob(functionPayload, field: "function captures", into: &buffer)
        try Self.writeBlob(input, field: "input", into: &buffer)
        if traced {
            buffer.writeInteger(UInt8(traceContext.count))
            for (name, value) in traceContext.sorted(by: { $0.key < $1.key }) {
                try buffer.writeShortString(name, field: "trace context name")
                try buffer.writeShortString(value, field: "trace context value")
            }
        }
    }

    /// The wire form as a new buffer.
    public func encoded() throws(EnvelopeError) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(32 + buildID.utf8.count + jobID.utf8.count + function.utf8.count + functionPayload.count + input.count)
        try encode(into: &buffer)
        return buffer
    }

    /// Reads an envelope from the whole of `buffer`'s readable bytes.
    ///
    /// - Parameter maximumPayload: the largest captures or input accepted, in bytes.
    /// - Throws: ``EnvelopeError`` naming the first malformed field; trailing bytes are an error too.
    public init(decoding buffer: ByteBuffer, maximumPayload: Int = 512 * 1024 * 1024) throws(EnvelopeError) {
        var b = buffer
        guard let magic = b.readBytes(length: 4) else {
            throw EnvelopeError(description: "envelope too short (\(buffer.readableBytes) bytes) for its header")
        }
        guard magic == Self.magic else {
            throw EnvelopeError(description: "not a Curtain task envelope (bad magic or unsupported version)")
        }
        let buildID = try b.readShortString(field: "buildID")
        let jobID = try b.readShortString(field: "jobID")
        guard let index = b.readInteger(as: UInt64.self) else { throw EnvelopeError(description: "envelope truncated in index") }
        guard let attempt = b.readInteger(as: UInt16.self) else { throw EnvelopeError(description: "envelope truncated in attempt") }
        guard let crashes = b.readInteger(as: UInt16.self) else { throw EnvelopeError(description: "envelope truncated in crashes") }
        guard let flags = b.readInteger(as: UInt8.self) else { throw EnvelopeError(description: "envelope truncated in flags") }
        guard flags & ~3 == 0 else { throw EnvelopeError(description: "envelope has unknown flags \(flags)") }
        guard let timeout = b.readInteger(as: UInt32.self) else { throw EnvelopeError(description: "envelope truncated in timeout") }
        let function = try b.readShortString(field: "function")
        let captures = try Self.readBlob(&b, field: "function captures", maximum: maximumPayload)
        let input = try Self.readBlob(&b, field: "input", maximum: maximumPayload)
        var traceContext: [String: String] = [:]
        if flags & 2 != 0 {
            guard let count = b.readInteger(as: UInt8.self) else { throw EnvelopeError(description: "envelope truncated in its trace context") }
            for _ in 0..<count {
                let name = try b.readShortString(field: "trace context name")
                traceContext[name] = try b.readShortString(field: "trace context value")
            }
        }
        guard b.readableBytes == 0 else {
            throw EnvelopeError(description: "\(b.readableBytes) unexpected bytes after the envelope's input")
        }
        self.init(
            buildID: buildID, jobID: jobID, index: index, attempt: attempt, crashes: crashes, suspect: flags & 1 != 0,
            timeoutMilliseconds: timeout, function: function, functionPayload: captures, input: input)
        self.traceContext = traceContext
    }

    private static func writeBlob(_ bytes: [UInt8], field: String, into buffer: inout ByteBuffer) throws(EnvelopeError) {
        guard bytes.count <= Int(UInt32.max) else {
            throw EnvelopeError(description: "\(field) is \(bytes.count) bytes; at most 4 GiB")
        }
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
    }

    private static func readBlob(_ b: inout ByteBuffer, field: String, maximum: Int) throws(EnvelopeError) -> [UInt8] {
        guard let length = b.readInteger(as: UInt32.self) else {
            throw EnvelopeError(description: "envelope truncated in the length of \(field)")
        }
        guard Int(length) <= maximum else {
            throw EnvelopeError(description: "\(field) declares \(length) bytes, over the limit of \(maximum)")
        }
        guard let bytes = b.readBytes(length: Int(length)) else {
            throw EnvelopeError(description: "\(field) declares \(length) bytes but \(b.readableBytes) remain")
        }
        return bytes
    }
}

extension ByteBuffer {
    /// Writes `s` as a u16 length and its UTF-8 bytes (the short-string field of envelopes and results).
    mutating func writeShortString(_ s: String, field: String) throws(EnvelopeError) {
        let count = s.utf8.count
        guard count <= Int(UInt16.max) else { throw EnvelopeError(description: "\(field) is \(count) bytes; at most 65535") }
        writeInteger(UInt16(count))
        writeString(s)
    }

    /// Reads a short-string field written by ``writeShortString(_:field:)``, naming `field` in errors.
    mutating func readShortString(field: String) throws(EnvelopeError) -> String {
        guard let length = readInteger(as: UInt16.self) else {
            throw EnvelopeError(description: "truncated in the length of \(field)")
        }
        guard let bytes = readBytes(length: Int(length)) else {
            throw EnvelopeError(description: "\(field) declares \(length) bytes but \(readableBytes) remain")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw EnvelopeError(description: "\(field) is not valid UTF-8")
        }
        return text
    }
}
