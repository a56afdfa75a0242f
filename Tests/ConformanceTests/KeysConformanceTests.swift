import CurtainRESP
import CurtainTestSupport
import Testing

/// Iterates SCAN to the end; returns every key seen (duplicates kept) and the number of calls.
func scanAll(_ c: RESPClient, _ options: [String]) async throws -> ([String], Int) {
    var cursor = "0"
    var keys: [String] = []
    var rounds = 0
    while true {
        let reply = try await c.send(RESPCommand(words: ["SCAN", cursor] + options))
        let parts = reply.array ?? []
        guard parts.count == 2, let next = parts[0].string else {
            throw RESPError.protocolViolation("SCAN replied \(reply)")
        }
        keys += (parts[1].array ?? []).compactMap(\.string)
        rounds += 1
        cursor = next
        if cursor == "0" || rounds > 10_000 { return (keys, rounds) }
    }
}

@Suite("Keys, expiry, SCAN and databases")
struct KeysConformanceTests {
    @Test(arguments: allStores)
    func expiry(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("TTL", "missing") == .integer(-2))
            #expect(try await c.cmd("SET", "k", "v") == .ok)
            #expect(try await c.cmd("TTL", "k") == .integer(-1))
            #expect(try await c.cmd("EXPIRE", "k", "100") == .integer(1))
            // Bounded from above by what was set; from below only by a generous floor, since a loaded
            // machine may pause for seconds between the commands (a lost or doubled unit still fails).
            let ttl = try await c.cmd("TTL", "k").int ?? -99
            #expect((50...100).contains(ttl))
            let pttl = try await c.cmd("PTTL", "k").int ?? -99
            #expect((50_000...100_000).contains(pttl))
            #expect(try await c.cmd("EXPIRE", "missing", "100") == .integer(0))
            // SET without KEEPTTL clears the timeout.
            #expect(try await c.cmd("SET", "k", "v2") == .ok)
            #expect(try await c.cmd("TTL", "k") == .integer(-1))
            #expect(try await c.cmd("SET", "short", "v", "PX", "60") == .ok)
            #expect(try await c.cmd("PEXPIRE", "k", "60") == .integer(1))
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await c.cmd("GET", "short") == .bulkString(nil))
            #expect(try await c.cmd("EXISTS", "k", "short") == .integer(0))
            // A negative expire deletes the key at once.
            #expect(try await c.cmd("SET", "gone", "v") == .ok)
            #expect(try await c.cmd("EXPIRE", "gone", "-1") == .integer(1))
            #expect(try await c.cmd("EXISTS", "gone") == .integer(0))
            await expectServerError("ERR value is not an integer") { _ = try await c.cmd("EXPIRE", "k", "soon") }
        }
    }

    @Test(arguments: allStores)
    func activeExpiryRemovesUntouchedKeys(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            // A lifetime long enough that the keys are surely still there when counted, however loaded the
            // machine (1.5 s, then 4 s, once expired them before the first DBSIZE under the whole suite).
            _ = try await c.pipeline((0..<50).map { RESPCommand("SET", "e\($0)", "v", "PX", 10_000) })
            #expect(try await c.cmd("DBSIZE").int ?? 0 > 0)
            // Never read the keys: only the server's own expiry cycle can remove them.
            var size = 50
            for _ in 0..<600 where size > 0 {
                try await Task.sleep(for: .milliseconds(100))
                size = try await c.cmd("DBSIZE").int ?? -1
            }
            #expect(size == 0)
        }
    }

    @Test(arguments: allStores)
    func scanVisitsEveryKeyOnce(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            var commands: [RESPCommand] = []
            for i in 0..<500 { commands.append(RESPCommand("SET", "key:\(i)", i)) }
            for i in 0..<20 { commands.append(RESPCommand("RPUSH", "list:\(i)", i)) }
            _ = try await c.pipeline(commands)
            let (keys, rounds) = try await scanAll(c, ["MATCH", "key:*", "COUNT", "37"])
            #expect(rounds > 1)
            #expect(keys.count == 500)
            #expect(Set(keys).count == 500)
            #expect(keys.allSatisfy { $0.hasPrefix("key:") })
            // TYPE filter.
            let (lists, _) = try await scanAll(c, ["TYPE", "list", "COUNT", "1000"])
            #expect(lists.count == 20)
        }
    }

    @Test(arguments: allStores)
    func databasesAreIsolated(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            var config = store.configuration()
            config.database = 3
            let c3 = try RESPClient(configuration: config)
            let c0 = try store.client()
            #expect(try await c3.cmd("SET", "k", "three") == .ok)
            #expect(try await c0.cmd("GET", "k") == .bulkString(nil))
            #expect(try await c0.cmd("SET", "k", "zero") == .ok)
            #expect(try await c3.cmd("GET", "k") == .bulk("three"))
            #expect(try await c3.cmd("FLUSHDB") == .ok)
            #expect(try await c0.cmd("GET", "k") == .bulk("zero"))
            await expectServerError("ERR DB index is out of range") {
                try await c0.withDedicatedConnection { _ = try await $0.cmd("SELECT", "99") }
            }
            await c3.close()
            await c0.close()
        }
    }

    @Test(arguments: allStores)
    func typeDelExists(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            _ = try await c.pipeline([
                RESPCommand("SET", "s", "v"), RESPCommand("RPUSH", "l", "v"), RESPCommand("HSET", "h", "f", "v"),
                RESPCommand("SADD", "set", "m"),
            ])
            #expect(try await c.cmd("TYPE", "s") == .simple("string"))
            #expect(try await c.cmd("TYPE", "l") == .simple("list"))
            #expect(try await c.cmd("TYPE", "h") == .simple("hash"))
            #expect(try await c.cmd("TYPE", "set") == .simple("set"))
            #expect(try await c.cmd("TYPE", "none") == .simple("none"))
            #expect(try await c.cmd("EXISTS", "s", "s", "l", "none") == .integer(3))
            #expect(try await c.cmd("DEL", "s", "l", "h", "set", "none") == .integer(4))
            #expect(try await c.cmd("DBSIZE") == .integer(0))
        }
    }
}
