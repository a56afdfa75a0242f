import CurtainRESP
import CurtainTestSupport
import Testing

/// The code of README's "client in one screen", run against the embedded store, so the README stays true.
@Suite("README tour")
struct ReadmeTourTests {
    @Test func theTourRuns() async throws {
        try await withTestStore(.embedded) { (store) async throws in
            let client = try RESPClient(url: "redis://127.0.0.1:\(store.port)")
            try await client.set("greeting", "hello")
            let text = try await client.getString("greeting")
            #expect(text == "hello")
            let n = try await client.incr("visits")
            #expect(n == 1)
            let raw = try await client.send("HSET", "user:1", "name", "Ada")
            #expect(raw == .integer(1))

            let replies = try await client.pipeline((0..<100).map { RESPCommand("RPUSH", "jobs", $0) })
            #expect(replies.last == .integer(100))

            if let popped = try await client.blpop(["jobs"], timeout: 1) {
                #expect(popped.key == "jobs")
                #expect(String(buffer: popped.value) == "0")
            } else {
                Issue.record("BLPOP found no job")
            }

            _ = try await client.send("SET", "balance", 5)
            let committed = try await client.withDedicatedConnection { conn in
                _ = try await conn.send("WATCH", "balance")
                let balance = try await conn.send("GET", "balance").int ?? 0
                _ = try await conn.send("MULTI")
                _ = try await conn.send("SET", "balance", balance + 10)
                return try await conn.send("EXEC")
            }
            #expect(committed == .array([.ok]))
            #expect(try await client.getString("balance") == "15")

            let news = try await client.subscribe(to: ["news"])
            #expect(try await client.publish("news", "extra") == 1)
            for try await message in news {
                #expect(message.channel == "news")
                #expect(message.payloadString == "extra")
                break
            }
            await news.close()
            await client.close()
        }
    }
}
