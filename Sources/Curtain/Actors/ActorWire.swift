import NIOCore

/// One message to an actor host's inbox: a call to one of its actors, a request to create an actor of a
/// registered type, or a request to release one.
///
/// Layout: magic `CAM` + version (4) · kind (u8) · call id (u64) · reply node (u16 + UTF-8) · actor name
/// (u16 + UTF-8) · target (u16 + UTF-8: the method's mangled identifier, or the type's registered name for
/// a spawn, or the owner's liveness key for a spawn after a `\n`) · argument count (u16) · arguments
/// (u32 + bytes each) · only when the caller is traced, its trace context: a count (u8, at least 1) and
/// that many name and value pairs (u16 + UTF-8 each); integers big-endian. Decoding checks every length
/// and never traps.
struct ActorMessage: Sendable, Hashable {
    enum Kind: UInt8, Sendable {
        case call = 1
        case spawn = 2
        case release = 3
    }

    var kind: Kind
    /// Unique among the sending node's calls; the reply carries it back.
    var callID: UInt64
    /// The node whose reply list gets the answer.
    var replyNode: String
    /// The actor's name (the lasting half of its ``CurtainActorID``).
    var actor: String
    /// For a call, the method's identifier (`RemoteCallTarget.identifier`); for a spawn, the registered
    /// type name.
    var target: String
    /// For a call, the encoded arguments; for a spawn, `[owner liveness key]` (empty bytes for none).
    var arguments: [[UInt8]]
    /// The caller's trace context (W3C `traceparent`/`tracestate` with OpenTelemetry), when a tracer is
    /// bootstrapped: the host runs the call in a child span. Empty otherwise, and then not on the wire.
    var traceContext: [String: String] = [:]

    static let magic: [UInt8] = [UInt8(ascii: "C"), UInt8(ascii: "A"), UInt8(ascii: "M"), 1]

    func encoded() throws(EnvelopeError) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(24 + replyNode.utf8.count + actor.utf8.count + target.utf8.count + arguments.reduce(0) { $0 + 4 + $1.count })
        buffer.writeBytes(Self.magic)
        buffer.writeInteger(kind.rawValue)
        buffer.writeInteger(callID)
        try buffer.writeShortString(replyNode, field: "reply node")
        try buffer.writeShortString(actor, field: "actor")
        try buffer.writeShortString(target, field: "target")
        guard arguments.count <= Int(UInt16.max) else {
            throw EnvelopeError(description: "a call has \(arguments.count) arguments; at most 65535")
        }
        buffer.writeInteger(UInt16(arguments.count))
        for argument in arguments {
            guard argument.count <= Int(UInt32.max) else {
                throw EnvelopeError(description: "an argument is \(argument.count) bytes; at most 4 GiB")
            }
            buffer.writeInteger(UInt32(argument.count))
            buffer.writeBytes(argument)
        }
        // The trace context, only when there is one: untraced messages end after their arguments.
        if !traceContext.isEmpty {
            guard traceContext.count <= Int(UInt8.max) else {
                throw EnvelopeError(description: "a call carries \(traceContext.count) trace context entries; at most 255")
            }
            buffer.writeInteger(UInt8(traceContext.count))
            for (name, value) in traceContext.sorted(by: { $0.key < $1.key }) {
                try buffer.writeShortString(name, field: "trace context name")
                try buffer.writeShortString(value, field: "trace context value")
            }
        }
        return buffer
    }

    init(kind: Kind, callID: UInt64, replyNode: String, actor: String, target: String, arguments: [[UInt8]]) {
        self.kind = kind
        self.callID = callID
        self.replyNode = replyNode
        self.actor = actor
        self.target = target
        self.arguments = arguments
    }

    init(decoding buffer: ByteBuffer, maximumPayload: Int = 512 * 1024 * 1024) throws(EnvelopeError) {
        var b = buffer
        guard b.readBytes(length: 4) == Self.magic else {
            throw EnvelopeError(description: "not a Curtain actor message (bad magic or unsupported version)")
        }
        guard let rawKind = b.readInteger(as: UInt8.self), let kind = Kind(rawValue: rawKind) else {
            throw EnvelopeError(description: "actor message has an unknown kind")
        }
        guard let callID = b.readInteger(as: UInt64.self) else { throw EnvelopeError(description: "actor message truncated in call id") }
        let replyNode = try b.readShortString(field: "reply node")
        let actor = try b.readShortString(field: "actor")
        let target = try b.readShortString(field: "target")
        guard let count = b.readInteger(as: UInt16.self) else {
            throw EnvelopeError(description: "actor message truncated in argument count")
        }
        var arguments: [[UInt8]] = []
        arguments.reserveCapacity(Int(count))
        for index in 0..<Int(count) {
            guard let length = b.readInteger(as: UInt32.self) else {
                throw EnvelopeError(description: "actor message truncated in the length of argument \(index)")
            }
            guard Int(length) <= maximumPayload else {
                throw EnvelopeError(description: "argument \(index) declares \(length) bytes, over the limit of \(maximumPayload)")
            }
            guard let bytes = b.readBytes(length: Int(length)) else {
                throw EnvelopeError(description: "argument \(index) declares \(length) bytes but \(b.readableBytes) remain")
            }
            arguments.append(bytes)
        }
        var traceContext: [String: String] = [:]
        if let entries = b.readInteger(as: UInt8.self) {
            guard entries > 0 else {
                throw EnvelopeError(description: "actor message has \(b.readableBytes + 1) unexpected bytes after its arguments (an empty trace context)")
            }
            for entry in 0..<Int(entries) {
                let name = try b.readShortString(field: "trace context entry \(entry)'s name")
                let value = try b.readShortString(field: "trace context entry \(entry)'s value")
                guard traceContext.updateValue(value, forKey: name) == nil else {
                    throw EnvelopeError(description: "actor message's trace context names '\(Abbreviation.text(name, limit: 40))' twice")
                }
            }
        }
        guard b.readableBytes == 0 else {
            throw EnvelopeError(description: "\(b.readableBytes) unexpected bytes after an actor message")
        }
        self.init(kind: kind, callID: callID, replyNode: replyNode, actor: actor, target: target, arguments: arguments)
        self.traceContext = traceContext
    }
}

