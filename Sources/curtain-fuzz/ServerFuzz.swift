import CurtainTestSupport
import Synchronization
import CurtainRESP
import CurtainStore
import NIOCore
import NIOPosix

/// The seeded server fuzz: raw connections to an in-process ``StoreServer`` carrying plausible commands
/// followed by malformed, hostile or truncated bytes; afterwards the server must still answer and every
/// canary key must hold exactly what was stored.
struct ServerFuzz {
    var seed: UInt64
    var count: Int
    var concurrency = 16
    /// How long one connection may stay open after its input was sent (and its write side closed).
    var connectionTimeout: TimeAmount = .seconds(2)
    /// Whether the server's replies must be well-formed RESP (`--skip-reply-check` turns it off).
    var checkReplyFormat = true
    var verbose = false

    /// A failed server invariant.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Tallies of a run.
    struct Counts {
        var inputs = 0
        var connections = 0
        var bytesSent = 0
        var bytesReceived = 0
        var protocolErrors = 0
        var closedByServer = 0
        var timeouts = 0
        var resets = 0
        var canaryChecks = 0
    }

    /// What one connection did.
    struct ConnectionResult {
        var inputs: Int
        var sent: Int
        var received: ByteBuffer
        var timedOut: Bool
        var reset: Bool
    }

    /// The keys stored before fuzzing, with the values they must still hold afterwards.
    static let canaryString: [UInt8] = Array(0...255) + Array("\r\n*1\r\n$-1\r\n".utf8)
    static let canaryList: [[UInt8]] = [Array("first".utf8), [], Array("\r\n".utf8), Array(0...31), Array("last".utf8)]
    static let canaryHash: [String: [UInt8]] = ["f1": Array("v1".utf8), "crlf": Array("a\r\nb".utf8), "empty": [], "bin": Array(200...255)]

    static func storeCanaries(_ client: RESPClient) async throws {
        _ = try await client.send("SET", "canary:string", canaryString)
        _ = try await client.send("DEL", "canary:list", "canary:hash")
        _ = try await client.send(RESPCommand("RPUSH", arguments: ["canary:list"] + canaryList.map { $0 as any RESPArgument }))
        var hset: [any RESPArgument] = ["canary:hash"]
        for (field, value) in canaryHash.sorted(by: { $0.key < $1.key }) { hset += [field, value] }
        _ = try await client.send(RESPCommand("HSET", arguments: hset))
        _ = try await client.send("SET", "canary:counter", 1_234_567)
    }

