import NIOCore

/// Who is waiting for one reply.
enum RESPWaiter {
    /// One caller of `send`: error replies are thrown as ``RESPError/server(_:)``.
    case single(UnsafeContinuation<RESPValue, any Error>)
    /// One command of a pipeline: error replies are kept as values.
    case pipelined(PipelineCollector, Int)
    /// One command of ``RESPConnection/sendTogether(_:)``: error replies fail it as ``RESPError/server(_:)``.
    case promise(EventLoopPromise<RESPValue>)
    /// A reply nobody wants any more (its caller timed out); it is read and dropped to keep the order.
    case discarded
}

/// Gathers the replies of one pipeline and resumes its caller once all have arrived. Event-loop confined.
final class PipelineCollector {
    var results: [RESPValue]
    var remaining: Int
    var continuation: UnsafeContinuation<[RESPValue], any Error>?

    init(count: Int, continuation: UnsafeContinuation<[RESPValue], any Error>) {
        self.results = Array(repeating: .null, count: count)
        self.remaining = count
        self.continuation = continuation
    }

    func deliver(_ value: RESPValue, at index: Int) {
        results[index] = value
        remaining -= 1
        if remaining == 0, let c = continuation {
            continuation = nil
            c.resume(returning: results)
        }
    }

    func fail(_ error: RESPError) {
        if let c = continuation {
            continuation = nil
            c.resume(throwing: error)
        }
    }
}

/// A waiter for the confirmations of a (P)SUBSCRIBE / (P)UNSUBSCRIBE command, which arrive as pushes.
struct ConfirmationWaiter {
    var remaining: Int
    var continuation: UnsafeContinuation<Void, any Error>
}

