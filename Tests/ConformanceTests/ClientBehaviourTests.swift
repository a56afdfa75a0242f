import CurtainRESP
import CurtainTestSupport
import Foundation
import NIOCore
import NIOPosix
#if TLS
import NIOSSL
#endif
import Testing

@Suite("Client: pipelining, concurrency, reconnection, timeouts, TLS")
struct ClientBehaviourTests {
    @Test(arguments: allStores)
    func pipelineKeepsOrderAndReportsErrorsInPlace(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            var commands: [RESPCommand] = []
            for i in 0..<1000 { commands.append(RESPCommand("RPUSH", "p", i)) }
            commands.append(RESPCommand("GET", "p"))  // WRONGTYPE, in the middle of the results
            commands.append(RESPCommand("LLEN", "p"))
            let replies = try await c.pipeline(commands)
            #expect(replies.count == 1002)
            #expect(replies[0] == .integer(1))
            #expect(replies[999] == .integer(1000))
            #expect(replies[1000].errorMessage?.hasPrefix("WRONGTYPE") == true)
            #expect(replies[1001] == .integer(1000))
        }
    }

    @Test(arguments: allStores)
    func commandsSentTogetherAreAnsweredOneByOneAndALookThenAWaitIsOneStep(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, store) async throws in
            let connection = try await RESPConnection.connect(configuration: store.configuration())
            defer { Task { await connection.close() } }
            let id = try #require(try await connection.cmd("CLIENT", "ID").int)
            // A look that finds something, then a wait: the look's reply comes while the wait still blocks,
            // and ending the wait from another connection returns its empty reply.
            _ = try await c.cmd("RPUSH", "own", "placed")
            let look = RESPCommand(words: ["LMOVE", "own", "inflight", "LEFT", "RIGHT"])
            let wait = RESPCommand(words: ["BLMOVE", "shared", "inflight", "LEFT", "RIGHT", "30"])
            let found = connection.sendTogether([look, wait])
            #expect(found.count == 2)
            #expect(try await found.reply(0).string == "placed")
            try await waitForBlockedClients(c, 1)
            #expect(try await c.send(RESPCommand("CLIENT", "UNBLOCK", id)) == .integer(1))
            #expect(try await found.reply(1).buffer == nil)
            // A look that finds nothing, then a wait that a later push ends with the pushed element.
            let empty = connection.sendTogether([look, wait])
            #expect(try await empty.reply(0).buffer == nil)
            try await waitForBlockedClients(c, 1)
            _ = try await c.cmd("RPUSH", "shared", "later")
            #expect(try await empty.reply(1).string == "later")
            #expect(try await c.cmd("LRANGE", "inflight", "0", "-1") == .bulkArray(["placed", "later"]))
            // An error reply fails its own command only.
            let mixed = connection.sendTogether([RESPCommand(words: ["GET", "inflight"]), RESPCommand(words: ["PING"])])
            await expectServerError("WRONGTYPE") { _ = try await mixed.reply(0) }
            #expect(try await mixed.reply(1) == .simple("PONG"))
            // Cancelling the wait for a blocking reply closes the connection, so it cannot take an element
            // for a reader who is gone.
            let waiting = connection.sendTogether([wait])
            try await waitForBlockedClients(c, 1)
            let reader = Task { try await waiting.reply(0) }
            reader.cancel()
            await #expect(throws: RESPError.self) { _ = try await reader.value }
            try await waitForBlockedClients(c, 0)
            _ = try await c.cmd("RPUSH", "shared", "kept")
            #expect(try await c.cmd("LRANGE", "shared", "0", "-1") == .bulkArray(["kept"]))
        }
    }

    @Test(arguments: allStores)
    func withAffinityRunsOnTheEventLoopOfTheConnectionsItUses(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            let (onLoop, dedicatedOnLoop, replies) = try await c.withAffinity { () async throws -> (Bool, Bool, [RESPValue]) in
                var replies: [RESPValue] = []
                for _ in 0..<3 { replies.append(try await c.send("INCR", "affine")) }
                let dedicatedOnLoop = try await c.withDedicatedConnection { connection in
                    _ = try await connection.send("PING")
                    return connection.eventLoop.inEventLoop
                }
                // Nested affinity keeps the loop it runs on.
                let nested = try await c.withAffinity { MultiThreadedEventLoopGroup.currentEventLoop != nil }
                return (MultiThreadedEventLoopGroup.currentEventLoop != nil && nested, dedicatedOnLoop, replies)
            }
            #expect(onLoop)
            #expect(dedicatedOnLoop)
            #expect(replies == [.integer(1), .integer(2), .integer(3)])
            // Outside, the caller is back on the cooperative pool.
            #expect(MultiThreadedEventLoopGroup.currentEventLoop == nil)
        }
    }

    @Test(arguments: allStores)
    func manyConcurrentCallersShareThePool(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<50 {
                    group.addTask {
                        for i in 0..<100 {
                            let key = "t\(task)"
                            let value = try await c.incr(key)
                            #expect(value == i + 1)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let total = try await c.send(RESPCommand("MGET", arguments: (0..<50).map { "t\($0)" }))
            #expect(total.array?.compactMap(\.int) == Array(repeating: 100, count: 50))
        }
    }

    @Test(arguments: allStores)
    func reconnectsAfterTheServerRestarts(kind: StoreKind) async throws {
        // A port from below the ephemeral range: once the first server gives it back, no outgoing connection
        // of any process can be handed it before the second server takes it again.
        let port = try TestPorts.next()
        let first = try await TestStore.start(kind, port: port)
        var config = first.configuration()
        config.initialReconnectDelay = .milliseconds(10)
        config.maximumReconnectDelay = .milliseconds(100)
        let c = try RESPClient(configuration: config)
        #expect(try await c.cmd("SET", "k", "v") == .ok)
        await first.stop()
        // While the server is away, commands fail with a connection error (never hang, never succeed).
        do {
            _ = try await c.cmd("GET", "k")
            Issue.record("a command with the server down should fail")
        } catch let error as RESPError {
            if case .connectionClosed = error {} else { Issue.record("expected connectionClosed, got \(error)") }
        }
        let second = try await TestStore.start(kind, port: port)
        var answered = false
        for _ in 0..<100 where !answered {
            if (try? await c.cmd("PING")) == .simple("PONG") { answered = true } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(answered)
        #expect(try await c.cmd("GET", "k") == .bulkString(nil))  // a new, empty server
        await c.close()
        await second.stop()
    }

    @Test(arguments: allStores)
    func timeoutsFailTheCallAndKeepTheClientUsable(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            await #expect(throws: RESPError.timeout("BLPOP")) {
                _ = try await c.send(RESPCommand("BLPOP", "none", 10), timeout: .milliseconds(100))
            }
            #expect(try await c.cmd("PING") == .simple("PONG"))
            // The timed-out BLPOP's connection was closed, so it cannot swallow this element. The server
            // learns of the close asynchronously: wait until it no longer counts a blocked client (it would
            // for 10 s if the connection had been left open).
            for _ in 0..<500 {
                let info = try await c.cmd("INFO", "clients").string ?? ""
                if info.contains("blocked_clients:0") { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            _ = try await c.cmd("RPUSH", "none", "x")
            #expect(try await c.cmd("LLEN", "none") == .integer(1))
        }
    }

    @Test(arguments: allStores)
    func closedClientRefusesWork(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            let c = try store.client()
            #expect(try await c.cmd("PING") == .simple("PONG"))
            await c.close()
            await #expect(throws: RESPError.clientClosed) { _ = try await c.cmd("PING") }
        }
    }

    @Test func badConfigurationIsRejectedWithAClearError() throws {
        #expect(throws: RESPError.invalidConfiguration("poolSize must be at least 1, not 0")) {
            var config = RESPConfiguration(endpoint: .tcp(host: "127.0.0.1", port: 6379))
            config.poolSize = 0
            _ = try RESPClient(configuration: config)
        }
        #expect(throws: RESPError.self) { _ = try RESPClient(url: "http://localhost") }
    }

    @Test func unreachableServerFailsFast() async throws {
        // A port held bound but never listening: connections are refused, and no test running alongside
        // can start a server on it (a port merely found free once was, and answered this PING).
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(holder, $0, length) == 0 && getsockname(holder, $0, &length) == 0
            }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let c = try RESPClient(url: "redis://127.0.0.1:\(port)")
        do {
            _ = try await c.cmd("PING")
            Issue.record("expected a connection error")
        } catch let RESPError.connectionClosed(why) {
            #expect(why.contains("127.0.0.1:\(port)"))
        }
        await c.close()
    }

    #if TLS
    @Test func tlsWithCAVerification() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("curtain-tls-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await runBlocking { try makeTestCertificates(in: dir) }
        let tlsPort = try TestPorts.next()
        let store = try await TestStore.start(
            .redis,
            extraRedisArguments: [
                "--tls-port", String(tlsPort), "--tls-cert-file", "\(dir)/server.crt", "--tls-key-file",
                "\(dir)/server.key", "--tls-ca-cert-file", "\(dir)/ca.crt", "--tls-auth-clients", "no",
            ])
        defer { Task { await store.stop() } }

        // Trusting our CA: works, and the certificate's name (localhost) is checked.
        var config = try RESPConfiguration(url: "rediss://localhost:\(tlsPort)")
        config.tls?.trustRoots = .file("\(dir)/ca.crt")
        let trusted = try RESPClient(configuration: config)
        #expect(try await trusted.cmd("SET", "secure", "yes") == .ok)
        #expect(try await trusted.cmd("GET", "secure") == .bulk("yes"))
        await trusted.close()

        // The same trust from the URL alone (redis-py's ssl_ca_certs), as a worker started with
        // CURTAIN_STORE gets it; a path that does not hold certificates is an error at once, naming it.
        let byURL = try RESPClient(url: "rediss://localhost:\(tlsPort)?ssl_ca_certs=\(dir)/ca.crt")
        #expect(try await byURL.cmd("GET", "secure") == .bulk("yes"))
        await byURL.close()
        for bad in ["\(dir)/missing.pem", "\(dir)/ext.cnf"] {
            let error = #expect(throws: RESPError.self) { try RESPConfiguration(url: "rediss://localhost:\(tlsPort)?ssl_ca_certs=\(bad)") }
            if case .invalidConfiguration(let why)? = error {
                #expect(why.contains("ssl_ca_certs '\(bad)'"))
            } else {
                Issue.record("\(bad): \(String(describing: error))")
            }
        }
        #expect(throws: RESPError.self) { try RESPConfiguration(url: "redis://localhost:\(tlsPort)?ssl_ca_certs=\(dir)/ca.crt") }

        // With the system CAs only (the default), the self-made CA is refused.
        let untrusted = try RESPClient(url: "rediss://localhost:\(tlsPort)")
        await #expect(throws: RESPError.self) { _ = try await untrusted.cmd("PING") }
        await untrusted.close()
        await store.stop()
    }

    #endif
}
