public import NIOCore
#if TLS
public import NIOSSL
#endif

/// Where a RESP server listens.
public enum RESPEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// A TCP host and port.
    case tcp(host: String, port: Int)
    /// A Unix domain socket path.
    case unix(path: String)

    /// `host:port`, `[v6]:port` or `unix:///path`.
    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return "unix://\(path)"
        }
    }
}

/// How a ``RESPClient`` connects, authenticates and behaves.
///
/// Most users build it from a URL with ``init(url:)``:
/// - `redis://[user:password@]host[:port][/db]` (port 6379 by default);
/// - `rediss://…` for TLS, verifying the server's certificate against the system's CAs by default (TLS needs
///   Curtain's `TLS` package trait; without it a `rediss://` URL is refused with an error saying how to enable it);
/// - `unix:///path/to/socket[?db=N&password=…&user=…]`.
public struct RESPConfiguration: Sendable {
    /// Where to connect.
    public var endpoint: RESPEndpoint
    #if TLS
    /// TLS settings; `nil` for plain TCP. `rediss://` URLs set a client configuration with full
    /// certificate verification (`certificateVerification = .fullVerification`). Only with the `TLS` trait.
    public var tls: TLSConfiguration?
    #endif
    /// The name the server certificate must carry; defaults to the endpoint's host.
    public var tlsServerName: String?
    /// The ACL user for `AUTH`; `nil` means the `default` user.
    public var username: String?
    /// The password for `AUTH`; `nil` sends no `AUTH`.
    public var password: String?
    /// The logical database to `SELECT` after connecting (0 by default).
    public var database: Int
    /// A name set with `CLIENT SETNAME`, shown by `CLIENT LIST`.
    public var clientName: String?
    /// The protocol version to negotiate: 2 (no `HELLO`) or 3 (`HELLO 3`).
    public var protocolVersion: Int
    /// How many multiplexed connections the pool keeps for ordinary commands.
    public var poolSize: Int
    /// The longest a command may wait for its reply; `nil` waits forever. Blocking commands
    /// (`BLPOP`, …) ignore this default, since their own timeout argument governs them.
    public var commandTimeout: TimeAmount?
    /// The longest a connection attempt (TCP, TLS and handshake) may take.
    public var connectTimeout: TimeAmount
    /// The first delay before reconnecting after a failed attempt; it doubles per failure up to
    /// ``maximumReconnectDelay``.
    public var initialReconnectDelay: TimeAmount
    /// The longest delay between reconnection attempts.
    public var maximumReconnectDelay: TimeAmount
    /// Bounds on what the decoder accepts from the server.
    public var parserLimits: RESPParser.Limits

    #if TLS
    /// Creates a configuration for `endpoint` with the defaults.
    public init(
        endpoint: RESPEndpoint,
        tls: TLSConfiguration?,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        clientName: String? = nil,
        protocolVersion: Int = 2,
        poolSize: Int = 2,
        commandTimeout: TimeAmount? = .seconds(30),
        connectTimeout: TimeAmount = .seconds(5)
    ) {
        self.init(
            endpoint: endpoint, username: username, password: password, database: database, clientName: clientName,
            protocolVersion: protocolVersion, poolSize: poolSize, commandTimeout: commandTimeout, connectTimeout: connectTimeout)
        self.tls = tls
    }
    #endif

