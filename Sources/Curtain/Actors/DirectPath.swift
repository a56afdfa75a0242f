import CurtainRESP
import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How actor calls travel between processes (``CloudConfiguration/actorPath``, `CURTAIN_ACTOR_PATH`).
public enum ActorPath: String, Sendable, CaseIterable, Hashable {
    /// Over a direct connection to the actor's host when it advertises a reachable address, through the
    /// store otherwise (the default).
    case auto
    /// Only over direct connections: a call to a host that cannot be reached directly fails at once with
    /// ``ActorCallError/Kind/transport`` instead of going through the store.
    case direct
    /// Only through the store (four one-way legs per call; what a cluster whose processes cannot reach each
    /// other needs).
    case store
}

/// The direct path's wire: a preamble, a hello in each direction, then length-prefixed frames.
///
/// - The caller opens with the 8 bytes `CURTDIR1`. Anything else gets one line, `-ERR` and the reason (a
///   RESP error, so `redis-cli` pointed at the port shows it), and the connection is closed.
/// - Then frames: a big-endian `UInt32` length and that many bytes, at most ``DirectWire/maximumFrame(for:)``.
/// - The first frame each way is a hello. The caller's: version (u8 1) · build id · its node · the node it
///   means to reach (each u16 + UTF-8). The host's: status (u8, 0 = accepted) · its node or the reason. A
///   host of another build, or one that is not the node asked for (its address was reused), refuses.
/// - After that the caller sends sealed ``ActorMessage``s and the host answers with sealed ``ActorReply``s
///   on the same connection, in any order (each reply names its call).
enum DirectWire {
    static let preamble: [UInt8] = Array("CURTDIR1".utf8)
    static let version: UInt8 = 1

    /// The largest frame either side accepts: the payload limit and room for the message's own fields.
    static func maximumFrame(for maxPayload: Int) -> Int { maxPayload + 64 * 1024 }

    static func frame(_ body: ByteBuffer, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 4 + body.readableBytes)
        buffer.writeInteger(UInt32(truncatingIfNeeded: body.readableBytes))
        buffer.writeImmutableBuffer(body)
        return buffer
    }

    static func hello(buildID: String, from node: String, to host: String, token: String) throws(EnvelopeError) -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(version)
        try body.writeShortString(buildID, field: "build id")
        try body.writeShortString(node, field: "node")
        try body.writeShortString(host, field: "host")
        try body.writeShortString(token, field: "token")
        return body
    }

    /// The largest hello accepted: a stranger cannot make a host buffer more before it is greeted.
    static let maximumHello = 4096

    /// A fresh token for a listener: 128 random bits in hex. A caller learns it only from the store (it is
    /// advertised with the address), so reaching the port is not enough to call anything.
    static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in String(generator.next() as UInt64, radix: 16) }.map { String(repeating: "0", count: 16 - $0.count) + $0 }.joined()
    }

    /// What a listener advertises: `host:port token`, and ` tls` when its connections are encrypted
    /// (``DirectTLS``), so that a caller knows to start with a TLS handshake.
    static func advertisement(address: String, token: String, tls: Bool) -> String {
        "\(address) \(token)" + (tls ? " tls" : "")
    }

    /// The address, token and encryption of an advertisement.
    static func parseAdvertisement(_ text: String) -> (address: String, token: String, tls: Bool)? {
        let parts = text.split(separator: " ")
        switch parts.count {
        case 2: return (String(parts[0]), String(parts[1]), false)
        case 3 where parts[2] == "tls": return (String(parts[0]), String(parts[1]), true)
        default: return nil
        }
    }

    static func answer(accepted: Bool, _ text: String) -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(UInt8(accepted ? 0 : 1))
        try? body.writeShortString(String(text.prefix(4000)), field: "answer")
        return body
    }
}

