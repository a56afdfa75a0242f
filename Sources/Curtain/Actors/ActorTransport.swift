import CurtainRESP
import Logging
import NIOCore
import Synchronization

/// The store keys of the actor system; the build id is part of each, so processes of other builds (whose
/// method names may mean other code) never exchange calls.
struct ActorKeys: Sendable {
    let buildID: String

    /// The list of messages (calls, spawns, releases) waiting for `node`.
    func inbox(_ node: String) -> String { "curtain:{\(buildID)}:actors:\(node):inbox" }
    /// The list of replies waiting for `node`'s callers.
    func replies(_ node: String) -> String { "curtain:{\(buildID)}:actors:\(node):replies" }
    /// Present while `node` is alive (its heartbeat, with the heartbeat TTL); holds how many spawned
    /// actors it hosts.
    func alive(_ node: String) -> String { "curtain:{\(buildID)}:actors:\(node):alive" }
    /// The address (`host:port`) where `node` takes direct calls, with the heartbeat TTL.
    func address(_ node: String) -> String { "curtain:{\(buildID)}:actors:\(node):addr" }
    /// The set of worker nodes that can host spawned actors.
    var nodes: String { "curtain:{\(buildID)}:actors:nodes" }
    /// A spawned actor's record (hash: `type`, `host`, `restarts` left, `retry`), kept for restartable
    /// actors so that callers anywhere can find where it was restarted.
    func record(_ name: String) -> String { "curtain:{\(buildID)}:actor:\(name)" }
}

/// A result that arrives once and is awaited once: a call waiting for its reply, a connection waiting for
/// the host's answer to its hello. Whichever comes first, the result or the wait, the waiter gets the first
/// result; later ones are dropped.
final class OneShot<Value: Sendable>: Sendable {
    private let state = Mutex<(result: Result<Value, any Error>?, continuation: CheckedContinuation<Value, any Error>?)>((nil, nil))

    func resume(_ result: Result<Value, any Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<Value, any Error>? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(with: result)
    }

    func wait() async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<Value, any Error>? in
                if let result = state.result { return result }
                state.continuation = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// One call waiting for its reply.
typealias ReplySlot = OneShot<ActorReply>

/// Carries an actor system's messages through the store: an outbox that batches pushes to other nodes'
/// lists, a reply reader, an inbox reader (for a node that hosts actors), the node's heartbeat, and a
/// watchdog that fails the calls whose host stopped beating.
///
/// Calls go over a direct connection to their host instead when it advertises an address (``ActorPath``;
/// `DirectPath.swift` has the wire); replies then come back on that connection, and a connection that
/// drops is acted on at once rather than when the host's heartbeat lapses.
///
/// Every list is read with `BLPOP` followed, in the same pipeline, by `LPOP … 1024` (which the store runs
/// once the `BLPOP` is served), so a burst of messages costs one round trip.
final class ActorTransport: Sendable {
    let client: RESPClient
    let keys: ActorKeys
    let node: String
    /// How long a node's heartbeat lives without renewal; renewed three times per TTL.
    let heartbeatTTL: Duration
    let logger: Logger

    private struct Pending {
        let slot: ReplySlot
        var host: String
        var bytes: ByteBuffer
        let actor: String
        /// The actor and method, named only when a failure needs them.
        let label: Label
        var sentAt: ContinuousClock.Instant
        /// Set once the call was taken back out of a dead host's inbox: it never ran.
        var undelivered = false
        /// When the host was first found dead.
        var hostDeadSince: ContinuousClock.Instant?
        /// The direct connection the call was written to, if it went directly.
        var peer: UInt64?
    }

    /// What this process knows of its direct connection to a host.
    private enum PeerEntry {
        case ready(DirectPeer)
        case connecting(Task<Result<DirectPeer, DirectConnectError>, Never>)
        /// No direct connection for now (the reason); tried again after `until`.
        case unreachable(until: ContinuousClock.Instant, reason: String)
    }

