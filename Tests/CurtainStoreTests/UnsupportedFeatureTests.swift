import CurtainRESP
import CurtainStore
import NIOCore
import Testing

/// What the embedded store does not implement answers an error naming it, never a silent `OK` or an empty
/// reply a client would take for an answer (these differ from redis-server, so they are not conformance tests).
@Suite("Unsupported features are refused by name", .serialized)
struct UnsupportedFeatureTests {
    private func withClient(_ body: (RawClient) throws -> Void) async throws {
        let server = try await StoreServer.start(configuration: .init())
        do {
            try body(try RawClient(port: try #require(server.port)))
        } catch {
            try await server.shutdown()
            throw error
        }
        try await server.shutdown()
    }

    private func errorText(_ reply: RESPValue) -> String {
        if case .error(let text) = reply { return String(buffer: text) }
        return "not an error: \(reply)"
    }

    @Test func fixedParametersAreRefusedUnlessUnchanged() async throws {
        try await withClient { c throws in
            #expect(try c.call("CONFIG", "SET", "maxmemory", "0") == .ok)
            #expect(try c.call("CONFIG", "SET", "save", "") == .ok)
            #expect(try errorText(c.call("CONFIG", "SET", "maxmemory", "100mb")).hasPrefix(
                "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - the embedded store cannot change it"))
            #expect(try errorText(c.call("CONFIG", "SET", "appendonly", "yes")).contains("'appendonly'"))
            #expect(try errorText(c.call("CONFIG", "SET", "notify-keyspace-events", "Km")).contains("key-miss"))
            #expect(try c.call("CONFIG", "GET", "notify-keyspace-events") == .array([.text("notify-keyspace-events"), .text("")]))
        }
    }

    @Test func unsupportedSubcommandsNameThemselves() async throws {
        try await withClient { c throws in
            #expect(try errorText(c.call("COMMAND", "INFO", "get")).hasPrefix("ERR COMMAND INFO is not supported"))
            #expect(try errorText(c.call("COMMAND", "DOCS")).hasPrefix("ERR COMMAND DOCS is not supported"))
            #expect(try errorText(c.call("COMMAND")).hasPrefix("ERR COMMAND without a subcommand is not supported"))
            #expect(try errorText(c.call("CLIENT", "LIST", "TYPE", "normal")).hasPrefix("ERR CLIENT LIST options"))
            #expect(try errorText(c.call("CLIENT", "KILL", "ID", "1")).hasPrefix("ERR unknown subcommand 'KILL'"))
            #expect(try c.call("SET", "k", "v") == .ok)
            #expect(try errorText(c.call("OBJECT", "IDLETIME", "k")).hasPrefix("ERR OBJECT IDLETIME is not supported"))
            #expect(try errorText(c.call("OBJECT", "FREQ", "k")).hasPrefix("ERR An LFU maxmemory policy is not selected"))
            #expect(try errorText(c.call("MEMORY", "STATS")).hasPrefix("ERR unknown subcommand 'STATS'"))
            #expect(try errorText(c.call("CLIENT", "REPLY", "MAYBE")) == "ERR syntax error")
            if case .integer(let count) = try c.call("COMMAND", "COUNT") {
                #expect(count > 100)
            } else {
                Issue.record("COMMAND COUNT should answer an integer")
            }
        }
    }

    @Test func infoReportsTheTrueAverageTTL() async throws {
        try await withClient { c throws in
            #expect(try c.call("SET", "a", "1", "PX", "100000000") == .ok)
            #expect(try c.call("SET", "b", "1", "PX", "300000000") == .ok)
            #expect(try c.call("SET", "c", "1") == .ok)
            guard case .bulkString(let text?) = try c.call("INFO", "keyspace") else {
                Issue.record("INFO should answer a bulk string")
                return
            }
            let line = String(buffer: text).split(separator: "\r\n").first { $0.hasPrefix("db0:") } ?? ""
            #expect(line.hasPrefix("db0:keys=3,expires=2,avg_ttl="))
            let ttl = Int(line.split(separator: "=").last ?? "") ?? 0
            // (1e8 + 3e8) / 2 ms, less the time since the SETs: above the shorter TTL, so an average.
            #expect(ttl > 100_000_000 && ttl <= 200_000_000)
        }
    }
}
