import CurtainRESP
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A lease request: the body of `POST /lease` (JSON).
public struct LeaseRequest: Sendable, Hashable, Codable {
    /// The build the driver runs (`CURTAIN_BUILD_ID`): a worker of another build refuses the lease.
    public var build: String
    /// The lease's time budget, in seconds: the worker answers before it runs out.
    public var seconds: Double
    /// How long without a task ends the lease early, in milliseconds (default 500).
    public var idleMilliseconds: Int?

    /// A request for a lease of `seconds` for `build`.
    public init(build: String, seconds: Double, idleMilliseconds: Int? = nil) {
        self.build = build
        self.seconds = seconds
        self.idleMilliseconds = idleMilliseconds
    }
}

/// What a process started with `CURTAIN_ROLE=http-worker` does: serves leases over HTTP (Knative, Cloud Run
/// services, OpenFaaS) on `PORT` (8080 by default), one at a time.
///
/// - `POST /lease` with a ``LeaseRequest`` leases the worker (``WorkerLeases``) and answers its
///   ``LeaseReport``; with `CURTAIN_LEASE_TOKEN` set, only with `Authorization: Bearer <token>`.
/// - `GET /healthz` answers the worker's id, build and whether it is leased.
///
/// Errors answer JSON `{"error": …, "kind": …}`: 400 for a malformed request, 401 without the token, 409
/// for another build, 429 while a lease runs, 500 if the worker could not start (the store unreachable).
/// `CURTAIN_WORKER_IDLE_EXIT=<seconds>` exits the process after that long without a lease; SIGTERM ends a
/// running lease as soon as its task is done, then exits. A request not whole within
/// `CURTAIN_HTTP_READ_TIMEOUT` seconds (30 by default) of its head closes its connection, as does a
/// connection idle for 620 s (``RequestTimeoutHandler``).
///
/// The port opens first, before the worker is set up: a request that arrives meanwhile waits for the
/// setup, and a worker that cannot start (its store out of reach, or a bad `CURTAIN_STORE`,
/// `CURTAIN_WORKER_IDLE_EXIT` or setting of ``CloudConfiguration/fromEnvironment(_:)``) answers it 500
/// with the reason, then exits (after 5 s, once no lease is answering). `GET /healthz` says `"setup":
/// "running"`, `"done"` or `"failed"` (then with 503). Bad `PORT`, `CURTAIN_HTTP_HOST` or
/// `CURTAIN_HTTP_READ_TIMEOUT` values, needed before the port opens, stop the
/// process at once with the reason on its standard error.
enum HTTPWorkerRole {
    /// The most bytes a request body may have.
    static let maxBody = 64 * 1024
    /// The longest lease a request may ask for.
    static let maxSeconds = 3600.0

