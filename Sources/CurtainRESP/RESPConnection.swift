public import NIOCore
public import NIOPosix
#if TLS
import NIOSSL
#endif

/// One connection to a RESP server.
///
/// Many commands may be in flight at once (pipelining): each `send` writes its command immediately and
/// waits for its own reply, which the server returns in order. Commands submitted in the same event-loop
/// tick leave in a single write.
///
/// Most code uses ``RESPClient``, which pools connections and reconnects; a bare connection is for
/// session state (`MULTI`/`WATCH`, see ``RESPClient/withDedicatedConnection(_:)``) and for tests.
public final class RESPConnection: Sendable {
    /// The channel carrying this connection.
    let channel: any Channel
    private let handler: NIOLoopBound<RESPChannelHandler>
    /// The configuration this connection was opened with.
    public let configuration: RESPConfiguration

    private init(channel: any Channel, handler: NIOLoopBound<RESPChannelHandler>, configuration: RESPConfiguration) {
        self.channel = channel
        self.handler = handler
        self.configuration = configuration
    }

    /// The event loop this connection's I/O runs on.
    public var eventLoop: any EventLoop { channel.eventLoop }

    /// An executor that runs tasks on this connection's event loop, for tight request/reply loops without
    /// thread hops (see ``EventLoopTaskExecutor``).
    public var taskExecutor: EventLoopTaskExecutor { EventLoopTaskExecutor(eventLoop: channel.eventLoop) }

    /// Whether the connection is open.
    public var isActive: Bool { channel.isActive }

    /// This end's address (for a TCP connection, the interface this host reaches the server from).
    public var localAddress: SocketAddress? { channel.localAddress }

