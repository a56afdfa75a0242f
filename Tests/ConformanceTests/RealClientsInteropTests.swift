import CurtainRESP
import CurtainTestSupport
import Foundation
import Testing

/// Runs a command-line tool and returns its exit status and standard output.
func runTool(_ name: String, _ arguments: [String], input: String? = nil) async throws -> (status: Int32, output: String) {
    let path = try TestStore.executablePath(name)
    return try await runBlocking { try runToolBlocking(path, arguments, input: input) }
}

private func runToolBlocking(_ path: String, _ arguments: [String], input: String?) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = out
    if let input {
        let inPipe = Pipe()
        process.standardInput = inPipe
        try process.run()
        inPipe.fileHandleForWriting.write(Data(input.utf8))
        try inPipe.fileHandleForWriting.close()
    } else {
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()  // on a Dispatch thread (runBlocking), where blocking is harmless
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite("Real Redis clients against the embedded store")
struct RealClientsInteropTests {
    @Test func redisCliWorksUnmodified() async throws {
        try await withTestStore(.embedded) { (store) async throws in
            let port = String(store.port)
            func cli(_ args: String...) async throws -> String {
                let (status, output) = try await runTool("redis-cli", ["-p", port] + args)
                #expect(status == 0, "redis-cli \(args) exited \(status): \(output)")
                return output.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            #expect(try await cli("PING") == "PONG")
            #expect(try await cli("SET", "greeting", "hello world") == "OK")
            #expect(try await cli("GET", "greeting") == "hello world")
            #expect(try await cli("INCR", "n") == "1")
            #expect(try await cli("INCRBY", "n", "9") == "10")
            #expect(try await cli("LPUSH", "q", "a", "b") == "2")
            #expect(try await cli("BLPOP", "q", "1") == "q\nb")
            #expect(try await cli("BLPOP", "empty", "0.1").isEmpty)
            #expect(try await cli("FOO").contains("ERR unknown command 'FOO'"))
            // MULTI/EXEC and WATCH in one redis-cli session (commands read from stdin).
            let (status, output) = try await runTool(
                "redis-cli", ["-p", port],
                input: "WATCH n\nMULTI\nINCR n\nGET greeting\nEXEC\n")
            #expect(status == 0)
            let lines = output.split(separator: "\n").map(String.init)
            #expect(lines == ["OK", "OK", "QUEUED", "QUEUED", "11", "hello world"])
            // A WATCH aborted by another client: redis-cli prints an empty reply for the null EXEC.
            let client = try store.client()
            let conn = try await RESPConnection.connect(configuration: store.configuration())
            _ = try await conn.cmd("WATCH", "n")
            #expect(try await cli("INCR", "n") == "12")
            _ = try await conn.cmd("MULTI")
            _ = try await conn.cmd("INCR", "n")
            #expect(try await conn.cmd("EXEC") == .array(nil))
            #expect(try await client.cmd("GET", "n") == .bulk("12"))
            await conn.close()
            await client.close()
            // RESP3 mode of redis-cli.
            #expect(try await cli("-3", "HSET", "h", "f", "v") == "1")
            // Not on a TTY, redis-cli prints a map entry as "key value".
            #expect(try await cli("-3", "HGETALL", "h") == "f v")
        }
    }

    @Test func redisBenchmarkRunsCleanly() async throws {
        try await withTestStore(.embedded) { (store) async throws in
            let (status, output) = try await runTool(
                "redis-benchmark",
                ["-p", String(store.port), "-n", "2000", "-c", "10", "-q", "-t", "set,get,incr,lpush,lpop,rpush,rpop,hset,sadd,ping,mset"])
            #expect(status == 0, "redis-benchmark exited \(status): \(output)")
            for test in ["SET", "GET", "INCR", "LPUSH", "LPOP", "HSET", "SADD", "MSET"] {
                #expect(output.contains("\(test):") || output.contains("\(test) "), "no \(test) result in: \(output)")
            }
            #expect(!output.lowercased().contains("error"), "redis-benchmark reported errors: \(output)")
            // The benchmark's writes really landed.
            let client = try store.client()
            #expect(try await client.cmd("EXISTS", "counter:__rand_int__") == .integer(1))
            await client.close()
        }
    }
}
