import CurtainRESP
import CurtainTestSupport
import Testing

@Suite("Connection and server commands")
struct ServerConformanceTests {
    @Test(arguments: allStores)
    func pingEchoAndUnknownCommands(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("PING") == .simple("PONG"))
            #expect(try await c.cmd("PING", "hi") == .bulk("hi"))
            #expect(try await c.cmd("ECHO", "hello") == .bulk("hello"))
            await expectServerError("ERR unknown command 'FOOBAR', with args beginning with: 'a' 'b' ") {
                _ = try await c.cmd("FOOBAR", "a", "b")
            }
            await expectServerError("ERR unknown command 'nope', with args beginning with: ") {
                _ = try await c.cmd("nope")
            }
            // The connection is still usable and nothing was touched.
            #expect(try await c.cmd("SET", "k", "v") == .ok)
            #expect(try await c.cmd("GET", "k") == .bulk("v"))
        }
    }

    @Test(arguments: allStores)
    func helloSwitchesProtocol(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            try await c.withDedicatedConnection { conn in
                let hello = try await conn.cmd("HELLO", "3")
                guard case .map(let entries) = hello else {
                    Issue.record("HELLO 3 should reply with a map, got \(hello)")
                    return
                }
                let fields = Dictionary(entries.map { ($0.key.string ?? "", $0.value) }, uniquingKeysWith: { a, _ in a })
                #expect(fields["proto"] == .integer(3))
                #expect(fields["server"] != nil)
                #expect(fields["role"]?.string == "master")
                #expect(try await conn.cmd("GET", "missing") == .null)
                await expectServerError("NOPROTO") { _ = try await conn.cmd("HELLO", "4") }
                let back = try await conn.cmd("HELLO", "2")
                #expect(back.array?.count == fields.count * 2)
                #expect(try await conn.cmd("GET", "missing") == .bulkString(nil))
            }
        }
    }

    @Test(arguments: allStores)
    func authIsRequiredWhenAPasswordIsSet(kind: StoreKind) async throws {
        try await withTestStore(kind, requirePass: "s3cret") { (store) async throws in
            var anonymous = store.configuration()
            anonymous.password = nil
            let plain = try await RESPConnection.connect(configuration: anonymous)
            await expectServerError("NOAUTH Authentication required") { _ = try await plain.cmd("GET", "k") }
            await expectServerError("WRONGPASS invalid username-password pair") { _ = try await plain.cmd("AUTH", "wrong") }
            await expectServerError("NOAUTH") { _ = try await plain.cmd("SET", "k", "v") }
            #expect(try await plain.cmd("AUTH", "s3cret") == .ok)
            #expect(try await plain.cmd("SET", "k", "v") == .ok)
            #expect(try await plain.cmd("AUTH", "default", "s3cret") == .ok)
            await plain.close()

            // Through the client: the password from the configuration (AUTH with RESP2, HELLO AUTH with RESP3).
            for version in [2, 3] {
                let client = try store.client(protocolVersion: version)
                #expect(try await client.cmd("GET", "k") == .bulk("v"))
                await client.close()
            }
            var wrong = store.configuration()
            wrong.password = "nope"
            do {
                _ = try await RESPConnection.connect(configuration: wrong)
                Issue.record("connecting with a wrong password should fail")
            } catch let RESPError.server(message) {
                #expect(message.contains("authentication"))
                #expect(message.contains("WRONGPASS"))
            }
        }
    }

    /// ACL users exist on Redis only (the embedded store has just `default`): AUTH user pass, from a URL,
    /// over RESP2 and RESP3.
    @Test func aclUserFromTheURL() async throws {
        try await withTestStore(.redis) { (store) async throws in
            let admin = try store.client()
            #expect(try await admin.cmd("ACL", "SETUSER", "alice", "on", ">p@ss:word", "~app:*", "+@all") == .ok)
            await admin.close()
            for version in [2, 3] {
                var config = try RESPConfiguration(url: "redis://alice:p%40ss%3Aword@127.0.0.1:\(store.port)/0")
                config.protocolVersion = version
                let alice = try RESPClient(configuration: config)
                #expect(try await alice.cmd("SET", "app:k", "v") == .ok)
                #expect(try await alice.cmd("ACL", "WHOAMI") == .bulk("alice"))
                await expectServerError("NOPERM") { _ = try await alice.cmd("GET", "other") }
                await alice.close()
            }
            let wrong = try RESPClient(url: "redis://alice:nope@127.0.0.1:\(store.port)")
            await #expect(throws: RESPError.self) { _ = try await wrong.cmd("PING") }
            await wrong.close()
        }
    }

    @Test(arguments: allStores)
    func clientNameInfoAndFlushall(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            var config = store.configuration()
            config.clientName = "curtain-test"
            let c = try RESPClient(configuration: config)
            #expect(try await c.cmd("CLIENT", "GETNAME") == .bulk("curtain-test"))
            let info = try #require(try await c.cmd("INFO").string)
            #expect(info.contains("redis_version:"))
            #expect(info.contains("connected_clients:"))
            _ = try await c.cmd("SET", "a", "1")
            #expect(try await c.cmd("INFO", "keyspace").string?.contains("db0:keys=1") == true)
            #expect(try await c.cmd("FLUSHALL") == .ok)
            #expect(try await c.cmd("DBSIZE") == .integer(0))
            await c.close()
        }
    }

    @Test(arguments: allStores)
    func quitClosesTheConnection(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            let conn = try await RESPConnection.connect(configuration: store.configuration())
            #expect(try await conn.cmd("QUIT") == .ok)
            try await conn.closeFuture.get()
            #expect(!conn.isActive)
        }
    }

    @Test(arguments: allStores)
    func unixSocket(kind: StoreKind) async throws {
        let store = try await TestStore.start(kind, unixSocket: true)
        defer { Task { await store.stop() } }
        let path = try #require(store.unixSocketPath)
        let c = try RESPClient(url: "unix://\(path)")
        #expect(try await c.cmd("SET", "via", "socket") == .ok)
        let tcp = try store.client()
        #expect(try await tcp.cmd("GET", "via") == .bulk("socket"))
        await c.close()
        await tcp.close()
        await store.stop()
    }
}