    /// Completes when the connection has closed, for whatever reason.
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// Opens a connection and performs the handshake (`HELLO`/`AUTH`, `SELECT`, `CLIENT SETNAME`).
    ///
    /// - Throws: ``RESPError/connectionClosed(_:)`` if the server cannot be reached, ``RESPError/server(_:)``
    ///   if it refuses the handshake (wrong password, unknown database), ``RESPError/timeout(_:)`` if it all
    ///   takes longer than ``RESPConfiguration/connectTimeout``.
    public static func connect(
        configuration: RESPConfiguration,
        eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()
    ) async throws -> RESPConnection {
        try configuration.validate()
        let peer = configuration.endpoint.description
        #if TLS
        let sslContext: NIOSSLContext?
        if let tls = configuration.tls {
            do {
                sslContext = try NIOSSLContext(configuration: tls)
            } catch {
                throw RESPError.invalidConfiguration("TLS configuration for \(peer): \(error)")
            }
        } else {
            sslContext = nil
        }
        var sniName = configuration.tlsServerName
        if sniName == nil, case .tcp(let host, _) = configuration.endpoint, !host.isIPAddress {
            sniName = host
        }
        let serverName = sniName
        #endif
        let limits = configuration.parserLimits
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            // Reads grow up to 1 MiB (NIO's default stops at 64 KiB): a large reply then arrives in a few
            // reads instead of many, each appended to the partial frame.
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 1 << 20))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    #if TLS
                    if let sslContext {
                        let tlsHandler = try NIOSSLClientHandler(context: sslContext, serverHostname: serverName)
                        try sync.addHandler(tlsHandler)
                    }
                    #endif
                    try sync.addHandler(RESPChannelHandler(limits: limits, peerDescription: peer))
                }
            }
        let channel: any Channel
        do {
            switch configuration.endpoint {
            case .tcp(let host, let port):
                let tcp = bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1)
                // An address needs no resolver: connecting straight to it skips a hop to a Dispatch thread
                // and `getaddrinfo`, a noticeable part of a fresh worker's first connection.
                if host.isIPAddress, let address = try? SocketAddress(ipAddress: host, port: port) {
                    channel = try await tcp.connect(to: address).get()
                } else {
                    channel = try await tcp.connect(host: host, port: port).get()
                }
            case .unix(let path):
                channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch let error as RESPError {
            throw error
        } catch {
            throw RESPError.connectionClosed("cannot connect to \(peer): \(error)")
        }
        let handler: NIOLoopBound<RESPChannelHandler>
        do {
            handler = try await channel.eventLoop.submit {
                NIOLoopBound(try channel.pipeline.syncOperations.handler(type: RESPChannelHandler.self), eventLoop: channel.eventLoop)
            }.get()
        } catch {
            channel.close(promise: nil)
            throw RESPError.connectionClosed("cannot set up the connection to \(peer): \(error)")
        }
        let connection = RESPConnection(channel: channel, handler: handler, configuration: configuration)
        do {
            try await connection.handshake()
        } catch {
            channel.close(promise: nil)
            throw error
        }
        return connection
    }

    /// Sends the commands that set up the session.
    private func handshake() async throws {
        var commands: [RESPCommand] = []
        let c = configuration
        if c.protocolVersion == 3 {
            var args: [any RESPArgument] = ["3"]
            if let password = c.password {
                args += ["AUTH", c.username ?? "default", password]
            }
            if let name = c.clientName { args += ["SETNAME", name] }
            commands.append(RESPCommand("HELLO", arguments: args))
        } else {
            if let password = c.password {
                if let user = c.username {
                    commands.append(RESPCommand("AUTH", user, password))
                } else {
                    commands.append(RESPCommand("AUTH", password))
                }
            }
            if let name = c.clientName { commands.append(RESPCommand("CLIENT", "SETNAME", name)) }
        }
        if c.database != 0 { commands.append(RESPCommand("SELECT", c.database)) }
        guard !commands.isEmpty else { return }
        let replies = try await pipeline(commands, timeout: c.connectTimeout)
        for (command, reply) in zip(commands, replies) {
            if let message = reply.errorMessage {
                let what = command.name == "HELLO" || command.name == "AUTH" ? "authentication" : command.name
                throw RESPError.server("\(what) with \(c.endpoint) failed: \(message)")
            }
        }
    }

    /// Sends one command and returns its reply.
    ///
    /// - Parameters:
    ///   - command: the command.
    ///   - timeout: how long to wait for the reply; `nil` uses the configuration's ``RESPConfiguration/commandTimeout``
    ///     (blocking commands get no client-side timeout unless one is given here).
    /// - Throws: ``RESPError/server(_:)`` for an error reply, and the connection errors of ``RESPError``.
    public func send(_ command: RESPCommand, timeout: TimeAmount? = nil) async throws -> RESPValue {
        let effective = timeout ?? (command.isBlocking ? nil : configuration.commandTimeout)
        if command.isBlocking {
            return try await withTaskCancellationHandler {
                try await submit(command, timeout: effective)
            } onCancel: {
                self.cancelBlocking()
            }
        }
        return try await submit(command, timeout: effective)
    }

    private func submit(_ command: RESPCommand, timeout: TimeAmount?) async throws -> RESPValue {
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<RESPValue, any Error>) in
            let eventLoop = channel.eventLoop
            if eventLoop.inEventLoop {
                handler.value.submit(command, waiter: .single(continuation), timeout: timeout)
            } else {
                let handler = self.handler
                let box = UnsafeTransfer(continuation)
                eventLoop.execute {
                    handler.value.submit(command, waiter: .single(box.value), timeout: timeout)
                }
            }
        }
    }

    /// Sends a command given as a name and arguments and returns its reply.
    public func send(_ name: String, _ arguments: any RESPArgument...) async throws -> RESPValue {
        try await send(RESPCommand(name, arguments: arguments))
    }

    /// Sends `commands` back to back in one write and returns their replies in order.
    ///
    /// Error replies are returned as values (``RESPValue/error(_:)``) so one failing command does not hide
    /// the others' results; connection failures throw.
    public func pipeline(_ commands: [RESPCommand], timeout: TimeAmount? = nil) async throws -> [RESPValue] {
        if commands.isEmpty { return [] }
        let effective = timeout ?? configuration.commandTimeout
        return try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<[RESPValue], any Error>) in
            let handler = self.handler
            let box = UnsafeTransfer(continuation)
            let work: @Sendable () -> Void = {
                let collector = PipelineCollector(count: commands.count, continuation: box.value)
                handler.value.submitTogether(
                    commands.enumerated().map { (i, command) in (command, .pipelined(collector, i), effective) })
            }
            if channel.eventLoop.inEventLoop { work() } else { channel.eventLoop.execute(work) }
        }
    }

    /// Sends `commands` back to back in one write, like ``pipeline(_:timeout:)``, and returns at once: each
    /// reply is awaited on its own (``RESPPendingReplies/reply(_:)``), as soon as it arrives.
    ///
    /// The server reads the commands together, and a single-threaded one (Redis, the embedded store) runs
    /// them with no other client's command in between. That makes a look followed by a blocking wait one
    /// step: what the look finds may end the wait early (`CLIENT UNBLOCK` from another connection), and
    /// whatever arrives after the look finds the wait already blocked. Timeouts are as for ``send(_:timeout:)``
    /// (none for a blocking command).
    public func sendTogether(_ commands: [RESPCommand]) -> RESPPendingReplies {
        let loop = channel.eventLoop
        let promises = commands.map { _ in loop.makePromise(of: RESPValue.self) }
        let items = zip(commands, promises).map { command, promise in
            (command, promise, command.isBlocking ? nil : configuration.commandTimeout)
        }
        let handler = self.handler
        let work: @Sendable () -> Void = {
            handler.value.submitTogether(items.map { ($0.0, .promise($0.1), $0.2) })
        }
        if loop.inEventLoop { work() } else { loop.execute(work) }
        return RESPPendingReplies(
            futures: promises.map(\.futureResult), blocking: commands.map(\.isBlocking), connection: self)
    }

    /// Ends a blocking command whose caller was cancelled, by closing the connection (its reply could
    /// otherwise still take data for a reader who is gone).
    func cancelBlocking() {
        let handler = self.handler
        channel.eventLoop.execute { handler.value.cancelBlocking() }
    }

    /// Sends a (P)SUBSCRIBE-style command and waits for its `expected` confirmations.
    func subscribeCommand(_ command: RESPCommand, expected: Int) async throws {
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
            let handler = self.handler
            let box = UnsafeTransfer(continuation)
            channel.eventLoop.execute {
                handler.value.submitSubscription(command, expectedConfirmations: expected, continuation: box.value)
            }
        }
    }

    /// Installs the callbacks for out-of-band messages and for the connection's end.
    func setPushHandlers(
        onPush: @escaping @Sendable (RESPValue) -> Void,
        onClose: @escaping @Sendable (RESPError) -> Void
    ) async throws {
        let handler = self.handler
        try await channel.eventLoop.submit {
            handler.value.onPush = onPush
            if let error = handler.value.closedError {
                onClose(error)
            } else {
                handler.value.onClose = onClose
            }
        }.get()
    }

    /// Whether the connection holds session state (an open `MULTI`, a `WATCH`, subscriptions) that must not
    /// leak to another user of a pool.
    func hasSessionState() async -> Bool {
        let handler = self.handler
        if channel.eventLoop.inEventLoop { return handler.value.hasSessionState }
        return (try? await channel.eventLoop.submit { handler.value.hasSessionState }.get()) ?? true
    }

    /// Closes the connection; commands still waiting fail with ``RESPError/connectionClosed(_:)``.
    public func close() async {
        try? await channel.close()
    }
}

/// Moves a non-Sendable value (a continuation) to the event loop that alone will use it.
struct UnsafeTransfer<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

extension String {
    /// Whether the string is a literal IPv4 or IPv6 address (which TLS SNI must not carry).
    var isIPAddress: Bool {
        if contains(":") { return true }
        let parts = split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
    }
}

/// The replies to commands written together by ``RESPConnection/sendTogether(_:)``, each awaited on its own.
public struct RESPPendingReplies: Sendable {
    let futures: [EventLoopFuture<RESPValue>]
    let blocking: [Bool]
    let connection: RESPConnection

    /// How many commands were sent.
    public var count: Int { futures.count }

    /// The reply to the `index`th command, once it has arrived (replies arrive in order).
    ///
    /// - Throws: ``RESPError/server(_:)`` for an error reply, and the connection errors of ``RESPError``.
    ///   Cancelling the wait for a blocking command's reply closes the connection, as
    ///   ``RESPConnection/send(_:timeout:)`` does.
    public func reply(_ index: Int) async throws -> RESPValue {
        guard blocking[index] else { return try await futures[index].get() }
        let connection = self.connection
        return try await withTaskCancellationHandler {
            try await futures[index].get()
        } onCancel: {
            connection.cancelBlocking()
        }
    }
}
