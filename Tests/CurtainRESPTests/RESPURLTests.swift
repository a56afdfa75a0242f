@testable import CurtainRESP
#if TLS
import NIOSSL
#endif
import Testing

@Suite("Store URL parsing")
struct RESPURLTests {
    private func parse(_ url: String) throws -> RESPURL {
        try RESPURL.parse(url)
    }

    /// The message of the error `url` is refused with.
    private func refusal(_ url: String) -> String? {
        do {
            _ = try RESPURL.parse(url)
            return nil
        } catch {
            guard case .invalidConfiguration(let message) = error else { return "unexpected error \(error)" }
            return message
        }
    }

    @Test func hostOnly() throws {
        let url = try parse("redis://localhost")
        #expect(url == RESPURL(endpoint: .tcp(host: "localhost", port: 6379), tls: false, username: nil, password: nil, database: 0))
    }

    @Test func portAndDatabase() throws {
        let url = try parse("redis://h:6380/2")
        #expect(url.endpoint == .tcp(host: "h", port: 6380))
        #expect(url.database == 2)
        #expect(!url.tls)
        #expect(try parse("redis://h:6380/").database == 0)
        #expect(try parse("REDIS://h").endpoint == .tcp(host: "h", port: 6379))
    }

    @Test func userAndPercentEncodedPassword() throws {
        let url = try parse("redis://user:p%40ss@h:1/0")
        #expect(url.username == "user")
        #expect(url.password == "p@ss")
        #expect(url.endpoint == .tcp(host: "h", port: 1))
        #expect(url.database == 0)
        #expect(try parse("redis://us%3Aer:a%2Fb%25c@h").username == "us:er")
        #expect(try parse("redis://us%3Aer:a%2Fb%25c@h").password == "a/b%c")
        // An unencoded @ in the password still works: the last @ ends the user info.
        #expect(try parse("redis://u:p@ss@h").password == "p@ss")
    }

    @Test func passwordWithoutUser() throws {
        let url = try parse("redis://:pw@h")
        #expect(url.username == nil)
        #expect(url.password == "pw")
        #expect(url.endpoint == .tcp(host: "h", port: 6379))
        let legacy = try parse("redis://secret@h")
        #expect(legacy.username == nil)
        #expect(legacy.password == "secret")
    }

    @Test func tls() throws {
        #expect(try parse("rediss://h").tls)
        #expect(try parse("rediss://h").endpoint == .tcp(host: "h", port: 6379))
        #if TLS
        #expect(RESPConfiguration.supportsTLS)
        let configuration = try RESPConfiguration(url: "rediss://u:pw@cache.example.com:6380/3")
        let tls = try #require(configuration.tls)
        #expect(tls.certificateVerification == .fullVerification)
        #expect(configuration.endpoint == .tcp(host: "cache.example.com", port: 6380))
        #expect(configuration.username == "u")
        #expect(configuration.password == "pw")
        #expect(configuration.database == 3)
        #expect(try RESPConfiguration(url: "redis://h").tls == nil)
        #else
        // Without the TLS trait a rediss:// URL is refused, naming the trait and how to turn it on, and
        // without echoing the password.
        #expect(!RESPConfiguration.supportsTLS)
        do {
            _ = try RESPConfiguration(url: "rediss://u:pw@cache.example.com:6380/3")
            Issue.record("a rediss:// URL was accepted by a build without TLS")
        } catch {
            guard case .invalidConfiguration(let message) = error else { Issue.record("\(error)"); return }
            #expect(message.contains("--traits TLS") && message.contains("traits: [\"TLS\"]"))
            #expect(message.contains("rediss://u:***@cache.example.com:6380/3") && !message.contains("pw"))
        }
        #endif
    }

    @Test func ipv6() throws {
        let url = try parse("redis://[::1]:7000")
        #expect(url.endpoint == .tcp(host: "::1", port: 7000))
        #expect(url.endpoint.description == "[::1]:7000")
        #expect(try parse("redis://[fe80::1]").endpoint == .tcp(host: "fe80::1", port: 6379))
        #expect(try parse("redis://:pw@[::1]:7000/4").database == 4)
    }

    @Test func emptyHostMeansLoopback() throws {
        #expect(try parse("redis://").endpoint == .tcp(host: "127.0.0.1", port: 6379))
        #expect(try parse("redis://:6390").endpoint == .tcp(host: "127.0.0.1", port: 6390))
    }