/// The answer to an ``ActorMessage``, pushed to the caller's reply list.
///
/// Layout: magic `CAR` + version (4) · call id (u64) · status (u8) · type (u16 + UTF-8: the thrown error's
/// type) · payload (u32 + bytes: the encoded value, or the error's description in UTF-8).
struct ActorReply: Sendable, Hashable {
    enum Status: UInt8, Sendable {
        /// The method returned a value (payload), or the spawn or release succeeded.
        case value = 0
        /// The method returned nothing.
        case void = 1
        /// The method threw (type and description).
        case thrown = 2
        /// No actor of that name lives on the host.
        case unknownActor = 3
        /// The actor has no such distributed method, or the call could not be decoded.
        case badCall = 4
    }

    var callID: UInt64
    var status: Status
    var errorType: String
    var payload: [UInt8]

    static let magic: [UInt8] = [UInt8(ascii: "C"), UInt8(ascii: "A"), UInt8(ascii: "R"), 1]

    init(callID: UInt64, status: Status, errorType: String = "", payload: [UInt8] = []) {
        self.callID = callID
        self.status = status
        self.errorType = errorType
        self.payload = payload
    }

    func encoded() -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(20 + errorType.utf8.count + payload.count)
        buffer.writeBytes(Self.magic)
        buffer.writeInteger(callID)
        buffer.writeInteger(status.rawValue)
        let type = errorType.utf8.count <= Int(UInt16.max) ? errorType : String(errorType.prefix(1000))
        try? buffer.writeShortString(type, field: "error type")
        buffer.writeInteger(UInt32(truncatingIfNeeded: payload.count))
        buffer.writeBytes(payload)
        return buffer
    }

    init(decoding buffer: ByteBuffer) throws(EnvelopeError) {
        var b = buffer
        guard b.readBytes(length: 4) == Self.magic else {
            throw EnvelopeError(description: "not a Curtain actor reply (bad magic or unsupported version)")
        }
        guard let callID = b.readInteger(as: UInt64.self) else { throw EnvelopeError(description: "actor reply truncated in call id") }
        guard let rawStatus = b.readInteger(as: UInt8.self), let status = Status(rawValue: rawStatus) else {
            throw EnvelopeError(description: "actor reply has an unknown status")
        }
        let errorType = try b.readShortString(field: "error type")
        guard let length = b.readInteger(as: UInt32.self), let payload = b.readBytes(length: Int(length)), b.readableBytes == 0 else {
            throw EnvelopeError(description: "actor reply has a malformed payload")
        }
        self.init(callID: callID, status: status, errorType: errorType, payload: payload)
    }
}