/// The connection's NIO handler: turns bytes into ``RESPValue``s and hands each reply to the caller that
/// sent the matching command (replies come back in order, which is what makes pipelining work).
///
/// Every method runs on the channel's event loop.
final class RESPChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var waiter: RESPWaiter
        var name: String
        var deadline: NIODeadline?
        var closesOnTimeout: Bool
    }

    private var pending = CircularBuffer<Pending>(initialCapacity: 16)
    private var parser: RESPParser
    private var cumulation: ByteBuffer?
    private var context: ChannelHandlerContext?
    private var flushScheduled = false
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private(set) var closedError: RESPError?

    /// Out-of-band data: RESP3 pushes, and RESP2 pub/sub messages once ``pubSubMode`` is on.
    var onPush: ((RESPValue) -> Void)?
    /// Called once when the connection fails or closes, with the reason.
    var onClose: ((RESPError) -> Void)?
    /// When on, RESP2 arrays that look like pub/sub messages are routed to ``onPush``.
    var pubSubMode = false
    /// Waiters for subscription confirmations, in request order.
    private var confirmations = CircularBuffer<ConfirmationWaiter>()
    /// Set when the connection carries state that must not leak to another user (MULTI, WATCH, SUBSCRIBE).
    private(set) var hasSessionState = false
    /// The endpoint, for error messages.
    let peerDescription: String

    init(limits: RESPParser.Limits, peerDescription: String) {
        self.parser = RESPParser(limits: limits)
        self.peerDescription = peerDescription
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        failAll(.connectionClosed("handler removed from \(peerDescription)"))
    }

    // MARK: Outbound

    /// Queues `command` and its waiter; the bytes are flushed at the end of this event-loop tick so that
    /// commands submitted together leave in one write.
    func submit(_ command: RESPCommand, waiter: RESPWaiter, timeout: TimeAmount?) {
        guard let context = enqueue(command, waiter: waiter, timeout: timeout) else { return }
        if pending.count == 1 && !flushScheduled {
            // Nothing else in flight (the request/reply case): send now rather than at the end of the tick.
            context.flush()
        } else {
            scheduleFlush(context)
        }
    }

    /// Queues `commands` and writes them in one flush: the server reads them together, and a single-threaded
    /// one (Redis, the embedded store) runs them back to back, no other client's command in between.
    func submitTogether(_ commands: [(command: RESPCommand, waiter: RESPWaiter, timeout: TimeAmount?)]) {
        for item in commands { enqueue(item.command, waiter: item.waiter, timeout: item.timeout) }
        context?.flush()
    }

    /// Adds `command` to the waiting list and writes it, unflushed; returns the context it was written to,
    /// or `nil` when the connection is closed (the waiter has then failed).
    @discardableResult
    private func enqueue(_ command: RESPCommand, waiter: RESPWaiter, timeout: TimeAmount?) -> ChannelHandlerContext? {
        if let error = closedError {
            fail(waiter, error)
            return nil
        }
        guard let context else {
            fail(waiter, .connectionClosed("not connected to \(peerDescription)"))
            return nil
        }
        trackSessionState(command.name)
        let deadline = timeout.map { NIODeadline.now() + $0 }
        pending.append(Pending(waiter: waiter, name: command.name, deadline: deadline, closesOnTimeout: command.isBlocking))
        if let deadline { armTimer(deadline) }
        context.write(Self.wrapOutboundOut(command.encoded), promise: nil)
        return context
    }

    /// Queues a (P)SUBSCRIBE-style command whose replies are push confirmations, not ordinary replies.
    func submitSubscription(_ command: RESPCommand, expectedConfirmations: Int, continuation: UnsafeContinuation<Void, any Error>) {
        if let error = closedError {
            continuation.resume(throwing: error)
            return
        }
        guard let context else {
            continuation.resume(throwing: RESPError.connectionClosed("not connected to \(peerDescription)"))
            return
        }
        pubSubMode = true
        hasSessionState = true
        confirmations.append(ConfirmationWaiter(remaining: expectedConfirmations, continuation: continuation))
        context.write(Self.wrapOutboundOut(command.encoded), promise: nil)
        scheduleFlush(context)
    }

    private func scheduleFlush(_ context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolatedUnsafeUnchecked().execute {
            self.flushScheduled = false
            self.context?.flush()
        }
    }

    private func trackSessionState(_ name: String) {
        switch name {
        case "MULTI", "WATCH", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "CLIENT":
            hasSessionState = true
        case "EXEC", "DISCARD", "UNWATCH", "RESET":
            if !pubSubMode { hasSessionState = false }
        default:
            break
        }
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = Self.unwrapInboundIn(data)
        if var existing = cumulation {
            cumulation = nil
            existing.writeBuffer(&incoming)
            incoming = existing
        }
        while true {
            let value: RESPValue?
            do {
                value = try parser.parse(&incoming)
            } catch {
                protocolViolation(context, error.description)
                return
            }
            guard let value else { break }
            route(value, context: context)
            if closedError != nil { return }
        }
        if incoming.readableBytes > 0 {
            if incoming.readerIndex > 64 * 1024 { incoming.discardReadBytes() }
            cumulation = incoming
        }
    }

    private func route(_ value: RESPValue, context: ChannelHandlerContext) {
        if case .push(let items) = value {
            handlePush(items, raw: value)
            return
        }
        if pubSubMode, case .array(.some(let items)) = value, let kind = items.first?.string?.lowercased(),
            Self.pushKinds.contains(kind)
        {
            handlePush(items, raw: value)
            return
        }
        guard let head = pending.popFirst() else {
            if let message = value.errorMessage, !confirmations.isEmpty {
                confirmations.removeFirst().continuation.resume(throwing: RESPError.server(message))
                return
            }
            protocolViolation(context, "unexpected reply \(value) with no command waiting")
            return
        }
        switch head.waiter {
        case .single(let continuation):
            if let message = value.errorMessage {
                continuation.resume(throwing: RESPError.server(message))
            } else {
                continuation.resume(returning: value)
            }
        case .pipelined(let collector, let index):
            collector.deliver(value, at: index)
        case .promise(let promise):
            if let message = value.errorMessage {
                promise.fail(RESPError.server(message))
            } else {
                promise.succeed(value)
            }
        case .discarded:
            break
        }
    }

    private static let pushKinds: Set<String> = [
        "message", "pmessage", "smessage", "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe",
        "sunsubscribe", "pong",
    ]

    private func handlePush(_ items: [RESPValue], raw: RESPValue) {
        let kind = items.first?.string?.lowercased() ?? ""
        switch kind {
        case "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe":
            if !confirmations.isEmpty {
                confirmations[confirmations.startIndex].remaining -= 1
                if confirmations[confirmations.startIndex].remaining <= 0 {
                    confirmations.removeFirst().continuation.resume()
                }
            }
        default:
            onPush?(raw)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.connectionClosed("\(peerDescription) closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(.connectionClosed("\(peerDescription): \(error)"))
        context.close(promise: nil)
    }

    private func protocolViolation(_ context: ChannelHandlerContext, _ why: String) {
        failAll(.protocolViolation("\(peerDescription): \(why)"))
        context.close(promise: nil)
    }

    // MARK: Failure and timeouts

    private func fail(_ waiter: RESPWaiter, _ error: RESPError) {
        switch waiter {
        case .single(let c): c.resume(throwing: error)
        case .pipelined(let collector, _): collector.fail(error)
        case .promise(let promise): promise.fail(error)
        case .discarded: break
        }
    }

    /// Fails every waiting caller with `error`; later submissions fail at once with the same error.
    func failAll(_ error: RESPError) {
        if closedError == nil { closedError = error }
        timer?.cancel()
        timer = nil
        while let p = pending.popFirst() { fail(p.waiter, error) }
        while let c = confirmations.popFirst() { c.continuation.resume(throwing: error) }
        onPush = nil
        if let onClose {
            self.onClose = nil
            onClose(error)
        }
    }

    private func armTimer(_ deadline: NIODeadline) {
        if let current = timerDeadline, current <= deadline, timer != nil { return }
        timer?.cancel()
        timerDeadline = deadline
        guard let context else { return }
        timer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: deadline) {
            self.timerFired()
        }
    }

    private func timerFired() {
        timer = nil
        timerDeadline = nil
        let now = NIODeadline.now()
        var next: NIODeadline?
        var mustClose = false
        for i in pending.indices {
            guard let deadline = pending[i].deadline else { continue }
            if deadline <= now {
                if case .discarded = pending[i].waiter { continue }
                fail(pending[i].waiter, .timeout(pending[i].name))
                pending[i].waiter = .discarded
                pending[i].deadline = nil
                if pending[i].closesOnTimeout { mustClose = true }
            } else if next == nil || deadline < next! {
                next = deadline
            }
        }
        if mustClose, let context {
            // A blocking command that timed out on our side may still pop data later: close the connection
            // so the server does not hand that data to a reader who is gone.
            failAll(.connectionClosed("closed after a blocking command timed out"))
            context.close(promise: nil)
            return
        }
        if let next { armTimer(next) }
    }

    /// Cancels a blocking command (its caller was cancelled) by closing the connection.
    func cancelBlocking() {
        failAll(.connectionClosed("the waiting task was cancelled"))
        context?.close(promise: nil)
    }
}
