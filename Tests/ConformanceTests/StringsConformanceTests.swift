import CurtainRESP
import CurtainTestSupport
import Testing

@Suite("Strings: same replies from the embedded store and redis-server")
struct StringsConformanceTests {
    @Test(arguments: allStores)
    func setGetAndOptions(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("SET", "k", "v") == .ok)
            #expect(try await c.cmd("GET", "k") == .bulk("v"))
            #expect(try await c.cmd("GET", "missing") == .bulkString(nil))
            #expect(try await c.cmd("SET", "k", "w", "NX") == .bulkString(nil))
            #expect(try await c.cmd("SET", "new", "x", "XX") == .bulkString(nil))
            #expect(try await c.cmd("SET", "k", "w", "XX", "GET") == .bulk("v"))
            #expect(try await c.cmd("GET", "k") == .bulk("w"))
            #expect(try await c.cmd("SET", "k", "z", "GET") == .bulk("w"))
            #expect(try await c.cmd("GETDEL", "k") == .bulk("z"))
            #expect(try await c.cmd("EXISTS", "k") == .integer(0))
            await expectServerError("ERR syntax error") { _ = try await c.cmd("SET", "k", "v", "NX", "XX") }
            await expectServerError("ERR invalid expire time") { _ = try await c.cmd("SET", "k", "v", "EX", "0") }
            await expectServerError("ERR value is not an integer") { _ = try await c.cmd("SET", "k", "v", "PX", "abc") }
            await expectServerError("ERR wrong number of arguments for 'get' command") { _ = try await c.cmd("GET") }
        }
    }

    @Test(arguments: allStores)
    func binarySafeValues(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            let bytes: [UInt8] = [0, 13, 10, 255, 36, 42, 13, 10, 0]
            #expect(try await c.send("SET", bytes, bytes) == .ok)
            #expect(try await c.send("GET", bytes).bytes == bytes)
            #expect(try await c.send("SET", "empty", "") == .ok)
            #expect(try await c.cmd("GET", "empty") == .bulk(""))
            #expect(try await c.cmd("STRLEN", "empty") == .integer(0))
        }
    }

    @Test(arguments: allStores)
    func counters(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("INCR", "n") == .integer(1))
            #expect(try await c.cmd("INCRBY", "n", "41") == .integer(42))
            #expect(try await c.cmd("DECR", "n") == .integer(41))
            #expect(try await c.cmd("DECRBY", "n", "-9") == .integer(50))
            #expect(try await c.cmd("GET", "n") == .bulk("50"))
            #expect(try await c.cmd("INCRBYFLOAT", "f", "10.5") == .bulk("10.5"))
            #expect(try await c.cmd("INCRBYFLOAT", "f", "0.1") == .bulk("10.6"))
            #expect(try await c.cmd("INCRBYFLOAT", "f", "-5.6") == .bulk("5"))
            #expect(try await c.cmd("SET", "big", "9223372036854775807") == .ok)
            await expectServerError("ERR increment or decrement would overflow") { _ = try await c.cmd("INCR", "big") }
            #expect(try await c.cmd("GET", "big") == .bulk("9223372036854775807"))
            #expect(try await c.cmd("SET", "s", "abc") == .ok)
            await expectServerError("ERR value is not an integer or out of range") { _ = try await c.cmd("INCR", "s") }
            await expectServerError("ERR value is not a valid float") { _ = try await c.cmd("INCRBYFLOAT", "s", "1") }
            #expect(try await c.cmd("RPUSH", "l", "x") == .integer(1))
            await expectServerError("WRONGTYPE Operation against a key holding the wrong kind of value") {
                _ = try await c.cmd("INCR", "l")
            }
            await expectServerError("WRONGTYPE") { _ = try await c.cmd("GET", "l") }
        }
    }

    @Test(arguments: allStores)
    func rangesAndMulti(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("APPEND", "s", "Hello") == .integer(5))
            #expect(try await c.cmd("APPEND", "s", " World") == .integer(11))
            #expect(try await c.cmd("STRLEN", "s") == .integer(11))
            #expect(try await c.cmd("GETRANGE", "s", "0", "4") == .bulk("Hello"))
            #expect(try await c.cmd("GETRANGE", "s", "-5", "-1") == .bulk("World"))
            #expect(try await c.cmd("GETRANGE", "s", "5", "2") == .bulk(""))
            #expect(try await c.cmd("GETRANGE", "s", "0", "100") == .bulk("Hello World"))
            #expect(try await c.cmd("SETRANGE", "s", "6", "Redis") == .integer(11))
            #expect(try await c.cmd("GET", "s") == .bulk("Hello Redis"))
            #expect(try await c.cmd("SETRANGE", "pad", "3", "x") == .integer(4))
            #expect(try await c.send("GET", "pad").bytes == [0, 0, 0, UInt8(ascii: "x")])
            #expect(try await c.cmd("MSET", "a", "1", "b", "2") == .ok)
            #expect(try await c.cmd("MGET", "a", "nope", "b") == .array([.bulk("1"), .bulkString(nil), .bulk("2")]))
            await expectServerError("ERR wrong number of arguments for 'mset' command") { _ = try await c.cmd("MSET", "a") }
            #expect(try await c.cmd("DEL", "a", "b", "nope") == .integer(2))
        }
    }
}