    private struct State {
        var nextCallID: UInt64 = 1
        var pending: [UInt64: Pending] = [:]
        var outbox: [(key: String, bytes: ByteBuffer, callID: UInt64?)] = []
        var flushing = false
        var replyReader = false
        var tasks: [Task<Void, Never>] = []
        var connections: [RESPConnection] = []
        var closed = false
        /// When each list pushed to was last given its expiry.
        var expired: [String: ContinuousClock.Instant] = [:]
        var peers: [String: PeerEntry] = [:]
        var nextPeerID: UInt64 = 1
        var listener: DirectListener?
        /// Connections that closed before they were recorded as ready (their close found nothing to clear).
        var closedEarly: Set<UInt64> = []
        var watchdog = false
        var hostLostHandlers: [@Sendable (String) async -> Void] = []
    }

    private let state = Mutex(State())
    private let system = Mutex<WeakSystem>(WeakSystem())

    private final class WeakSystem: @unchecked Sendable {
        weak var value: CurtainActorSystem?
        init(_ value: CurtainActorSystem? = nil) { self.value = value }
    }

    /// Signs messages and replies, and refuses unsigned or forged ones, when the cloud has a secret.
    let sealer: Sealer?
    /// Direct connections, the store, or either.
    let path: ActorPath
    /// `host` or `host:port` to advertise instead of the address this process reaches the store from.
    let advertise: String?
    /// The largest argument or frame accepted on the direct path.
    let maxPayload: Int
    /// Whether this process's direct connections are encrypted (``DirectTLS``), and whether it refuses to
    /// call a host over one that is not: by default when the store is reached over TLS.
    let encrypt: Bool
    let buildID: String

    init(
        client: RESPClient, buildID: String, node: String, heartbeatTTL: Duration, sealer: Sealer? = nil,
        path: ActorPath = .auto, advertise: String? = nil, maxPayload: Int = CloudConfiguration.defaultMaxPayload,
        encrypt: Bool? = nil, logger: Logger = Logger(label: "curtain.actors")
    ) {
        self.sealer = sealer
        self.path = path
        // A cluster whose store needs TLS encrypts its direct connections too.
        self.encrypt = encrypt ?? client.configuration.usesTLS
        self.advertise = advertise
        self.maxPayload = maxPayload
        self.buildID = buildID
        self.client = client
        self.keys = ActorKeys(buildID: buildID)
        self.node = node
        self.heartbeatTTL = max(heartbeatTTL, .milliseconds(150))
        self.logger = logger
    }

    func attach(_ system: CurtainActorSystem) {
        self.system.withLock { $0 = WeakSystem(system) }
    }

    private var period: Duration { heartbeatTTL / 3 }

    // MARK: Calls

    /// Sends `message` to `host` and waits for the reply; `label` names the call in errors.
    /// Names a call's actor and method for errors (lazily: printing a type's name costs a metadata lookup).
    typealias Label = @Sendable () -> (actor: String, method: String)

    func send(_ message: ActorMessage, to host: String, label: @escaping Label) async throws -> ActorReply {
        var message = message
        let callID = state.withLock { state -> UInt64 in
            defer { state.nextCallID &+= 1 }
            return state.nextCallID
        }
        message.callID = callID
        let bytes: ByteBuffer
        do {
            bytes = Sealer.seal(try message.encoded(), with: sealer)
        } catch {
            throw Self.error(.transport, label, "cannot send the call: \(error)")
        }
        let slot = ReplySlot()
        let accepted = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.pending[callID] = Pending(
                slot: slot, host: host, bytes: bytes, actor: message.actor, label: label, sentAt: .now)
            return true
        }
        guard accepted else {
            throw Self.error(.transport, label, "the actor system was shut down")
        }
        // Every call is watched (its host may die); the store's reply list is read once a call goes that way.
        startWatchdog()
        switch path == .store ? nil : await directPeer(to: host) {
        case .success? where bytes.readableBytes > DirectWire.maximumFrame(for: maxPayload):
            fail(callID, kind: .transport, "the call is \(bytes.readableBytes) bytes, over the limit of \(DirectWire.maximumFrame(for: maxPayload)) (CURTAIN_MAX_PAYLOAD_BYTES)")
        case .success(let peer)? where !attach(callID, to: peer, host: host):
            // The connection closed meanwhile, before anything was written: the store carries it.
            await push(bytes, to: keys.inbox(host), callID: callID)
        case .success(let peer)?:
            // On the connection's event loop the write needs no hop, and the reply, read there, resumes the
            // call without waking another thread.
            return try await withTaskExecutorPreference(peer.executor) {
                peer.write(bytes)
                return try await withTaskCancellationHandler {
                    try await slot.wait()
                } onCancel: {
                    self.finish(callID, with: .failure(CancellationError()))
                }
            }
        case .failure(let reason)? where path == .direct:
            fail(callID, kind: .transport, "no direct connection (CURTAIN_ACTOR_PATH=direct): \(reason)")
        case .failure, nil:
            await push(bytes, to: keys.inbox(host), callID: callID)
        }
        return try await withTaskCancellationHandler {
            try await slot.wait()
        } onCancel: {
            self.finish(callID, with: .failure(CancellationError()))
        }
    }

