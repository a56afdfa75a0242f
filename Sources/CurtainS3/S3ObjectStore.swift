import AsyncHTTPClient
public import Curtain
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An ``ObjectStore`` on an S3-compatible service: AWS S3, MinIO, Ceph, Cloudflare R2, moto.
///
/// Opened by URL, `s3://bucket[/prefix]?region=…&endpoint=…&addressing=path|virtual`, with credentials
/// from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (or an explicit
/// ``S3Configuration``). Keys are stored under the prefix. Requests are signed with SigV4 and retried with
/// exponential backoff on 5xx, throttling and connection failures; objects written from chunks go up as a
/// multipart upload once they pass ``S3Configuration/multipartThreshold``, and an upload that fails is
/// aborted, so no partial object ever becomes visible.
///
/// ```swift
/// S3ObjectStore.register()                  // once, in the driver and workers alike (before Cloud.start)
/// // CURTAIN_STORAGE=s3://my-bucket/curtain?region=eu-west-1
/// ```
public struct S3ObjectStore: ObjectStore {
    /// The URL this store was opened with.
    public let url: String
    /// Where and how to reach the bucket.
    public let configuration: S3Configuration

    /// Registers the `s3://` scheme with ``ObjectStores``, so `CURTAIN_STORAGE=s3://…` and
    /// `Storage(url: "s3://…")` open an `S3ObjectStore`.
    ///
    /// - Parameter environment: where credentials and defaults are read (the `AWS_…` variables); `nil`
    ///   reads the process's environment each time a store is opened. Give it for credentials held
    ///   elsewhere (a secrets manager): changing the process's environment with `setenv` while other
    ///   threads run is unsafe (a concurrent `Process.run` or `getenv` may read freed memory).
    public static func register(environment: [String: String]? = nil) {
        ObjectStores.register(scheme: "s3") { url in
            try S3ObjectStore(url: url, environment: environment ?? S3Configuration.processEnvironment())
        }
    }

    /// Opens `s3://bucket[/prefix][?region=…&endpoint=…&addressing=path|virtual]`.
    ///
    /// - Throws: ``StorageError`` (``StorageError/Kind/configuration``) for a malformed URL or missing
    ///   credentials.
    public init(url: String, environment: [String: String] = S3Configuration.processEnvironment()) throws {
        self.url = url
        self.configuration = try S3Configuration(url: url, environment: environment)
    }

    /// Opens the bucket of an explicit configuration.
    public init(configuration: S3Configuration) {
        self.configuration = configuration
        self.url = configuration.url
    }

    // MARK: ObjectStore

    /// One PUT.
    public func put(_ key: String, bytes: [UInt8]) async throws {
        try ObjectStores.validate(key)
        _ = try await request(.PUT, key: key, body: bytes, expect: [200])
    }

    /// One PUT while the object is small; a multipart upload (aborted on any failure) once it passes the
    /// threshold.
    public func put<Chunks: AsyncSequence & Sendable>(_ key: String, chunks: Chunks) async throws where Chunks.Element == [UInt8] {
        try ObjectStores.validate(key)
        var pending: [UInt8] = []
        var upload: (id: String, parts: [String])?
        do {
            for try await chunk in chunks {
                pending += chunk
                if upload == nil && pending.count <= configuration.multipartThreshold { continue }
                if upload == nil { upload = (try await createUpload(key), []) }
                while pending.count >= configuration.partSize {
                    let part = Array(pending.prefix(configuration.partSize))
                    pending.removeFirst(configuration.partSize)
                    upload!.parts.append(try await uploadPart(key, upload: upload!.id, number: upload!.parts.count + 1, bytes: part))
                }
            }
            guard let open = upload else {
                try await put(key, bytes: pending)
                return
            }
            var parts = open.parts
            if !pending.isEmpty || parts.isEmpty {
                parts.append(try await uploadPart(key, upload: open.id, number: parts.count + 1, bytes: pending))
            }
            try await completeUpload(key, upload: open.id, parts: parts)
        } catch {
            if let upload { try? await abortUpload(key, upload: upload.id) }
            throw error
        }
    }

