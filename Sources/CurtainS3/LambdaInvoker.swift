import AsyncHTTPClient
public import Curtain
import NIOCore
import NIOHTTP1

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Leases workers by invoking an AWS Lambda function whose code is this program (its `bootstrap`, on the
/// `provided.al2023` runtime; see ``Curtain/LeaseRequest``): `POST /2015-03-31/functions/<name>/invocations`,
/// signed with SigV4, carrying the lease request.
///
/// `RequestResponse` (the default) waits for the lease's report, so a function that crashes or cannot
/// reach the store is seen at once, with its error; `Event` returns as soon as Lambda has queued the
/// invocation (the driver then counts the worker once its heartbeat appears).
///
/// ```swift
/// let lambda = try LambdaInvoker(function: "curtain-worker", region: "eu-west-1",
///                                accessKey: key, secretKey: secret)
/// try await cloud.invokeWorkers(with: [lambda])
/// ```
///
/// It lives here, beside the S3 store, because it needs the same SigV4 signer and HTTP client: the core
/// carries neither.
public struct LambdaInvoker: WorkerInvoker {
    /// How Lambda runs an invocation.
    public enum InvocationType: String, Sendable {
        /// Wait for the function's answer (the lease's report).
        case requestResponse = "RequestResponse"
        /// Queue the invocation and return at once.
        case event = "Event"
    }

    /// The function's name (not its ARN).
    public let function: String
    /// How invocations run.
    public let invocationType: InvocationType
    let endpoint: String
    let host: String
    let scheme: String
    let signer: SigV4Signer

    /// An invoker of `function` in `region`; `endpoint` replaces `https://lambda.<region>.amazonaws.com`
    /// (a test double, a VPC endpoint).
    ///
    /// - Throws: ``Curtain/StorageError`` (`configuration`) for an ARN instead of a name, or an endpoint that
    ///   is not `http(s)://host[:port]`.
    public init(
        function: String, region: String, accessKey: String, secretKey: String, sessionToken: String? = nil,
        endpoint: String? = nil, invocationType: InvocationType = .requestResponse
    ) throws {
        guard !function.isEmpty, !function.hasPrefix("arn:"),
            function.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        else {
            throw StorageError(.configuration, "the Lambda function must be given by its name (letters, digits, '-', '_'), not '\(function)'")
        }
        let url = endpoint ?? "https://lambda.\(region).amazonaws.com"
        let scheme = url.hasPrefix("https://") ? "https" : url.hasPrefix("http://") ? "http" : ""
        let host = String(url.dropFirst(scheme.count + 3).prefix { $0 != "/" })
        guard !scheme.isEmpty, !host.isEmpty else {
            throw StorageError(.configuration, "the Lambda endpoint '\(url)' is not http(s)://host[:port]")
        }
        self.function = function
        self.invocationType = invocationType
        self.scheme = scheme
        self.host = host
        self.endpoint = scheme + "://" + host
        self.signer = SigV4Signer(accessKey: accessKey, secretKey: secretKey, sessionToken: sessionToken, region: region, service: "lambda")
    }

    public func invoke(_ request: LeaseRequest) async throws -> LeaseReport? {
        let body = Array(try JSONEncoder().encode(request))
        let path = "/2015-03-31/functions/\(function)/invocations"
        let signed = signer.sign(
            method: "POST", host: host, path: path, query: [],
            headers: [("content-type", "application/json"), ("x-amz-invocation-type", invocationType.rawValue)],
            payloadHash: SigV4Signer.hash(body), amzDate: HTTPDate.amzNow())
        var http = HTTPClientRequest(url: endpoint + path)
        http.method = .POST
        http.headers.add(name: "Host", value: host)
        for (name, value) in signed { http.headers.add(name: name, value: value) }
        http.body = .bytes(ByteBuffer(bytes: body))
        let status: Int
        let headers: HTTPHeaders
        let text: String
        do {
            let timeout = TimeAmount.milliseconds(Int64(request.seconds * 1000) + 30_000)
            let response = try await Self.http.execute(http, timeout: timeout)
            status = Int(response.status.code)
            headers = response.headers
            text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        } catch {
            throw InvokeError(.unreachable, "Lambda at \(endpoint): \(error)")
        }
        let said = Self.message(text)
        switch status {
        case 202 where invocationType == .event:
            return nil
        case 200:
            if headers.first(name: "X-Amz-Function-Error") != nil {
                // The function failed: its own error (a worker that could not start says why), or a lease
                // it refused for good (another build).
                let refused = text.contains("Curtain.Lease.wrongBuild") || text.contains("Curtain.Lease.unauthorized")
                throw InvokeError(refused ? .refused : .failed, status: status, "function \(function): \(said)")
            }
            do {
                return try JSONDecoder().decode(LeaseReport.self, from: Data(text.utf8))
            } catch {
                throw InvokeError(.failed, status: status, "function \(function) answered something else than a lease report: \(text.prefix(200))")
            }
        case 429:
            throw InvokeError(.throttled, status: status, "Lambda throttled the invocation: \(said)")
        case 400, 401, 403, 404, 413:
            // Another function, no permission, a bad signature: asking again changes nothing. (A 409 is a
            // function being deployed or updated: tried again later.)
            throw InvokeError(.refused, status: status, "Lambda refused to invoke \(function): \(said)")
        default:
            throw InvokeError(.failed, status: status, "Lambda could not invoke \(function): \(said)")
        }
    }

    /// The client of Lambda invocations: each `RequestResponse` invocation holds its connection for the whole
    /// lease, so it allows as many per host as a driver may lease at once (the S3 client's 8 would queue
    /// the rest inside it).
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 1024
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// The message of an AWS error or a function error (`message`, `Message` or `errorMessage`), or the text.
    static func message(_ text: String) -> String {
        if let object = try? JSONDecoder().decode([String: String?].self, from: Data(text.utf8)) {
            for key in ["errorMessage", "message", "Message"] { if let value = object[key] ?? nil { return value } }
        }
        return String(text.prefix(500))
    }
}
