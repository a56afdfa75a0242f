import ArgumentParser
import Foundation
import CurtainTestSupport
import NIOCore
import NIOPosix

/// The floor of a call over an event loop: the same exchange as `TCPPingPong` (two processes, one loopback
/// connection, 64-byte messages), with SwiftNIO on both sides and no Curtain code. Each side answers from
/// its handler's `channelRead`, on the loop, as Curtain's direct path does; what separates it from the
/// blocking floor is the event loop's own cost (an `epoll_wait` before each read, the pipeline).
enum NIOPingPong {
    /// Exchanges/s, and the CPU time (µs) each side spent per exchange: starts `curtain-bench actors` again as
    /// an NIO echo server (`CURTAIN_BENCH_ECHO=nio`), which prints its port, and bounces `count` messages off it.
    static func measure(count: Int, peer: BenchPeer) async throws -> (rate: Double, cpuPerExchange: (client: Double, server: Double)) {
        let (process, port) = try await peer.startEcho("nio")
        defer { kill(process.processIdentifier, SIGKILL) }
        let group = MultiThreadedEventLoopGroup.singleton
        let done = group.next().makePromise(of: Duration.self)
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Bouncer(limit: count, done: done))
                }
            }
            .connect(host: peer.host, port: port).get()
        let before = (ActorsBench.cpuSeconds(getpid()), ActorsBench.cpuSeconds(process.processIdentifier))
        channel.writeAndFlush(ByteBuffer(repeating: 7, count: TCPPingPong.size), promise: nil)
        let elapsed = try await done.futureResult.get()
        let after = (ActorsBench.cpuSeconds(getpid()), ActorsBench.cpuSeconds(process.processIdentifier))
        try? await channel.close()
        let rate = Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        return (rate, ((after.0 - before.0) / Double(count) * 1e6, (after.1 - before.1) / Double(count) * 1e6))
    }

    /// Sends each 64-byte message back as soon as it is whole; with a limit, stops after that many and
    /// reports the time taken.
    final class Bouncer: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var pending = 0
        private var exchanged = 0
        private var finished = false
        private let limit: Int?
        private let done: EventLoopPromise<Duration>?
        private let start = ContinuousClock.now

        init(limit: Int? = nil, done: EventLoopPromise<Duration>? = nil) {
            self.limit = limit
            self.done = done
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            pending += unwrapInboundIn(data).readableBytes
            while pending >= TCPPingPong.size {
                pending -= TCPPingPong.size
                exchanged += 1
                if let limit, exchanged >= limit {
                    finished = true
                    done?.succeed(ContinuousClock.now - start)
                    return
                }
                context.write(wrapOutboundOut(context.channel.allocator.buffer(repeating: 7, count: TCPPingPong.size)), promise: nil)
            }
            context.flush()
        }

        /// The echo server went away before the last exchange: the measurement fails instead of waiting.
        func channelInactive(context: ChannelHandlerContext) {
            if !finished {
                finished = true
                done?.fail(ValidationError("the NIO echo server closed the connection after \(exchanged) exchanges"))
            }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if !finished {
                finished = true
                done?.fail(error)
            }
            context.close(promise: nil)
        }
    }

    /// The echo side: an NIO server on a port of `host`; prints the port, serves until killed.
    static func serveEcho(host: String) -> Never {
        let group = MultiThreadedEventLoopGroup.singleton
        do {
            let channel = try ServerBootstrap(group: group)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Bouncer()) }
                }
                .bind(host: host, port: 0).wait()
            let line = Array("\(channel.localAddress?.port ?? 0)\n".utf8)
            _ = write(1, line, line.count)
            try channel.closeFuture.wait()
        } catch {
            print("the NIO echo server failed: \(error)")
        }
        exit(0)
    }
}