    @Test func unixSocket() throws {
        let url = try parse("unix:///tmp/x.sock?db=3&password=pw")
        #expect(url.endpoint == .unix(path: "/tmp/x.sock"))
        #expect(url.database == 3)
        #expect(url.password == "pw")
        #expect(url.username == nil)
        #expect(!url.tls)
        #expect(url.endpoint.description == "unix:///tmp/x.sock")
        let withUser = try parse("unix:///var/run/redis%20x.sock?user=alice&password=p%26w")
        #expect(withUser.endpoint == .unix(path: "/var/run/redis x.sock"))
        #expect(withUser.username == "alice")
        #expect(withUser.password == "p&w")
        #expect(withUser.database == 0)
    }

    @Test func configurationFromURL() throws {
        let configuration = try RESPConfiguration(url: "unix:///tmp/x.sock?db=3&password=pw")
        #expect(configuration.endpoint == .unix(path: "/tmp/x.sock"))
        #expect(configuration.database == 3)
        #expect(configuration.password == "pw")
        #if TLS
        #expect(configuration.tls == nil)
        #endif
        #expect(configuration.protocolVersion == 2)
        #expect(throws: RESPError.self) { try RESPConfiguration(url: "http://h") }
    }

    @Test(arguments: [
        ("http://h", "unsupported scheme 'http'; expected redis://, rediss:// or unix://"),
        ("localhost:6379", "expected redis://, rediss:// or unix://"),
        ("redis://h:99999", "port 99999 is outside 1…65535"),
        ("redis://h:0", "port 0 is outside 1…65535"),
        ("redis://h:abc", "port 'abc' is not a number"),
        ("redis://h:", "port '' is not a number"),
        ("redis://[::1]:x", "port 'x' is not a number"),
        ("redis://[::1", "unterminated IPv6 address"),
        ("redis://[::1]7000", "unexpected '7000' after the IPv6 address"),
        ("redis://h/x", "database 'x' is not a non-negative integer"),
        ("redis://h/-1", "database '-1' is not a non-negative integer"),
        ("unix:///tmp/x.sock?db=x", "db 'x' is not a non-negative integer"),
        ("unix://relative", "unix URLs need an absolute socket path"),
        ("unix://", "unix URLs need an absolute socket path"),
        ("unix:///", "unix URLs need an absolute socket path"),
        ("redis://u:p%zz@h", "bad percent-escape"),
        ("redis://u:p%4@h", "bad percent-escape"),
        ("unix:///tmp/%g0.sock", "bad percent-escape"),
    ])
    func refusedWithAClearMessage(_ url: String, _ problem: String) throws {
        let message = try #require(refusal(url), "\(url) should be refused")
        #expect(message.contains(problem), "message was: \(message)")
        #expect(message.hasPrefix("store URL '"))
    }

    @Test func errorsNeverShowThePassword() throws {
        let message = try #require(refusal("redis://user:hunter2@h:99999"))
        #expect(!message.contains("hunter2"))
        #expect(message.contains("redis://user:***@h:99999"))
        let escaped = try #require(refusal("redis://u:p%zz@h"))
        #expect(!escaped.contains("p%zz"))
        let configurationError = RESPError.invalidConfiguration(message)
        #expect(!configurationError.description.contains("hunter2"))
    }

    @Test func redacted() {
        #expect(RESPURL.redacted("redis://user:secret@h:1/0") == "redis://user:***@h:1/0")
        #expect(RESPURL.redacted("redis://:secret@h") == "redis://:***@h")
        #expect(RESPURL.redacted("redis://secret@h") == "redis://***@h")
        #expect(RESPURL.redacted("rediss://u:p@ss@h") == "rediss://u:***@h")
        #expect(RESPURL.redacted("redis://h:6379/2") == "redis://h:6379/2")
        #expect(RESPURL.redacted("not a url") == "not a url")
    }

    @Test func redactedHidesAUnixSocketPassword() {
        #expect(!RESPURL.redacted("unix:///tmp/x.sock?password=secret").contains("secret"))
        #expect(!(refusal("unix:///tmp/x.sock?db=x&password=secret") ?? "").contains("secret"))
    }
}

@Suite struct RESPURLEdgeCaseTests {
    @Test func aQueryPairOfJustEqualsIsHarmless() throws {
        let parsed = try RESPURL.parse("redis://h?=")
        #expect(parsed.endpoint == .tcp(host: "h", port: 6379))
    }
}
