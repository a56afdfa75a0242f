import CurtainRESP
import CurtainStore
import NIOCore
import Testing

/// Regression tests for client-supplied numbers at their limits: each used to reach unchecked arithmetic
/// (a trap that ends the whole program hosting the store) or an unbounded allocation. Every case must answer
/// Redis' error (or its ordinary reply), leave stored data untouched, and leave the server answering.
@Suite("Boundary values never crash the store", .serialized)
struct BoundaryValueTests {
    private static let max = "9223372036854775807"
    private static let min = "-9223372036854775808"

    /// Runs `body` with a client of a fresh server holding a canary key, then checks the canary and `PING`.
    private func withClient(_ body: (RawClient, Int) throws -> Void) async throws {
        let server = try await StoreServer.start(configuration: .init())
        do {
            let port = try #require(server.port)
            let client = try RawClient(port: port)
            #expect(try client.call("SET", "canary", "intact") == .ok)
            try body(client, port)
            #expect(try client.call("GET", "canary") == .text("intact"))
            #expect(try client.call("PING") == .simpleString(ByteBuffer(string: "PONG")))
        } catch {
            try await server.shutdown()
            throw error
        }
        try await server.shutdown()
    }

    /// The error text of `reply`, or `nil` if it is not an error.
    private func errorText(_ reply: RESPValue) -> String? {
        if case .error(let text) = reply { return String(buffer: text) }
        return nil
    }

    @Test func setrangeAtTheLargestOffsetIsRefused() async throws {
        try await withClient { c, _ throws in
            let limit = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
            #expect(try errorText(c.call("SETRANGE", "k", Self.max, "A")) == limit)
            #expect(try c.call("SET", "k", "abc") == .ok)
            #expect(try errorText(c.call("SETRANGE", "k", Self.max, "A")) == limit)
            #expect(try errorText(c.call("SETRANGE", "k", "536870912", "A")) == limit)
            #expect(try errorText(c.call("SETRANGE", "k", "536870911", "AB")) == limit)
            #expect(try errorText(c.call("SETRANGE", "k", Self.min, "A")) == "ERR offset is out of range")
            #expect(try c.call("SETRANGE", "k", Self.max, "") == .integer(3))
            #expect(try c.call("SETRANGE", "absent", Self.max, "") == .integer(0))
            #expect(try c.call("GET", "k") == .text("abc"))
            #expect(try c.call("EXISTS", "absent") == .integer(0))
        }
    }

    @Test func blockingTimeoutsBeyondADeadlineAreRefused() async throws {
        try await withClient { c, port throws in
            let outOfRange = "ERR timeout is out of range"
            for timeout in ["9223372036854775", "9223372036854775807", "1e300", "inf"] {
                #expect(try errorText(c.call("BLPOP", "l", timeout)) == outOfRange, "BLPOP timeout \(timeout)")
                #expect(try errorText(c.call("BLMOVE", "l", "m", "LEFT", "LEFT", timeout)) == outOfRange)
            }
            #expect(try errorText(c.call("BRPOP", "l", "-inf")) == "ERR timeout is negative")
            #expect(try errorText(c.call("BRPOP", "l", "nan")) == "ERR timeout is not a float or out of range")
            // A timeout that fits a deadline but not a timer (over 292 years) waits like 0: until served.
            try c.command("BLPOP", "l", "9223372036854")
            let pusher = try RawClient(port: port)
            #expect(try pusher.call("RPUSH", "l", "x") == .integer(1))
            #expect(try c.reply() == .array([.text("l"), .text("x")]))
        }
    }

    @Test func srandmemberCountsAtTheLimits() async throws {
        try await withClient { c, _ throws in
            #expect(try c.call("SADD", "s", "a", "b") == .integer(2))
            #expect(
                try errorText(c.call("SRANDMEMBER", "s", Self.min))
                    == "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
            #expect(try errorText(c.call("SRANDMEMBER", "s", "-9223372036854775807"))?.hasPrefix("ERR value is out of range") == true)
            #expect(try c.call("SRANDMEMBER", "s", Self.max).arrayCount == 2)
            #expect(try c.call("SRANDMEMBER", "s", "-3").arrayCount == 3)
            #expect(try c.call("SCARD", "s") == .integer(2))
        }
    }