    /// Marks a call as written to `peer`, if that connection is still the host's: a connection that closes
    /// later finds the call (its close and this run under one lock), one that closed before does not take it.
    private func attach(_ callID: UInt64, to peer: DirectPeer, host: String) -> Bool {
        state.withLock { state in
            guard case .ready(let current) = state.peers[host], current.id == peer.id, state.pending[callID] != nil else { return false }
            state.pending[callID]!.peer = peer.id
            return true
        }
    }

    /// Resolves a pending call (once); later answers for it are dropped.
    private func finish(_ callID: UInt64, with result: Result<ActorReply, any Error>) {
        let pending = state.withLock { $0.pending.removeValue(forKey: callID) }
        pending?.slot.resume(result)
    }

    private func fail(_ callID: UInt64, kind: ActorCallError.Kind, _ message: String) {
        guard let label = state.withLock({ $0.pending[callID]?.label }) else { return }
        finish(callID, with: .failure(Self.error(kind, label, message)))
    }

    private static func error(_ kind: ActorCallError.Kind, _ label: Label, _ message: String) -> ActorCallError {
        let (actor, method) = label()
        return ActorCallError(kind: kind, actor: actor, method: method, message: message)
    }

    // MARK: Outbox

    /// Queues `bytes` for the list `key` and, unless a flush is already running, sends everything queued
    /// (so concurrent senders share pipelines). A send that fails fails its call.
    func push(_ bytes: ByteBuffer, to key: String, callID: UInt64?) async {
        // A call sent through the store is answered through it.
        if callID != nil { startReplyReader() }
        let mustFlush = state.withLock { state -> Bool in
            state.outbox.append((key, bytes, callID))
            guard !state.flushing else { return false }
            state.flushing = true
            return true
        }
        if mustFlush { await flush() }
    }

    private func flush() async {
        while true {
            let batch = state.withLock { state -> [(key: String, bytes: ByteBuffer, callID: UInt64?)]? in
                guard !state.outbox.isEmpty else {
                    state.flushing = false
                    return nil
                }
                defer { state.outbox.removeAll(keepingCapacity: true) }
                return state.outbox
            }
            guard let batch else { return }
            var order: [String] = []
            var groups: [String: (values: [any RESPArgument], calls: [UInt64])] = [:]
            for item in batch {
                if groups[item.key] == nil { order.append(item.key) }
                groups[item.key, default: ([], [])].values.append(item.bytes)
                if let id = item.callID { groups[item.key, default: ([], [])].calls.append(id) }
            }
            var commands: [RESPCommand] = []
            // Nothing lingers if its reader is gone for good: each list expires an hour after the last push,
            // renewed at most once a minute (an expiry per push doubled the commands of a call).
            let now = ContinuousClock.now
            let renew = state.withLock { state in
                order.filter { key in
                    guard let last = state.expired[key], now - last < .seconds(60) else {
                        state.expired[key] = now
                        return true
                    }
                    return false
                }
            }
            for key in order {
                commands.append(RESPCommand("RPUSH", arguments: [key as any RESPArgument] + groups[key]!.values))
            }
            for key in renew { commands.append(RESPCommand("PEXPIRE", key, 3_600_000)) }
            do {
                let replies = try await client.pipeline(commands)
                for (index, key) in order.enumerated() {
                    if let error = replies[index].errorMessage {
                        for id in groups[key]!.calls { fail(id, kind: .transport, "the store refused the call: \(error)") }
                    }
                }
            } catch {
                for key in order {
                    for id in groups[key]!.calls { fail(id, kind: .transport, "cannot reach the store: \(error)") }
                }
                logger.warning("actor messages could not be sent", metadata: ["error": "\(error)"])
                // Replies (no call id: their caller waits on another process) are sent again while the store
                // is only briefly away; a reply that arrives twice is harmless, a lost one would leave its
                // caller waiting. Calls are not: a call sent twice could run twice.
                let replies = order.filter { groups[$0]!.calls.isEmpty }.map {
                    RESPCommand("RPUSH", arguments: [$0 as any RESPArgument] + groups[$0]!.values)
                }
                if !replies.isEmpty { await resend(replies) }
            }
        }
    }