    /// Opens the port first, then sets the worker up while the first request travels (registering
    /// `functions` and `actors` included), and serves leases until SIGTERM.
    static func run(functions: [any RemoteFunction.Type], actors: [any SpawnableActor.Type], environment: [String: String]) async -> Never {
        let logger = {
            var logger = Logger(label: "curtain.http-worker")
            logger.logLevel = .info
            return logger
        }()
        do {
            let port = try environment["PORT"].map { text -> Int in
                guard let port = Int(text), (0...65535).contains(port) else {
                    throw ConfigurationError(description: "PORT='\(text)' is not a port number (0 to 65535)")
                }
                return port
            } ?? 8080
            let host = environment["CURTAIN_HTTP_HOST"] ?? "0.0.0.0"
            let token = environment["CURTAIN_LEASE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            let readTimeout = try environment["CURTAIN_HTTP_READ_TIMEOUT"].map { try WorkerSetup.seconds($0, name: "CURTAIN_HTTP_READ_TIMEOUT") }
                ?? .seconds(30)
            // The port opens before anything else (a socket bound and listening, which NIO adopts below): a
            // platform that started this process for a request (Knative, Cloud Run) sends it as soon as the
            // port accepts, and it travels while the worker sets up. The lease waits for the setup, and
            // answers its error if it failed: a bad setting too, so that the driver that invoked the worker
            // sees why it cannot start, not only the platform's log.
            let (socket, bound) = try ListeningSocket.open(host: host, port: port)
            // Tests and scripts read the port from here (with PORT=0, the kernel picked it).
            print("CURTAIN_HTTP_WORKER_PORT \(bound)")
            fflush(nil)
            let (buildID, workerID) = WorkerSetup.identity(environment)
            let settings = Result { () throws -> (CloudConfiguration, RESPClient, idleExit: Duration?) in
                guard let url = environment["CURTAIN_STORE"] else {
                    throw ConfigurationError(description: "CURTAIN_ROLE=http-worker needs CURTAIN_STORE=<redis://…|unix://…>")
                }
                let idleExit = try environment["CURTAIN_WORKER_IDLE_EXIT"].map { try WorkerSetup.seconds($0, name: "CURTAIN_WORKER_IDLE_EXIT") }
                return (try CloudConfiguration.fromEnvironment(environment), try RESPClient(url: url), idleExit)
            }
            let setup = Task {
                let (configuration, client, _) = try settings.get()
                let registry = try FunctionRegistry(functions)
                let actors = try ActorRegistry(actors)
                let setup = try WorkerSetup.make(
                    client: client, configuration: configuration, buildID: buildID, workerID: workerID, registry: registry,
                    actors: actors, logger: logger, hostsActors: false)
                // Code a lease runs first, run once meanwhile (its first run pays for loading it).
                LeaseRequest.warmUp()
                return setup
            }
            let leases = WorkerLeases(buildID: buildID, workerID: workerID, setup: setup)
            let keeper = RESPClient.keeperExecutor()
            Task(executorPreference: keeper) {
                do {
                    try await leases.setup().storeReady()
                    leases.noteSetup(failed: false)
                } catch {
                    leases.noteSetup(failed: true)
                    // Leases answer the error meanwhile (the request that started this process included), then
                    // the process goes, to be replaced: after 5 s, once no lease is still answering (its
                    // hand-back may wait for a store that does not answer), 30 s at most.
                    logger.critical("\(error); exiting in 5 s", metadata: ["worker": "\(workerID)"])
                    try? await keeper.sleep(for: .seconds(5))
                    let deadline = ContinuousClock.now + .seconds(25)
                    while leases.isLeased, ContinuousClock.now < deadline { try? await keeper.sleep(for: .milliseconds(20)) }
                    // The last answer leaves before the process does.
                    try? await keeper.sleep(for: .milliseconds(200))
                    exit(1)
                }
            }
            let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(socket) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(RequestTimeoutHandler(
                            read: .milliseconds(Int64(max(1, readTimeout.wholeMilliseconds))), idle: RequestTimeoutHandler.idle))
                        return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                    }
                }
            if environment["CURTAIN_PARENT_PIPE"] == "1" { WorkerRole.watchParentPipe() }
            if token == nil, host != "127.0.0.1", host != "::1", host != "localhost" {
                logger.warning("leases need no token (set CURTAIN_LEASE_TOKEN): anyone who reaches this port can lease the worker")
            }
            logger.info("http worker listening", metadata: ["worker": "\(workerID)", "build": "\(buildID)", "port": "\(bound)"])
            let drainTimeout = (try? settings.get().0.drainTimeout) ?? CloudConfiguration().drainTimeout
            let signals = await DrainSignals.start { number in
                logger.info("stopping", metadata: ["signal": "\(number)"])
                // The running lease stops taking tasks; its task is cancelled after the drain timeout.
                leases.stop(grace: drainTimeout)
                Task(executorPreference: keeper) {
                    while leases.isLeased { try? await keeper.sleep(for: .milliseconds(10)) }
                    // The last lease's response leaves before the process does.
                    try? await keeper.sleep(for: .milliseconds(200))
                    exit(0)
                }
            }
            if let idleExit = try? settings.get().idleExit {
                Task(executorPreference: keeper) {
                    while true {
                        try? await keeper.sleep(for: .milliseconds(100))
                        if leases.closeIfIdle(for: idleExit) {
                            logger.info("no lease for \(idleExit); exiting (CURTAIN_WORKER_IDLE_EXIT)")
                            exit(0)
                        }
                    }
                }
            }
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask { await serve(connection, leases: leases, token: token, logger: logger) }
                    }
                }
            }
            signals.cancel()  // kept until here: the sources are watched while the server runs
            exit(0)
        } catch {
            logger.critical("http worker stopped", metadata: ["error": "\(error)"])
            exit(1)
        }
    }

    /// Answers one connection's requests, in order.
    static func serve(
        _ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, leases: WorkerLeases, token: String?, logger: Logger
    ) async {
        try? await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            var body = ByteBuffer()
            var tooLarge = false
            for try await part in inbound {
                switch part {
                case .head(let started):
                    head = started
                    body.clear()
                    tooLarge = false
                case .body(var chunk):
                    if body.readableBytes + chunk.readableBytes > maxBody { tooLarge = true } else { body.writeBuffer(&chunk) }
                case .end:
                    guard let request = head else { continue }
                    let (status, json) = tooLarge
                        ? (HTTPResponseStatus.payloadTooLarge, errorJSON(.badRequest, "the request body is over \(maxBody) bytes"))
                        : await answer(request, body: body, leases: leases, token: token, logger: logger)
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: "application/json")
                    headers.add(name: "Content-Length", value: "\(json.utf8.count)")
                    if status == .tooManyRequests { headers.add(name: "Retry-After", value: "1") }
                    let keepAlive = request.isKeepAlive
                    if !keepAlive { headers.add(name: "Connection", value: "close") }
                    try await outbound.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(string: json))))
                    try await outbound.write(.end(nil))
                    // A task ignored cancellation at a lease's end: its thread is lost, so the process goes
                    // (to be replaced) once the lease has answered.
                    if leases.mustExit {
                        try? await Task.sleep(for: .milliseconds(100))
                        exit(WorkerStuckError.exitStatus)
                    }
                    if !keepAlive { return }
                    head = nil
                }
            }
        }
    }

    /// The answer to one request.
    static func answer(
        _ head: HTTPRequestHead, body: ByteBuffer, leases: WorkerLeases, token: String?, logger: Logger
    ) async -> (HTTPResponseStatus, String) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        switch (head.method, path) {
        case (.GET, "/healthz"), (.GET, "/"):
            // Healthy while it sets up (a lease waits for the setup); 503 once the setup failed.
            let status = leases.setupStatus
            return (status == .failed ? .serviceUnavailable : .ok, #"{"worker":"# + JSON.string(leases.workerID) + #","build":"#
                + JSON.string(leases.buildID) + #","leased":\#(leases.isLeased),"setup":"\#(status.rawValue)"}"#)
        case (.POST, "/lease"):
            leases.noteRequest()
            if let token {
                let given = head.headers.first(name: "Authorization") ?? ""
                guard given.hasPrefix("Bearer "), DashboardHandler.same(given.dropFirst("Bearer ".count), token) else {
                    return (.unauthorized, errorJSON(.unauthorized, "a lease needs Authorization: Bearer <CURTAIN_LEASE_TOKEN>"))
                }
            }
            let request: LeaseRequest
            do {
                request = try JSONDecoder().decode(LeaseRequest.self, from: Data(body.readableBytesView))
            } catch {
                return (.badRequest, errorJSON(.badRequest, "the body is not a lease request ({\"build\": …, \"seconds\": …}): \(LeaseRequestProblem.describe(error))"))
            }
            guard request.seconds.isFinite, request.seconds > 0, request.seconds <= maxSeconds else {
                return (.badRequest, errorJSON(.badRequest, "seconds must be above 0 and at most \(Int(maxSeconds)), not \(request.seconds)"))
            }
            if let idle = request.idleMilliseconds, idle < 1 || Double(idle) > request.seconds * 1000 {
                return (.badRequest, errorJSON(.badRequest, "idleMilliseconds must be from 1 to the lease's \(request.seconds) seconds, not \(idle)"))
            }
            guard request.build == leases.buildID else {
                return (.conflict, errorJSON(
                    .wrongBuild,
                    "this worker runs build \(leases.buildID), the lease asks for build \(request.build): driver and workers must agree on CURTAIN_BUILD_ID"))
            }
            do {
                let report = try await leases.lease(
                    budget: .milliseconds(Int64(request.seconds * 1000)), idle: .milliseconds(request.idleMilliseconds ?? 500))
                logger.info("lease ended", metadata: [
                    "tasks": "\(report.tasks)", "failures": "\(report.failures)", "handed back": "\(report.handedBack)",
                    "seconds": "\(report.seconds)", "ended": "\(report.ended)",
                ])
                return (.ok, String(decoding: try JSONEncoder().encode(report), as: UTF8.self))
            } catch let error as WorkerStartError {
                return (.internalServerError, #"{"error":"# + JSON.string(error.description) + #","kind":"failed"}"#)
            } catch let error as LeaseError {
                let status: HTTPResponseStatus = switch error.kind {
                case .busy: .tooManyRequests
                case .wrongBuild: .conflict
                case .badRequest: .badRequest
                case .unauthorized: .unauthorized
                }
                return (status, errorJSON(error.kind, error.description))
            } catch {
                logger.error("a lease failed", metadata: ["error": "\(error)"])
                return (.internalServerError, #"{"error":"# + JSON.string("the worker could not run the lease: \(error)") + #","kind":"failed"}"#)
            }
        case (_, "/lease"), (_, "/healthz"):
            return (.methodNotAllowed, errorJSON(.badRequest, "\(head.method) \(path) is not served: POST /lease, GET /healthz"))
        default:
            return (.notFound, errorJSON(.badRequest, "nothing at \(path): POST /lease, GET /healthz"))
        }
    }

    static func errorJSON(_ kind: LeaseError.Kind, _ message: String) -> String {
        #"{"error":"# + JSON.string(message) + #","kind":"\#(kind.rawValue)"}"#
    }
}

/// Closes a connection whose request does not arrive whole within `read` of its head (a client sending
/// a request byte by byte does not hold the worker's connection for ever), or that stays idle, with no
/// request started, for `idle` (longer than the keep-alive of the proxies in front of such services, so
/// that a proxy reusing a connection never meets one just closed). A lease under way (its request whole,
/// its answer not yet sent) is not timed.
final class RequestTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The idle limit: Google's load balancers keep idle connections to a backend for 600 s and ask the
    /// backend to keep them longer.
    static let idle = TimeAmount.seconds(620)

    private let read: TimeAmount
    private let idle: TimeAmount
    private var timer: Scheduled<Void>?

    init(read: TimeAmount, idle: TimeAmount) {
        self.read = read
        self.idle = idle
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context, idle) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, idle)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: arm(context, read)
        case .end: disarm()
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { arm(context, idle) }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    private func arm(_ context: ChannelHandlerContext, _ limit: TimeAmount) {
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: limit) { context.close(promise: nil) }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}