/// Splits a byte stream into the direct path's frames; on the host side it first checks the preamble.
struct DirectFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    /// What went wrong with the bytes a peer sent.
    struct Violation: Error, CustomStringConvertible {
        let description: String
    }

    var expectPreamble: Bool
    let maximumFrame: Int
    /// The host side's first frame (the hello) may be at most ``DirectWire/maximumHello`` bytes.
    var helloPending: Bool

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if expectPreamble {
            guard buffer.readableBytes >= DirectWire.preamble.count else { return .needMoreData }
            let head = buffer.readBytes(length: DirectWire.preamble.count)!
            guard head == DirectWire.preamble else {
                throw Violation(
                    description: "this is a Curtain actor port: a peer must open with the direct-call preamble 'CURTDIR1', and this one sent \(Self.show(head))")
            }
            expectPreamble = false
        }
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        let limit = helloPending ? DirectWire.maximumHello : maximumFrame
        guard Int(length) <= limit else {
            throw Violation(
                description: helloPending
                    ? "a hello of \(length) bytes is over the limit of \(limit)"
                    : "a frame of \(length) bytes is over the limit of \(maximumFrame) (CURTAIN_MAX_PAYLOAD_BYTES)")
        }
        helloPending = false
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(Self.wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }

    /// The first bytes a foreign peer sent, printable.
    static func show(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        if text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) { return "'\(text)'" }
        return bytes.map { String($0, radix: 16) }.joined(separator: " ")
    }
}

/// Writes frames to a channel and flushes once per turn of its event loop, however many frames were written
/// in that turn: many calls in flight cost one `write` system call per burst, not one per call.
final class FrameWriter: Sendable {
    let channel: any Channel
    /// Only read and written on the channel's loop (an atomic so the writer can be made anywhere).
    private let flushQueued = Atomic<Bool>(false)

    init(channel: any Channel) {
        self.channel = channel
    }

    /// Writes `body` as one frame (from any thread; on the channel's loop it costs no hop).
    func write(_ body: ByteBuffer) {
        let frame = DirectWire.frame(body, allocator: channel.allocator)
        guard channel.eventLoop.inEventLoop else {
            channel.writeAndFlush(frame, promise: nil)
            return
        }
        channel.write(frame, promise: nil)
        guard !flushQueued.load(ordering: .relaxed) else { return }
        flushQueued.store(true, ordering: .relaxed)
        channel.eventLoop.execute { [self] in
            flushQueued.store(false, ordering: .relaxed)
            channel.flush()
        }
    }
}

// MARK: Host side

/// The listening socket of a process that hosts actors: each accepted connection carries one caller's calls.
final class DirectListener: Sendable {
    let channel: any Channel
    /// What callers are told, through the store: `host:port token` (and ` tls`).
    let advertised: String
    private let children: ChildChannels

    /// The connections a listener accepted, closed with it.
    final class ChildChannels: Sendable {
        private let channels = Mutex<(open: [ObjectIdentifier: any Channel], closed: Bool)>(([:], false))

        /// Tracks `channel` until it closes; a channel accepted after ``closeAll()`` is closed at once.
        func add(_ channel: any Channel) {
            let key = ObjectIdentifier(channel)
            let accepted = channels.withLock { state -> Bool in
                guard !state.closed else { return false }
                state.open[key] = channel
                return true
            }
            guard accepted else { return channel.close(promise: nil) }
            channel.closeFuture.whenComplete { _ in self.channels.withLock { _ = $0.open.removeValue(forKey: key) } }
        }

        func closeAll() {
            let open = channels.withLock { state in
                state.closed = true
                return Array(state.open.values)
            }
            for channel in open { channel.close(promise: nil) }
        }
    }

    private init(channel: any Channel, advertised: String, children: ChildChannels) {
        self.channel = channel
        self.advertised = advertised
        self.children = children
    }

    /// Binds `bindHost` (port `port`, 0 for any) and serves calls to `system`'s actors; with `encrypt`,
    /// every connection starts with a TLS handshake keyed by the listener's token (``DirectTLS``).
    static func start(
        group: any EventLoopGroup, bindHost: String, port: Int, advertiseHost: String, buildID: String, node: String,
        maxPayload: Int, sealer: Sealer?, encrypt: Bool, system: @escaping @Sendable () -> CurtainActorSystem?, logger: Logger
    ) async throws -> DirectListener {
        let maximumFrame = DirectWire.maximumFrame(for: maxPayload)
        let token = DirectWire.newToken()
        let tls = encrypt ? try DirectTLSContext(token: token) : nil
        let children = ChildChannels()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelInitializer { child in
                children.add(child)
                return child.eventLoop.makeCompletedFuture {
                    let sync = child.pipeline.syncOperations
                    try DirectTLS.addServer(tls, to: sync)
                    try sync.addHandler(ByteToMessageHandler(DirectFrameDecoder(expectPreamble: true, maximumFrame: maximumFrame, helloPending: true)))
                    try sync.addHandler(
                        DirectHostHandler(
                            buildID: buildID, node: node, token: token, sealer: sealer, maxPayload: maxPayload, system: system,
                            logger: logger))
                }
            }
            .bind(host: bindHost, port: port).get()
        let port = channel.localAddress?.port ?? port
        return DirectListener(
            channel: channel, advertised: DirectWire.advertisement(address: "\(Self.bracketed(advertiseHost)):\(port)", token: token, tls: encrypt),
            children: children)
    }

