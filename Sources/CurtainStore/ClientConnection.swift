import CurtainRESP
import Logging
import NIOCore

/// One client connection: decodes its requests, runs them against the store and writes the replies.
///
/// Requests are executed as soon as they are decoded; all replies produced while handling one read
/// (a pipelined batch) are collected in one output buffer and flushed once, in `channelReadComplete`.
/// A blocked client (`BLPOP` …) stops executing its remaining input until it is served or times out.
/// Lives entirely on the store's event loop.
///
/// Hot properties are `@exclusivity(unchecked)`: they are only touched on the loop thread and never through
/// overlapping accesses, and the dynamic exclusivity checks were a measurable share of per-command CPU.
final class ClientConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The connection's lifecycle.
    private enum Lifecycle {
        /// Executing requests.
        case active
        /// Closing after the pending output is written (after `QUIT` or a protocol error).
        case closing
        /// The channel is closed.
        case closed
    }

    /// `MULTI` state.
    enum Transaction {
        /// Not in a transaction.
        case none
        /// Queuing commands after `MULTI`; `aborted` once a command failed to queue (→ `EXECABORT`).
        case queuing(commands: [CommandArguments], aborted: Bool)
    }

    /// A key this client `WATCH`es.
    struct WatchedKey {
        var database: Int
        var key: StoreBytes
        /// Whether the key had already expired when watched (Redis ignores such keys' expiry at `EXEC`).
        var expiredWhenWatched: Bool
    }

    /// The client id (`CLIENT ID`).
    let id: Int64
    let store: StoreState
    private var context: ChannelHandlerContext?
    @exclusivity(unchecked) private var lifecycle: Lifecycle = .active
    @exclusivity(unchecked) private var input = ByteBuffer()
    @exclusivity(unchecked) private var decoder = CommandDecoder()
    /// Replies not yet written to the channel.
    @exclusivity(unchecked) var output = ByteBuffer()
    /// Whether the client is executing a batch (its output is then owned by the batch's context).
    @exclusivity(unchecked) private var isExecuting = false

    /// 2 or 3 (`HELLO`).
    @exclusivity(unchecked) var protocolVersion = 2
    /// The selected database.
    @exclusivity(unchecked) var databaseIndex = 0
    /// Whether the client may run commands (always, when no password is configured).
    @exclusivity(unchecked) var isAuthenticated: Bool
    /// `CLIENT SETNAME`.
    var name: String?
    /// `CLIENT SETINFO LIB-NAME` / `LIB-VER`.
    var libraryName: String?
    var libraryVersion: String?
    /// When the connection was accepted (Unix milliseconds).
    let connectedAt: Int64
    /// When the last command ran (Unix milliseconds).
    @exclusivity(unchecked) var lastInteraction: Int64
    /// The last command's name (`CLIENT INFO cmd=`).
    var lastCommand: StaticString = "NULL"
    var remoteAddress = "?"
    var localAddress = "?"

    @exclusivity(unchecked) var transaction: Transaction = .none
    var watchedKeys: [WatchedKey] = []
    /// Set when a watched key was modified: the next `EXEC` fails.
    private(set) var watchDirty = false

    /// Channels and patterns subscribed to.
    @exclusivity(unchecked) var subscribedChannels: Set<StoreBytes> = []
    @exclusivity(unchecked) var subscribedPatterns: Set<StoreBytes> = []
    /// Shard channels subscribed to (`SSUBSCRIBE`).
    @exclusivity(unchecked) var subscribedShardChannels: Set<StoreBytes> = []
    /// Whether RESP2 subscribe mode restricts the commands allowed.
    var isInSubscribeMode: Bool {
        protocolVersion == 2
            && (!subscribedChannels.isEmpty || !subscribedPatterns.isEmpty || !subscribedShardChannels.isEmpty)
    }

    /// What the client is blocked on, if anything.
    @exclusivity(unchecked) var blocked: BlockedOperation?

    /// `CLIENT REPLY` state: ``replyOff`` and/or ``replySkipNext`` bits (0, the usual case, costs one test).
    @exclusivity(unchecked) var replyState: UInt8 = 0
    /// `CLIENT REPLY OFF`: no command reply is sent (pub/sub messages still are, as in Redis).
    static let replyOff: UInt8 = 1
    /// `CLIENT REPLY SKIP`: the next command's reply is not sent.
    static let replySkipNext: UInt8 = 2
    /// Messages published to this client while it runs a command (keyspace notifications it caused),
    /// written ahead of that command's reply.
    @exclusivity(unchecked) private var pendingPushes: ByteBuffer?
    /// Set by the subscribe commands: their replies are pub/sub messages, sent whatever `CLIENT REPLY` says.
    @exclusivity(unchecked) var replyIsPush = false

    init(store: StoreState) {
        self.store = store
        self.id = store.makeClientID()
        self.isAuthenticated = store.configuration.requirePass == nil
        self.connectedAt = store.coarseNow
        self.lastInteraction = store.coarseNow
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        output = context.channel.allocator.buffer(capacity: 4096)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        remoteAddress = Self.describe(context.channel.remoteAddress)
        localAddress = Self.describe(context.channel.localAddress)
        guard store.register(self) else {
            output.writeStaticString("-ERR max number of clients reached\r\n")
            lifecycle = .closing
            flushAndCloseIfNeeded()
            return
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        lifecycle = .closed
        store.unregister(self)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard lifecycle == .active else { return }
        var incoming = unwrapInboundIn(data)
        if input.readableBytes == 0 {
            input = incoming
        } else {
            input.writeBuffer(&incoming)
        }
        processInput()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushAndCloseIfNeeded()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        store.logger.debug("store connection error", metadata: ["client": "\(id)", "error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Execution

    /// Executes every complete request in the input, unless blocked or closing.
    func processInput() {
        guard lifecycle == .active, blocked == nil, input.readableBytes > 0 else { return }
        store.refreshClock()
        var context = CommandContext(store: store, client: self, out: takeOutput())
        isExecuting = true
        while lifecycle == .active && blocked == nil {
            let arguments: CommandArguments?
            do {
                arguments = try decoder.next(&input, authenticated: isAuthenticated)
            } catch {
                // The reason may quote the offending byte: writeErrorReply keeps CR/LF out of the reply line.
                context.out.writeErrorReply("ERR Protocol error: " + error.reason)
                store.logger.debug("protocol error, closing", metadata: ["client": "\(id)", "reason": "\(error.reason)"])
                lifecycle = .closing
                break
            }
            guard let arguments else { break }
            context.args = arguments
            let replyStateBefore = replyState
            if replyStateBefore & Self.replySkipNext != 0 { replyState &= ~Self.replySkipNext }
            let mark = context.out.writerIndex
            dispatch(&context)
            if replyStateBefore != 0 || replyState != 0 || pendingPushes != nil || replyIsPush {
                finishReply(&context.out, from: mark, skipped: replyStateBefore & Self.replySkipNext != 0)
            }
            context.args = .empty
        }
        isExecuting = false
        output = context.out
        if input.readableBytes == 0 {
            // Release the read buffer so NIO can reuse it.
            input = ByteBuffer()
        }
    }

    /// Checks and runs (or queues) the command in `context.args`.
    private func dispatch(_ context: inout CommandContext) {
        store.stats.totalCommands += 1
        lastInteraction = store.coarseNow
        guard let command = CommandTable.lookup(context.args) else {
            abortTransactionIfQueuing()
            context.out.writeErrorReply(Self.unknownCommandMessage(context.args))
            return
        }
        guard command.accepts(argumentCount: context.args.count) else {
            if "\(command.name)" == "exec" {
                // As Redis does for any rejected EXEC: the transaction (if any) is discarded, and said so.
                transaction = .none
                unwatchAll()
                context.out.writeErrorReply("EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command")
                return
            }
            abortTransactionIfQueuing()
            context.out.writeErrorReply("ERR wrong number of arguments for '\(command.name)' command")
            return
        }
        if command.flags.contains(.container), let message = CommandTable.subcommandError(command, context.args) {
            abortTransactionIfQueuing()
            context.out.writeErrorReply(message)
            return
        }
        if !isAuthenticated && !command.flags.contains(.noAuth) {
            abortTransactionIfQueuing()
            context.out.writeStaticString("-NOAUTH Authentication required.\r\n")
            return
        }
        if isInSubscribeMode && !command.flags.contains(.pubSubContext) {
            context.out.writeErrorReply(
                "ERR Can't execute '\(command.name)': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            )
            return
        }
        if case .queuing(var commands, let aborted) = transaction, !command.flags.contains(.transactionControl) {
            transaction = .none
            commands.append(context.args.owned())
            transaction = .queuing(commands: commands, aborted: aborted)
            context.out.writeStaticString("+QUEUED\r\n")
            return
        }
        lastCommand = command.name
        run(command, &context)
        if store.hasReadyKeys { store.serveReadyKeys() }
    }

    /// Runs `command` and writes its reply or error.
    func run(_ command: CommandSpec, _ context: inout CommandContext) {
        do {
            try command.handler(&context)
        } catch let error as CommandError {
            context.out.writeErrorReply(error.message)
        } catch {
            context.out.writeErrorReply("ERR \(error)")
        }
    }

    private func abortTransactionIfQueuing() {
        if case .queuing(let commands, _) = transaction {
            transaction = .queuing(commands: commands, aborted: true)
        }
    }

    /// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `, as Redis words it.
    private static func unknownCommandMessage(_ arguments: CommandArguments) -> String {
        var list = ""
        var index = 1
        while index < arguments.count && list.utf8.count < 128 {
            let remaining = 128 - list.utf8.count
            let text = arguments.withBytes(index) { String(decoding: $0.prefix(remaining), as: UTF8.self) }
            list += "'\(text)' "
            index += 1
        }
        let name = arguments.withBytes(0) { String(decoding: $0.prefix(128), as: UTF8.self) }
        return "ERR unknown command '\(name)', with args beginning with: \(list)"
    }

    /// Applies `CLIENT REPLY` to the reply written from `mark`, and puts pending pushed messages before it.
    /// Pub/sub messages (subscription confirmations included) are pushed even when replies are off, as Redis does.
    private func finishReply(_ out: inout ByteBuffer, from mark: Int, skipped: Bool) {
        let suppressed = (skipped || replyState & Self.replyOff != 0) && !replyIsPush
        replyIsPush = false
        let pending = pendingPushes
        pendingPushes = nil
        if suppressed {
            out.moveWriterIndex(to: mark)
            if var pushes = pending { out.writeBuffer(&pushes) }
            return
        }
        guard var pushes = pending else { return }
        var reply = out.getSlice(at: mark, length: out.writerIndex - mark) ?? ByteBuffer()
        out.moveWriterIndex(to: mark)
        out.writeBuffer(&pushes)
        out.writeBuffer(&reply)
    }

    // MARK: Output

    /// Takes the pending output for a batch (leaving an empty buffer, so appends do not copy).
    private func takeOutput() -> ByteBuffer {
        var taken = ByteBuffer()
        swap(&taken, &output)
        return taken
    }

    /// Appends to this client's output from outside its own batch (pub/sub messages, served blocked pops)
    /// and flushes it.
    func deliver(_ write: (inout ByteBuffer) -> Void) {
        precondition(!isExecuting, "deliver to the executing client must go through its context")
        guard lifecycle == .active else { return }
        write(&output)
        flushAndCloseIfNeeded()
    }

    /// Sends a message the server publishes (keyspace notifications): now, or, if this client is running a
    /// command, ahead of that command's reply.
    func push(_ write: (inout ByteBuffer) -> Void) {
        if isExecuting {
            var pushes = pendingPushes ?? ByteBuffer()
            pendingPushes = nil
            write(&pushes)
            pendingPushes = pushes
        } else {
            deliver(write)
        }
    }

    /// Writes and flushes pending output; closes the channel afterwards if closing.
    func flushAndCloseIfNeeded() {
        guard let context else { return }
        if output.readableBytes > 0 {
            let closeAfter = lifecycle == .closing
            if closeAfter {
                context.writeAndFlush(wrapOutboundOut(output)).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            } else {
                context.writeAndFlush(wrapOutboundOut(output), promise: nil)
            }
            if output.capacity > 1 << 20 {
                output = context.channel.allocator.buffer(capacity: 4096)
            } else {
                output.clear()
            }
            if closeAfter { lifecycle = .closed }
        } else if lifecycle == .closing {
            lifecycle = .closed
            context.close(promise: nil)
        }
    }

    /// Marks the connection to close once the current reply is written (`QUIT`).
    func closeAfterReply() {
        if lifecycle == .active { lifecycle = .closing }
    }

    /// Closes the connection now (server shutdown).
    func close() {
        guard let context, lifecycle != .closed else { return }
        lifecycle = .closed
        context.close(promise: nil)
    }

    // MARK: Blocking

    /// Continues executing pipelined input after being unblocked (on the next loop tick, so the code
    /// that served this client finishes first).
    func scheduleResume() {
        guard let context else { return }
        context.eventLoop.assumeIsolated().execute { [self] in
            self.processInput()
            self.flushAndCloseIfNeeded()
        }
    }

    // MARK: Watch

    /// A watched key was modified.
    func watchedKeyTouched() {
        watchDirty = true
    }

    /// Forgets every watched key (`UNWATCH`, `EXEC`, `DISCARD`, disconnect).
    func unwatchAll() {
        for watched in watchedKeys {
            let database = store.databases[watched.database]
            guard var clients = database.watchers[watched.key] else { continue }
            clients.removeAll { $0 === self }
            database.watchers[watched.key] = clients.isEmpty ? nil : clients
        }
        watchedKeys.removeAll()
        watchDirty = false
    }

    // MARK: Helpers

    private static func describe(_ address: SocketAddress?) -> String {
        guard let address else { return "?" }
        switch address {
        case .v4, .v6:
            let host = address.ipAddress ?? "?"
            let port = address.port ?? 0
            return address.protocol == .inet6 ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unixDomainSocket:
            return address.pathname.map { "\($0):0" } ?? "/unix:0"
        }
    }
}
