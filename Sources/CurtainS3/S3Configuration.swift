import Curtain
public import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where an ``S3ObjectStore`` finds its bucket, and how it talks to it.
public struct S3Configuration: Sendable {
    /// The bucket.
    public var bucket: String
    /// Keys are stored under this prefix (empty, or ending in `/`).
    public var keyPrefix: String
    /// The region requests are signed for.
    public var region: String
    /// `https` or `http`.
    public var scheme: String
    /// The endpoint's host (and port), for example `s3.eu-west-1.amazonaws.com` or `127.0.0.1:9000`.
    public var endpointHost: String
    /// Path-style (`host/bucket/key`, for MinIO, moto and most custom endpoints) rather than virtual-hosted
    /// (`bucket.host/key`, AWS's default).
    public var pathStyle: Bool
    /// Signs the requests.
    public var signer: SigV4Signer
    /// Objects written from chunks become multipart uploads above this many bytes.
    public var multipartThreshold = 16 << 20
    /// Bytes per uploaded part (S3's minimum is 5 MiB, except for the last).
    public var partSize = 8 << 20
    /// Tries per request (the first and the retries) for transient failures.
    public var attempts = 4
    /// Per request.
    public var timeout: TimeAmount = .seconds(60)
    /// The largest response body read.
    public var maximumResponse = 1 << 30

    /// The URL that reopens this configuration.
    public var url: String { "s3://\(bucket)/\(keyPrefix)" }

    /// `scheme://host`, for error messages.
    public var endpointDescription: String { "\(scheme)://\(endpointHost)" }

    /// Creates a configuration.
    public init(
        bucket: String, keyPrefix: String = "", region: String, endpoint: String? = nil, pathStyle: Bool? = nil,
        accessKey: String, secretKey: String, sessionToken: String? = nil
    ) throws {
        guard Self.validBucket(bucket) else {
            throw StorageError(.configuration, "'\(bucket)' is not a valid bucket name (3 to 63 lowercase letters, digits, '.' and '-')")
        }
        self.bucket = bucket
        self.keyPrefix = keyPrefix.isEmpty || keyPrefix.hasSuffix("/") ? keyPrefix : keyPrefix + "/"
        self.region = region
        let endpoint = endpoint ?? "https://s3.\(region).amazonaws.com"
        guard let separator = endpoint.firstRange(of: "://") else {
            throw StorageError(.configuration, "endpoint '\(endpoint)' must start with http:// or https://")
        }
        self.scheme = String(endpoint[..<separator.lowerBound]).lowercased()
        guard scheme == "http" || scheme == "https" else {
            throw StorageError(.configuration, "endpoint '\(endpoint)' must start with http:// or https://")
        }
        var host = String(endpoint[separator.upperBound...])
        while host.hasSuffix("/") { host.removeLast() }
        guard !host.isEmpty, !host.contains("/") else {
            throw StorageError(.configuration, "endpoint '\(endpoint)' must be scheme://host[:port] with no path")
        }
        self.endpointHost = host
        // Custom endpoints are usually path-style; AWS's are virtual-hosted (unless the bucket has dots).
        self.pathStyle = pathStyle ?? (endpoint != "https://s3.\(region).amazonaws.com" || bucket.contains("."))
        self.signer = SigV4Signer(accessKey: accessKey, secretKey: secretKey, sessionToken: sessionToken, region: region)
    }

