import CurtainTestSupport
import CurtainRESP
import NIOCore
import NIOPosix
import Synchronization

/// The seeded client fuzz: a fake server answers each ``RESPConnection`` pipeline with scripted bytes (valid
/// replies, mutated replies, random or hostile bytes) and then closes. The client must return exactly the
/// values sent when they are valid, and otherwise fail with a ``RESPError``: never crash, never hang.
struct ClientFuzz {
    var seed: UInt64
    var count: Int
    var verbose = false

    /// A failed client invariant.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Tallies of a run.
    struct Counts {
        var connections = 0
        var exact = 0
        var otherValues = 0
        var protocolViolations = 0
        var connectionClosed = 0
        var timeouts = 0
    }

    /// The reply the fake server sends to the next connection.
    private final class Script: Sendable {
        let next = Mutex<ByteBuffer>(ByteBuffer())
    }

    /// Answers the first bytes received with the script, then closes.
    private final class ScriptedServerHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let reply: ByteBuffer
        var answered = false

        init(reply: ByteBuffer) {
            self.reply = reply
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !answered else { return }
            answered = true
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in loopBound.value.close(promise: nil) }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    func run() async throws -> Counts {
        let script = Script()
        let group = MultiThreadedEventLoopGroup.singleton
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let reply = script.next.withLock { $0 }
                    try channel.pipeline.syncOperations.addHandler(ScriptedServerHandler(reply: reply))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { listener.close(promise: nil) }
        guard let port = listener.localAddress?.port else { throw Failure(description: "no port") }
        var configuration = RESPConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port))
        configuration.commandTimeout = .seconds(5)
        var counts = Counts()
        for index in 0..<count {
            var generator = FrameGenerator(rng: SplitMix64(seed: seed, index: index))
            let commands = (0..<(1 + generator.rng.below(4))).map { RESPCommand("ECHO", "m\($0)") }
            // Valid replies, one per command (pushes go elsewhere, so none at the top level).
            var values: [RESPValue] = []
            var bytes = ByteBuffer()
            for _ in commands {
                let value = generator.value(allowPush: false)
                values.append(value)
                bytes.writeRESPValue(value)
            }
            let valid = Array(bytes.readableBytesView)
            let kind = generator.rng.below(10)
            let reply: [UInt8]
            switch kind {
            case 0..<3: reply = valid
            case 3..<7: reply = generator.mutate(valid, other: generator.validFrames().bytes)
            case 7: reply = generator.randomBytes()
            case 8: reply = valid + generator.validFrames().bytes  // Replies nobody asked for.
            default: reply = generator.hostile(maxAttributeChain: 64)
            }
            script.next.withLock { $0 = ByteBuffer(bytes: reply) }
            let connection = try await RESPConnection.connect(configuration: configuration)
            let started = NIODeadline.now()
            do {
                let results = try await connection.pipeline(commands)
                // Valid replies (even when unasked-for replies follow them) come back exactly.
                if kind < 3 || kind == 8 {
                    guard results == values else {
                        throw Failure(
                            description: "connection #\(index): sent \(values) but the client returned \(results); bytes "
                                + escaped(reply))
                    }
                    counts.exact += 1
                } else {
                    counts.otherValues += 1
                }
            } catch let error as RESPError {
                switch error {
                case .protocolViolation: counts.protocolViolations += 1
                case .connectionClosed: counts.connectionClosed += 1
                case .timeout:
                    // The server always closes after its reply, so the client must notice instead of waiting.
                    throw Failure(description: "connection #\(index): timed out although the server closed; bytes " + escaped(reply))
                default:
                    throw Failure(description: "connection #\(index): unexpected \(error); bytes " + escaped(reply))
                }
                if kind < 3 || kind == 8 {
                    throw Failure(description: "connection #\(index): valid replies failed with \(error); bytes " + escaped(reply))
                }
            }
            if NIODeadline.now() - started > .seconds(3) {
                throw Failure(description: "connection #\(index): the reply took over 3 s; bytes " + escaped(reply))
            }
            await connection.close()
            counts.connections += 1
            if verbose { print("connection #\(index): kind \(kind), \(reply.count) bytes") }
        }
        return counts
    }
}