    /// `host` with brackets when it is an IPv6 address, so `host:port` parses.
    static func bracketed(_ host: String) -> String { host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host }

    /// Stops accepting, and closes every connection it accepted.
    func close() async {
        try? await channel.close()
        children.closeAll()
    }
}

/// Serves one caller's connection: checks its hello, then runs each call and writes the reply back.
final class DirectHostHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let buildID: String
    let node: String
    /// What a caller's hello must carry (advertised in the store with the address).
    let token: String
    let sealer: Sealer?
    let maxPayload: Int
    let system: @Sendable () -> CurtainActorSystem?
    let logger: Logger
    private var greeted = false
    private var frameWriter: FrameWriter?
    private var taskExecutor: EventLoopTaskExecutor?

    private func writer(_ context: ChannelHandlerContext) -> FrameWriter {
        if let frameWriter { return frameWriter }
        let made = FrameWriter(channel: context.channel)
        frameWriter = made
        return made
    }

    private func executor(_ context: ChannelHandlerContext) -> EventLoopTaskExecutor {
        if let taskExecutor { return taskExecutor }
        let made = EventLoopTaskExecutor(eventLoop: context.eventLoop)
        taskExecutor = made
        return made
    }

    init(
        buildID: String, node: String, token: String, sealer: Sealer?, maxPayload: Int,
        system: @escaping @Sendable () -> CurtainActorSystem?, logger: Logger
    ) {
        self.buildID = buildID
        self.node = node
        self.token = token
        self.sealer = sealer
        self.maxPayload = maxPayload
        self.system = system
        self.logger = logger
    }

    /// How long a connection may stay open without a hello: one that says nothing is closed then, so
    /// strangers cannot hold connections (and, on an encrypted port, TLS state) open for free.
    static let helloTimeout: TimeAmount = .seconds(10)

    func handlerAdded(context: ChannelHandlerContext) {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let channel = context.channel
        context.eventLoop.scheduleTask(in: Self.helloTimeout) {
            if !handler.value.greeted { channel.close(promise: nil) }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var body = unwrapInboundIn(data)
        guard greeted else {
            do {
                guard body.readInteger(as: UInt8.self) == DirectWire.version else {
                    throw EnvelopeError(description: "an unsupported direct-call version")
                }
                let build = try body.readShortString(field: "build id")
                let caller = try body.readShortString(field: "node")
                let wanted = try body.readShortString(field: "host")
                let offered = try body.readShortString(field: "token")
                // Nothing about this host is told to a caller without the token (only the store has it).
                guard offered.utf8.count == token.utf8.count, zip(offered.utf8, token.utf8).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else {
                    return refuse(context, "wrong or missing token (a caller learns it from the store)", log: "caller \(caller)")
                }
                guard build == buildID else {
                    return refuse(context, "another build (build \(build) asked for this host's)", log: "caller \(caller)")
                }
                guard wanted == node else {
                    return refuse(context, "this address belongs to another node now", log: "caller \(caller) wanted \(wanted)")
                }
                greeted = true
                context.writeAndFlush(wrapOutboundOut(DirectWire.frame(DirectWire.answer(accepted: true, node))), promise: nil)
            } catch {
                refuse(context, "a malformed hello", log: "\(error)")
            }
            return
        }
        let message: ActorMessage
        do {
            message = try ActorMessage(decoding: try Sealer.open(body, with: sealer), maximumPayload: maxPayload)
        } catch {
            // Its caller cannot be answered (the call id is inside what did not open): the connection is closed,
            // so the caller's calls on it end now rather than wait for replies that will not come.
            logger.warning("rejected a direct actor message; closing its connection", metadata: ["reason": "\(error)", "node": "\(node)"])
            context.close(promise: nil)
            return
        }
        guard let system = system() else {
            context.close(promise: nil)
            return
        }
        // The actor (a default actor) runs on this connection's event loop too, so a call crosses no thread here.
        let writer = self.writer(context)
        let sealer = self.sealer
        let maximumFrame = DirectWire.maximumFrame(for: maxPayload)
        Task(executorPreference: executor(context)) {
            await system.handle(message) { reply in
                var sealed = Sealer.seal(reply.encoded(), with: sealer)
                if sealed.readableBytes > maximumFrame {
                    // Too large for the caller to take: it gets the reason instead of a dropped connection.
                    let refusal = ActorReply(
                        callID: reply.callID, status: .badCall,
                        payload: Array("the result is \(sealed.readableBytes) bytes, over the limit of \(maximumFrame) (CURTAIN_MAX_PAYLOAD_BYTES)".utf8))
                    sealed = Sealer.seal(refusal.encoded(), with: sealer)
                }
                writer.write(sealed)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let violation = error as? DirectFrameDecoder.Violation {
            var line = context.channel.allocator.buffer(capacity: 200)
            line.writeString("-ERR \(violation.description)\r\n")
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(line)).whenComplete { _ in channel.close(promise: nil) }
            logger.warning("closed a connection on the actor port", metadata: ["reason": "\(violation)"])
            return
        }
        let closedByPeer = (error as? IOError).map { [ECONNRESET, EPIPE].contains($0.errnoCode) } ?? false
        if !greeted, !closedByPeer {
            // On an encrypted port: a failed handshake (a stranger speaking plain text, or an old token). A
            // connection that only opens and closes (a health check, a port scan) is not worth a warning.
            let level: Logger.Level = DirectTLS.isClosedDuringHandshake(error) ? .debug : .warning
            logger.log(level: level, "closed a connection on the actor port before its hello", metadata: ["reason": "\(error)"])
        }
        context.close(promise: nil)
    }

    private func refuse(_ context: ChannelHandlerContext, _ reason: String, log detail: String) {
        logger.warning("refused a direct caller", metadata: ["reason": "\(reason)", "detail": "\(detail)"])
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(DirectWire.frame(DirectWire.answer(accepted: false, reason)))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

// MARK: Caller side

/// Why a direct connection could not be made; the call then takes the store (``ActorPath/auto``) or fails
/// (``ActorPath/direct``).
struct DirectConnectError: Error, CustomStringConvertible {
    /// What the attempt ran into; a probe of a host whose connection dropped tells the dead (`refused`,
    /// `closed`: nothing answers a hello there) from the slow (`timedOut`).
    enum Kind: Sendable {
        case refused, closed, timedOut, other
    }

    let description: String
    var kind: Kind = .other
}

/// One connection from this process to an actor host.
final class DirectPeer: Sendable {
    let host: String
    let address: String
    let channel: any Channel
    /// Distinguishes this connection from a later one to the same host.
    let id: UInt64
    /// Runs tasks on the connection's event loop.
    let executor: EventLoopTaskExecutor
    private let writer: FrameWriter

    init(host: String, address: String, channel: any Channel, id: UInt64) {
        self.host = host
        self.address = address
        self.channel = channel
        self.id = id
        self.executor = EventLoopTaskExecutor(eventLoop: channel.eventLoop)
        self.writer = FrameWriter(channel: channel)
    }

    /// Sends one sealed message.
    func write(_ sealed: ByteBuffer) {
        writer.write(sealed)
    }

    /// Connects to `address` (`host:port`), first with a TLS handshake keyed by `token` when `tls` (the host
    /// advertised it), says hello as `node` of `buildID` wanting `host`, and waits for the answer; replies
    /// then go to `onReply`, and `onClose` runs once when the connection ends.
    static func connect(
        group: any EventLoopGroup, address: String, token: String, tls: Bool, host: String, node: String, buildID: String,
        maxPayload: Int, id: UInt64, timeout: TimeAmount, onReply: @escaping @Sendable (ByteBuffer) -> Void, onClose: @escaping @Sendable () -> Void
    ) async throws -> DirectPeer {
        guard let (ip, port) = parse(address) else {
            throw DirectConnectError(description: "\(host) advertises '\(address)', which is not host:port")
        }
        let greeting = Greeting()
        let maximumFrame = DirectWire.maximumFrame(for: maxPayload)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.socketOption(.so_keepalive), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if tls { try DirectTLS.addClient(token: token, to: sync) }
                        try sync.addHandler(ByteToMessageHandler(DirectFrameDecoder(expectPreamble: false, maximumFrame: maximumFrame, helloPending: false)))
                        try sync.addHandler(DirectCallerHandler(greeting: greeting, tls: tls, onReply: onReply))
                    }
                }
                .connect(host: ip, port: port).get()
        } catch {
            throw DirectConnectError(
                description: "cannot connect to \(host) at \(address): \(error)", kind: Self.isRefusal(error) ? .refused : .other)
        }
        channel.closeFuture.whenComplete { _ in
            greeting.resume(.failure(DirectConnectError(description: "\(host) at \(address) closed the connection during the hello", kind: .closed)))
            onClose()
        }
        var opening = channel.allocator.buffer(capacity: 128)
        opening.writeBytes(DirectWire.preamble)
        opening.writeImmutableBuffer(DirectWire.frame(try DirectWire.hello(buildID: buildID, from: node, to: host, token: token)))
        channel.writeAndFlush(opening, promise: nil)
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            greeting.resume(.failure(DirectConnectError(description: "\(host) at \(address) did not answer the hello in time", kind: .timedOut)))
        }
        defer { timer.cancel() }
        do {
            try await greeting.wait()
        } catch {
            channel.close(promise: nil)
            throw error
        }
        return DirectPeer(host: host, address: address, channel: channel, id: id)
    }

    /// A `CURTAIN_ADVERTISE` value split into host and optional port: `host`, `host:port`, a bare IPv6
    /// address, or `[v6]:port`; `nil` when it is none of these.
    static func advertised(_ value: String) -> (host: String, port: Int?)? {
        guard !value.isEmpty, !value.contains(where: { $0 == " " || $0 == "/" || $0 == "@" }) else { return nil }
        if value.hasPrefix("[") {
            if value.hasSuffix("]") { return value.count > 2 ? (String(value.dropFirst().dropLast()), nil) : nil }
            return parse(value).map { ($0.0, $0.1) }
        }
        switch value.filter({ $0 == ":" }).count {
        case 0: return (value, nil)
        case 1: return parse(value).map { ($0.0, $0.1) }
        default: return (value, nil)  // a bare IPv6 address
        }
    }

    /// Whether a connection attempt failed because nothing listens there (the port refuses).
    static func isRefusal(_ error: any Error) -> Bool {
        if let error = error as? IOError { return error.errnoCode == ECONNREFUSED }
        if let error = error as? NIOConnectionError {
            return !error.connectionErrors.isEmpty && error.connectionErrors.allSatisfy { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
        }
        return false
    }

    /// `host:port` or `[v6]:port`.
    static func parse(_ address: String) -> (String, Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }

    /// The host's answer to the hello, awaited once.
    typealias Greeting = OneShot<Void>
}

