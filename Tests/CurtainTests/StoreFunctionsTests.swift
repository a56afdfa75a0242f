@testable import Curtain
import CurtainRESP
import CurtainTestSupport
import Testing

/// Curtain's function library: the Lua one on redis-server and the embedded store's built-in one must
/// give the same replies and leave the same keys.
@Suite("Store functions: the lock library on both stores")
struct StoreFunctionsTests {
    private func fcall(_ c: RESPClient, _ name: String, keys: [String], _ args: any RESPArgument...) async throws -> RESPValue {
        try await c.send(StoreFunctions.call(name, keys: keys, arguments: args))
    }

    private func expectError(_ reply: @autoclosure () async throws -> RESPValue, _ fragment: String) async {
        do {
            let value = try await reply()
            Issue.record("expected an error containing '\(fragment)', got \(value)")
        } catch let RESPError.server(message) {
            #expect(message.contains(fragment), "\(message)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    /// Runs `body` with a client of a fresh store of `kind` on which the library is loaded.
    private func withLibrary(_ kind: StoreKind, _ body: (RESPClient) async throws -> Void) async throws {
        try await withTestStore(kind) { (store) async throws in
            let c = try RESPClient(url: store.url)
            defer { Task { await c.close() } }
            #expect(try await c.send("FUNCTION", "LOAD", "REPLACE", StoreFunctions.source) == .bulkString(.init(string: "curtain_v1")))
            try await body(c)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func locksQueueHandOverAndRenewAlike(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            let c = try RESPClient(url: store.url)
            defer { Task { await c.close() } }
            if kind == .redis {  // the embedded store has the library built in
                await expectError(try await fcall(c, StoreFunctions.renew, keys: ["L"], "t1", 1000), "Function not found")
            }
            #expect(try await c.send("FUNCTION", "LOAD", "REPLACE", StoreFunctions.source) == .bulkString(.init(string: "curtain_v1")))
            await expectError(try await fcall(c, "curtain_nothing_v1", keys: []), "Function not found")

            // A free lock is granted at once: holder token with the lease, fence 1, grant with the value.
            _ = try await c.send("SET", "V", "seven")
            #expect(try await fcall(c, StoreFunctions.lock, keys: ["L", "V"], "t1", 50000, 1000) == .integer(1))
            #expect(try await c.send("GET", "L") == .bulkString(.init(string: "t1")))
            let ttl = try #require(try await c.send("PTTL", "L").int)
            #expect(ttl > 25000 && ttl <= 50000)  // the lease asked for, less however long a loaded machine paused
            #expect(try await c.send("LRANGE", "L:grant:t1", 0, -1) == .array([.bulkString(.init(string: "1:seven"))]))
            #expect(try await c.send("LPOP", "L:grant:t1") == .bulkString(.init(string: "1:seven")))

            // A try (window 0) does not queue; a waiter queues once, however often it asks.
            #expect(try await fcall(c, StoreFunctions.lock, keys: ["L", "V"], "t2", 50000, 0) == .integer(0))
            #expect(try await c.send("EXISTS", "L:queue") == .integer(0))
            #expect(try await fcall(c, StoreFunctions.lock, keys: ["L", "V"], "t3", 90000, 100000) == .integer(0))
            #expect(try await fcall(c, StoreFunctions.lock, keys: ["L", "V"], "t3", 90000, 100000) == .integer(0))
            #expect(try await c.send("LRANGE", "L:queue", 0, -1) == .array([.bulkString(.init(string: "t3"))]))
            #expect(try await c.send("HEXISTS", "L:waiters", "t3") == .integer(1))

            // Renewal and release only by the holder; a stranger's release stores nothing.
            #expect(try await fcall(c, StoreFunctions.renew, keys: ["L"], "t2", 50000) == .integer(0))
            #expect(try await fcall(c, StoreFunctions.renew, keys: ["L"], "t1", 90000) == .integer(1))
            #expect(try #require(try await c.send("PTTL", "L").int) > 50000)  // past the 50 s lease it had
            #expect(try await fcall(c, StoreFunctions.unlock, keys: ["L", "V"], "t2", 50000, "stolen") == .integer(0))
            #expect(try await c.send("GET", "V") == .bulkString(.init(string: "seven")))

            // The holder's release stores the value and hands the lock to the waiter, with the next fence.
            #expect(try await fcall(c, StoreFunctions.unlock, keys: ["L", "V"], "t1", 50000, "eight") == .integer(1))
            #expect(try await c.send("GET", "V") == .bulkString(.init(string: "eight")))
            #expect(try await c.send("GET", "L") == .bulkString(.init(string: "t3")))
            #expect(try #require(try await c.send("PTTL", "L").int) > 50000)  // the waiter's 90 s lease, not the releaser's 50 s
            #expect(try await c.send("LPOP", "L:grant:t3") == .bulkString(.init(string: "2:eight")))
            #expect(try await c.send("EXISTS", "L:queue", "L:waiters") == .integer(0))
            #expect(try await fcall(c, StoreFunctions.lock, keys: ["L", "V"], "t3", 50000, 1000) == .integer(1))  // ours already

            // A waiter that stopped asking is skipped: t4's place lapsed, t5's did not (and a short window
            // never shortens the queue's life). t4 first queues with a long window, so that a stalled
            // machine cannot let the whole queue expire before t5 joins it; its last ask is short.
            #expect(try await fcall(c, StoreFunctions.lock, keys: ["L"], "t4", 50000, 100000) == .integer(0))
            #expect(try await fcall(c, StoreFunctions.lock, keys: ["L"], "t5", 50000, 100000) == .integer(0))
            #expect(try await fcall(c, StoreFunctions.lock, keys: ["L"], "t4", 50000, 300) == .integer(0))
            #expect(try #require(try await c.send("PTTL", "L:queue").int) > 50000)
            try await Task.sleep(for: .milliseconds(400))
            #expect(try await c.send("LLEN", "L:queue") == .integer(2))
            #expect(try await fcall(c, StoreFunctions.unlock, keys: ["L"], "t3", 50000) == .integer(1))
            #expect(try await c.send("GET", "L") == .bulkString(.init(string: "t5")))
            #expect(try await c.send("LPOP", "L:grant:t5") == .bulkString(.init(string: "3")))
            #expect(try await c.send("EXISTS", "L:queue") == .integer(0))
            #expect(try await c.send("EXISTS", "L:waiters") == .integer(0))
            #expect(try await c.send("EXISTS", "L:grant:t4") == .integer(0))

            // A waiter leaving: its place goes; a grant that reached it meanwhile is passed on.
            #expect(try await fcall(c, StoreFunctions.lock, keys: ["L"], "t6", 50000, 100000) == .integer(0))
            #expect(try await fcall(c, StoreFunctions.lock, keys: ["L"], "t7", 50000, 100000) == .integer(0))
            #expect(try await fcall(c, StoreFunctions.unlock, keys: ["L"], "t5", 50000) == .integer(1))  // to t6
            #expect(try await fcall(c, StoreFunctions.unlock, keys: ["L"], "t6", 50000) == .integer(1))  // t6 gives up
            #expect(try await c.send("GET", "L") == .bulkString(.init(string: "t7")))
            #expect(try await c.send("EXISTS", "L:grant:t6") == .integer(0))
            #expect(try await c.send("LPOP", "L:grant:t7") == .bulkString(.init(string: "5")))
            #expect(try await fcall(c, StoreFunctions.unlock, keys: ["L"], "t7", 50000) == .integer(1))
            #expect(try await c.send("EXISTS", "L") == .integer(0))
            #expect(try await c.send("GET", "L:fence") == .bulkString(.init(string: "5")))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func deltaLogsAppendTrimAndReadAlike(kind: StoreKind) async throws {
        try await withLibrary(kind) { c in
            let bulk = { (text: String) in RESPValue.bulkString(.init(string: text)) }
            #expect(try await fcall(c, StoreFunctions.logRead, keys: ["G"], 0) == .array([.integer(0), .integer(0)]))
            for (i, entry) in ["AAAAAAAAone", "BBBBBBBBtwo", "AAAAAAAAthree", "BBBBBBBBfour"].enumerated() {
                #expect(try await fcall(c, StoreFunctions.logAppend, keys: ["G"], entry, 3) == .integer(Int64(i + 1)))
            }
            // Three kept: entry 1 is gone, which a reader from the start is told.
            #expect(try await c.send("LLEN", "G") == .integer(3))
            #expect(try await fcall(c, StoreFunctions.logRead, keys: ["G"], 0)
                == .array([.integer(4), .integer(1), bulk("BBBBBBBBtwo"), bulk("AAAAAAAAthree"), bulk("BBBBBBBBfour")]))
            #expect(try await fcall(c, StoreFunctions.logRead, keys: ["G"], 2) == .array([.integer(4), .integer(0), bulk("AAAAAAAAthree"), bulk("BBBBBBBBfour")]))
            // A reader's own entries (those starting with its tag) are left out.
            #expect(try await fcall(c, StoreFunctions.logRead, keys: ["G"], 1, "BBBBBBBB") == .array([.integer(4), .integer(0), bulk("AAAAAAAAthree")]))
            #expect(try await fcall(c, StoreFunctions.logRead, keys: ["G"], 4) == .array([.integer(4), .integer(0)]))
            #expect(try await fcall(c, StoreFunctions.logRead, keys: ["G"], 99) == .array([.integer(4), .integer(0)]))
            await expectError(try await fcall(c, StoreFunctions.logRead, keys: ["G"], -1), "non-negative integer")
            await expectError(try await fcall(c, StoreFunctions.logAppend, keys: ["G"], "x", 0), "positive integer")
            _ = try await c.send("SET", "H", "not a list")
            await expectError(try await fcall(c, StoreFunctions.logAppend, keys: ["H"], "x", 3), "WRONGTYPE")
            #expect(try await c.send("EXISTS", "H:seq") == .integer(0))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func badCallsAreRefusedAndChangeNothing(kind: StoreKind) async throws {
        try await withLibrary(kind) { c in
            await expectError(try await fcall(c, StoreFunctions.lock, keys: ["L"], "t1", "soon", 1000), "positive integer")
            await expectError(try await fcall(c, StoreFunctions.lock, keys: ["L"], "t1", 1000, -1), "non-negative integer")
            await expectError(try await fcall(c, StoreFunctions.lock, keys: [], "t1", 1000, 1000), "wrong number of keys")
            await expectError(try await fcall(c, StoreFunctions.renew, keys: ["L"], "t1"), "wrong number of keys")
            await expectError(try await c.send("FCALL", StoreFunctions.lock, 3, "L"), "greater than number of args")
            // A lock whose queue key holds another type: WRONGTYPE, and nothing is taken.
            _ = try await c.send("SET", "L:queue", "not a list")
            await expectError(try await fcall(c, StoreFunctions.lock, keys: ["L"], "t1", 1000, 1000), "WRONGTYPE")
            #expect(try await c.send("EXISTS", "L", "L:fence", "L:grant:t1") == .integer(0))
            #expect(try await c.send("GET", "L:queue") == .bulkString(.init(string: "not a list")))
            _ = try await c.send("SET", "L", "t9")
            await expectError(try await fcall(c, StoreFunctions.unlock, keys: ["L"], "t9", 1000), "WRONGTYPE")
            #expect(try await c.send("GET", "L") == .bulkString(.init(string: "t9")))
        }
    }
}