    /// Reads `s3://bucket[/prefix][?region=…&endpoint=…&addressing=path|virtual]` and the AWS credential
    /// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; region also from
    /// `AWS_REGION` or `AWS_DEFAULT_REGION`, endpoint from `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`).
    public init(url: String, environment: [String: String]) throws {
        guard url.hasPrefix("s3://") else { throw StorageError(.configuration, "'\(url)' is not an s3:// URL") }
        var rest = Substring(url.dropFirst(5))
        var parameters: [String: String] = [:]
        if let question = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: question)...].split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                parameters[String(parts[0])] = parts.count > 1 ? Self.percentDecode(String(parts[1])) : ""
            }
            rest = rest[..<question]
        }
        let slash = rest.firstIndex(of: "/")
        let bucket = String(slash.map { rest[..<$0] } ?? rest)
        let prefix = slash.map { String(rest[rest.index(after: $0)...]) } ?? ""
        for name in parameters.keys where !["region", "endpoint", "addressing"].contains(name) {
            throw StorageError(.configuration, "unknown parameter '\(name)' in \(url) (known: region, endpoint, addressing)")
        }
        guard let accessKey = environment["AWS_ACCESS_KEY_ID"], !accessKey.isEmpty,
            let secretKey = environment["AWS_SECRET_ACCESS_KEY"], !secretKey.isEmpty
        else {
            throw StorageError(.configuration, "\(url) needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        }
        var pathStyle: Bool?
        switch parameters["addressing"] {
        case nil: pathStyle = nil
        case "path": pathStyle = true
        case "virtual": pathStyle = false
        case let other?: throw StorageError(.configuration, "addressing='\(other)' in \(url) is not path or virtual")
        }
        try self.init(
            bucket: bucket, keyPrefix: prefix,
            region: parameters["region"] ?? environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"] ?? "us-east-1",
            endpoint: parameters["endpoint"] ?? environment["AWS_ENDPOINT_URL_S3"] ?? environment["AWS_ENDPOINT_URL"],
            pathStyle: pathStyle, accessKey: accessKey, secretKey: secretKey,
            sessionToken: environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 })
    }

    /// The process's environment variables.
    public static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(decoding: UnsafeRawBufferPointer(start: entry, count: strlen(entry)), as: UTF8.self)
            if let equals = text.firstIndex(of: "=") { result[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
            pointer += 1
        }
        return result
    }

    /// The host and (unencoded) path of `key`, or of the bucket for `nil`.
    func location(of key: String?) -> (host: String, path: String) {
        let objectPath = key.map { "/" + keyPrefix + $0 } ?? "/"
        if pathStyle { return (endpointHost, "/" + bucket + (key == nil ? "" : objectPath)) }
        return (bucket + "." + endpointHost, objectPath)
    }

    static func validBucket(_ name: String) -> Bool {
        (3...63).contains(name.utf8.count)
            && name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 }
    }

    static func percentDecode(_ text: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Dates as S3 wants and gives them.
enum HTTPDate {
    /// Now, as `YYYYMMDD'T'HHMMSS'Z'`.
    static func amzNow() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))T\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z"
    }

    /// Seconds since 1970 of an RFC 1123 date (`Wed, 21 Oct 2015 07:28:00 GMT`) or an ISO 8601 one
    /// (`2015-10-21T07:28:00.000Z`); `nil` if neither.
    static func parse(_ text: String) -> Double? {
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        var parts = tm()
        let fields = text.split(whereSeparator: { " ,:-TZ.".contains($0) })
        if text.contains(","), fields.count >= 7, let month = months.firstIndex(of: String(fields[2])) {
            // Wed, 21 Oct 2015 07:28:00 GMT → [Wed, 21, Oct, 2015, 07, 28, 00, GMT]
            guard let day = Int32(fields[1]), let year = Int32(fields[3]), let hour = Int32(fields[4]),
                let minute = Int32(fields[5]), let second = Int32(fields[6])
            else { return nil }
            (parts.tm_year, parts.tm_mon, parts.tm_mday) = (year - 1900, Int32(month), day)
            (parts.tm_hour, parts.tm_min, parts.tm_sec) = (hour, minute, second)
        } else if fields.count >= 6, let year = Int32(fields[0]), let month = Int32(fields[1]), let day = Int32(fields[2]),
            let hour = Int32(fields[3]), let minute = Int32(fields[4]), let second = Int32(fields[5])
        {
            (parts.tm_year, parts.tm_mon, parts.tm_mday) = (year - 1900, month - 1, day)
            (parts.tm_hour, parts.tm_min, parts.tm_sec) = (hour, minute, second)
        } else {
            return nil
        }
        return Double(timegm(&parts))
    }
}

/// Reads the few fields Curtain needs from S3's XML documents (ListObjectsV2, uploads, errors).
enum ListingParser {
    struct Page {
        var objects: [(key: String, size: Int, modified: Double)] = []
        var truncated = false
        var nextToken: String?
    }

    static func parse(_ bytes: [UInt8]) -> Page {
        let text = String(decoding: bytes, as: UTF8.self)
        var page = Page()
        page.truncated = value(of: "IsTruncated", in: text) == "true"
        page.nextToken = value(of: "NextContinuationToken", in: text)
        for block in elements("Contents", in: text) {
            guard let key = value(of: "Key", in: block) else { continue }
            page.objects.append((key, Int(value(of: "Size", in: block) ?? "") ?? 0, value(of: "LastModified", in: block).flatMap(HTTPDate.parse) ?? 0))
        }
        return page
    }

    static func value(of tag: String, in bytes: [UInt8]) -> String? {
        value(of: tag, in: String(decoding: bytes, as: UTF8.self))
    }

    /// The unescaped text of the first `<tag>…</tag>`.
    static func value(of tag: String, in text: String) -> String? {
        elements(tag, in: text).first.map(unescape)
    }

    static func value(of tag: String, in text: Substring) -> String? {
        value(of: tag, in: String(text))
    }

    /// The contents of every `<tag>…</tag>`, in order.
    static func elements(_ tag: String, in text: String) -> [Substring] {
        var found: [Substring] = []
        var rest = text[...]
        while let open = rest.firstRange(of: "<\(tag)>"), let close = rest[open.upperBound...].firstRange(of: "</\(tag)>") {
            found.append(rest[open.upperBound..<close.lowerBound])
            rest = rest[close.upperBound...]
        }
        return found
    }

    static func unescape(_ text: Substring) -> String {
        guard text.contains("&") else { return String(text) }
        return String(text).replacing("&lt;", with: "<").replacing("&gt;", with: ">")
            .replacing("&quot;", with: "\"").replacing("&apos;", with: "'")
            .replacing("&#34;", with: "\"").replacing("&amp;", with: "&")
    }

    static func escape(_ text: String) -> String {
        text.replacing("&", with: "&amp;").replacing("<", with: "&lt;")
            .replacing(">", with: "&gt;").replacing("\"", with: "&quot;")
    }
}
