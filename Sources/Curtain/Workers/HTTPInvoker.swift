import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Something that starts a leased worker: an HTTP lease endpoint (``HTTPInvoker``: Knative, Cloud Run,
/// OpenFaaS), or a serverless platform's invoke API.
public protocol WorkerInvoker: Sendable {
    /// Leases one worker with `request` and returns what the lease did (after it ended), or `nil` when the
    /// platform only queued the invocation (Lambda's `Event` type): the worker then shows by its heartbeat.
    ///
    /// - Throws: ``InvokeError``.
    func invoke(_ request: LeaseRequest) async throws -> LeaseReport?
}

/// Why an invocation did not give a lease report.
public struct InvokeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: String, Sendable, Hashable {
        /// The platform (or the worker) asks to slow down (HTTP 429): back off and try again.
        case throttled
        /// The worker refused the lease for good (another build, a bad token or request).
        case refused
        /// The worker could not run the lease (it failed at start, the store was unreachable from it).
        case failed
        /// The endpoint could not be reached, or answered something else than HTTP.
        case unreachable
    }

    /// What went wrong.
    public var kind: Kind
    /// The status the endpoint answered, if it answered.
    public var status: Int?
    /// What the endpoint said (its `error`), or what failed.
    public var message: String

    /// An error of `kind`.
    public init(_ kind: Kind, status: Int? = nil, _ message: String) {
        self.kind = kind
        self.status = status
        self.message = message
    }

    public var description: String {
        "invocation \(kind.rawValue)" + (status.map { " (HTTP \($0))" } ?? "") + ": " + message
    }
}

/// Leases workers through their HTTP lease endpoint (`CURTAIN_ROLE=http-worker`): `POST <url>` with a
/// ``LeaseRequest``, waiting for the ``LeaseReport`` (the request lasts as long as the lease).
public struct HTTPInvoker: WorkerInvoker {
    /// The endpoint's address: `http://host:port/lease` (a path of `/` or none means `/lease`).
    public let url: String
    /// Sent as `Authorization: Bearer <token>` when set (the workers' `CURTAIN_LEASE_TOKEN`).
    public let token: String?
    let host: String
    let port: Int
    let path: String

    /// An invoker of the endpoint at `url`.
    ///
    /// - Throws: ``ConfigurationError`` if `url` is not `http://host[:port][/path]`.
    public init(url: String, token: String? = nil) throws {
        guard url.hasPrefix("http://") else {
            throw ConfigurationError(description: "the lease endpoint '\(url)' is not an http:// URL (https needs a proxy or the platform's ingress)")
        }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" }
        var path = String(rest.dropFirst(authority.count))
        if path.isEmpty || path == "/" { path = "/lease" }
        var host = String(authority)
        var port = 80
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let number = Int(authority[authority.index(after: colon)...]), (1...65535).contains(number) else {
                throw ConfigurationError(description: "the lease endpoint '\(url)' has no valid port")
            }
            port = number
            host = String(authority[..<colon])
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ConfigurationError(description: "the lease endpoint '\(url)' names no host") }
        self.url = url
        self.token = token.flatMap { $0.isEmpty ? nil : $0 }
        self.host = host
        self.port = port
        self.path = path
    }

    public func invoke(_ request: LeaseRequest) async throws -> LeaseReport? {
        try await lease(request)
    }

    /// Leases one worker with `request` and returns what the lease did, once it ended.
    ///
    /// - Throws: ``InvokeError``.
    public func lease(_ request: LeaseRequest) async throws -> LeaseReport {
        let body = try JSONEncoder().encode(request)
        let status: Int
        let text: String
        do {
            (status, text) = try await post(body: Array(body), timeout: .milliseconds(Int64(request.seconds * 1000)) + .seconds(15))
        } catch let error as InvokeError {
            throw error
        } catch {
            throw InvokeError(.unreachable, "\(url): \(error)")
        }
        guard status == 200 else {
            let said = (try? JSONDecoder().decode([String: String].self, from: Data(text.utf8)))?["error"] ?? text
            // Refused for good: another build, a bad token, a request the worker cannot read. A 404 or 405
            // may be an ingress between revisions, and is tried again later.
            let kind: InvokeError.Kind = switch status {
            case 429, 503: .throttled
            case 400, 401, 403, 409, 413: .refused
            default: .failed
            }
            throw InvokeError(kind, status: status, said)
        }
        do {
            return try JSONDecoder().decode(LeaseReport.self, from: Data(text.utf8))
        } catch {
            throw InvokeError(.failed, status: status, "the lease's answer is not a report: \(text.prefix(200))")
        }
    }

    /// One `POST`: the status and the body.
    private func post(body: [UInt8], timeout: Duration) async throws -> (Int, String) {
        var headers = [("Content-Type", "application/json")]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        let answer = try await HTTP1.request(.POST, host: host, port: port, path: path, headers: headers, body: body, timeout: timeout)
        return (answer.status, answer.body)
    }
}

/// A small HTTP/1.1 client over NIO for the few requests Curtain makes itself (leases, Lambda's Runtime
/// API): one connection per request, `Connection: close`, the whole answer read (up to 1 MiB of body).
enum HTTP1 {
    /// An answer: its status, headers and body.
    struct Answer: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: String
    }

    /// Sends one request and reads its answer; gives up after `timeout` (none: waits as long as it takes).
    static func request(
        _ method: HTTPMethod, host: String, port: Int, path: String, headers extra: [(String, String)] = [], body: [UInt8] = [],
        timeout: Duration?
    ) async throws -> Answer {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        let exchange: @Sendable () async throws -> Answer? = {
            try await channel.executeThenClose { inbound, outbound in
                var headers = HTTPHeaders()
                headers.add(name: "Host", value: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
                for (name, value) in extra { headers.add(name: name, value: value) }
                headers.add(name: "Content-Length", value: "\(body.count)")
                headers.add(name: "Connection", value: "close")
                // In one write: a server that answers as soon as it has the head (and closes) must not find
                // the rest of the request still to be written.
                var parts: [HTTPClientRequestPart] = [.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers))]
                if !body.isEmpty { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                parts.append(.end(nil))
                try await outbound.write(contentsOf: parts)
                var head: HTTPResponseHead?
                var text = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let started): head = started
                    case .body(var chunk): if text.readableBytes < 1 << 20 { text.writeBuffer(&chunk) }
                    case .end: return head.map { Answer(status: Int($0.status.code), headers: $0.headers, body: String(buffer: text)) }
                    }
                }
                return nil
            }
        }
        let answer: Answer?
        if let timeout {
            answer = try await withThrowingTaskGroup(of: Answer?.self) { group in
                group.addTask { try await exchange() }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                let first = try await group.next() ?? nil
                if first == nil { try? await channel.channel.close() }
                return first
            }
        } else {
            answer = try await exchange()
        }
        guard let answer else {
            throw InvokeError(.unreachable, "\(host):\(port)\(path): no complete answer (the connection closed\(timeout.map { ", or \($0) passed" } ?? ""))")
        }
        return answer
    }
}
