import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An embedded, in-memory store that speaks the Redis protocol (RESP2 and RESP3) over TCP and/or a Unix
/// domain socket, with Redis 7 semantics for the commands it implements.
///
/// Like Redis, it is single threaded: it owns one event loop thread, which runs every connection and holds
/// the whole keyspace, so commands are atomic without locks. Real Redis clients (`redis-cli`,
/// `redis-benchmark`, ``CurtainRESP``) work against it unmodified.
///
/// ```swift
/// let store = try await StoreServer.start()
/// print(store.url)          // redis://127.0.0.1:53124
/// // … connect clients …
/// try await store.shutdown()
/// ```
public final class StoreServer: Sendable {
    private enum Lifecycle {
        case running
        case shuttingDown
        case stopped
    }

    private let group: MultiThreadedEventLoopGroup
    private let listeners: [any Channel]
    private let state: NIOLoopBound<StoreState>
    private let lifecycle = Mutex<Lifecycle>(.running)
    private let logger: Logger

    /// The bound TCP port, or `nil` when TCP is disabled (``StoreConfiguration/host`` is `nil`).
    public let port: Int?
    /// The Unix domain socket path listened on, or `nil`.
    public let unixSocketPath: String?
    /// A URL clients can connect with: `redis://HOST:PORT`, or `unix:///path` when TCP is disabled.
    public let url: String

    private init(
        group: MultiThreadedEventLoopGroup,
        listeners: [any Channel],
        state: NIOLoopBound<StoreState>,
        logger: Logger,
        host: String?,
        port: Int?,
        unixSocketPath: String?
    ) {
        self.group = group
        self.listeners = listeners
        self.state = state
        self.logger = logger
        self.port = port
        self.unixSocketPath = unixSocketPath
        if let host, let port {
            let printable = host.contains(":") ? "[\(host)]" : host
            self.url = "redis://\(printable):\(port)"
        } else {
            self.url = "unix://\(unixSocketPath ?? "")"
        }
    }

    /// Starts a store with its own one-thread event loop and begins listening.
    ///
    /// - Parameter configuration: where to listen and how to behave.
    /// - Returns: the running server; call ``shutdown()`` to stop it.
    /// - Throws: ``StoreServerError`` when a listener cannot bind (naming the address) or the configuration
    ///   is invalid.
    public static func start(configuration: StoreConfiguration = .init()) async throws -> StoreServer {
        guard configuration.host != nil || configuration.unixSocketPath != nil else {
            throw StoreServerError.invalidConfiguration("neither a TCP host nor a Unix socket path is set")
        }
        guard configuration.databases >= 1 else {
            throw StoreServerError.invalidConfiguration("databases must be at least 1")
        }
        guard (0...65535).contains(configuration.port) else {
            throw StoreServerError.invalidConfiguration("port \(configuration.port) is out of range")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let state = try await loop.submit {
            NIOLoopBound(StoreState(configuration: configuration, eventLoop: loop), eventLoop: loop)
        }.get()

        let initializer: @Sendable (any Channel) -> EventLoopFuture<Void> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ClientConnection(store: state.value))
            }
        }
        var listeners: [any Channel] = []
        var boundPort: Int? = nil
        do {
            if let host = configuration.host {
                let bootstrap = ServerBootstrap(group: group, childGroup: group)
                    .serverChannelOption(.backlog, value: 511)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                    .childChannelOption(.maxMessagesPerRead, value: 16)
                    .childChannelInitializer(initializer)
                do {
                    let channel = try await bootstrap.bind(host: host, port: configuration.port).get()
                    listeners.append(channel)
                    boundPort = channel.localAddress?.port
                } catch {
                    throw StoreServerError.bindFailed(address: "\(host):\(configuration.port)", underlying: error)
                }
            }
            if let path = configuration.unixSocketPath {
                let bootstrap = ServerBootstrap(group: group, childGroup: group)
                    .serverChannelOption(.backlog, value: 511)
                    .childChannelOption(.maxMessagesPerRead, value: 16)
                    .childChannelInitializer(initializer)
                do {
                    let channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
                    listeners.append(channel)
                } catch {
                    throw StoreServerError.bindFailed(address: "unix:\(path)", underlying: error)
                }
            }
            let port = boundPort
            try await loop.submit {
                state.value.tcpPort = port
                state.value.startActiveExpiry()
            }.get()
        } catch {
            for channel in listeners { try? await channel.close() }
            try? await group.shutdownGracefully()
            throw error
        }
        let server = StoreServer(
            group: group,
            listeners: listeners,
            state: state,
            logger: configuration.logger,
            host: configuration.host,
            port: boundPort,
            unixSocketPath: configuration.unixSocketPath
        )
        configuration.logger.info("embedded store listening", metadata: ["url": "\(server.url)"])
        return server
    }

    /// Stops listening, closes every client connection and stops the event loop. Calling it again (or
    /// concurrently) does nothing.
    public func shutdown() async throws {
        let proceed = lifecycle.withLock { lifecycle -> Bool in
            guard case .running = lifecycle else { return false }
            lifecycle = .shuttingDown
            return true
        }
        guard proceed else { return }
        for channel in listeners { try? await channel.close() }
        let state = self.state
        try? await group.next().submit { state.value.shutdown() }.get()
        try await group.shutdownGracefully()
        if let path = unixSocketPath { unlink(path) }
        lifecycle.withLock { $0 = .stopped }
        logger.info("embedded store stopped", metadata: ["url": "\(url)"])
    }
}