    static func checkCanaries(_ client: RESPClient) async throws(Failure) {
        do {
            let pong = try await client.send("PING")
            guard pong == .simple("PONG") else { throw Failure(description: "PING answered \(pong)") }
            let string = try await client.get("canary:string")
            guard let string, Array(string.readableBytesView) == canaryString else {
                throw Failure(description: "canary:string changed: \(String(describing: string))")
            }
            let list = try await client.lrange("canary:list", 0, -1).map { Array($0.readableBytesView) }
            guard list == canaryList else { throw Failure(description: "canary:list changed: \(list)") }
            let hash = try await client.hgetall("canary:hash").mapValues { Array($0.readableBytesView) }
            guard hash == canaryHash else { throw Failure(description: "canary:hash changed: \(hash)") }
            let counter = try await client.getString("canary:counter")
            guard counter == "1234567" else { throw Failure(description: "canary:counter changed: \(String(describing: counter))") }
            for key in ["canary:string", "canary:list", "canary:hash", "canary:counter"] {
                let ttl = try await client.send("TTL", key)
                guard ttl == .integer(-1) else { throw Failure(description: "\(key) gained a TTL: \(ttl)") }
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(description: "the server did not answer the canary check: \(error)")
        }
    }

    /// The bytes of connection `index`: some requests, then perhaps a malformed tail.
    func connectionInput(_ index: Int) -> (bytes: [UInt8], inputs: Int) {
        var generator = CommandGenerator(frames: FrameGenerator(rng: SplitMix64(seed: seed, index: index)))
        var bytes: [UInt8] = []
        var inputs = 0
        for _ in 0..<generator.frames.rng.below(9) {
            bytes += generator.request()
            inputs += 1
        }
        if let tail = generator.tail() {
            bytes += tail
            inputs += 1
        }
        if inputs == 0 {
            bytes = generator.request()
            inputs = 1
        }
        return (bytes, inputs)
    }

    func exercise(port: Int, index: Int, group: any EventLoopGroup) async throws -> ConnectionResult {
        let (bytes, inputs) = connectionInput(index)
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
        let timedOut = ManagedFlag()
        let raw = channel.channel
        let timer = raw.eventLoop.scheduleTask(in: connectionTimeout) {
            timedOut.set()
            raw.close(promise: nil)
        }
        var received = ByteBuffer()
        var reset = false
        do {
            try await channel.executeThenClose { inbound, outbound in
                do {
                    try await outbound.write(ByteBuffer(bytes: bytes))
                    outbound.finish()
                } catch {
                    // The server may close before reading everything (it does after a protocol error).
                }
                for try await chunk in inbound {
                    received.writeImmutableBuffer(chunk)
                }
            }
        } catch {
            reset = true
        }
        timer.cancel()
        return ConnectionResult(inputs: inputs, sent: bytes.count, received: received, timedOut: timedOut.isSet, reset: reset)
    }

    /// Checks that what the server sent back is well-formed RESP.
    func checkReplies(_ result: ConnectionResult, index: Int) throws(Failure) -> (protocolError: Bool, replies: Int) {
        var buffer = result.received
        var parser = RESPParser()
        var replies = 0
        var protocolError = false
        do {
            while let value = try parser.parse(&buffer) {
                replies += 1
                if let message = value.errorMessage, message.hasPrefix("ERR Protocol error") { protocolError = true }
            }
        } catch {
            guard checkReplyFormat else { return (true, replies) }
            throw Failure(
                description: "connection #\(index): the server sent malformed RESP (\(error)) after \(replies) replies:\n"
                    + escaped(Array(result.received.readableBytesView), limit: 2048))
        }
        if buffer.readableBytes > 0 && !result.timedOut && !result.reset {
            throw Failure(description: "connection #\(index): the server closed mid-reply; \(buffer.readableBytes) bytes left")
        }
        return (protocolError, replies)
    }

    func run() async throws -> Counts {
        let server = try await StoreServer.start(configuration: StoreConfiguration(host: "127.0.0.1", port: 0))
        guard let port = server.port else { throw Failure(description: "the server has no TCP port") }
        let group = MultiThreadedEventLoopGroup.singleton
        var configuration = RESPConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port))
        configuration.commandTimeout = .seconds(10)
        let client = try RESPClient(configuration: configuration)
        var counts = Counts()
        do {
            try await Self.storeCanaries(client)
            try await Self.checkCanaries(client)
            var next = 0
            var nextCheck = 10_000
            try await withThrowingTaskGroup(of: (Int, ConnectionResult).self) { tasks in
                func launch() {
                    let index = next
                    next += 1
                    tasks.addTask { (index, try await exercise(port: port, index: index, group: group)) }
                }
                for _ in 0..<concurrency { launch() }
                while let (index, result) = try await tasks.next() {
                    counts.connections += 1
                    counts.inputs += result.inputs
                    counts.bytesSent += result.sent
                    counts.bytesReceived += result.received.readableBytes
                    if result.timedOut { counts.timeouts += 1 } else if result.reset { counts.resets += 1 } else { counts.closedByServer += 1 }
                    let (protocolError, replies) = try checkReplies(result, index: index)
                    if protocolError { counts.protocolErrors += 1 }
                    if verbose {
                        print("connection #\(index): \(result.inputs) inputs, \(result.sent) bytes, \(replies) replies\(result.timedOut ? ", timed out" : "")")
                    }
                    if counts.inputs >= nextCheck {
                        try await Self.checkCanaries(client)
                        counts.canaryChecks += 1
                        nextCheck += 10_000
                    }
                    if counts.inputs < count { launch() }
                }
            }
            try await Self.checkCanaries(client)
            counts.canaryChecks += 1
            // A brand-new connection is still served.
            let fresh = try RESPClient(configuration: configuration)
            try await Self.checkCanaries(fresh)
            await fresh.close()
        } catch {
            await client.close()
            try? await server.shutdown()
            throw error
        }
        await client.close()
        try await server.shutdown()
        return counts
    }
}

/// A flag set from an event loop and read afterwards.
final class ManagedFlag: Sendable {
    private let storage = Atomic<Bool>(false)

    func set() { storage.store(true, ordering: .relaxed) }

    var isSet: Bool { storage.load(ordering: .relaxed) }
}
