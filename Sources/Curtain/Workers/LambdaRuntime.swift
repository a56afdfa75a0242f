import CurtainRESP
import Logging
import NIOCore
import NIOHTTP1

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

/// AWS Lambda's Runtime API, spoken natively: what a worker process does when `AWS_LAMBDA_RUNTIME_API` is
/// set (a Lambda function of the `provided.al2023` runtime whose bootstrap is this executable).
///
/// Each invocation is a lease (``WorkerLeases``): its event is a ``LeaseRequest`` (JSON), its budget the
/// smaller of the request's seconds and what `Lambda-Runtime-Deadline-Ms` leaves, and its response the
/// ``LeaseReport``. Everything is handed back before the response, since Lambda freezes the process once it
/// has answered; after a thaw, a request to the Runtime API that fails is made again on a new connection.
/// A worker that cannot start reports `init/error` with the reason (the driver's invocation sees it); an
/// invocation that cannot run reports its `error` (another build, a malformed event).
///
/// A process with the Runtime API in its environment is a Lambda worker when `CURTAIN_ROLE` is unset,
/// `worker` or `lambda-worker`; any other value (`driver`) keeps a driver running on Lambda a driver.
///
/// The protocol is AWS's published one (`/2018-06-01/runtime/invocation/next`, `…/<id>/response`,
/// `…/<id>/error`, `…/init/error`).
enum LambdaRuntime {
    static let version = "/2018-06-01/runtime"

    static func run(registry: FunctionRegistry, actors: ActorRegistry, environment: [String: String]) async -> Never {
        let logger = {
            var logger = Logger(label: "curtain.lambda")
            logger.logLevel = .info
            return logger
        }()
        guard let api = environment["AWS_LAMBDA_RUNTIME_API"], let (host, port) = address(api) else {
            logger.critical("AWS_LAMBDA_RUNTIME_API is not host:port")
            exit(1)
        }
        let setup: WorkerSetup
        do {
            guard let url = environment["CURTAIN_STORE"] else {
                throw ConfigurationError(description: "a Lambda worker needs CURTAIN_STORE=<redis://…|rediss://…> in the function's environment")
            }
            let (buildID, workerID) = WorkerSetup.identity(environment)
            setup = try WorkerSetup.make(
                client: try RESPClient(url: url), configuration: try CloudConfiguration.fromEnvironment(environment), buildID: buildID,
                workerID: environment["AWS_LAMBDA_LOG_STREAM_NAME"].map { "lambda-\($0.suffix(12))" } ?? workerID,
                registry: registry, actors: actors, logger: logger, hostsActors: false)
            // The store must answer now: a worker that cannot reach it says so at once, not at its first lease.
            try await setup.storeReady()
        } catch {
            logger.critical("the worker could not start", metadata: ["error": "\(error)"])
            _ = try? await post(host, port, "\(version)/init/error", error: error, type: "Curtain.StartupError")
            exit(1)
        }
        let leases = WorkerLeases(setup: setup)
        logger.info("lambda worker ready", metadata: ["worker": "\(leases.workerID)", "build": "\(leases.buildID)"])
        var failingSince: ContinuousClock.Instant?
        var delay = Duration.milliseconds(20)
        while true {
            // The next invocation: no timeout (the process may be frozen in this wait). After a thaw the
            // connection may be gone: ask again, backing off; a Runtime API gone for 30 s ends the process.
            let next: HTTP1.Answer
            do {
                next = try await HTTP1.request(.GET, host: host, port: port, path: "\(version)/invocation/next", timeout: nil)
                failingSince = nil
                delay = .milliseconds(20)
            } catch {
                let since = failingSince ?? ContinuousClock.now
                failingSince = since
                guard ContinuousClock.now - since < .seconds(30) else {
                    logger.critical("the Runtime API has not answered for 30 s; exiting", metadata: ["error": "\(error)"])
                    exit(1)
                }
                if delay >= .milliseconds(640) { logger.warning("the Runtime API did not answer; asking again", metadata: ["error": "\(error)"]) }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
                continue
            }
            guard next.status == 200, let id = next.headers.first(name: "Lambda-Runtime-Aws-Request-Id") else {
                logger.critical("the Runtime API answered \(next.status) without a request id: \(next.body.prefix(200))")
                exit(1)
            }
            let deadline = next.headers.first(name: "Lambda-Runtime-Deadline-Ms").flatMap(Int64.init)
            do {
                let report = try await invoke(next.body, deadline: deadline, leases: leases)
                let body = try JSONEncoder().encode(report)
                // Logged first: Lambda may freeze the process as soon as it has the response.
                logger.info("lease ended", metadata: ["tasks": "\(report.tasks)", "ended": "\(report.ended)", "seconds": "\(report.seconds)"])
                try await respond(host, port, "\(version)/invocation/\(id)/response", body: Array(body))
            } catch {
                let type = (error as? LeaseError).map { "Curtain.Lease.\($0.kind.rawValue)" } ?? "Curtain.LeaseFailed"
                _ = try? await post(host, port, "\(version)/invocation/\(id)/error", error: error, type: type)
            }
            if leases.mustExit { exit(WorkerStuckError.exitStatus) }
        }
    }