    /// Sends `commands` again, with a doubling delay, for about ten seconds at most.
    private func resend(_ commands: [RESPCommand]) async {
        var delay = Duration.milliseconds(50)
        for _ in 0..<8 {
            try? await Task.sleep(for: delay)
            if (try? await client.pipeline(commands)) != nil { return }
            delay = min(delay * 2, .seconds(2))
        }
        logger.error("actor replies were lost: the store stayed out of reach", metadata: ["replies": "\(commands.count)"])
    }

    // MARK: Readers

    private func startReplyReader() {
        let start = state.withLock { state -> Bool in
            guard !state.replyReader, !state.closed else { return false }
            state.replyReader = true
            return true
        }
        guard start else { return }
        let task = Task { [self] in
            await read(keys.replies(node)) { [self] batch, _ in
                for bytes in batch {
                    do {
                        let reply = try ActorReply(decoding: try Sealer.open(bytes, with: sealer))
                        finish(reply.callID, with: .success(reply))
                    } catch {
                        logger.warning("rejected an actor reply", metadata: ["reason": "\(error)"])
                    }
                }
            }
        }
        state.withLock { $0.tasks.append(task) }
        startWatchdog()
    }

    /// Starts serving this node's inbox and beating its heartbeat; `nodes` lists it as able to host
    /// spawned actors (workers do, drivers only serve the actors they create themselves).
    func startHosting(advertise: Bool) async throws {
        if path != .store { try await startListening() }
        try await beat()
        if advertise { _ = try await client.send(RESPCommand("SADD", keys.nodes, node)) }
        let inbox = keys.inbox(node)
        let task = Task { [self] in
            await read(inbox) { [self] batch, executor in
                guard let system = system.withLock({ $0.value }) else { return }
                // One task per actor per burst, running its messages in order (an actor runs one at a time
                // anyway), on the reader's event loop: the actor (a default actor) runs there too, and the
                // replies leave through a connection of that loop, so a call crosses no thread on this side.
                var byActor: [String: [ActorMessage]] = [:]
                for bytes in batch {
                    do {
                        let message = try ActorMessage(decoding: try Sealer.open(bytes, with: sealer))
                        byActor[message.actor, default: []].append(message)
                    } catch {
                        logger.warning("rejected an actor message", metadata: ["reason": "\(error)", "node": "\(node)"])
                    }
                }
                for messages in byActor.values {
                    Task(executorPreference: executor) { [self] in
                        for message in messages {
                            let replies = keys.replies(message.replyNode)
                            await system.handle(message) { reply in await self.push(Sealer.seal(reply.encoded(), with: self.sealer), to: replies, callID: nil) }
                        }
                    }
                }
            }
        }
        let heart = client.everyPeriod(period) { [self] in
            try? await beat()
            return true
        }
        state.withLock { $0.tasks += [task, heart] }
    }

    private func beat() async throws {
        let load = system.withLock { $0.value?.hostedCount } ?? 0
        let ttl = Int(heartbeatTTL.wholeMilliseconds)
        var commands = [RESPCommand("SET", keys.alive(node), load, "PX", ttl)]
        if let address = state.withLock({ $0.listener?.advertised }) {
            commands.append(RESPCommand("SET", keys.address(node), address, "PX", ttl))
        }
        // Through the keeper: actor methods run on the client's event loops and may hold them for long.
        _ = try await client.keeper.pipeline(commands)
    }

    /// Renews the heartbeat now, so that placement sees a changed load soon.
    func noteLoadChanged() {
        Task(executorPreference: client.backgroundExecutor()) { [self] in try? await beat() }
    }