/// Reads the host's hello answer, then hands every frame (a sealed reply) to the transport.
final class DirectCallerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let greeting: DirectPeer.Greeting
    /// Whether the connection is encrypted (its errors before the answer are then the handshake's).
    let tls: Bool
    let onReply: @Sendable (ByteBuffer) -> Void
    private var greeted = false

    init(greeting: DirectPeer.Greeting, tls: Bool, onReply: @escaping @Sendable (ByteBuffer) -> Void) {
        self.greeting = greeting
        self.tls = tls
        self.onReply = onReply
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var body = unwrapInboundIn(data)
        guard greeted else {
            let status = body.readInteger(as: UInt8.self)
            let text = (try? body.readShortString(field: "answer")) ?? ""
            if status == 0 {
                greeted = true
                greeting.resume(.success(()))
            } else {
                greeting.resume(.failure(DirectConnectError(description: "the host refused the connection: \(text)")))
                context.close(promise: nil)
            }
            return
        }
        onReply(body)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, [ECONNRESET, EPIPE].contains(error.errnoCode) {
            greeting.resume(.failure(DirectConnectError(description: "the peer reset the connection: \(error)", kind: .closed)))
        } else if DirectTLS.isClosedDuringHandshake(error) {
            greeting.resume(.failure(DirectConnectError(description: "the peer closed the connection during the TLS handshake", kind: .closed)))
        } else if tls && !greeted {
            greeting.resume(.failure(DirectConnectError(
                description: "the TLS handshake with the host failed (an outdated token, or a host that does not encrypt): \(error)")))
        } else {
            greeting.resume(.failure(DirectConnectError(description: "the peer does not speak Curtain's direct-call protocol: \(error)")))
        }
        context.close(promise: nil)
    }
}
