import CurtainRESP
import CurtainTestSupport
import Testing

/// Waits until the server reports `count` clients blocked in a blocking command.
func waitForBlockedClients(_ c: RESPClient, _ count: Int) async throws {
    var info = ""
    for _ in 0..<1000 {
        info = try await c.cmd("INFO", "clients").string ?? ""
        if info.contains("blocked_clients:\(count)\r\n") { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("the server never reported \(count) blocked clients; last INFO clients: \(info)")
}

@Suite("Blocking pops")
struct BlockingConformanceTests {
    @Test(arguments: allStores)
    func blpopTimesOutWithNull(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("BLPOP", "empty", "0.05") == .array(nil))
            let nothing = try await c.blpop(["empty"], timeout: 0.05)
            #expect(nothing == nil)
            await expectServerError("ERR timeout is negative") { _ = try await c.cmd("BLPOP", "q", "-1") }
            await expectServerError("ERR timeout is not a float or out of range") { _ = try await c.cmd("BLPOP", "q", "x") }
        }
    }

    @Test(arguments: allStores)
    func blpopIsWokenByAPushFromAnotherClient(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            async let popped = c.blpop(["a", "b"], timeout: 10)
            try await waitForBlockedClients(c, 1)
            #expect(try await c.cmd("RPUSH", "b", "v1", "v2") == .integer(2))
            let result = try #require(try await popped)
            #expect(result.key == "b")
            #expect(String(buffer: result.value) == "v1")
            #expect(try await c.cmd("LRANGE", "b", "0", "-1") == .bulkArray(["v2"]))
            // Other commands kept flowing while BLPOP was blocked: it ran on a connection of its own.
            #expect(try await c.cmd("PING") == .simple("PONG"))
        }
    }

    @Test(arguments: allStores)
    func blockedClientsAreServedFirstComeFirstServed(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            async let first = c.send("BLPOP", "q", 10)
            try await waitForBlockedClients(c, 1)
            async let second = c.send("BLPOP", "q", 10)
            try await waitForBlockedClients(c, 2)
            #expect(try await c.cmd("RPUSH", "q", "one") == .integer(1))
            #expect(try await first == .bulkArray(["q", "one"]))
            _ = try await c.cmd("RPUSH", "q", "two")
            #expect(try await second == .bulkArray(["q", "two"]))
            #expect(try await c.cmd("EXISTS", "q") == .integer(0))
        }
    }

    @Test(arguments: allStores)
    func brpopAndBlmove(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            _ = try await c.cmd("RPUSH", "l", "x", "y")
            #expect(try await c.cmd("BRPOP", "l", "1") == .bulkArray(["l", "y"]))
            #expect(try await c.cmd("BLMOVE", "l", "d", "LEFT", "RIGHT", "1") == .bulk("x"))
            async let moved = c.blmove("src", "dst", from: "RIGHT", to: "LEFT", timeout: 10)
            try await waitForBlockedClients(c, 1)
            _ = try await c.cmd("LPUSH", "src", "m")
            #expect(try await moved.map { String(buffer: $0) } == "m")
            #expect(try await c.cmd("LRANGE", "dst", "0", "-1") == .bulkArray(["m"]))
            #expect(try await c.cmd("EXISTS", "src") == .integer(0))
        }
    }

    @Test(arguments: allStores)
    func pushesInsideATransactionWakeAfterExec(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            async let popped = c.send("BLPOP", "t", 10)
            try await waitForBlockedClients(c, 1)
            let replies = try await c.withDedicatedConnection { conn in
                try await conn.pipeline([
                    RESPCommand("MULTI"), RESPCommand("RPUSH", "t", "a"), RESPCommand("RPUSH", "t", "b"),
                    RESPCommand("LLEN", "t"), RESPCommand("EXEC"),
                ])
            }
            // Inside the transaction the list really held both elements.
            #expect(replies.last == .array([.integer(1), .integer(2), .integer(2)]))
            #expect(try await popped == .bulkArray(["t", "a"]))
            #expect(try await c.cmd("LRANGE", "t", "0", "-1") == .bulkArray(["b"]))
        }
    }

    @Test(arguments: allStores)
    func aDisconnectedWaiterTakesNothing(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, store) async throws in
            let waiter = try await RESPConnection.connect(configuration: store.configuration())
            let blocked = Task { try await waiter.send("BLPOP", "w", 30) }
            try await waitForBlockedClients(c, 1)
            await waiter.close()
            _ = await blocked.result
            try await waitForBlockedClients(c, 0)
            _ = try await c.cmd("RPUSH", "w", "kept")
            #expect(try await c.cmd("LRANGE", "w", "0", "-1") == .bulkArray(["kept"]))
        }
    }

    @Test(arguments: allStores)
    func cancellingABlockedCallEndsIt(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            let blocked = Task { try await c.blpop(["never"], timeout: 0) }
            try await waitForBlockedClients(c, 1)
            blocked.cancel()
            await #expect(throws: RESPError.self) { _ = try await blocked.value }
            try await waitForBlockedClients(c, 0)
        }
    }
}