    @Test func rangesAndIndexesAtTheLimits() async throws {
        try await withClient { c, _ throws in
            #expect(try c.call("RPUSH", "l", "a", "b", "c") == .integer(3))
            #expect(try c.call("LRANGE", "l", Self.min, Self.max).arrayCount == 3)
            #expect(try c.call("LRANGE", "l", Self.max, Self.min).arrayCount == 0)
            #expect(try c.call("LINDEX", "l", Self.min) == .bulkString(nil))
            #expect(try errorText(c.call("LSET", "l", Self.min, "x")) == "ERR index out of range")
            #expect(try c.call("LREM", "l", Self.min, "zz") == .integer(0))
            #expect(try c.call("LPOP", "l", "0") == .array([]))
            #expect(try errorText(c.call("LPOP", "l", "-1")) == "ERR value is out of range, must be positive")
            #expect(try c.call("LTRIM", "l", Self.min, Self.max) == .ok)
            #expect(try c.call("LLEN", "l") == .integer(3))
            #expect(try c.call("SET", "s", "hello") == .ok)
            #expect(try c.call("GETRANGE", "s", Self.min, Self.max) == .text("hello"))
            #expect(try c.call("GETRANGE", "s", Self.max, Self.min) == .text(""))
            #expect(try c.call("SCAN", "18446744073709551615", "COUNT", Self.max).arrayCount == 2)
            #expect(try errorText(c.call("SCAN", "18446744073709551616")) == "ERR invalid cursor")
            #expect(try errorText(c.call("SELECT", Self.max)) == "ERR value is not an integer or out of range")
        }
    }

    @Test func expiriesAndCountersAtTheLimits() async throws {
        try await withClient { c, _ throws in
            #expect(try c.call("SET", "k", "1") == .ok)
            for command in ["EXPIRE", "PEXPIRE", "EXPIREAT"] {
                #expect(try errorText(c.call(command, "k", Self.max))?.hasPrefix("ERR invalid expire time") == true, "\(command)")
            }
            #expect(try c.call("PEXPIREAT", "k", Self.max) == .integer(1))
            #expect(try c.call("PERSIST", "k") == .integer(1))
            #expect(try errorText(c.call("SET", "x", "v", "EX", Self.max))?.hasPrefix("ERR invalid expire time") == true)
            #expect(try errorText(c.call("GETEX", "k", "PX", Self.max))?.hasPrefix("ERR invalid expire time") == true)
            #expect(try errorText(c.call("DECRBY", "k", Self.min)) == "ERR decrement would overflow")
            #expect(try errorText(c.call("INCRBY", "k", Self.max)) == "ERR increment or decrement would overflow")
            #expect(try errorText(c.call("INCRBYFLOAT", "k", "inf")) == "ERR increment would produce NaN or Infinity")
            #expect(try errorText(c.call("INCRBYFLOAT", "k", "1e999999")) == "ERR value is not a valid float")
            #expect(try c.call("GET", "k") == .text("1"))
            #expect(try errorText(c.call("EXPIRE", "k", Self.min))?.hasPrefix("ERR invalid expire time") == true)
            #expect(try c.call("EXPIRE", "k", "-9223372036854775") == .integer(1))
            #expect(try c.call("EXISTS", "k") == .integer(0))
        }
    }

    @Test func builtInFunctionsWithExtremeDurations() async throws {
        try await withClient { c, _ throws in
            let outOfRange = "ERR value is out of range"
            #expect(try errorText(c.call("FCALL", "curtain_lock_v1", "1", "lock", "me", Self.max, "0")) == outOfRange)
            #expect(try errorText(c.call("FCALL", "curtain_lock_v1", "1", "lock", "me", "1000", Self.max)) == outOfRange)
            #expect(try c.call("FCALL", "curtain_lock_v1", "1", "lock", "me", "100000", "0") == .integer(1))
            #expect(try errorText(c.call("FCALL", "curtain_renew_v1", "1", "lock", "me", Self.max)) == outOfRange)
            #expect(try c.call("FCALL", "curtain_log_append_v1", "1", "log", "e1", "10") == .integer(1))
            #expect(try c.call("FCALL", "curtain_log_read_v1", "1", "log", Self.max).arrayCount == 2)
            #expect(try c.call("SET", "log:seq", Self.min) == .ok)
            #expect(try errorText(c.call("FCALL", "curtain_log_read_v1", "1", "log", "0")) != nil)
            #expect(try errorText(c.call("FCALL", "curtain_log_read_v1", Self.max, "log", "0")) != nil)
        }
    }
}

extension RESPValue {
    /// The element count of an array reply (`-1` for anything else).
    var arrayCount: Int {
        if case .array(let elements?) = self { return elements.count }
        return -1
    }
}
