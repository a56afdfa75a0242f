import CurtainRESP
import CurtainStore
import NIOCore
import CurtainTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// End-to-end tests talking raw RESP bytes to a started ``StoreServer``.
@Suite("StoreServer end to end", .serialized)
struct StoreServerTests {
    /// Runs `body` against a fresh server, shutting it down afterwards.
    private func withServer(
        _ configuration: StoreConfiguration = .init(),
        _ body: (StoreServer, Int) async throws -> Void
    ) async throws {
        let server = try await StoreServer.start(configuration: configuration)
        do {
            try await body(server, try #require(server.port))
        } catch {
            try await server.shutdown()
            throw error
        }
        try await server.shutdown()
    }

    /// Polls `condition` every 10 ms until it holds or `seconds` pass.
    private func eventually(within seconds: Double = 10, _ condition: () throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return try condition()
    }

    private func blockedClients(_ client: RawClient) throws -> Int {
        let info = try client.call("INFO", "clients").string ?? ""
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("blocked_clients:") {
            return Int(line.dropFirst("blocked_clients:".count)) ?? -1
        }
        return -1
    }

    @Test func startReportsAddress() async throws {
        try await withServer { server, port in
            #expect(port > 0)
            #expect(server.url == "redis://127.0.0.1:\(port)")
            let client = try RawClient(port: port)
            #expect(try client.call("PING") == .simpleString(ByteBuffer(string: "PONG")))
        }
    }

    @Test func malformedFrameClosesOnlyThatConnectionAndKeepsData() async throws {
        try await withServer { _, port in
            let good = try RawClient(port: port)
            #expect(try good.call("SET", "k", "v") == .ok)
            let bad = try RawClient(port: port)
            try bad.send("*2\r\n$3\r\nSET\r\n+oops\r\n")
            let bytes = try bad.readUntilClosed()
            #expect(String(decoding: bytes, as: UTF8.self) == "-ERR Protocol error: expected '$', got '+'\r\n")
            #expect(bad.isClosedByPeer)
            // A half-sent SET followed by garbage must not store anything either.
            let worse = try RawClient(port: port)
            try worse.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nxyzGARBAGE")
            _ = try worse.readUntilClosed()
            #expect(worse.isClosedByPeer)
            #expect(try good.call("GET", "k") == .text("v"))
            #expect(try good.call("DBSIZE") == .integer(1))
        }
    }

    @Test func protocolErrorRepliesNeverCarryRawLineBreaks() async throws {
        try await withServer { _, port in
            let bad = try RawClient(port: port)
            try bad.send("*1\r\n\n")
            let text = String(decoding: try bad.readUntilClosed(), as: UTF8.self)
            #expect(text.hasPrefix("-ERR Protocol error: "))
            #expect(text.hasSuffix("\r\n"))
            // Exactly one line: the offending byte is quoted without breaking the RESP error line.
            #expect(text.dropLast(2).allSatisfy { $0 != "\r" && $0 != "\n" && $0 != "\r\n" })
        }
    }

    @Test func randomGarbageNeverHurtsTheServer() async throws {
        try await withServer { _, port in
            let keeper = try RawClient(port: port)
            #expect(try keeper.call("SET", "precious", "data") == .ok)
            var generator = SplitMix64(seed: 42)
            for _ in 0..<20 {
                let garbage = (0..<Int.random(in: 1...512, using: &generator)).map { _ in
                    UInt8.random(in: 0...255, using: &generator)
                }
                let vandal = try RawClient(port: port, timeoutSeconds: 2)
                try vandal.send([UInt8(ascii: "*")] + garbage + Array("\r\n".utf8))
            }
            #expect(try keeper.call("GET", "precious") == .text("data"))
            let fresh = try RawClient(port: port)
            #expect(try fresh.call("PING") == .simpleString(ByteBuffer(string: "PONG")))
        }
    }

    @Test func unknownCommandAndArityErrorsUseRedisWording() async throws {
        try await withServer { _, port in
            let client = try RawClient(port: port)
            #expect(
                try client.call("FOO", "a", "b").errorMessage
                    == "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
            )
            #expect(try client.call("GET").errorMessage == "ERR wrong number of arguments for 'get' command")
            #expect(try client.call("SET", "s", "1") == .ok)
            #expect(
                try client.call("LPUSH", "s", "x").errorMessage
                    == "WRONGTYPE Operation against a key holding the wrong kind of value"
            )
            #expect(try client.call("INCRBY", "s", "x").errorMessage == "ERR value is not an integer or out of range")
        }
    }

    @Test func inlineAndPipelinedCommands() async throws {
        try await withServer { _, port in
            let client = try RawClient(port: port)
            var batch = "SET greeting \"hello world\"\r\nGET greeting\r\n"
            for i in 0..<500 { batch += "*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n" + (i % 2 == 0 ? "PING\r\n" : "") }
            try client.send(batch)
            #expect(try client.reply() == .ok)
            #expect(try client.reply() == .text("hello world"))
            for i in 0..<500 {
                #expect(try client.reply() == .integer(Int64(i + 1)))
                if i % 2 == 0 { #expect(try client.reply() == .simpleString(ByteBuffer(string: "PONG"))) }
            }
        }
    }

    @Test func blockedPopIsWokenByPushFromAnotherConnection() async throws {
        try await withServer { _, port in
            let waiter = try RawClient(port: port)
            let pusher = try RawClient(port: port)
            try waiter.command("BLPOP", "queue", "0")
            #expect(try await eventually { try blockedClients(pusher) == 1 })
            #expect(try pusher.call("RPUSH", "queue", "job-1") == .integer(1))
            #expect(try waiter.reply() == .array([.text("queue"), .text("job-1")]))
            #expect(try pusher.call("LLEN", "queue") == .integer(0))
            // The waiter's connection is usable again.
            #expect(try waiter.call("PING") == .simpleString(ByteBuffer(string: "PONG")))
        }
    }

    @Test func blockedClientsAreServedFirstComeFirstServed() async throws {
        try await withServer { _, port in
            let first = try RawClient(port: port)
            let second = try RawClient(port: port)
            let pusher = try RawClient(port: port)
            try first.command("BRPOP", "a", "q", "0")
            #expect(try await eventually { try blockedClients(pusher) == 1 })
            try second.command("BLPOP", "q", "0")
            #expect(try await eventually { try blockedClients(pusher) == 2 })
            #expect(try pusher.call("RPUSH", "q", "x", "y") == .integer(2))
            #expect(try first.reply() == .array([.text("q"), .text("y")]))
            #expect(try second.reply() == .array([.text("q"), .text("x")]))
        }
    }

    @Test func blockingMoveWakesClientBlockedOnDestination() async throws {
        try await withServer { _, port in
            let waiter = try RawClient(port: port)
            let mover = try RawClient(port: port)
            try waiter.command("BLPOP", "dst", "0")
            #expect(try await eventually { try blockedClients(mover) == 1 })
            #expect(try mover.call("RPUSH", "src", "item") == .integer(1))
            #expect(try mover.call("LMOVE", "src", "dst", "LEFT", "RIGHT") == .text("item"))
            #expect(try waiter.reply() == .array([.text("dst"), .text("item")]))
        }
    }

    @Test func pipelinedCommandsAfterABlockingCommandWaitForIt() async throws {
        try await withServer { _, port in
            let waiter = try RawClient(port: port)
            let pusher = try RawClient(port: port)
            try waiter.send("BLPOP q 0\r\nECHO after\r\n")
            #expect(try await eventually { try blockedClients(pusher) == 1 })
            #expect(try pusher.call("RPUSH", "q", "v") == .integer(1))
            #expect(try waiter.reply() == .array([.text("q"), .text("v")]))
            #expect(try waiter.reply() == .text("after"))
        }
    }

    @Test func blockingCommandsInsideTransactionDoNotBlock() async throws {
        try await withServer { _, port in
            let client = try RawClient(port: port)
            #expect(try client.call("MULTI") == .ok)
            _ = try client.call("BLPOP", "empty", "0")
            _ = try client.call("BLMOVE", "empty", "other", "LEFT", "RIGHT", "0")
            #expect(try client.call("EXEC") == .array([.array(nil), .bulkString(nil)]))
        }
    }

    @Test func blockingTimeoutRepliesNull() async throws {
        try await withServer { _, port in
            let client = try RawClient(port: port)
            #expect(try client.call("BLPOP", "nothing", "0.05") == .array(nil))
            #expect(try client.call("BLMOVE", "nothing", "x", "LEFT", "LEFT", "0.05") == .array(nil))
            #expect(try client.call("BLPOP", "nothing", "-1").errorMessage == "ERR timeout is negative")
        }
    }

    @Test func disconnectedBlockedClientIsRemoved() async throws {
        try await withServer { _, port in
            let pusher = try RawClient(port: port)
            do {
                let waiter = try RawClient(port: port)
                try waiter.command("BLPOP", "q", "0")
                #expect(try await eventually { try blockedClients(pusher) == 1 })
                withExtendedLifetime(waiter) {}
            }
            #expect(try await eventually { try blockedClients(pusher) == 0 })
            #expect(try pusher.call("RPUSH", "q", "kept") == .integer(1))
            #expect(try pusher.call("LRANGE", "q", "0", "-1") == .array([.text("kept")]))
        }
    }

    @Test func pushesInsideTransactionServeBlockedClientsAfterExec() async throws {
        try await withServer { _, port in
            let waiter = try RawClient(port: port)
            let writer = try RawClient(port: port)
            try waiter.command("BLPOP", "q", "0")
            #expect(try await eventually { try blockedClients(writer) == 1 })
            #expect(try writer.call("MULTI") == .ok)
            #expect(try writer.call("RPUSH", "q", "a") == .simpleString(ByteBuffer(string: "QUEUED")))
            #expect(try writer.call("LPOP", "q") == .simpleString(ByteBuffer(string: "QUEUED")))
            #expect(try writer.call("RPUSH", "q", "b") == .simpleString(ByteBuffer(string: "QUEUED")))
            #expect(try writer.call("EXEC") == .array([.integer(1), .text("a"), .integer(1)]))
            #expect(try waiter.reply() == .array([.text("q"), .text("b")]))
        }
    }

    @Test func watchAbortsExecWhenKeyChanges() async throws {
        try await withServer { _, port in
            let client = try RawClient(port: port)
            let other = try RawClient(port: port)
            #expect(try client.call("SET", "balance", "10") == .ok)
            #expect(try client.call("WATCH", "balance") == .ok)
            #expect(try other.call("INCRBY", "balance", "5") == .integer(15))
            #expect(try client.call("MULTI") == .ok)
            #expect(try client.call("SET", "balance", "0") == .simpleString(ByteBuffer(string: "QUEUED")))
            #expect(try client.call("EXEC") == .array(nil))
            #expect(try client.call("GET", "balance") == .text("15"))
            // Unmodified watched keys let EXEC through; runtime errors stay per command.
            #expect(try client.call("WATCH", "balance") == .ok)
            #expect(try client.call("MULTI") == .ok)
            _ = try client.call("INCR", "balance")
            _ = try client.call("LPUSH", "balance", "x")
            let result = try client.call("EXEC").array
            #expect(result?.count == 2)
            #expect(result?.first == .integer(16))
            #expect(result?.last?.errorMessage?.hasPrefix("WRONGTYPE") == true)
        }
    }

    @Test func queuingErrorsAbortTheTransaction() async throws {
        try await withServer { _, port in
            let client = try RawClient(port: port)
            #expect(try client.call("MULTI") == .ok)
            #expect(try client.call("SET", "k", "v") == .simpleString(ByteBuffer(string: "QUEUED")))
            #expect(try client.call("NOSUCH").errorMessage?.hasPrefix("ERR unknown command") == true)
            #expect(try client.call("MULTI").errorMessage == "ERR MULTI calls can not be nested")
            #expect(
                try client.call("EXEC").errorMessage == "EXECABORT Transaction discarded because of previous errors."
            )
            #expect(try client.call("EXISTS", "k") == .integer(0))
            #expect(try client.call("EXEC").errorMessage == "ERR EXEC without MULTI")
        }
    }

    @Test func keysExpireLazilyAndActively() async throws {
        try await withServer { _, port in
            let client = try RawClient(port: port)
            #expect(try client.call("SET", "short", "v", "PX", "100") == .ok)
            let ttl = try client.call("PTTL", "short")
            #expect((try #require(ttl.int)) > 0)
            #expect(try await eventually { try client.call("GET", "short").isNull })
            // Keys nobody reads are reclaimed by the active expiry cycle.
            for i in 0..<200 { try client.command("SET", "batch:\(i)", "v", "PX", "50") }
            for _ in 0..<200 { _ = try client.reply() }
            #expect(try client.call("SET", "forever", "v") == .ok)
            #expect(try await eventually { try client.call("DBSIZE") == .integer(1) })
        }
    }

    @Test func resp3HelloSwitchesReplyTypes() async throws {
        try await withServer { _, port in
            let client = try RawClient(port: port)
            let hello = try client.call("HELLO", "3")
            guard case .map(let entries) = hello else {
                Issue.record("HELLO 3 did not reply with a map: \(hello)")
                return
            }
            #expect(entries.contains(RESPMapEntry(key: .text("proto"), value: .integer(3))))
            #expect(try client.call("GET", "missing") == .null)
            _ = try client.call("HSET", "h", "f", "v")
            #expect(try client.call("HGETALL", "h") == .map([RESPMapEntry(key: .text("f"), value: .text("v"))]))
            _ = try client.call("SADD", "s", "m")
            #expect(try client.call("SMEMBERS", "s") == .set([.text("m")]))
            #expect(try client.call("HELLO", "4").errorMessage == "NOPROTO unsupported protocol version")
        }
    }

    @Test func pubSubDeliversAndRestrictsResp2Subscribers() async throws {
        try await withServer { _, port in
            let subscriber = try RawClient(port: port)
            let publisher = try RawClient(port: port)
            #expect(try subscriber.call("SUBSCRIBE", "news") == .array([.text("subscribe"), .text("news"), .integer(1)]))
            #expect(try subscriber.call("PSUBSCRIBE", "n*") == .array([.text("psubscribe"), .text("n*"), .integer(2)]))
            #expect(try publisher.call("PUBLISH", "news", "hi") == .integer(2))
            #expect(try subscriber.reply() == .array([.text("message"), .text("news"), .text("hi")]))
            #expect(try subscriber.reply() == .array([.text("pmessage"), .text("n*"), .text("news"), .text("hi")]))
            #expect(try subscriber.call("GET", "x").errorMessage?.hasPrefix("ERR Can't execute 'get'") == true)
            #expect(try subscriber.call("PING") == .array([.text("pong"), .text("")]))
            #expect(try publisher.call("PUBLISH", "other", "x") == .integer(0))
        }
    }

    @Test func authenticationIsRequiredWhenConfigured() async throws {
        try await withServer(.init(requirePass: "s3cret")) { _, port in
            let client = try RawClient(port: port)
            #expect(try client.call("GET", "k").errorMessage == "NOAUTH Authentication required.")
            #expect(
                try client.call("AUTH", "wrong").errorMessage
                    == "WRONGPASS invalid username-password pair or user is disabled."
            )
            #expect(try client.call("AUTH", "default", "s3cret") == .ok)
            #expect(try client.call("SET", "k", "v") == .ok)
            let other = try RawClient(port: port)
            let hello = try other.call("HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "worker")
            guard case .map = hello else {
                Issue.record("HELLO with AUTH failed: \(hello)")
                return
            }
            #expect(try other.call("CLIENT", "GETNAME") == .text("worker"))
        }
    }

    @Test func scanVisitsEveryKeyOnce() async throws {
        try await withServer { _, port in
            let client = try RawClient(port: port)
            for i in 0..<300 { try client.command("SET", "key:\(i)", "v") }
            for _ in 0..<300 { _ = try client.reply() }
            var cursor = "0"
            var seen: [String] = []
            repeat {
                let reply = try #require(try client.call("SCAN", cursor, "MATCH", "key:*", "COUNT", "17").array)
                cursor = try #require(reply[0].string)
                seen += try #require(reply[1].array).compactMap(\.string)
            } while cursor != "0"
            #expect(seen.count == 300)
            #expect(Set(seen).count == 300)
        }
    }

    @Test func listensOnUnixSocket() async throws {
        let path = "/tmp/curtain-store-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let server = try await StoreServer.start(configuration: .init(host: nil, unixSocketPath: path))
        #expect(server.port == nil)
        #expect(server.url == "unix://\(path)")
        let client = try RawClient(unixPath: path)
        #expect(try client.call("ECHO", "over unix") == .text("over unix"))
        try await server.shutdown()
        try await server.shutdown()  // idempotent
        #expect(access(path, F_OK) != 0)
    }

    @Test func bindFailureNamesTheAddress() async throws {
        try await withServer { _, port in
            await #expect {
                _ = try await StoreServer.start(configuration: .init(port: port))
            } throws: { error in
                "\(error)".contains("127.0.0.1:\(port)")
            }
        }
    }
}
