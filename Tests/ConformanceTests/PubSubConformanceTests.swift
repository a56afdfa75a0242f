import CurtainRESP
import CurtainTestSupport
import Testing

@Suite("Pub/sub")
struct PubSubConformanceTests {
    @Test(arguments: allStores, [2, 3])
    func publishReachesSubscribers(kind: StoreKind, protocolVersion: Int) async throws {
        try await withTestClient(kind, protocolVersion: protocolVersion) { (c, _) async throws in
            let subscription = try await c.subscribe(to: ["news", "sport"], patterns: ["log.*"])
            #expect(try await c.publish("news", "hello") == 1)
            #expect(try await c.publish("log.error", "disk full") == 1)
            #expect(try await c.publish("nobody", "x") == 0)
            #expect(try await c.publish("sport", "goal") == 1)
            var received: [RESPPubSubMessage] = []
            for try await message in subscription {
                received.append(message)
                if received.count == 3 { break }
            }
            #expect(received.map(\.channel) == ["news", "log.error", "sport"])
            #expect(received.map(\.payloadString) == ["hello", "disk full", "goal"])
            #expect(received[1].pattern == "log.*")
            try await subscription.unsubscribe(["news"])
            #expect(try await c.publish("news", "again") == 0)
            #expect(try await c.publish("sport", "again") == 1)
            await subscription.close()
        }
    }

    @Test(arguments: allStores)
    func subscribeModeRestrictsCommandsInRESP2(kind: StoreKind) async throws {
        try await withTestStore(kind) { (store) async throws in
            let conn = try await RESPConnection.connect(configuration: store.configuration())
            // Raw: SUBSCRIBE's confirmation arrives as an ordinary reply on a plain connection.
            #expect(try await conn.cmd("SUBSCRIBE", "ch") == .array([.bulk("subscribe"), .bulk("ch"), .integer(1)]))
            await expectServerError("ERR Can't execute 'get'") { _ = try await conn.cmd("GET", "k") }
            await conn.close()
        }
    }
}