    /// Creates a configuration for `endpoint` with the defaults.
    public init(
        endpoint: RESPEndpoint,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        clientName: String? = nil,
        protocolVersion: Int = 2,
        poolSize: Int = 2,
        commandTimeout: TimeAmount? = .seconds(30),
        connectTimeout: TimeAmount = .seconds(5)
    ) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
        self.clientName = clientName
        self.protocolVersion = protocolVersion
        self.poolSize = poolSize
        self.commandTimeout = commandTimeout
        self.connectTimeout = connectTimeout
        self.initialReconnectDelay = .milliseconds(20)
        self.maximumReconnectDelay = .seconds(2)
        self.parserLimits = .default
    }

    /// Parses a `redis://`, `rediss://` or `unix://` URL.
    ///
    /// Query parameters: `db`, `user`, `password`, and for `rediss://` `ssl_ca_certs=PATH` (as in redis-py),
    /// a PEM file of the CA certificates to trust instead of the system's (a cluster with its own CA).
    ///
    /// - Throws: ``RESPError/invalidConfiguration(_:)`` naming what is wrong with the URL, or saying how to
    ///   enable the `TLS` trait for a `rediss://` URL in a build without it.
    public init(url: String) throws(RESPError) {
        let parsed = try RESPURL.parse(url)
        self.init(endpoint: parsed.endpoint)
        self.username = parsed.username
        self.password = parsed.password
        self.database = parsed.database
        if parsed.tls {
            #if TLS
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .fullVerification
            if let caFile = parsed.caFile {
                // Read now, so that a wrong path is an error here rather than at the first connection.
                do {
                    let certificates = try NIOSSLCertificate.fromPEMFile(caFile)
                    guard !certificates.isEmpty else { throw RESPError.invalidConfiguration("no certificate in it") }
                    tls.trustRoots = .certificates(certificates)
                } catch {
                    throw .invalidConfiguration("store URL '\(RESPURL.redacted(url))': ssl_ca_certs '\(caFile)' is not a readable PEM file of certificates (\(error))")
                }
            }
            self.tls = tls
            #else
            throw .invalidConfiguration(Self.tlsTraitMissing(url: RESPURL.redacted(url)))
            #endif
        }
    }

    /// Whether connections made with this configuration use TLS (always `false` without the `TLS` trait).
    public var usesTLS: Bool {
        #if TLS
        tls != nil
        #else
        false
        #endif
    }

    /// Whether this build can speak TLS (it was built with Curtain's `TLS` package trait).
    public static var supportsTLS: Bool {
        #if TLS
        true
        #else
        false
        #endif
    }

    /// What a build without the `TLS` trait says of a `rediss://` URL.
    static func tlsTraitMissing(url: String) -> String {
        "\(url) needs TLS, and " + traitOff("TLS", keeping: "swift-nio-ssl", name: "it")
    }

    /// Why a setting is refused by a build without `trait`, and the exact ways to turn the trait on (shared by
    /// every module of Curtain, so that each trait is explained the same way).
    package static func traitOff(_ trait: String, keeping dependency: String, name: String) -> String {
        "this build of Curtain has \(name) off (the \(trait) package trait keeps \(dependency) out of the default "
            + "build). Turn it on: `swift build --traits \(trait)` (or `swift run --traits \(trait) …`) in Curtain's own "
            + "checkout, or `.package(url: \"…/curtain\", from: \"…\", traits: [\"\(trait)\"])` in your Package.swift"
    }

    /// Validates values a URL or a caller may have got wrong.
    func validate() throws(RESPError) {
        if protocolVersion != 2 && protocolVersion != 3 {
            throw .invalidConfiguration("protocolVersion must be 2 or 3, not \(protocolVersion)")
        }
        if poolSize < 1 { throw .invalidConfiguration("poolSize must be at least 1, not \(poolSize)") }
        if database < 0 { throw .invalidConfiguration("database must not be negative, not \(database)") }
        if case .tcp(_, let port) = endpoint, !(1...65535).contains(port) {
            throw .invalidConfiguration("port \(port) is outside 1…65535")
        }
    }
}

/// The parts of a store URL.
extension RESPConfiguration {
    /// `url` with any password (in the user info or a query parameter) replaced by `***`, safe to log.
    public static func redacted(url: String) -> String { RESPURL.redacted(url) }
}

struct RESPURL: Hashable {
    var endpoint: RESPEndpoint
    var tls: Bool
    var username: String?
    var password: String?
    var database: Int
    /// `ssl_ca_certs=PATH` (redis-py's name): a PEM file of the CAs to trust instead of the system's.
    var caFile: String? = nil