/// Readable text for a lease request that does not decode.
enum LeaseRequestProblem {
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        switch error {
        case .keyNotFound(let key, _): return "'\(key.stringValue)' is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "'\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type: \(context.debugDescription)"
        case .dataCorrupted(let context): return "not JSON: \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

extension LeaseRequest {
    /// Decodes a lease request and encodes a report once, so that the first lease does not pay for
    /// loading the JSON coder's code.
    static func warmUp() {
        let request = #"{"build":"b","seconds":1,"idleMilliseconds":1}"#
        _ = try? JSONDecoder().decode(LeaseRequest.self, from: Data(request.utf8))
        _ = try? JSONEncoder().encode(LeaseReport(worker: "w", build: "b", tasks: 0, failures: 0, handedBack: 0, seconds: 0, ended: "idle"))
    }
}

/// A TCP socket bound and listening, opened with plain system calls (no event loop needed yet): the port
/// accepts connections into its backlog from the moment it is open.
enum ListeningSocket {
    /// Opens a socket listening on `host` (an address, or a name resolved here) and `port` (0: the kernel
    /// picks one); returns it and the port it listens on.
    ///
    /// - Throws: ``ConfigurationError`` naming the address, if it cannot be opened (the port in use, say).
    static func open(host: String, port: Int) throws -> (NIOBSDSocket.Handle, Int) {
        let address: SocketAddress
        do {
            address = try SocketAddress(ipAddress: host, port: port)
        } catch {
            do {
                address = try SocketAddress.makeAddressResolvingHost(host, port: port)
            } catch {
                throw ConfigurationError(description: "cannot listen on \(host):\(port): the host is not an address or a name that resolves (\(error))")
            }
        }
        func failure(_ what: String) -> ConfigurationError {
            ConfigurationError(description: "cannot listen on \(host):\(port): \(what) failed (\(String(cString: strerror(errno))))")
        }
        #if canImport(Glibc)
        let fd = socket(address.protocol.rawValue, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(address.protocol.rawValue, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw failure("socket") }
        var one: Int32 = 1
        guard setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            let error = failure("setting SO_REUSEADDR")
            close(fd)
            throw error
        }
        guard address.withSockAddr({ bind(fd, $0, socklen_t($1)) }) == 0 else {
            let error = failure("bind")
            close(fd)
            throw error
        }
        guard listen(fd, 128) == 0 else {
            let error = failure("listen")
            close(fd)
            throw error
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            let error = failure("getsockname")
            close(fd)
            throw error
        }
        let family = Int32(storage.ss_family)
        let bound = withUnsafeBytes(of: storage) { raw -> Int in
            switch family {
            case AF_INET: return Int(UInt16(bigEndian: raw.loadUnaligned(as: sockaddr_in.self).sin_port))
            case AF_INET6: return Int(UInt16(bigEndian: raw.loadUnaligned(as: sockaddr_in6.self).sin6_port))
            default: return port
            }
        }
        return (fd, bound)
    }
}
