public import NIOCore

/// One task's outcome as it travels back to the job's caller.
///
/// Wire form: magic `CTR5` · jobID (u16 + UTF-8) · index (u64) · attempt (u16) · crashes (u16) ·
/// workerID (u16 + UTF-8) · started (u64 µs since the Unix epoch, store clock) · duration (u64 µs) ·
/// shared values at hand (u32) · shared bytes fetched (u64) ·
/// outcome (u8: 0 output, 1 failure) · payload (u32 + bytes: the encoded output, or the JSON of a
/// ``RemoteFailure``). Decoding never traps; malformed bytes give an ``EnvelopeError``.
public struct TaskResult: Sendable, Hashable {
    /// The job the task belongs to.
    public var jobID: String
    /// The task's index in its job.
    public var index: UInt64
    /// Which attempt produced this result.
    public var attempt: UInt16
    /// How many crashes the task had been charged when this attempt ran (so a retry keeps the count).
    public var crashes: UInt16
    /// The worker that ran the task.
    public var workerID: String
    /// How long the function ran, in microseconds (0 when it never ran).
    public var durationMicroseconds: UInt64
    /// When the function started, in microseconds since the Unix epoch on the store's clock
    /// (``StoreClock``); 0 when it never ran.
    public var startedMicroseconds: UInt64 = 0
    /// The encoded output, or why there is none.
    public var outcome: Result<[UInt8], RemoteFailure> {
        get { payload.map { Array($0.readableBytesView) } }
        set { payload = newValue.map { ByteBuffer(bytes: $0) } }
    }
    /// The encoded output as received (a view of the bytes read from the store, not a copy), or why there
    /// is none.
    var payload: Result<ByteBuffer, RemoteFailure>
    /// What the task used of the values its payloads share by hash.
    var shared = SharedUse()

    /// Creates a result.
    public init(
        jobID: String, index: UInt64, attempt: UInt16, crashes: UInt16 = 0, workerID: String,
        durationMicroseconds: UInt64 = 0, outcome: Result<[UInt8], RemoteFailure>
    ) {
        self.jobID = jobID
        self.index = index
        self.attempt = attempt
        self.crashes = crashes
        self.workerID = workerID
        self.durationMicroseconds = durationMicroseconds
        self.payload = outcome.map { ByteBuffer(bytes: $0) }
    }

    static let magic: [UInt8] = [UInt8(ascii: "C"), UInt8(ascii: "T"), UInt8(ascii: "R"), 5]

    /// The wire form.
    public func encoded() throws -> ByteBuffer {
        var b = ByteBuffer()
        b.writeBytes(Self.magic)
        try b.writeShortString(jobID, field: "jobID")
        b.writeInteger(index)
        b.writeInteger(attempt)
        b.writeInteger(crashes)
        try b.writeShortString(workerID, field: "workerID")
        b.writeInteger(startedMicroseconds)
        b.writeInteger(durationMicroseconds)
        b.writeInteger(UInt32(clamping: shared.hits))
        b.writeInteger(UInt64(clamping: shared.fetchedBytes))
        var bytes: ByteBuffer
        switch payload {
        case .success(let output):
            b.writeInteger(UInt8(0))
            bytes = output
        case .failure(let failure):
            b.writeInteger(UInt8(1))
            bytes = ByteBuffer(bytes: try PayloadCodec.encode(failure))
        }
        guard bytes.readableBytes <= Int(UInt32.max) else { throw EnvelopeError(description: "result payload over 4 GiB") }
        b.writeInteger(UInt32(bytes.readableBytes))
        b.writeBuffer(&bytes)
        return b
    }

    /// Reads a result from all of `buffer`'s readable bytes.
    public init(decoding buffer: ByteBuffer) throws(EnvelopeError) {
        var b = buffer
        guard b.readBytes(length: 4) == Self.magic else { throw EnvelopeError(description: "not a Curtain task result") }
        let jobID = try b.readShortString(field: "jobID")
        guard let index = b.readInteger(as: UInt64.self), let attempt = b.readInteger(as: UInt16.self),
            let crashes = b.readInteger(as: UInt16.self)
        else {
            throw EnvelopeError(description: "result truncated in index, attempt or crashes")
        }
        let workerID = try b.readShortString(field: "workerID")
        guard let started = b.readInteger(as: UInt64.self), let duration = b.readInteger(as: UInt64.self),
            let hits = b.readInteger(as: UInt32.self),
            let fetched = b.readInteger(as: UInt64.self)
        else { throw EnvelopeError(description: "result truncated in duration or shared-value counts") }
        guard let kind = b.readInteger(as: UInt8.self), let length = b.readInteger(as: UInt32.self),
            let payload = b.readSlice(length: Int(length)), b.readableBytes == 0
        else { throw EnvelopeError(description: "result truncated or followed by stray bytes") }
        let outcome: Result<ByteBuffer, RemoteFailure>
        switch kind {
        case 0:
            outcome = .success(payload)
        case 1:
            guard let failure = try? PayloadCodec.decode(RemoteFailure.self, from: Array(payload.readableBytesView)) else {
                throw EnvelopeError(description: "result carries an unreadable failure record")
            }
            outcome = .failure(failure)
        default:
            throw EnvelopeError(description: "result has unknown outcome kind \(kind)")
        }
        self.init(
            jobID: jobID, index: index, attempt: attempt, crashes: crashes, workerID: workerID,
            durationMicroseconds: duration, outcome: .success([]))
        self.payload = outcome
        self.startedMicroseconds = started
        self.shared = SharedUse(hits: Int(hits), fetchedBytes: Int(clamping: fetched))
    }
}