    /// Reads the list `key` until closed: a blocking pop, then the rest of a burst in the same round trip.
    ///
    /// It runs on the event loop of its connection (`withAffinity`), and hands `deliver` that loop's executor.
    private func read(_ key: String, _ deliver: @Sendable ([ByteBuffer], EventLoopTaskExecutor) -> Void) async {
        _ = try? await client.withAffinity { await readLoop(key, deliver) }
    }

    private func readLoop(_ key: String, _ deliver: @Sendable ([ByteBuffer], EventLoopTaskExecutor) -> Void) async {
        var connection: RESPConnection?
        while !state.withLock({ $0.closed }) {
            do {
                if connection == nil {
                    let leased = try await client.leaseDedicatedConnection()
                    state.withLock { $0.connections.append(leased) }
                    connection = leased
                }
                let executor = connection!.taskExecutor
                // The pop waits up to 1 s in the store; its reply may take longer on a loaded machine.
                let replies = try await connection!.pipeline(
                    [RESPCommand("BLPOP", key, 1), RESPCommand("LPOP", key, 1024)], timeout: .seconds(30))
                var batch: [ByteBuffer] = []
                if let first = replies[0].array?.last?.buffer { batch.append(first) }
                for item in replies[1].array ?? [] {
                    if let bytes = item.buffer { batch.append(bytes) }
                }
                if !batch.isEmpty { deliver(batch, executor) }
            } catch {
                if state.withLock({ $0.closed }) { break }
                logger.warning("actor message reader lost its connection; reconnecting", metadata: ["error": "\(error)", "key": "\(key)"])
                if let connection { await connection.close() }
                connection = nil
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        if let connection { await connection.close() }
    }

    // MARK: Direct path

    /// Opens this process's actor port and advertises it with the heartbeat. With ``ActorPath/auto`` a port
    /// that cannot be opened leaves calls on the store (with a warning); with ``ActorPath/direct`` it is an
    /// error.
    private func startListening() async throws {
        do {
            let advertiseHost: String
            let bindHost: String
            var port = 0
            if let advertise, let (host, given) = DirectPeer.advertised(advertise) {
                advertiseHost = host
                port = given ?? 0
                // Behind NAT or in a pod the advertised address is not this host's own: listen on every one.
                bindHost = advertiseHost.contains(":") ? "::" : "0.0.0.0"
            } else {
                // The address this process reaches the store from is one its peers can reach it at; a store on
                // a Unix socket means every peer is on this host (and no connection is needed to know it).
                if case .unix = client.configuration.endpoint {
                    advertiseHost = "127.0.0.1"
                } else {
                    let local = try await client.withDedicatedConnection { $0.localAddress }
                    advertiseHost = local?.ipAddress ?? "127.0.0.1"
                }
                bindHost = advertiseHost
            }
            let listener = try await DirectListener.start(
                group: client.eventLoopGroup, bindHost: bindHost, port: port, advertiseHost: advertiseHost, buildID: buildID,
                node: node, maxPayload: maxPayload, sealer: sealer, encrypt: encrypt, system: { [weak self] in self?.system.withLock { $0.value } },
                logger: logger)
            state.withLock { $0.listener = listener }
        } catch {
            if path == .direct { throw error }
            logger.warning("no direct actor port; calls to this process's actors go through the store", metadata: ["error": "\(error)"])
        }
    }

    /// The executor of the direct connection's event loop to `host`, if one can be made.
    func directExecutor(to host: String) async -> EventLoopTaskExecutor? {
        guard path != .store, case .success(let peer) = await directPeer(to: host) else { return nil }
        return peer.executor
    }

    /// The direct connection to `host`, opened on first use (the host's advertised address comes from the
    /// store); a host that cannot be reached is not tried again for five seconds.
    private func directPeer(to host: String) async -> Result<DirectPeer, DirectConnectError> {
        enum Step {
            case done(Result<DirectPeer, DirectConnectError>)
            case wait(Task<Result<DirectPeer, DirectConnectError>, Never>)
        }
        let now = ContinuousClock.now
        let step = state.withLock { state -> Step in
            switch state.peers[host] {
            case .ready(let peer): return .done(.success(peer))
            case .connecting(let task): return .wait(task)
            case .unreachable(let until, let reason) where now < until:
                return .done(.failure(DirectConnectError(description: reason)))
            case .unreachable, nil:
                let id = state.nextPeerID
                state.nextPeerID &+= 1
                let task = Task { await self.connect(to: host, id: id) }
                state.peers[host] = .connecting(task)
                return .wait(task)
            }
        }
        switch step {
        case .done(let result): return result
        case .wait(let task): return await task.value
        }
    }

    private func connect(to host: String, id: UInt64) async -> Result<DirectPeer, DirectConnectError> {
        let result: Result<DirectPeer, DirectConnectError>
        do {
            guard let text = try await client.send(RESPCommand("GET", keys.address(host))).string else {
                throw DirectConnectError(description: "\(host) advertises no direct address (an older worker, or CURTAIN_ACTOR_PATH=store there)")
            }
            guard let (address, token, tls) = DirectWire.parseAdvertisement(text) else {
                throw DirectConnectError(description: "\(host) advertises '\(Abbreviation.text(text, limit: 80))', not an address and token")
            }
            guard tls || !encrypt else {
                throw DirectConnectError(
                    description: "\(host) does not encrypt its direct connections, and this process's must be (a TLS store, or CURTAIN_ACTOR_TLS=1)")
            }
            let peer = try await DirectPeer.connect(
                group: client.eventLoopGroup, address: address, token: token, tls: tls, host: host, node: node, buildID: buildID,
                maxPayload: maxPayload, id: id, timeout: .seconds(2),
                onReply: { [weak self] bytes in self?.receiveDirect(bytes) },
                onClose: { [weak self] in self?.peerClosed(host: host, id: id, address: address, token: token, tls: tls) })
            result = .success(peer)
        } catch let error as DirectConnectError {
            result = .failure(error)
        } catch {
            result = .failure(DirectConnectError(description: "cannot find \(host)'s address: \(error)"))
        }
        let closed = state.withLock { state -> Bool in
            guard !state.closed else { return true }
            switch result {
            case .success(let peer) where state.closedEarly.remove(peer.id) != nil:
                state.peers[host] = nil  // closed already: the next call opens another
            case .success(let peer): state.peers[host] = .ready(peer)
            case .failure(let error): state.peers[host] = .unreachable(until: .now + .seconds(5), reason: error.description)
            }
            return false
        }
        if closed, case .success(let peer) = result { peer.channel.close(promise: nil) }
        if case .failure(let error) = result {
            logger.debug("actor calls to \(host) go through the store", metadata: ["reason": "\(error)"])
        }
        return result
    }

    private func receiveDirect(_ bytes: ByteBuffer) {
        do {
            let reply = try ActorReply(decoding: try Sealer.open(bytes, with: sealer))
            finish(reply.callID, with: .success(reply))
        } catch {
            logger.warning("rejected a direct actor reply", metadata: ["reason": "\(error)"])
        }
    }

    /// A direct connection ended: the calls written to it are resolved now, not after a heartbeat lapses.
    ///
    /// The host is probed with a new connection and hello. If nothing listens there any more (refused, or
    /// closed before the hello is answered, as when the process died mid-exit), its process is gone: its
    /// liveness key is removed (so restarts and other callers see it at once) and its calls fail or are
    /// re-routed as for a host whose heartbeat lapsed (``RestartPolicy``). A host that answers, or only
    /// fails to answer in time (slow, not dead), is alive: the calls written to the closed connection fail
    /// as transport errors that may have run (their replies cannot come back on it).
    private func peerClosed(host: String, id: UInt64, address: String, token: String, tls: Bool) {
        let affected = state.withLock { state -> Bool in
            if case .ready(let peer) = state.peers[host], peer.id == id {
                state.peers[host] = nil
            } else if case .connecting = state.peers[host] {
                state.closedEarly.insert(id)
            }
            guard !state.closed else { return false }
            return state.pending.values.contains { $0.peer == id }
        }
        guard affected else { return }
        Task(executorPreference: client.backgroundExecutor()) { [self] in
            let gone = await probeFindsNothing(host: host, address: address, token: token, tls: tls)
            guard gone else {
                let calls = state.withLock { state in state.pending.filter { $0.value.peer == id }.map(\.key) }
                for callID in calls {
                    fail(callID, kind: .transport, "the direct connection to \(host) dropped while the call was in flight; it may have run")
                }
                return
            }
            logger.warning("an actor host is gone (its connection dropped, nothing answers at its address)", metadata: ["host": "\(host)"])
            _ = try? await client.send(RESPCommand("DEL", keys.alive(host), keys.address(host)))
            for handler in state.withLock({ $0.hostLostHandlers }) { await handler(host) }
            try? await checkHosts(lost: [host])
        }
    }

    /// Whether nothing answers a hello at `address` any more: refused, or reset before answering (a process
    /// killed mid-exit can still accept a connection it will never serve). An answer proves the host alive;
    /// anything else (no answer in time, another refusal) is asked again, three times at most, and then
    /// counts as alive: a host that is only slow is not declared dead.
    private func probeFindsNothing(host: String, address: String, token: String, tls: Bool) async -> Bool {
        for attempt in 0..<3 {
            if attempt > 0 { try? await Task.sleep(for: .milliseconds(300)) }
            do {
                let probe = try await DirectPeer.connect(
                    group: client.eventLoopGroup, address: address, token: token, tls: tls, host: host, node: node,
                    buildID: buildID, maxPayload: maxPayload, id: 0, timeout: .seconds(2), onReply: { _ in }, onClose: {})
                try? await probe.channel.close()
                return false
            } catch let error as DirectConnectError where error.kind == .refused || error.kind == .closed {
                return true
            } catch {
                continue
            }
        }
        return false
    }

    /// Runs `handler` with a host's node name as soon as it is known to be gone (its direct connection
    /// dropped and nothing answers at its address), before the calls to it are failed or re-routed.
    func onHostLost(_ handler: @escaping @Sendable (String) async -> Void) {
        state.withLock { $0.hostLostHandlers.append(handler) }
    }

    /// Looks at the calls waiting on hosts now (after a restart moved an actor, say).
    func recheck() async {
        try? await checkHosts()
    }

    // MARK: Liveness

    private func startWatchdog() {
        let start = state.withLock { state -> Bool in
            defer { state.watchdog = true }
            return !state.watchdog
        }
        guard start else { return }
        let task = client.everyPeriod(period) { [self] in
            guard !state.withLock({ $0.closed }) else { return false }
            try? await checkHosts()
            return true
        }
        state.withLock { $0.tasks.append(task) }
    }

    /// Fails (or re-routes) the calls whose host's heartbeat has lapsed, or whose host is known to be gone
    /// (`lost`: its direct connection dropped and nothing answers at its address).
    private func checkHosts(lost: Set<String> = []) async throws {
        let now = ContinuousClock.now
        let hosts = state.withLock { state in
            Set(state.pending.values.filter { now - $0.sentAt >= period }.map(\.host)).union(lost)
        }
        guard !hosts.isEmpty else { return }
        let ordered = Array(hosts)
        let alive = try await client.pipeline(ordered.map { RESPCommand("EXISTS", keys.alive($0)) })
        let dead = Set(zip(ordered, alive).filter { $0.1.int == 0 }.map(\.0)).union(lost)
        // Calls of dead hosts, and calls parked while their host looked dead (a host that only stalled comes
        // back: its parked calls must not wait forever).
        let calls = state.withLock { state in
            state.pending.filter {
                (now - $0.value.sentAt >= period || lost.contains($0.value.host))
                    && (dead.contains($0.value.host) || $0.value.hostDeadSince != nil)
            }.map { ($0.key, $0.value) }
        }
        for (callID, call) in calls {
            let hostDead = dead.contains(call.host)
            var undelivered = call.undelivered
            if hostDead && !undelivered && call.peer == nil {
                // Still in the dead host's inbox: it never ran, and never will there.
                let removed = try await client.send(RESPCommand("LREM", keys.inbox(call.host), 1, call.bytes))
                undelivered = removed.int == 1
            }
            if !hostDead {
                // The host stalled but lives (or its actor was recreated meanwhile): a call taken out of its
                // inbox never ran, so it goes once more to wherever the actor is now; a call its host had
                // already popped gets its reply from there.
                let record = try? await client.send(RESPCommand("HGET", keys.record(call.actor), "host"))
                let target = record?.string ?? call.host
                let resend = state.withLock { state -> ByteBuffer? in
                    guard var pending = state.pending[callID] else { return nil }
                    defer { state.pending[callID] = pending }
                    pending.hostDeadSince = nil
                    pending.sentAt = .now
                    guard undelivered else { return nil }
                    pending.undelivered = false
                    pending.host = target
                    pending.peer = nil
                    return pending.bytes
                }
                if let resend {
                    if target != call.host { system.withLock { $0.value }?.relocate(call.actor, to: target) }
                    await push(resend, to: keys.inbox(target), callID: callID)
                }
                continue
            }
            let record = try await client.send(RESPCommand("HMGET", keys.record(call.actor), "host", "restarts", "retry"))
            let fields = (record.array ?? []).map { $0.string }
            let newHost = fields.first ?? nil
            let restartsLeft = fields.count > 1 ? Int(fields[1] ?? "") ?? 0 : 0
            let retry = fields.count > 2 && fields[2] == "1"
            let deadSince = call.hostDeadSince ?? now
            if let newHost, newHost != call.host {
                system.withLock { $0.value }?.relocate(call.actor, to: newHost)
                if undelivered || retry {
                    let resend = state.withLock { state -> ByteBuffer? in
                        guard state.pending[callID] != nil else { return nil }
                        state.pending[callID]!.host = newHost
                        state.pending[callID]!.sentAt = .now
                        state.pending[callID]!.undelivered = false
                        state.pending[callID]!.hostDeadSince = nil
                        state.pending[callID]!.peer = nil
                        return state.pending[callID]!.bytes
                    }
                    if let resend { await push(resend, to: keys.inbox(newHost), callID: callID) }
                    continue
                }
            } else if restartsLeft > 0 && now - deadSince < heartbeatTTL * 3 + .seconds(5) {
                // Being restarted elsewhere: look again at the next check.
                state.withLock { state in
                    state.pending[callID]?.undelivered = undelivered
                    state.pending[callID]?.hostDeadSince = deadSince
                }
                continue
            }
            let what = undelivered ? "the call never reached it" : "the call may have run"
            let why =
                lost.contains(call.host)
                ? "its connection dropped and nothing answers at its address"
                : "\(call.host) has sent no heartbeat for \(Format.duration(heartbeatTTL))"
            fail(callID, kind: .hostLost, "\(why); \(what)")
        }
    }

    /// Whether `node`'s heartbeat is current.
    func isAlive(_ node: String) async throws -> Bool {
        try await client.send(RESPCommand("EXISTS", keys.alive(node))).int == 1
    }

    /// Live worker nodes and how many spawned actors each hosts; nodes whose heartbeat lapsed are dropped
    /// from the set.
    func liveNodes() async throws -> [(node: String, load: Int)] {
        let members = (try await client.send(RESPCommand("SMEMBERS", keys.nodes)).array ?? []).compactMap(\.string)
        guard !members.isEmpty else { return [] }
        let loads = try await client.pipeline(members.map { RESPCommand("GET", keys.alive($0)) })
        var live: [(String, Int)] = []
        var gone: [any RESPArgument] = []
        for (member, load) in zip(members, loads) {
            if let text = load.string, let count = Int(text) { live.append((member, count)) } else { gone.append(member) }
        }
        if !gone.isEmpty { _ = try? await client.send(RESPCommand("SREM", arguments: [keys.nodes as any RESPArgument] + gone)) }
        return live
    }

    /// Stops the readers and the heartbeat, removes this node from the store, and fails pending calls.
    func close() async {
        let (tasks, connections, pending, listener, peers) = state.withLock { state in
            state.closed = true
            defer {
                state.tasks = []
                state.connections = []
                state.pending = [:]
                state.listener = nil
                state.peers = [:]
            }
            return (state.tasks, state.connections, state.pending, state.listener, state.peers)
        }
        for task in tasks { task.cancel() }
        await listener?.close()
        for case .ready(let peer) in peers.values { try? await peer.channel.close() }
        for connection in connections { await connection.close() }
        for call in pending.values {
            call.slot.resume(.failure(Self.error(.transport, call.label, "the actor system was shut down")))
        }
        _ = try? await client.pipeline([
            RESPCommand("DEL", keys.alive(node), keys.address(node), keys.inbox(node), keys.replies(node)),
            RESPCommand("SREM", keys.nodes, node),
        ])
    }
}
