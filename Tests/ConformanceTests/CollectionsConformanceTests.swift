import CurtainRESP
import CurtainTestSupport
import Testing

@Suite("Hashes, lists and sets")
struct CollectionsConformanceTests {
    @Test(arguments: allStores)
    func hashes(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("HSET", "h", "a", "1", "b", "2") == .integer(2))
            #expect(try await c.cmd("HSET", "h", "a", "10", "c", "3") == .integer(1))
            #expect(try await c.cmd("HSETNX", "h", "a", "x") == .integer(0))
            #expect(try await c.cmd("HSETNX", "h", "d", "4") == .integer(1))
            #expect(try await c.cmd("HGET", "h", "a") == .bulk("10"))
            #expect(try await c.cmd("HGET", "h", "zz") == .bulkString(nil))
            #expect(try await c.cmd("HMGET", "h", "a", "zz", "b") == .array([.bulk("10"), .bulkString(nil), .bulk("2")]))
            #expect(try await c.cmd("HLEN", "h") == .integer(4))
            #expect(try await c.cmd("HINCRBY", "h", "b", "5") == .integer(7))
            #expect(try await c.cmd("HINCRBY", "h", "new", "-3") == .integer(-3))
            #expect(try await c.cmd("HSET", "h2", "x", "abc") == .integer(1))
            await expectServerError("ERR hash value is not an integer") { _ = try await c.cmd("HINCRBY", "h2", "x", "1") }
            await expectServerError("ERR value is not an integer or out of range") { _ = try await c.cmd("HINCRBY", "h2", "x", "one") }
            #expect(try await c.cmd("HDEL", "h", "a", "zz") == .integer(1))
            let all = try await c.hgetall("h")
            #expect(all.mapValues { String(buffer: $0) } == ["b": "7", "c": "3", "d": "4", "new": "-3"])
            await expectServerError("ERR wrong number of arguments for 'hset' command") { _ = try await c.cmd("HSET", "h", "a") }
            #expect(try await c.cmd("HDEL", "h", "b", "c", "d", "new") == .integer(4))
            #expect(try await c.cmd("EXISTS", "h") == .integer(0))
            #expect(try await c.cmd("SET", "s", "v") == .ok)
            await expectServerError("WRONGTYPE") { _ = try await c.cmd("HGET", "s", "f") }
        }
    }

    @Test(arguments: allStores)
    func hgetallIsAMapInRESP3(kind: StoreKind) async throws {
        try await withTestClient(kind, protocolVersion: 3) { (c, _) async throws in
            #expect(try await c.cmd("HSET", "h", "f", "v") == .integer(1))
            #expect(try await c.cmd("HGETALL", "h") == .map([RESPMapEntry(key: .bulk("f"), value: .bulk("v"))]))
            #expect(try await c.cmd("GET", "missing") == .null)
            #expect(try await c.cmd("SADD", "set", "m") == .integer(1))
            #expect(try await c.cmd("SMEMBERS", "set") == .set([.bulk("m")]))
        }
    }

    @Test(arguments: allStores)
    func lists(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("RPUSH", "l", "a", "b", "c") == .integer(3))
            #expect(try await c.cmd("LPUSH", "l", "z", "y") == .integer(5))
            #expect(try await c.cmd("LRANGE", "l", "0", "-1") == .bulkArray(["y", "z", "a", "b", "c"]))
            #expect(try await c.cmd("LRANGE", "l", "-2", "100") == .bulkArray(["b", "c"]))
            #expect(try await c.cmd("LRANGE", "l", "3", "1") == .array([]))
            #expect(try await c.cmd("LLEN", "l") == .integer(5))
            #expect(try await c.cmd("LPOP", "l") == .bulk("y"))
            #expect(try await c.cmd("RPOP", "l", "2") == .bulkArray(["c", "b"]))
            #expect(try await c.cmd("LPOP", "l", "10") == .bulkArray(["z", "a"]))
            #expect(try await c.cmd("EXISTS", "l") == .integer(0))
            #expect(try await c.cmd("LPOP", "l") == .bulkString(nil))
            #expect(try await c.cmd("LPOP", "l", "2") == .array(nil))
            #expect(try await c.cmd("RPUSH", "r", "x", "y", "x", "z", "x") == .integer(5))
            #expect(try await c.cmd("LREM", "r", "2", "x") == .integer(2))
            #expect(try await c.cmd("LRANGE", "r", "0", "-1") == .bulkArray(["y", "z", "x"]))
            #expect(try await c.cmd("LREM", "r", "-1", "x") == .integer(1))
            #expect(try await c.cmd("LREM", "r", "0", "nothing") == .integer(0))
            #expect(try await c.cmd("LMOVE", "r", "dst", "LEFT", "RIGHT") == .bulk("y"))
            #expect(try await c.cmd("LMOVE", "r", "dst", "RIGHT", "LEFT") == .bulk("z"))
            #expect(try await c.cmd("LRANGE", "dst", "0", "-1") == .bulkArray(["z", "y"]))
            #expect(try await c.cmd("LMOVE", "r", "dst", "LEFT", "LEFT") == .bulkString(nil))
            #expect(try await c.cmd("LMOVE", "dst", "dst", "LEFT", "RIGHT") == .bulk("z"))
            #expect(try await c.cmd("LRANGE", "dst", "0", "-1") == .bulkArray(["y", "z"]))
            await expectServerError("ERR syntax error") { _ = try await c.cmd("LMOVE", "dst", "x", "UP", "LEFT") }
            await expectServerError("ERR value is out of range, must be positive") { _ = try await c.cmd("LPOP", "dst", "-1") }
            #expect(try await c.cmd("SET", "s", "v") == .ok)
            await expectServerError("WRONGTYPE") { _ = try await c.cmd("LPUSH", "s", "v") }
            await expectServerError("WRONGTYPE") { _ = try await c.cmd("LMOVE", "dst", "s", "LEFT", "LEFT") }
            #expect(try await c.cmd("LRANGE", "dst", "0", "-1") == .bulkArray(["y", "z"]))
        }
    }

    @Test(arguments: allStores)
    func sets(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("SADD", "s", "a", "b", "a", "c") == .integer(3))
            #expect(try await c.cmd("SADD", "s", "a") == .integer(0))
            #expect(try await c.cmd("SCARD", "s") == .integer(3))
            #expect(try await c.cmd("SISMEMBER", "s", "b") == .integer(1))
            #expect(try await c.cmd("SREM", "s", "b", "zz") == .integer(1))
            let members = try #require(try await c.cmd("SMEMBERS", "s").array).compactMap(\.string)
            #expect(Set(members) == ["a", "c"])
            #expect(try await c.cmd("SREM", "s", "a", "c") == .integer(2))
            #expect(try await c.cmd("EXISTS", "s") == .integer(0))
            #expect(try await c.cmd("SMEMBERS", "s") == .array([]))
            #expect(try await c.cmd("SCARD", "s") == .integer(0))
        }
    }
}