    /// Runs one invocation's lease.
    static func invoke(_ event: String, deadline: Int64?, leases: WorkerLeases) async throws -> LeaseReport {
        let request: LeaseRequest
        do {
            request = try JSONDecoder().decode(LeaseRequest.self, from: Data(event.utf8))
        } catch {
            throw LeaseError(.badRequest, "the event is not a lease request ({\"build\": …, \"seconds\": …}): \(LeaseRequestProblem.describe(error))")
        }
        guard request.build == leases.buildID else {
            throw LeaseError(
                .wrongBuild,
                "this function runs build \(leases.buildID), the invocation asks for build \(request.build): driver and function must agree on CURTAIN_BUILD_ID")
        }
        guard request.seconds.isFinite, request.seconds > 0 else {
            throw LeaseError(.badRequest, "seconds must be above 0, not \(request.seconds)")
        }
        var budget = Duration.milliseconds(Int64(min(request.seconds, 3600) * 1000))
        if let deadline {
            // What the function's timeout leaves, on the wall clock Lambda's deadline is given in.
            let left = Duration.milliseconds(deadline - StoreClock.local() / 1000)
            guard left > WorkerLeases.margin * 2 else {
                throw LeaseError(
                    .badRequest,
                    "the function's timeout leaves too little of this invocation to lease the worker: give the function a timeout of a few seconds at least")
            }
            budget = min(budget, left)
        }
        let idle = Duration.milliseconds(min(max(1, request.idleMilliseconds ?? 500), Int(budget / .milliseconds(1))))
        return try await leases.lease(budget: budget, idle: idle)
    }

    /// `host:port` of the Runtime API.
    static func address(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        return (String(text[..<colon]), port)
    }

    private static func respond(_ host: String, _ port: Int, _ path: String, body: [UInt8]) async throws {
        let answer = try await HTTP1.request(.POST, host: host, port: port, path: path, headers: [("Content-Type", "application/json")], body: body, timeout: .seconds(30))
        guard (200..<300).contains(answer.status) else {
            throw InvokeError(.failed, status: answer.status, "the Runtime API refused the response: \(answer.body.prefix(200))")
        }
    }

    /// Reports `error` to the Runtime API at `path` (an invocation's or the initialization's).
    private static func post(_ host: String, _ port: Int, _ path: String, error: any Error, type: String) async throws {
        let body = #"{"errorMessage":"# + JSON.string("\(error)") + #","errorType":"# + JSON.string(type) + "}"
        _ = try await HTTP1.request(
            .POST, host: host, port: port, path: path,
            headers: [("Content-Type", "application/json"), ("Lambda-Runtime-Function-Error-Type", type)], body: Array(body.utf8),
            timeout: .seconds(30))
    }
}