    static func parse(_ url: String) throws(RESPError) -> RESPURL {
        func bad(_ why: String) -> RESPError {
            .invalidConfiguration("store URL '\(redacted(url))': \(why)")
        }
        guard let schemeEnd = url.firstRange(of: "://") else {
            throw bad("expected redis://, rediss:// or unix://")
        }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        var rest = Substring(url[schemeEnd.upperBound...])
        var query: [String: String] = [:]
        if let q = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: q)...].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = try percentDecode(kv[0], url: url)
                let value = kv.count > 1 ? try percentDecode(kv[1], url: url) : ""
                query[key] = value
            }
            rest = rest[..<q]
        }
        let caFile = query["ssl_ca_certs"]
        if let caFile {
            guard scheme == "rediss" else { throw bad("ssl_ca_certs is for rediss:// URLs (TLS)") }
            guard !caFile.isEmpty else { throw bad("ssl_ca_certs is empty; it names a PEM file of CA certificates") }
        }
        var database = 0
        if let db = query["db"] {
            guard let n = Int(db), n >= 0 else { throw bad("db '\(db)' is not a non-negative integer") }
            database = n
        }
        switch scheme {
        case "unix":
            guard rest.hasPrefix("/"), rest.count > 1 else { throw bad("unix URLs need an absolute socket path") }
            return RESPURL(
                endpoint: .unix(path: try percentDecode(rest, url: url)), tls: false,
                username: query["user"], password: query["password"], database: database)
        case "redis", "rediss":
            var username: String?
            var password: String?
            if let at = rest.lastIndex(of: "@") {
                let userinfo = rest[..<at]
                rest = rest[rest.index(after: at)...]
                if let colon = userinfo.firstIndex(of: ":") {
                    let user = userinfo[..<colon]
                    username = user.isEmpty ? nil : try percentDecode(user, url: url)
                    password = try percentDecode(userinfo[userinfo.index(after: colon)...], url: url)
                } else if !userinfo.isEmpty {
                    // redis://password@host is how several clients spell a password without a user.
                    password = try percentDecode(userinfo, url: url)
                }
            }
            var hostPort = rest
            if let slash = rest.firstIndex(of: "/") {
                hostPort = rest[..<slash]
                let path = rest[rest.index(after: slash)...]
                if !path.isEmpty {
                    guard let n = Int(path), n >= 0 else { throw bad("database '\(path)' is not a non-negative integer") }
                    database = n
                }
            }
            var host: String
            var port = 6379
            if hostPort.hasPrefix("[") {
                guard let close = hostPort.firstIndex(of: "]") else { throw bad("unterminated IPv6 address") }
                host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
                let after = hostPort[hostPort.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()) else { throw bad("port '\(after.dropFirst())' is not a number") }
                    port = p
                } else if !after.isEmpty {
                    throw bad("unexpected '\(after)' after the IPv6 address")
                }
            } else if let colon = hostPort.lastIndex(of: ":") {
                host = String(hostPort[..<colon])
                let p = hostPort[hostPort.index(after: colon)...]
                guard let n = Int(p) else { throw bad("port '\(p)' is not a number") }
                port = n
            } else {
                host = String(hostPort)
            }
            if host.isEmpty { host = "127.0.0.1" }
            guard (1...65535).contains(port) else { throw bad("port \(port) is outside 1…65535") }
            return RESPURL(
                endpoint: .tcp(host: host, port: port), tls: scheme == "rediss",
                username: username, password: password, database: database, caFile: caFile)
        default:
            throw bad("unsupported scheme '\(scheme)'; expected redis://, rediss:// or unix://")
        }
    }

    /// The URL with any password replaced by `***`, safe to log.
    static func redacted(_ url: String) -> String {
        let withoutQueryPassword = redactedQuery(url)
        return redactedUserinfo(withoutQueryPassword)
    }

    /// Replaces the value of a `password=` query parameter by `***`.
    private static func redactedQuery(_ url: String) -> String {
        guard let q = url.firstIndex(of: "?") else { return url }
        let pairs = url[url.index(after: q)...].split(separator: "&", omittingEmptySubsequences: false).map { pair in
            pair.lowercased().hasPrefix("password=") ? "password=***" : String(pair)
        }
        return String(url[...q]) + pairs.joined(separator: "&")
    }

    private static func redactedUserinfo(_ url: String) -> String {
        guard let schemeEnd = url.firstRange(of: "://"), let at = url[schemeEnd.upperBound...].lastIndex(of: "@") else {
            return url
        }
        let userinfo = url[schemeEnd.upperBound..<at]
        if let colon = userinfo.firstIndex(of: ":") {
            return String(url[..<colon]) + ":***" + String(url[at...])
        }
        return String(url[..<schemeEnd.upperBound]) + "***" + String(url[at...])
    }

    static func percentDecode(_ s: Substring, url: String) throws(RESPError) -> String {
        guard s.contains("%") else { return String(s) }
        var bytes: [UInt8] = []
        var it = s.utf8.makeIterator()
        while let c = it.next() {
            if c == UInt8(ascii: "%") {
                guard let h = it.next(), let l = it.next(), let hv = hexValue(h), let lv = hexValue(l) else {
                    throw .invalidConfiguration("store URL '\(redacted(url))': bad percent-escape")
                }
                bytes.append(hv << 4 | lv)
            } else {
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
