import CurtainRESP
import CurtainTestSupport
import Testing

@Suite("MULTI/EXEC and WATCH")
struct TransactionsConformanceTests {
    @Test(arguments: allStores)
    func execRunsQueuedCommandsInOrder(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            let result = try await c.withDedicatedConnection { conn -> [RESPValue] in
                #expect(try await conn.cmd("MULTI") == .ok)
                #expect(try await conn.cmd("SET", "a", "1") == .simple("QUEUED"))
                #expect(try await conn.cmd("INCR", "a") == .simple("QUEUED"))
                #expect(try await conn.cmd("LPUSH", "a", "x") == .simple("QUEUED"))  // fails at run time
                #expect(try await conn.cmd("GET", "a") == .simple("QUEUED"))
                return try #require(try await conn.cmd("EXEC").array)
            }
            #expect(result.count == 4)
            #expect(result[0] == .ok)
            #expect(result[1] == .integer(2))
            #expect(result[2].errorMessage?.hasPrefix("WRONGTYPE") == true)
            #expect(result[3] == .bulk("2"))
        }
    }

    @Test(arguments: allStores)
    func queueTimeErrorsAbortTheTransaction(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            try await c.withDedicatedConnection { conn in
                _ = try await conn.cmd("MULTI")
                _ = try await conn.cmd("SET", "k", "v")
                await expectServerError("ERR unknown command") { _ = try await conn.cmd("NOSUCHCMD", "x") }
                await expectServerError("ERR wrong number of arguments") { _ = try await conn.cmd("GET") }
                await expectServerError("EXECABORT Transaction discarded because of previous errors") {
                    _ = try await conn.cmd("EXEC")
                }
                await expectServerError("ERR EXEC without MULTI") { _ = try await conn.cmd("EXEC") }
                await expectServerError("ERR DISCARD without MULTI") { _ = try await conn.cmd("DISCARD") }
                _ = try await conn.cmd("MULTI")
                await expectServerError("ERR MULTI calls can not be nested") { _ = try await conn.cmd("MULTI") }
                _ = try await conn.cmd("SET", "k", "v")
                #expect(try await conn.cmd("DISCARD") == .ok)
            }
            #expect(try await c.cmd("EXISTS", "k") == .integer(0))
        }
    }

    @Test(arguments: allStores)
    func watchAbortsWhenAnotherClientWrites(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            _ = try await c.cmd("SET", "balance", "10")
            let aborted = try await c.withDedicatedConnection { conn -> RESPValue in
                #expect(try await conn.cmd("WATCH", "balance") == .ok)
                let current = try await conn.cmd("GET", "balance").int ?? 0
                _ = try await c.cmd("INCRBY", "balance", "5")  // another client, on the pool
                _ = try await conn.cmd("MULTI")
                _ = try await conn.send("SET", "balance", current + 1)
                return try await conn.cmd("EXEC")
            }
            #expect(aborted == .array(nil))
            #expect(try await c.cmd("GET", "balance") == .bulk("15"))
            // Without interference the same transaction commits.
            let committed = try await c.withDedicatedConnection { conn -> RESPValue in
                _ = try await conn.cmd("WATCH", "balance")
                let current = try await conn.cmd("GET", "balance").int ?? 0
                _ = try await conn.cmd("MULTI")
                _ = try await conn.send("SET", "balance", current + 1)
                return try await conn.cmd("EXEC")
            }
            #expect(committed == .array([.ok]))
            #expect(try await c.cmd("GET", "balance") == .bulk("16"))
        }
    }

    @Test(arguments: allStores)
    func watchSeesExpiryDeletionAndFlush(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            for interference in [["DEL", "w"], ["FLUSHDB"], ["APPEND", "w", "x"], ["EXPIRE", "w", "100"]] {
                _ = try await c.cmd("SET", "w", "1")
                let reply = try await c.withDedicatedConnection { conn -> RESPValue in
                    _ = try await conn.cmd("WATCH", "w")
                    _ = try await c.send(RESPCommand(words: interference))
                    _ = try await conn.cmd("MULTI")
                    _ = try await conn.cmd("SET", "other", "1")
                    return try await conn.cmd("EXEC")
                }
                #expect(reply == .array(nil), "EXEC should abort after \(interference)")
                _ = try await c.cmd("DEL", "w")
            }
            // UNWATCH forgets the watch.
            let reply = try await c.withDedicatedConnection { conn -> RESPValue in
                _ = try await conn.cmd("WATCH", "w")
                _ = try await c.cmd("SET", "w", "2")
                #expect(try await conn.cmd("UNWATCH") == .ok)
                _ = try await conn.cmd("MULTI")
                _ = try await conn.cmd("GET", "w")
                return try await conn.cmd("EXEC")
            }
            #expect(reply == .array([.bulk("2")]))
        }
    }

    @Test(arguments: allStores)
    func abortedExecIsNullInRESP3(kind: StoreKind) async throws {
        try await withTestClient(kind, protocolVersion: 3) { (c, _) async throws in
            let reply = try await c.withDedicatedConnection { conn -> RESPValue in
                _ = try await conn.cmd("WATCH", "k")
                _ = try await c.cmd("SET", "k", "1")
                _ = try await conn.cmd("MULTI")
                _ = try await conn.cmd("GET", "k")
                return try await conn.cmd("EXEC")
            }
            #expect(reply == .null)
        }
    }
}
