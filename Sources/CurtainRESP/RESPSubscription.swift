public import NIOCore

/// One pub/sub message received by a ``RESPSubscription``.
public struct RESPPubSubMessage: Sendable, Hashable {
    /// The channel the message was published to.
    public var channel: String
    /// The pattern that matched, for messages received through `PSUBSCRIBE`.
    public var pattern: String?
    /// The message body, binary-safe.
    public var payload: ByteBuffer

    /// The body as UTF-8 text.
    public var payloadString: String { String(buffer: payload) }

    /// Creates a message.
    public init(channel: String, pattern: String? = nil, payload: ByteBuffer) {
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }
}

/// A pub/sub subscription on a connection of its own, read as an `AsyncSequence` of messages.
///
/// Pub/sub is at-most-once by nature: messages published while the connection is down are lost, so when the
/// connection drops the sequence ends by throwing ``RESPError/connectionClosed(_:)`` instead of silently
/// resubscribing. Create it with ``RESPClient/subscribe(to:patterns:)``.
public final class RESPSubscription: AsyncSequence, Sendable {
    /// The sequence's element type.
    public typealias Element = RESPPubSubMessage

    private let connection: RESPConnection
    private let stream: AsyncThrowingStream<RESPPubSubMessage, any Error>

    init(connection: RESPConnection) async throws {
        self.connection = connection
        let (stream, continuation) = AsyncThrowingStream<RESPPubSubMessage, any Error>.makeStream()
        self.stream = stream
        try await connection.setPushHandlers(
            onPush: { value in
                guard let items = value.array, let kind = items.first?.string?.lowercased() else { return }
                switch kind {
                case "message" where items.count >= 3:
                    if let channel = items[1].string, let payload = items[2].buffer {
                        continuation.yield(RESPPubSubMessage(channel: channel, payload: payload))
                    }
                case "pmessage" where items.count >= 4:
                    if let pattern = items[1].string, let channel = items[2].string, let payload = items[3].buffer {
                        continuation.yield(RESPPubSubMessage(channel: channel, pattern: pattern, payload: payload))
                    }
                default:
                    break
                }
            },
            onClose: { error in continuation.finish(throwing: error) }
        )
        continuation.onTermination = { [connection] termination in
            if case .cancelled = termination {
                Task { await connection.close() }
            }
        }
    }

    /// Subscribes to more channels; returns once the server confirmed each.
    public func subscribe(_ channels: [String]) async throws {
        guard !channels.isEmpty else { return }
        try await connection.subscribeCommand(RESPCommand("SUBSCRIBE", arguments: channels), expected: channels.count)
    }

    /// Subscribes to more glob patterns (`news.*`); returns once the server confirmed each.
    public func psubscribe(_ patterns: [String]) async throws {
        guard !patterns.isEmpty else { return }
        try await connection.subscribeCommand(RESPCommand("PSUBSCRIBE", arguments: patterns), expected: patterns.count)
    }

    /// Unsubscribes from the given channels; returns once the server confirmed each.
    public func unsubscribe(_ channels: [String]) async throws {
        guard !channels.isEmpty else { return }
        try await connection.subscribeCommand(RESPCommand("UNSUBSCRIBE", arguments: channels), expected: channels.count)
    }

    /// Ends the subscription and closes its connection; iteration ends with ``RESPError/connectionClosed(_:)``.
    public func close() async {
        await connection.close()
    }

    /// Returns an iterator over the received messages.
    public func makeAsyncIterator() -> AsyncThrowingStream<RESPPubSubMessage, any Error>.AsyncIterator {
        stream.makeAsyncIterator()
    }
}
