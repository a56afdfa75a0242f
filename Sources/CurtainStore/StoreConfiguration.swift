public import Logging

/// How an embedded ``StoreServer`` listens and behaves.
///
/// The defaults start a private store on an ephemeral loopback TCP port with sixteen databases and no
/// password, which is what tests and the `processes` backend want.
public struct StoreConfiguration: Sendable {
    /// The address of the TCP listener (default `"127.0.0.1"`); `nil` disables TCP.
    public var host: String?
    /// The TCP port (default `0`: an ephemeral port chosen by the kernel, see ``StoreServer/port``).
    public var port: Int
    /// A Unix domain socket path to listen on as well (default `nil`). A stale socket file at the path is
    /// removed first.
    public var unixSocketPath: String?
    /// The password of the `default` user (default `nil`). When set, every connection must `AUTH` (or send
    /// `HELLO … AUTH`) before other commands, which otherwise fail with `NOAUTH`.
    public var requirePass: String?
    /// The number of logical databases addressable with `SELECT` (default 16).
    public var databases: Int
    /// The most client connections served at once (default 10,000); further connections are told
    /// `-ERR max number of clients reached` and closed.
    public var maxClients: Int
    /// Where the store logs listener and connection events.
    public var logger: Logger

    /// Creates a configuration.
    ///
    /// - Parameters:
    ///   - host: the TCP listen address, or `nil` for no TCP listener.
    ///   - port: the TCP port; `0` picks an ephemeral port.
    ///   - unixSocketPath: a Unix domain socket path to listen on as well, or `nil`.
    ///   - requirePass: the password clients must present with `AUTH`, or `nil` for none.
    ///   - databases: the number of logical databases.
    ///   - maxClients: the most simultaneous client connections.
    ///   - logger: the logger for server events.
    public init(
        host: String? = "127.0.0.1",
        port: Int = 0,
        unixSocketPath: String? = nil,
        requirePass: String? = nil,
        databases: Int = 16,
        maxClients: Int = 10_000,
        logger: Logger = Logger(label: "curtain.store")
    ) {
        self.host = host
        self.port = port
        self.unixSocketPath = unixSocketPath
        self.requirePass = requirePass
        self.databases = databases
        self.maxClients = maxClients
        self.logger = logger
    }
}
