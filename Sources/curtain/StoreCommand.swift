import ArgumentParser
import CurtainStore
import Dispatch
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `curtain store`: runs the embedded store as a standalone server until SIGINT or SIGTERM.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Run the embedded store: an in-memory server speaking the Redis protocol.",
        discussion: """
            Any Redis client works against it (redis-cli, redis-benchmark, Curtain workers). \
            Data lives in memory only and is gone when the process exits.
            """
    )

    @Option(name: .long, help: "TCP port to listen on (0 picks a free one).")
    var port: Int = 6379

    @Option(name: .long, help: "Address to bind the TCP listener to.")
    var host: String = "127.0.0.1"

    @Option(name: .customLong("socket"), help: "Unix socket path to listen on.")
    var socket: String?

    @Flag(name: .customLong("no-tcp"), help: "Listen on the Unix socket only.")
    var noTCP = false

    @Option(name: .long, help: "Require clients to AUTH with this password.")
    var requirepass: String?

    @Option(name: .long, help: "Number of logical databases.")
    var databases: Int = 16

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port \(port) is outside 0…65535") }
        if noTCP && socket == nil { throw ValidationError("--no-tcp needs --socket PATH") }
        guard databases >= 1 else { throw ValidationError("--databases must be at least 1") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        var logger = Logger(label: "curtain.store")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let server = try await StoreServer.start(
            configuration: StoreConfiguration(
                host: noTCP ? nil : host, port: port, unixSocketPath: socket, requirePass: requirepass,
                databases: databases, logger: logger))
        var endpoints: [String] = []
        if let port = server.port { endpoints.append("redis://\(host):\(port)") }
        if let path = server.unixSocketPath { endpoints.append("unix://\(path)") }
        print("curtain store listening on \(endpoints.joined(separator: " and ")) (Ctrl-C to stop)")
        await waitForTermination()
        print("curtain store shutting down")
        try await server.shutdown()
    }

    /// Suspends until SIGINT or SIGTERM arrives.
    private func waitForTermination() async {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        let queue = DispatchQueue(label: "curtain.signals")
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { continuation.yield(sig) }
            source.resume()
            sources.append(source)
        }
        for await _ in stream { break }
        for source in sources { source.cancel() }
    }
}
