import CurtainRESP
import CurtainTestSupport
import Testing

/// The commands and behaviours added for parity with Redis 7 (issue #20): each runs against both stores.
@Suite("Parity: commands and options the embedded store gained")
struct ParityConformanceTests {
    // MARK: Configuration and silent acceptance

    @Test(arguments: allStores)
    func configSetRefusesWhatItDoesNotKnow(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, store) async throws in
            await expectServerError("ERR Unknown option or number of arguments for CONFIG SET - 'no-such-parameter'") {
                _ = try await c.cmd("CONFIG", "SET", "no-such-parameter", "1")
            }
            await expectServerError("ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events')") {
                _ = try await c.cmd("CONFIG", "SET", "notify-keyspace-events", "KQ")
            }
            await expectServerError("ERR syntax error") { _ = try await c.cmd("CONFIG", "SET", "set-max-intset-entries", "1", "junk") }
            #expect(try await c.cmd("CONFIG", "SET", "notify-keyspace-events", "KEA") == .ok)
            #expect(try await c.cmd("CONFIG", "GET", "notify-keyspace-events") == .bulkArray(["notify-keyspace-events", "AKE"]))
            #expect(try await c.cmd("CONFIG", "SET", "notify-keyspace-events", "Elg") == .ok)
            #expect(try await c.cmd("CONFIG", "GET", "notify-keyspace-events") == .bulkArray(["notify-keyspace-events", "glE"]))
            // A failed pair changes nothing, even when another pair was valid.
            await expectServerError("ERR Unknown option") {
                _ = try await c.cmd("CONFIG", "SET", "notify-keyspace-events", "", "no-such-parameter", "1")
            }
            #expect(try await c.cmd("CONFIG", "GET", "notify-keyspace-events") == .bulkArray(["notify-keyspace-events", "glE"]))
            // Inside MULTI the error comes back in EXEC's reply.
            let conn = try await RESPConnection.connect(configuration: store.configuration())
            #expect(try await conn.cmd("MULTI") == .ok)
            #expect(try await conn.cmd("CONFIG", "SET", "no-such-parameter", "1") == .simple("QUEUED"))
            let exec = try await conn.cmd("EXEC")
            #expect(exec.array?.first?.errorMessage?.hasPrefix("ERR Unknown option or number of arguments for CONFIG SET") == true, "\(exec)")
            await conn.close()
        }
    }

    @Test(arguments: allStores)
    func keyspaceNotificationsArePublished(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, store) async throws in
            #expect(try await c.cmd("CONFIG", "SET", "notify-keyspace-events", "KEA") == .ok)
            let listener = try store.client()
            let subscription = try await listener.subscribe(patterns: ["__keyspace@0__:*", "__keyevent@0__:del"])
            #expect(try await c.cmd("SET", "k", "v") == .ok)
            #expect(try await c.cmd("RPUSH", "l", "a") == .integer(1))
            #expect(try await c.cmd("LPOP", "l") == .bulk("a"))
            #expect(try await c.cmd("HSET", "h", "f", "v") == .integer(1))
            #expect(try await c.cmd("SADD", "s", "m") == .integer(1))
            #expect(try await c.cmd("EXPIRE", "s", "100") == .integer(1))
            #expect(try await c.cmd("DEL", "k") == .integer(1))
            var received: [String] = []
            for try await message in subscription {
                received.append("\(message.channel) \(message.payloadString)")
                if received.count == 10 { break }
            }
            #expect(received == [
                "__keyspace@0__:k set", "__keyspace@0__:l rpush", "__keyspace@0__:l lpop", "__keyspace@0__:l del",
                "__keyevent@0__:del l", "__keyspace@0__:h hset", "__keyspace@0__:s sadd", "__keyspace@0__:s expire",
                "__keyspace@0__:k del", "__keyevent@0__:del k",
            ])
            await subscription.close()
            await listener.close()
        }
    }

    @Test(arguments: allStores)
    func newKeyEventsOnlyForNewKeys(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, store) async throws in
            #expect(try await c.cmd("CONFIG", "SET", "notify-keyspace-events", "En") == .ok)
            let listener = try store.client()
            let subscription = try await listener.subscribe(patterns: ["*"])
            #expect(try await c.cmd("SET", "foo", "bar") == .ok)
            #expect(try await c.cmd("SET", "foo", "baz") == .ok)
            #expect(try await c.cmd("RPUSH", "bar", "x") == .integer(1))
            var received: [String] = []
            for try await message in subscription {
                received.append("\(message.channel) \(message.payloadString)")
                if received.count == 2 { break }
            }
            #expect(received == ["__keyevent@0__:new foo", "__keyevent@0__:new bar"])
            await subscription.close()
            await listener.close()
        }
    }

    @Test(arguments: allStores)
    func shardedPubSubIsItsOwnNamespace(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            let subscriber = try RawSocket(port: store.port)
            let publisher = try await RESPConnection.connect(configuration: store.configuration())
            try subscriber.send("*2\r\n$10\r\nSSUBSCRIBE\r\n$2\r\nch\r\n")
            let confirmation = "*3\r\n$10\r\nssubscribe\r\n$2\r\nch\r\n:1\r\n"
            #expect(try subscriber.receive(count: confirmation.utf8.count) == confirmation)
            #expect(try await publisher.cmd("PUBLISH", "ch", "plain") == .integer(0))
            #expect(try await publisher.cmd("PUBSUB", "SHARDNUMSUB", "ch", "other") == .array([.bulk("ch"), .integer(1), .bulk("other"), .integer(0)]))
            #expect(try await publisher.cmd("PUBSUB", "SHARDCHANNELS") == .bulkArray(["ch"]))
            #expect(try await publisher.cmd("PUBSUB", "NUMSUB", "ch") == .array([.bulk("ch"), .integer(0)]))
            #expect(try await publisher.cmd("SPUBLISH", "ch", "hello") == .integer(1))
            let message = "*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n"
            #expect(try subscriber.receive(count: message.utf8.count) == message)
            try subscriber.send("*1\r\n$3\r\nGET\r\n")
            let refusal = try subscriber.receive(count: 5)
            #expect(refusal.hasPrefix("-ERR "))
            _ = try subscriber.receive(until: "\r\n")
            try subscriber.send("*1\r\n$12\r\nSUNSUBSCRIBE\r\n")
            let goodbye = "*3\r\n$12\r\nsunsubscribe\r\n$2\r\nch\r\n:0\r\n"
            #expect(try subscriber.receive(count: goodbye.utf8.count) == goodbye)
            #expect(try await publisher.cmd("SPUBLISH", "ch", "again") == .integer(0))
            await publisher.close()
        }
    }

    @Test(arguments: allStores)
    func clientReplyOffAndSkip(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            let socket = try RawSocket(port: store.port)
            var request = ""
            for words in [
                ["CLIENT", "REPLY", "SKIP"], ["SET", "a", "1"], ["GET", "a"], ["CLIENT", "REPLY", "OFF"],
                ["SET", "b", "2"], ["GET", "b"], ["CLIENT", "REPLY", "ON"], ["GET", "b"],
            ] {
                request += "*\(words.count)\r\n" + words.map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined()
            }
            try socket.send(request)
            // Only GET a, CLIENT REPLY ON and the last GET b answer.
            let expected = "$1\r\n1\r\n+OK\r\n$1\r\n2\r\n"
            #expect(try socket.receive(count: expected.utf8.count) == expected)
            try socket.send("*1\r\n$4\r\nPING\r\n")
            #expect(try socket.receive(count: 7) == "+PONG\r\n")
        }
    }

    @Test(arguments: allStores)
    func objectEncodingNamesRedisEncodings(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("SET", "n", "12345") == .ok)
            #expect(try await c.cmd("OBJECT", "ENCODING", "n") == .bulk("int"))
            #expect(try await c.cmd("SET", "short", "hello") == .ok)
            #expect(try await c.cmd("OBJECT", "ENCODING", "short") == .bulk("embstr"))
            #expect(try await c.cmd("SET", "long", String(repeating: "x", count: 45)) == .ok)
            #expect(try await c.cmd("OBJECT", "ENCODING", "long") == .bulk("raw"))
            #expect(try await c.cmd("APPEND", "n", "6") == .integer(6))
            #expect(try await c.cmd("OBJECT", "ENCODING", "n") == .bulk("raw"))
            #expect(try await c.cmd("SET", "n", "1") == .ok)
            #expect(try await c.cmd("OBJECT", "ENCODING", "n") == .bulk("int"))
            #expect(try await c.cmd("RPUSH", "l", "a") == .integer(1))
            #expect(try await c.cmd("OBJECT", "ENCODING", "l") == .bulk("quicklist"))
            #expect(try await c.cmd("SADD", "s", "1", "2") == .integer(2))
            #expect(try await c.cmd("OBJECT", "ENCODING", "s") == .bulk("intset"))
            #expect(try await c.cmd("SADD", "s", "x") == .integer(1))
            #expect(try await c.cmd("OBJECT", "ENCODING", "s") == .bulk("hashtable"))
            #expect(try await c.cmd("HSET", "h", "f", "v") == .integer(1))
            #expect(try await c.cmd("OBJECT", "ENCODING", "h") == .bulk("listpack"))
            #expect(try await c.cmd("CONFIG", "SET", "hash-max-listpack-entries", "1") == .ok)
            #expect(try await c.cmd("HSET", "h2", "f", "v", "g", "w") == .integer(2))
            #expect(try await c.cmd("OBJECT", "ENCODING", "h2") == .bulk("hashtable"))
            #expect(try await c.cmd("OBJECT", "ENCODING", "missing") == .bulkString(nil))
            await expectServerError("ERR wrong number of arguments for 'object|encoding' command") {
                _ = try await c.cmd("OBJECT", "ENCODING")
            }
            await expectServerError("ERR unknown subcommand 'NOPE'. Try OBJECT HELP.") {
                _ = try await c.cmd("OBJECT", "NOPE", "n")
            }
        }
    }

    // MARK: Strings

    @Test(arguments: allStores)
    func setbitGetbitAndLcs(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("SETBIT", "b", "7", "1") == .integer(0))
            #expect(try await c.cmd("SETBIT", "b", "7", "0") == .integer(1))
            #expect(try await c.cmd("SETBIT", "b", "1", "1") == .integer(0))
            #expect(try await c.cmd("GET", "b") == .bulk("@"))
            #expect(try await c.cmd("GETBIT", "b", "1") == .integer(1))
            #expect(try await c.cmd("GETBIT", "b", "100") == .integer(0))
            await expectServerError("ERR bit offset is not an integer or out of range") {
                _ = try await c.cmd("SETBIT", "b", "4294967296", "1")
            }
            await expectServerError("ERR bit is not an integer or out of range") { _ = try await c.cmd("SETBIT", "b", "0", "2") }
            #expect(try await c.cmd("SET", "a", "ohmytext") == .ok)
            #expect(try await c.cmd("SET", "z", "mynewtext") == .ok)
            #expect(try await c.cmd("LCS", "a", "z") == .bulk("mytext"))
            #expect(try await c.cmd("LCS", "a", "z", "LEN") == .integer(6))
            let indexes = try await c.cmd("LCS", "a", "z", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN")
            let match: RESPValue = .array([.array([.integer(4), .integer(7)]), .array([.integer(5), .integer(8)]), .integer(4)])
            #expect(indexes == .array([.bulk("matches"), .array([match]), .bulk("len"), .integer(6)]))
            await expectServerError("ERR If you want both the length and indexes") { _ = try await c.cmd("LCS", "a", "z", "LEN", "IDX") }
        }
    }

    @Test(arguments: allStores)
    func bitcountBitposAndBitop(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("SET", "s", "foobar") == .ok)
            #expect(try await c.cmd("BITCOUNT", "s") == .integer(26))
            #expect(try await c.cmd("BITCOUNT", "s", "1", "1") == .integer(6))
            #expect(try await c.cmd("BITCOUNT", "s", "5", "30", "BIT") == .integer(17))
            #expect(try await c.cmd("BITCOUNT", "s", "-9223372036854775808", "9223372036854775807") == .integer(26))
            #expect(try await c.cmd("BITCOUNT", "missing", "0") == .integer(0))
            await expectServerError("ERR syntax error") { _ = try await c.cmd("BITCOUNT", "s", "0") }
            #expect(try await c.send("SET", "b", [UInt8(0xff), 0xf0, 0x00]) == .ok)
            #expect(try await c.cmd("BITPOS", "b", "0") == .integer(12))
            #expect(try await c.cmd("BITPOS", "b", "1", "2") == .integer(-1))
            #expect(try await c.cmd("BITPOS", "b", "0", "0", "0") == .integer(-1))
            #expect(try await c.cmd("BITPOS", "b", "1", "7", "15", "BIT") == .integer(7))
            #expect(try await c.send("SET", "ones", [UInt8(0xff), 0xff]) == .ok)
            #expect(try await c.cmd("BITPOS", "ones", "0") == .integer(16))
            #expect(try await c.cmd("BITPOS", "missing", "0") == .integer(0))
            #expect(try await c.cmd("BITPOS", "missing", "1") == .integer(-1))
            await expectServerError("ERR The bit argument must be 1 or 0.") { _ = try await c.cmd("BITPOS", "b", "2") }
            #expect(try await c.cmd("SET", "x", "abc") == .ok)
            #expect(try await c.cmd("SET", "y", "a") == .ok)
            #expect(try await c.cmd("BITOP", "AND", "dst", "x", "y") == .integer(3))
            #expect(try await c.send("GET", "dst").bytes == [0x61, 0, 0])
            #expect(try await c.cmd("BITOP", "NOT", "dst", "y") == .integer(1))
            #expect(try await c.send("GET", "dst").bytes == [0x9e])
            #expect(try await c.cmd("BITOP", "OR", "dst", "missing") == .integer(0))
            #expect(try await c.cmd("EXISTS", "dst") == .integer(0))
            await expectServerError("ERR BITOP NOT must be called with a single source key.") {
                _ = try await c.cmd("BITOP", "NOT", "dst", "x", "y")
            }
            #expect(try await c.cmd("RPUSH", "l", "a") == .integer(1))
            await expectServerError("WRONGTYPE") { _ = try await c.cmd("BITOP", "OR", "dst", "x", "l") }
        }
    }

    @Test(arguments: allStores)
    func bitfieldOverflowsAndReadOnly(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("BITFIELD", "b", "SET", "i8", "0", "100", "GET", "i8", "0") == .array([.integer(0), .integer(100)]))
            #expect(try await c.cmd("BITFIELD", "b", "INCRBY", "i8", "0", "100") == .array([.integer(-56)]))
            #expect(try await c.cmd("BITFIELD", "b", "OVERFLOW", "SAT", "INCRBY", "i8", "0", "-200") == .array([.integer(-128)]))
            #expect(try await c.cmd("BITFIELD", "b", "OVERFLOW", "FAIL", "INCRBY", "i8", "0", "-1") == .array([.bulkString(nil)]))
            #expect(try await c.cmd("BITFIELD", "b", "SET", "u4", "#1", "15", "GET", "u4", "#1", "GET", "u8", "0")
                == .array([.integer(0), .integer(15), .integer(143)]))
            #expect(try await c.cmd("BITFIELD", "b", "OVERFLOW", "SAT", "SET", "u4", "4", "-1", "GET", "u4", "4") == .array([.integer(15), .integer(15)]))
            #expect(try await c.cmd("BITFIELD", "b", "SET", "i64", "64", "-9223372036854775808", "INCRBY", "i64", "64", "-1")
                == .array([.integer(0), .integer(9223372036854775807)]))
            #expect(try await c.cmd("BITFIELD_RO", "b", "GET", "u8", "0") == .array([.integer(143)]))
            #expect(try await c.cmd("BITFIELD", "missing", "GET", "u8", "100") == .array([.integer(0)]))
            #expect(try await c.cmd("EXISTS", "missing") == .integer(0))
            await expectServerError("ERR BITFIELD_RO only supports the GET subcommand") {
                _ = try await c.cmd("BITFIELD_RO", "b", "SET", "u8", "0", "1")
            }
            await expectServerError("ERR Invalid bitfield type") { _ = try await c.cmd("BITFIELD", "b", "GET", "u64", "0") }
            await expectServerError("ERR bit offset is not an integer or out of range") {
                _ = try await c.cmd("BITFIELD", "b", "GET", "u8", "#9223372036854775807")
            }
            await expectServerError("ERR Invalid OVERFLOW type specified") { _ = try await c.cmd("BITFIELD", "b", "OVERFLOW", "NOPE") }
            #expect(try await c.cmd("STRLEN", "b") == .integer(16))
        }
    }

    /// Differences a differential run (the same random commands to both servers) found, kept as regressions.
    @Test(arguments: allStores)
    func differentialFindings(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            // The key is looked up (and its type checked) before the index is parsed.
            #expect(try await c.cmd("LINDEX", "missing", "abc") == .bulkString(nil))
            await expectServerError("ERR no such key") { _ = try await c.cmd("LSET", "missing", "1.5", "x") }
            #expect(try await c.cmd("SET", "str", "1") == .ok)
            await expectServerError("WRONGTYPE") { _ = try await c.cmd("LINDEX", "str", "abc") }
            // GETEX checks its time after the key: a missing key answers nil whatever the time says.
            #expect(try await c.cmd("GETEX", "missing", "EXAT", "-1") == .bulkString(nil))
            await expectServerError("ERR invalid expire time in 'getex' command") { _ = try await c.cmd("GETEX", "str", "EXAT", "-1") }
            await expectServerError("ERR syntax error") { _ = try await c.cmd("SET", "k", "v", "EX", "-1", "junk") }
            // A missing source answers 0 before the destination's type is checked.
            #expect(try await c.cmd("SMOVE", "missing", "str", "m") == .integer(0))
            // Encodings that depend on how the string was written.
            #expect(try await c.cmd("INCRBYFLOAT", "f", "10") == .bulk("10"))
            #expect(try await c.cmd("OBJECT", "ENCODING", "f") == .bulk("embstr"))
            #expect(try await c.cmd("BITOP", "OR", "b", "str") == .integer(1))
            #expect(try await c.cmd("OBJECT", "ENCODING", "b") == .bulk("raw"))
            #expect(try await c.cmd("COPY", "b", "b2") == .integer(1))
            #expect(try await c.cmd("RENAME", "b2", "b3") == .ok)
            #expect(try await c.cmd("OBJECT", "ENCODING", "b3") == .bulk("raw"))
            #expect(try await c.cmd("SETBIT", "str", "7", "1") == .integer(1))
            #expect(try await c.cmd("OBJECT", "ENCODING", "str") == .bulk("raw"))
            // SORT reads a weight as C does: up to its first NUL byte.
            #expect(try await c.cmd("RPUSH", "l", "a", "b") == .integer(2))
            #expect(try await c.send("SET", "w_a", [UInt8(0), 65]) == .ok)
            #expect(try await c.cmd("SET", "w_b", "-1") == .ok)
            #expect(try await c.cmd("SORT", "l", "BY", "w_*") == .bulkArray(["b", "a"]))
            // BITFIELD's overflow tests are Redis' own, corner cases included.
            #expect(try await c.cmd("BITFIELD", "bf", "OVERFLOW", "SAT", "SET", "i3", "0", "-9223372036854775808", "GET", "u8", "0")
                == .array([.integer(0), .integer(96)]))
        }
    }

    // MARK: Keyspace

    @Test(arguments: allStores)
    func copyMoveSwapdbAndRandomkey(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("RANDOMKEY") == .bulkString(nil))
            #expect(try await c.cmd("RPUSH", "l", "a", "b") == .integer(2))
            #expect(try await c.cmd("COPY", "l", "l2") == .integer(1))
            #expect(try await c.cmd("RPUSH", "l2", "c") == .integer(3))
            #expect(try await c.cmd("LLEN", "l") == .integer(2))
            #expect(try await c.cmd("COPY", "l", "l2") == .integer(0))
            #expect(try await c.cmd("COPY", "l", "l2", "REPLACE") == .integer(1))
            #expect(try await c.cmd("LLEN", "l2") == .integer(2))
            await expectServerError("ERR source and destination objects are the same") { _ = try await c.cmd("COPY", "l", "l") }
            #expect(try await c.cmd("COPY", "l", "l", "DB", "1") == .integer(1))
            #expect(try await c.cmd("RANDOMKEY") != .bulkString(nil))
            #expect(try await c.cmd("SET", "k", "v") == .ok)
            #expect(try await c.cmd("MOVE", "k", "2") == .integer(1))
            #expect(try await c.cmd("EXISTS", "k") == .integer(0))
            await expectServerError("ERR DB index is out of range") { _ = try await c.cmd("MOVE", "l", "1000") }
            #expect(try await c.cmd("SWAPDB", "0", "2") == .ok)
            #expect(try await c.cmd("GET", "k") == .bulk("v"))
            #expect(try await c.cmd("DBSIZE") == .integer(1))
            await expectServerError("ERR invalid first DB index") { _ = try await c.cmd("SWAPDB", "x", "1") }
        }
    }

    @Test(arguments: allStores)
    func watchRemembersTheDatabase(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            let conn = try await RESPConnection.connect(configuration: store.configuration())
            for words in [["SELECT", "5"], ["SET", "x", "30"], ["WATCH", "x"], ["SELECT", "1"], ["SET", "x", "10"], ["SELECT", "5"], ["MULTI"]] {
                #expect(try await conn.send(RESPCommand(words: words)) == .ok)
            }
            #expect(try await conn.cmd("PING") == .simple("QUEUED"))
            #expect(try await conn.cmd("EXEC") == .array([.simple("PONG")]))
            // The same key in the watched database does abort the transaction.
            #expect(try await conn.cmd("WATCH", "x") == .ok)
            #expect(try await conn.cmd("SET", "x", "11") == .ok)
            #expect(try await conn.cmd("MULTI") == .ok)
            #expect(try await conn.cmd("PING") == .simple("QUEUED"))
            #expect(try await conn.cmd("EXEC") == .array(nil))
            await conn.close()
        }
    }

    @Test(arguments: allStores)
    func execWithArgumentsDiscardsTheTransaction(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            let conn = try await RESPConnection.connect(configuration: store.configuration())
            #expect(try await conn.cmd("MULTI") == .ok)
            #expect(try await conn.cmd("SET", "a", "1") == .simple("QUEUED"))
            await expectServerError("EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command") {
                _ = try await conn.cmd("EXEC", "now")
            }
            #expect(try await conn.cmd("GET", "a") == .bulkString(nil))
            await expectServerError("ERR EXEC without MULTI") { _ = try await conn.cmd("EXEC") }
            // A subcommand's arity is checked when it is queued, and that aborts the transaction.
            #expect(try await conn.cmd("MULTI") == .ok)
            await expectServerError("ERR wrong number of arguments for 'object|encoding' command") {
                _ = try await conn.cmd("OBJECT", "ENCODING")
            }
            await expectServerError("ERR unknown subcommand 'NOPE'. Try CONFIG HELP.") { _ = try await conn.cmd("CONFIG", "NOPE") }
            await expectServerError("EXECABORT Transaction discarded because of previous errors.") { _ = try await conn.cmd("EXEC") }
            await conn.close()
        }
    }

    @Test(arguments: allStores)
    func infoCountsClientsAndKeys(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            let conn = try await RESPConnection.connect(configuration: store.configuration())
            let other = try await RESPConnection.connect(configuration: store.configuration())
            #expect(try await conn.cmd("SET", "a", "1") == .ok)
            #expect(try await conn.cmd("SET", "b", "1", "EX", "100") == .ok)
            // A connection the harness used to see the server up may still be closing: wait for it to go.
            var info = ""
            for _ in 0..<1000 {
                info = try await conn.cmd("INFO").string ?? ""
                if info.contains("connected_clients:2\r\n") { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(info.contains("connected_clients:2\r\n"))
            #expect(info.contains("blocked_clients:0\r\n"))
            #expect(info.contains("db0:keys=2,expires=1,"))
            // The blocked count follows a client blocking and being served.
            async let served = other.cmd("BLPOP", "q", "0")
            var blocked = false
            for _ in 0..<1000 where !blocked {
                blocked = (try await conn.cmd("INFO", "clients").string ?? "").contains("blocked_clients:1\r\n")
                if !blocked { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(blocked)
            #expect(try await conn.cmd("RPUSH", "q", "x") == .integer(1))
            #expect(try await served == .bulkArray(["q", "x"]))
            #expect((try await conn.cmd("INFO", "clients").string ?? "").contains("blocked_clients:0\r\n"))
            await other.close()
            await conn.close()
        }
    }

    @Test(arguments: allStores)
    func sortWithPatternsLimitsAndStore(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("RPUSH", "l", "3", "1", "2", "10") == .integer(4))
            #expect(try await c.cmd("SORT", "l") == .bulkArray(["1", "2", "3", "10"]))
            #expect(try await c.cmd("SORT", "l", "DESC", "LIMIT", "1", "2") == .bulkArray(["3", "2"]))
            #expect(try await c.cmd("SORT", "l", "ALPHA") == .bulkArray(["1", "10", "2", "3"]))
            for (id, weight) in [("1", "40"), ("2", "30"), ("3", "20"), ("10", "10")] {
                #expect(try await c.cmd("SET", "w_\(id)", weight) == .ok)
                #expect(try await c.cmd("HSET", "o_\(id)", "name", "n\(id)") == .integer(1))
            }
            #expect(try await c.cmd("SORT", "l", "BY", "w_*") == .bulkArray(["10", "3", "2", "1"]))
            #expect(try await c.cmd("SORT", "l", "BY", "nosort") == .bulkArray(["3", "1", "2", "10"]))
            #expect(try await c.cmd("SORT", "l", "BY", "w_*", "GET", "#", "GET", "o_*->name", "LIMIT", "0", "2")
                == .bulkArray(["10", "n10", "3", "n3"]))
            #expect(try await c.cmd("SORT", "l", "GET", "missing_*") == .array([.bulkString(nil), .bulkString(nil), .bulkString(nil), .bulkString(nil)]))
            #expect(try await c.cmd("SORT", "l", "STORE", "dst") == .integer(4))
            #expect(try await c.cmd("LRANGE", "dst", "0", "-1") == .bulkArray(["1", "2", "3", "10"]))
            #expect(try await c.cmd("SORT", "missing", "STORE", "dst") == .integer(0))
            #expect(try await c.cmd("EXISTS", "dst") == .integer(0))
            #expect(try await c.cmd("SORT", "l", "LIMIT", "-9223372036854775808", "9223372036854775807").array?.count == 4)
            #expect(try await c.cmd("RPUSH", "words", "b", "a") == .integer(2))
            await expectServerError("ERR One or more scores can't be converted into double") { _ = try await c.cmd("SORT", "words") }
            await expectServerError("ERR syntax error") { _ = try await c.cmd("SORT_RO", "words", "STORE", "x") }
            #expect(try await c.cmd("SORT_RO", "words", "ALPHA") == .bulkArray(["a", "b"]))
            #expect(try await c.cmd("SET", "str", "x") == .ok)
            await expectServerError("WRONGTYPE") { _ = try await c.cmd("SORT", "str") }
        }
    }

    // MARK: Sets

    @Test(arguments: allStores)
    func setAlgebraAndMoves(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("SADD", "a", "1", "2", "3", "4") == .integer(4))
            #expect(try await c.cmd("SADD", "b", "3", "4", "5") == .integer(3))
            #expect(sorted(try await c.cmd("SINTER", "a", "b")) == ["3", "4"])
            #expect(sorted(try await c.cmd("SUNION", "a", "b", "missing")) == ["1", "2", "3", "4", "5"])
            #expect(sorted(try await c.cmd("SDIFF", "a", "b")) == ["1", "2"])
            #expect(sorted(try await c.cmd("SINTER", "a", "missing")) == [])
            #expect(try await c.cmd("SINTERSTORE", "d", "a", "b") == .integer(2))
            #expect(try await c.cmd("SUNIONSTORE", "d", "a", "b") == .integer(5))
            #expect(try await c.cmd("SDIFFSTORE", "d", "b", "a") == .integer(1))
            #expect(try await c.cmd("SMEMBERS", "d") == .bulkArray(["5"]))
            #expect(try await c.cmd("SDIFFSTORE", "d", "a", "a") == .integer(0))
            #expect(try await c.cmd("EXISTS", "d") == .integer(0))
            #expect(try await c.cmd("SINTERCARD", "2", "a", "b") == .integer(2))
            #expect(try await c.cmd("SINTERCARD", "2", "a", "b", "LIMIT", "1") == .integer(1))
            await expectServerError("ERR numkeys should be greater than 0") { _ = try await c.cmd("SINTERCARD", "0", "a") }
            await expectServerError("ERR Number of keys can't be greater than number of args") {
                _ = try await c.cmd("SINTERCARD", "3", "a", "b")
            }
            await expectServerError("ERR LIMIT can't be negative") { _ = try await c.cmd("SINTERCARD", "1", "a", "LIMIT", "-1") }
            #expect(try await c.cmd("SMOVE", "a", "b", "1") == .integer(1))
            #expect(try await c.cmd("SMOVE", "a", "b", "1") == .integer(0))
            #expect(try await c.cmd("SISMEMBER", "b", "1") == .integer(1))
            #expect(try await c.cmd("SET", "str", "x") == .ok)
            await expectServerError("WRONGTYPE") { _ = try await c.cmd("SMOVE", "a", "str", "2") }
            await expectServerError("WRONGTYPE") { _ = try await c.cmd("SUNION", "a", "str") }
            #expect(try await c.cmd("SCARD", "a") == .integer(3))
        }
    }

    @Test(arguments: allStores)
    func sscanAndHscanVisitEverything(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            var members: [String] = []
            for i in 0..<300 { members.append("m\(i)") }
            _ = try await c.send(RESPCommand(words: ["SADD", "s"] + members))
            var hash: [String] = []
            for i in 0..<200 { hash += ["f\(i)", "v\(i)"] }
            _ = try await c.send(RESPCommand(words: ["HSET", "h"] + hash))
            var seen = Set<String>()
            var cursor = "0"
            repeat {
                let reply = try await c.cmd("SSCAN", "s", cursor, "COUNT", "20")
                guard case .array(let parts?) = reply, parts.count == 2, let next = parts[0].string else {
                    Issue.record("bad SSCAN reply \(reply)")
                    return
                }
                cursor = next
                for item in parts[1].array ?? [] { if let text = item.string { seen.insert(text) } }
            } while cursor != "0"
            #expect(seen == Set(members))
            var fields: [String: String] = [:]
            repeat {
                let reply = try await c.cmd("HSCAN", "h", cursor, "MATCH", "f1*")
                guard case .array(let parts?) = reply, parts.count == 2, let next = parts[0].string else {
                    Issue.record("bad HSCAN reply \(reply)")
                    return
                }
                cursor = next
                let items = (parts[1].array ?? []).compactMap(\.string)
                for index in stride(from: 0, to: items.count - 1, by: 2) { fields[items[index]] = items[index + 1] }
            } while cursor != "0"
            #expect(fields.count == 111)
            #expect(fields["f150"] == "v150")
            #expect(try await c.cmd("SSCAN", "missing", "0") == .array([.bulk("0"), .array([])]))
            await expectServerError("ERR invalid cursor") { _ = try await c.cmd("HSCAN", "h", "x") }
            await expectServerError("ERR syntax error") { _ = try await c.cmd("SSCAN", "s", "0", "COUNT", "0") }
        }
    }

    // MARK: Hashes

    @Test(arguments: allStores)
    func hrandfield(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("HRANDFIELD", "missing") == .bulkString(nil))
            #expect(try await c.cmd("HRANDFIELD", "missing", "3") == .array([]))
            #expect(try await c.cmd("HSET", "h", "a", "1", "b", "2") == .integer(2))
            #expect(sorted(try await c.cmd("HRANDFIELD", "h", "10")) == ["a", "b"])
            #expect(sorted(try await c.cmd("HRANDFIELD", "h", "10", "WITHVALUES")) == ["1", "2", "a", "b"])
            #expect(try await c.cmd("HRANDFIELD", "h", "-5").array?.count == 5)
            await expectServerError("ERR syntax error") { _ = try await c.cmd("HRANDFIELD", "h", "1", "WITHSCORES") }
            await expectServerError("ERR value is out of range") {
                _ = try await c.cmd("HRANDFIELD", "h", "-9223372036854775808")
            }
        }
    }

    @Test(arguments: allStores)
    func hashEncodingStaysConvertedAndFloatIncrementsStayFinite(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("HSET", "h", "f", String(repeating: "v", count: 100)) == .integer(1))
            #expect(try await c.cmd("OBJECT", "ENCODING", "h") == .bulk("hashtable"))
            #expect(try await c.cmd("HSET", "h", "f", "short") == .integer(0))
            #expect(try await c.cmd("OBJECT", "ENCODING", "h") == .bulk("hashtable"))
            #expect(try await c.cmd("SADD", "s", "1", "a") == .integer(2))
            #expect(try await c.cmd("SREM", "s", "a") == .integer(1))
            #expect(try await c.cmd("OBJECT", "ENCODING", "s") == .bulk("hashtable"))
            await expectServerError("ERR value is NaN or Infinity") { _ = try await c.cmd("HINCRBYFLOAT", "n", "f", "+inf") }
            #expect(try await c.cmd("EXISTS", "n") == .integer(0))
            #expect(try await c.cmd("MEMORY", "USAGE", "h").int ?? 0 > 0)
            #expect(try await c.cmd("MEMORY", "USAGE", "missing") == .bulkString(nil))
        }
    }

    // MARK: Lists

    @Test(arguments: allStores)
    func lposAndLmpop(kind: StoreKind) async throws {
        try await withTestClient(kind) { (c, _) async throws in
            #expect(try await c.cmd("RPUSH", "l", "a", "b", "c", "1", "2", "3", "c", "c") == .integer(8))
            #expect(try await c.cmd("LPOS", "l", "c") == .integer(2))
            #expect(try await c.cmd("LPOS", "l", "c", "RANK", "2") == .integer(6))
            #expect(try await c.cmd("LPOS", "l", "c", "RANK", "-1") == .integer(7))
            #expect(try await c.cmd("LPOS", "l", "c", "COUNT", "0") == .array([.integer(2), .integer(6), .integer(7)]))
            #expect(try await c.cmd("LPOS", "l", "c", "COUNT", "2", "MAXLEN", "3") == .array([.integer(2)]))
            #expect(try await c.cmd("LPOS", "l", "zz") == .bulkString(nil))
            await expectServerError("ERR RANK can't be zero") { _ = try await c.cmd("LPOS", "l", "c", "RANK", "0") }
            await expectServerError("ERR COUNT can't be negative") { _ = try await c.cmd("LPOS", "l", "c", "COUNT", "-1") }
            #expect(try await c.cmd("LMPOP", "2", "missing", "l", "LEFT", "COUNT", "2")
                == .array([.bulk("l"), .bulkArray(["a", "b"])]))
            #expect(try await c.cmd("LMPOP", "1", "l", "RIGHT") == .array([.bulk("l"), .bulkArray(["c"])]))
            #expect(try await c.cmd("LMPOP", "1", "missing", "RIGHT") == .array(nil))
            await expectServerError("ERR numkeys should be greater than 0") { _ = try await c.cmd("LMPOP", "0", "l", "LEFT") }
            await expectServerError("ERR count should be greater than 0") {
                _ = try await c.cmd("LMPOP", "1", "l", "LEFT", "COUNT", "0")
            }
            await expectServerError("ERR syntax error") { _ = try await c.cmd("LMPOP", "5", "l", "LEFT") }
            #expect(try await c.cmd("BLMPOP", "0.01", "1", "missing", "LEFT") == .array(nil))
        }
    }

    @Test(arguments: allStores)
    func blmpopIsServedByAPush(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            let waiter = try await RESPConnection.connect(configuration: store.configuration())
            let pusher = try await RESPConnection.connect(configuration: store.configuration())
            async let served = waiter.cmd("BLMPOP", "0", "2", "q1", "q2", "RIGHT", "COUNT", "5")
            // Wait until the store reports the waiter blocked, then push.
            var blocked = false
            for _ in 0..<1000 where !blocked {
                let info = try await pusher.cmd("INFO", "clients").string ?? ""
                blocked = info.contains("blocked_clients:1")
                if !blocked { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(blocked)
            #expect(try await pusher.cmd("RPUSH", "q2", "x", "y") == .integer(2))
            #expect(try await served == .array([.bulk("q2"), .bulkArray(["y", "x"])]))
            await waiter.close()
            await pusher.close()
        }
    }
}

/// The string elements of an array or set reply, sorted.
private func sorted(_ reply: RESPValue) -> [String] {
    (reply.array ?? []).compactMap(\.string).sorted()
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A blocking TCP connection for exact-byte checks (replies a RESP client would wait for forever).
private final class RawSocket {
    private let fd: Int32

    init(port: Int) throws {
        #if canImport(Glibc)
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw TestStoreError(description: "connect failed: errno \(errno)") }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written > 0 else { throw TestStoreError(description: "send failed: errno \(errno)") }
            offset += written
        }
    }

    /// Reads until the text read ends with `terminator` (or the 30 s timeout, or the peer closed).
    func receive(until terminator: String) throws -> String {
        var received = ""
        while !received.hasSuffix(terminator) {
            let next = try receive(count: 1)
            if next.isEmpty { break }
            received += next
        }
        return received
    }

    /// Reads until `count` bytes arrived (or the 30 s timeout, or the peer closed), and returns them.
    func receive(count: Int) throws -> String {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while received.count < count {
            let read = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, count - received.count), 0) }
            guard read > 0 else { break }
            received += chunk[0..<read]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
