import Crypto

/// AWS Signature Version 4 for S3 requests (`AWS4-HMAC-SHA256`).
///
/// The canonical request is built as AWS specifies for S3: the path's segments URI-encoded once (S3 does
/// not double-encode), the query sorted by encoded name then value, the signed headers lower-cased,
/// trimmed and sorted, and the payload's SHA-256 (or `UNSIGNED-PAYLOAD`). Checked against AWS's published
/// example signatures (`SigV4Tests`).
public struct SigV4Signer: Sendable {
    /// The access key id.
    public var accessKey: String
    /// The secret access key.
    public var secretKey: String
    /// A session token for temporary credentials, sent as `x-amz-security-token`.
    public var sessionToken: String?
    /// The region, for example `us-east-1`.
    public var region: String
    /// The service, `s3`.
    public var service: String

    /// Creates a signer.
    public init(accessKey: String, secretKey: String, sessionToken: String? = nil, region: String, service: String = "s3") {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.sessionToken = sessionToken
        self.region = region
        self.service = service
    }

    /// The hex SHA-256 of `bytes`, the `x-amz-content-sha256` of a signed payload.
    public static func hash(_ bytes: some Sequence<UInt8>) -> String {
        hex(SHA256.hash(data: Array(bytes)))
    }

    /// The SHA-256 of an empty payload.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// Returns `headers` plus `x-amz-date`, `x-amz-content-sha256`, the session token if any, and
    /// `Authorization`, for a request of `method` to `path` (not yet encoded) with `query` (not yet
    /// encoded) on `host`.
    ///
    /// - Parameters:
    ///   - amzDate: the request time as `YYYYMMDD'T'HHMMSS'Z'`.
    ///   - payloadHash: the hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    public func sign(
        method: String, host: String, path: String, query: [(String, String)], headers: [(String, String)],
        payloadHash: String, amzDate: String
    ) -> [(String, String)] {
        var all = headers
        all.append(("host", host))
        all.append(("x-amz-date", amzDate))
        all.append(("x-amz-content-sha256", payloadHash))
        if let sessionToken { all.append(("x-amz-security-token", sessionToken)) }
        let canonical = canonicalRequest(method: method, path: path, query: query, headers: all, payloadHash: payloadHash)
        let day = String(amzDate.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n\(Self.hash(Array(canonical.request.utf8)))"
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: signingKey(day: day)))
        var signed = all.filter { $0.0.lowercased() != "host" }
        signed.append((
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope), SignedHeaders=\(canonical.signedHeaders), Signature=\(signature)"
        ))
        return signed
    }

    /// The canonical request and its signed-header list (exposed for tests against AWS's examples).
    func canonicalRequest(
        method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadHash: String
    ) -> (request: String, signedHeaders: String) {
        let segments: [String] = path.split(separator: "/", omittingEmptySubsequences: false).map { Self.encode(String($0)) }
        let canonicalPath = path.isEmpty ? "/" : segments.joined(separator: "/")
        var pairs: [(name: String, value: String)] = query.map { (Self.encode($0.0), Self.encode($0.1)) }
        pairs.sort { (a: (name: String, value: String), b: (name: String, value: String)) -> Bool in
            a.name == b.name ? a.value < b.value : a.name < b.name
        }
        let canonicalQuery = pairs.map { (pair: (name: String, value: String)) -> String in pair.name + "=" + pair.value }
            .joined(separator: "&")
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            let words: [Substring] = value.split(whereSeparator: { (c: Character) -> Bool in c == " " || c == "\t" })
            merged[name.lowercased(), default: []].append(words.joined(separator: " "))
        }
        let names = merged.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let request = "\(method)\n\(canonicalPath)\n\(canonicalQuery)\n\(canonicalHeaders)\n\(signedHeaders)\n\(payloadHash)"
        return (request, signedHeaders)
    }

    private func signingKey(day: String) -> SymmetricKey {
        func hmac(_ key: SymmetricKey, _ text: String) -> SymmetricKey {
            SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key)))
        }
        let date = hmac(SymmetricKey(data: Array(("AWS4" + secretKey).utf8)), day)
        return hmac(hmac(hmac(date, region), service), "aws4_request")
    }

    /// RFC 3986 percent-encoding of everything but `A–Z a–z 0–9 - . _ ~`.
    public static func encode(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            default:
                let digits = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 15)]], as: UTF8.self)
            }
        }
        return out
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