    /// A GET, with a `Range` header for a range.
    public func get(_ key: String, range: Range<Int>?) async throws -> [UInt8] {
        try ObjectStores.validate(key)
        var headers: [(String, String)] = []
        if let range {
            guard range.lowerBound >= 0 else { throw StorageError(.invalidRange, "range \(range) of \(key) starts before 0") }
            guard !range.isEmpty else { return [] }
            headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)"))
        }
        let response = try await request(.GET, key: key, headers: headers, expect: [200, 206, 416])
        return response.status == 416 ? [] : response.body  // a range starting past the end reads nothing
    }

    /// A HEAD.
    public func head(_ key: String) async throws -> ObjectInfo? {
        try ObjectStores.validate(key)
        let response = try await request(.HEAD, key: key, expect: [200, 404])
        guard response.status == 200 else { return nil }
        let size = Int(response.headers["content-length"] ?? "") ?? 0
        return ObjectInfo(key: key, size: size, modified: response.headers["last-modified"].flatMap(HTTPDate.parse) ?? 0)
    }

    /// ListObjectsV2, page after page.
    public func list(prefix: String) async throws -> [ObjectInfo] {
        var found: [ObjectInfo] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", configuration.keyPrefix + prefix)]
            if let token { query.append(("continuation-token", token)) }
            let response = try await request(.GET, key: nil, query: query, expect: [200])
            let page = ListingParser.parse(response.body)
            for object in page.objects where object.key.hasPrefix(configuration.keyPrefix) {
                found.append(ObjectInfo(
                    key: String(object.key.dropFirst(configuration.keyPrefix.count)), size: object.size, modified: object.modified))
            }
            token = page.truncated ? page.nextToken : nil
        } while token != nil
        return found.sorted { $0.key < $1.key }
    }

    /// A DELETE (S3 answers 204 for a missing key too).
    public func delete(_ key: String) async throws {
        try ObjectStores.validate(key)
        _ = try await request(.DELETE, key: key, expect: [200, 204, 404])
    }

    /// Creates the bucket (for tests and first runs; most deployments create it elsewhere). An existing
    /// bucket owned by the caller is not an error.
    public func createBucket() async throws {
        var body: [UInt8] = []
        if configuration.region != "us-east-1" {
            body = Array("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>\(configuration.region)</LocationConstraint></CreateBucketConfiguration>".utf8)
        }
        _ = try await request(.PUT, key: nil, body: body, expect: [200, 409])
    }

    // MARK: Multipart

    private func createUpload(_ key: String) async throws -> String {
        let response = try await request(.POST, key: key, query: [("uploads", "")], expect: [200])
        guard let id = ListingParser.value(of: "UploadId", in: response.body) else {
            throw StorageError(.unavailable, "\(configuration.endpointDescription) started an upload of \(key) without an upload id")
        }
        return id
    }

    private func uploadPart(_ key: String, upload: String, number: Int, bytes: [UInt8]) async throws -> String {
        let response = try await request(
            .PUT, key: key, query: [("partNumber", String(number)), ("uploadId", upload)], body: bytes, expect: [200])
        guard let etag = response.headers["etag"] else {
            throw StorageError(.unavailable, "\(configuration.endpointDescription) accepted part \(number) of \(key) without an ETag")
        }
        return etag
    }

    private func completeUpload(_ key: String, upload: String, parts: [String]) async throws {
        var xml = "<CompleteMultipartUpload>"
        for (index, etag) in parts.enumerated() {
            xml += "<Part><PartNumber>\(index + 1)</PartNumber><ETag>\(ListingParser.escape(etag))</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let response = try await request(.POST, key: key, query: [("uploadId", upload)], body: Array(xml.utf8), expect: [200])
        // S3 may answer 200 with an error document when completion fails late.
        if let code = ListingParser.value(of: "Code", in: response.body) {
            throw StorageError(.unavailable, "completing the upload of \(key) failed: \(code) \(ListingParser.value(of: "Message", in: response.body) ?? "")")
        }
    }

    private func abortUpload(_ key: String, upload: String) async throws {
        _ = try await request(.DELETE, key: key, query: [("uploadId", upload)], expect: [204, 200, 404])
    }

    // MARK: Requests

    struct Response {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
    }

    /// Sends a signed request, retrying transient failures; maps S3's errors to ``StorageError``.
    func request(
        _ method: HTTPMethod, key: String?, query: [(String, String)] = [], headers: [(String, String)] = [],
        body: [UInt8] = [], expect: Set<Int>
    ) async throws -> Response {
        let (host, path) = configuration.location(of: key)
        let payloadHash = body.isEmpty ? SigV4Signer.emptyPayloadHash : SigV4Signer.hash(body)
        var attempt = 0
        while true {
            attempt += 1
            let signed = configuration.signer.sign(
                method: method.rawValue, host: host, path: path, query: query, headers: headers, payloadHash: payloadHash,
                amzDate: HTTPDate.amzNow())
            var request = HTTPClientRequest(url: configuration.scheme + "://" + host + Self.encodedPath(path) + Self.encodedQuery(query))
            request.method = method
            request.headers.add(name: "Host", value: host)
            for (name, value) in signed { request.headers.add(name: name, value: value) }
            if !body.isEmpty || method == .PUT || method == .POST { request.body = .bytes(ByteBuffer(bytes: body)) }
            let what = "\(method.rawValue) \(key.map { "'\($0)'" } ?? "bucket \(configuration.bucket)")"
            do {
                let response = try await Self.http.execute(request, timeout: configuration.timeout)
                let status = Int(response.status.code)
                let bytes = method == .HEAD ? [] : Array(buffer: try await response.body.collect(upTo: configuration.maximumResponse))
                if expect.contains(status) {
                    var names: [String: String] = [:]
                    for header in response.headers { names[header.name.lowercased()] = header.value }
                    return Response(status: status, headers: names, body: bytes)
                }
                let code = ListingParser.value(of: "Code", in: bytes) ?? "HTTP \(status)"
                let message = ListingParser.value(of: "Message", in: bytes) ?? ""
                let transient = status >= 500 || status == 429 || code == "SlowDown" || code == "RequestTimeout"
                if transient && attempt < configuration.attempts {
                    try await Task.sleep(for: Self.backoff(attempt))
                    continue
                }
                throw Self.error(status: status, code: code, message: message, what: what, key: key, configuration: configuration)
            } catch let error as StorageError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                if attempt < configuration.attempts {
                    try await Task.sleep(for: Self.backoff(attempt))
                    continue
                }
                throw StorageError(.unavailable, "cannot reach \(configuration.endpointDescription) for \(what) after \(attempt) attempts: \(error)")
            }
        }
    }

    /// The process's HTTP client. Failed connections are not retried inside it (by default AsyncHTTPClient
    /// retries them until the request's deadline, which turned a wrong endpoint into minutes of silence):
    /// ``request(_:key:query:headers:body:expect:)`` retries with its own backoff instead.
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// 50 ms, 200 ms, 800 ms…, with up to 50 % jitter.
    static func backoff(_ attempt: Int) -> Duration {
        let base = 50 * (1 << (2 * min(attempt - 1, 5)))
        return .milliseconds(base + Int.random(in: 0...(base / 2)))
    }

    static func error(status: Int, code: String, message: String, what: String, key: String?, configuration: S3Configuration) -> StorageError {
        let detail = message.isEmpty ? code : "\(code): \(message)"
        switch (status, code) {
        case (404, "NoSuchBucket"):
            return StorageError(.configuration, "bucket '\(configuration.bucket)' does not exist at \(configuration.endpointDescription) (\(what))")
        case (404, _):
            return StorageError(.notFound, "no object '\(key ?? "")' in \(configuration.url) (\(detail))")
        case (403, _), (401, _):
            return StorageError(.accessDenied, "\(configuration.endpointDescription) refused \(what) with access key \(configuration.signer.accessKey): \(detail)")
        case (400, _):
            return StorageError(.configuration, "\(configuration.endpointDescription) rejected \(what): \(detail)")
        default:
            return StorageError(.unavailable, "\(configuration.endpointDescription) failed \(what): HTTP \(status) \(detail)")
        }
    }

    static func encodedPath(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { SigV4Signer.encode(String($0)) }.joined(separator: "/")
    }

    static func encodedQuery(_ query: [(String, String)]) -> String {
        guard !query.isEmpty else { return "" }
        return "?" + query.map { $0.1.isEmpty ? SigV4Signer.encode($0.0) + "=" : SigV4Signer.encode($0.0) + "=" + SigV4Signer.encode($0.1) }
            .joined(separator: "&")
    }
}
