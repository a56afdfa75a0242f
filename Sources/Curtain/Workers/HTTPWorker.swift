import CurtainRESP
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

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
/// running lease as soon as its task is done, then exits.
enum HTTPWorkerRole {
    /// The most bytes a request body may have.
    static let maxBody = 64 * 1024
    /// The longest lease a request may ask for.
    static let maxSeconds = 3600.0

    static func run(registry: FunctionRegistry, actors: ActorRegistry, environment: [String: String]) async -> Never {
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
            let idleExit = try environment["CURTAIN_WORKER_IDLE_EXIT"].map { try WorkerSetup.seconds($0, name: "CURTAIN_WORKER_IDLE_EXIT") }
            guard let url = environment["CURTAIN_STORE"] else {
                throw ConfigurationError(description: "CURTAIN_ROLE=http-worker needs CURTAIN_STORE=<redis://…|unix://…>")
            }
            let (buildID, workerID) = WorkerSetup.identity(environment)
            if environment["CURTAIN_PARENT_PIPE"] == "1" { WorkerRole.watchParentPipe() }
            let setup = try await WorkerSetup.make(
                url: url, buildID: buildID, workerID: workerID, registry: registry, actors: actors, environment: environment,
                logger: logger, hostsActors: false)
            let leases = WorkerLeases(setup: setup)
            let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 64)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                    }
                }
            let bound = server.channel.localAddress?.port ?? port
            if token == nil, host != "127.0.0.1", host != "::1", host != "localhost" {
                logger.warning("leases need no token (set CURTAIN_LEASE_TOKEN): anyone who reaches this port can lease the worker")
            }
            logger.info("http worker ready", metadata: ["worker": "\(setup.workerID)", "build": "\(setup.buildID)", "port": "\(bound)"])
            // Tests and scripts read the port from here (with PORT=0, the kernel picked it).
            print("CURTAIN_HTTP_WORKER_PORT \(bound)")
            fflush(nil)
            let drainTimeout = setup.configuration.drainTimeout
            let signals = await DrainSignals.start { number in
                logger.info("stopping", metadata: ["signal": "\(number)"])
                // The running lease stops taking tasks; its task is cancelled after the drain timeout.
                leases.stop(grace: drainTimeout)
                let keeper = setup.client.backgroundExecutor()
                Task(executorPreference: keeper) {
                    while leases.isLeased { try? await keeper.sleep(for: .milliseconds(10)) }
                    // The last lease's response leaves before the process does.
                    try? await keeper.sleep(for: .milliseconds(200))
                    exit(0)
                }
            }
            if let idleExit {
                let keeper = setup.client.backgroundExecutor()
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
            let setup = leases.setup
            return (.ok, #"{"worker":"# + JSON.string(setup.workerID) + #","build":"# + JSON.string(setup.buildID)
                + #","leased":\#(leases.isLeased)}"#)
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
            let setup = leases.setup
            guard request.build == setup.buildID else {
                return (.conflict, errorJSON(
                    .wrongBuild,
                    "this worker runs build \(setup.buildID), the lease asks for build \(request.build): driver and workers must agree on CURTAIN_BUILD_ID"))
            }
            do {
                let report = try await leases.lease(
                    budget: .milliseconds(Int64(request.seconds * 1000)), idle: .milliseconds(request.idleMilliseconds ?? 500))
                logger.info("lease ended", metadata: [
                    "tasks": "\(report.tasks)", "failures": "\(report.failures)", "handed back": "\(report.handedBack)",
                    "seconds": "\(report.seconds)", "ended": "\(report.ended)",
                ])
                return (.ok, String(decoding: try JSONEncoder().encode(report), as: UTF8.self))
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
