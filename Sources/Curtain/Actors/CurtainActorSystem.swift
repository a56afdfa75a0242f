public import Distributed
import NIOCore
import ServiceContextModule
import Synchronization
import Tracing

/// Curtain's `DistributedActorSystem`: actors live in processes (the driver or its workers), and calls to
/// an actor in another process travel through the store to its host's inbox and back.
///
/// A cloud has one (``Cloud/actors``), and every worker process has one; `cloud.spawn` places an actor on a
/// worker. An actor's id (``CurtainActorID``) names its host, so a call goes straight to the right inbox;
/// actor references are `Codable` (as their id) and can be passed to remote functions and other actors.
///
/// ```swift
/// distributed actor Tally: SpawnableActor {
///     var total = 0
///     init(actorSystem: CurtainActorSystem) { self.actorSystem = actorSystem }
///     distributed func add(_ n: Int) -> Int { total += n; return total }
/// }
/// let cloud = try await Cloud.start(functions: [], actors: [Tally.self])
/// let tally = try await cloud.spawn(Tally.self)        // lives on a worker
/// print(try await tally.add(1))
/// ```
///
/// - Calls on an actor of this process are ordinary actor calls: nothing is encoded.
/// - Calls on a remote actor are at most once: a call whose host died fails with
///   ``ActorCallError/Kind/hostLost`` after the host's heartbeat lapsed (it may or may not have run);
///   ``RestartPolicy`` can recreate the actor and resend such calls.
/// - A system made with ``init()`` has no store: its actors are all local (the in-process backend's).
public final class CurtainActorSystem: DistributedActorSystem, Sendable {
    /// Actors are identified by a ``CurtainActorID``.
    public typealias ActorID = CurtainActorID
    /// Arguments are encoded as they are recorded.
    public typealias InvocationEncoder = CurtainInvocationEncoder
    /// Arguments are decoded as the target method expects.
    public typealias InvocationDecoder = CurtainInvocationDecoder
    /// Outcomes become replies.
    public typealias ResultHandler = CurtainResultHandler
    /// Arguments and results must be `Codable`.
    public typealias SerializationRequirement = Codable

    /// This process's node name: the host part of the ids of the actors it creates.
    public let node: String
    let registry: ActorRegistry
    /// `nil` for a local-only system.
    let transport: ActorTransport?
    private let table = Mutex(Table())

    private final class WeakActor: @unchecked Sendable {
        weak var actor: (any DistributedActor)?
        init(_ actor: any DistributedActor) { self.actor = actor }
    }

    private struct Table {
        /// Every actor of this process that is ready, by name (weakly: the owner keeps it alive).
        var local: [String: WeakActor] = [:]
        /// Spawned actors, kept alive until released.
        var managed: [String: any DistributedActor] = [:]
        /// Names handed out and not yet resigned.
        var claimed: Set<String> = []
        /// Actors restarted elsewhere: name → current host.
        var relocations: [String: String] = [:]
    }

    /// The name the next actor created by this task must take (a spawn or restart asks for one).
    @TaskLocal static var spawningName: String?

    /// The system used to decode actor references when no other is given: the worker's, or the last
    /// cloud's to start.
    private static let fallback = Mutex<CurtainActorSystem?>(nil)
    /// The system of the code running now, if it set one.
    @TaskLocal static var taskCurrent: CurtainActorSystem?

    /// The system actor references decode with in this context.
    static var current: CurtainActorSystem? { taskCurrent ?? fallback.withLock { $0 } }

    static func makeFallback(_ system: CurtainActorSystem?) { fallback.withLock { $0 = system } }

    static func clearFallback(_ system: CurtainActorSystem) {
        fallback.withLock { if $0 === system { $0 = nil } }
    }

    /// A local-only system: every actor lives in this process (calls never leave it).
    public convenience init() {
        self.init(node: "local-\(TaskDispatcher.newJobID().prefix(8))", registry: try! ActorRegistry([]), transport: nil)
    }

    init(node: String, registry: ActorRegistry, transport: ActorTransport?, tracer: (any Tracer)? = nil) {
        self.node = node
        self.registry = registry
        self.transport = transport
        self.tracerOverride = tracer
        transport?.attach(self)
    }

    /// The tracer this system's calls use instead of the bootstrapped one (tests: one process, one
    /// bootstrap, many systems).
    private let tracerOverride: (any Tracer)?

    /// The tracer calls and served calls open spans with: `nil` when none is bootstrapped, so an untraced
    /// call costs one look.
    private var tracer: (any Tracer)? {
        let tracer = tracerOverride ?? TaskTracing.tracer
        return tracer is NoOpTracer ? nil : tracer
    }

    // MARK: DistributedActorSystem

    /// The local actor with this id, `nil` for an actor in another process (calls to it are remote).
    ///
    /// - Throws: ``ActorCallError`` if the id names this process but no such actor lives here (it was
    ///   released), if the local actor is of another type, or if this system has no store to reach others.
    public func resolve<Act>(id: ActorID, as actorType: Act.Type) throws -> Act? where Act: DistributedActor, Act.ID == ActorID {
        if let found = table.withLock({ $0.local[id.name]?.actor }) {
            guard let actor = found as? Act else {
                throw ActorCallError(
                    kind: .unknownActor, actor: "\(Act.self)(\(id))", method: "resolve",
                    message: "the actor with this id is a \(type(of: found)), not a \(Act.self)")
            }
            return actor
        }
        if id.host == node {
            throw ActorCallError(
                kind: .unknownActor, actor: "\(Act.self)(\(id))", method: "resolve",
                message: "no actor of this id lives in this process (released, or its job ended)")
        }
        guard transport != nil else {
            throw ActorCallError(
                kind: .transport, actor: "\(Act.self)(\(id))", method: "resolve",
                message: "this actor system has no store, so it cannot reach an actor hosted by \(id.host)")
        }
        return nil
    }

    /// A fresh id on this node (or, while a spawn runs, the name the spawner chose).
    public func assignID<Act>(_ actorType: Act.Type) -> ActorID where Act: DistributedActor, Act.ID == ActorID {
        let wanted = Self.spawningName
        let name = table.withLock { table -> String in
            if let wanted, table.claimed.insert(wanted).inserted { return wanted }
            while true {
                let name = TaskDispatcher.newJobID()
                if table.claimed.insert(name).inserted { return name }
            }
        }
        return ActorID(host: node, name: name)
    }

    /// Makes a new actor reachable by its id.
    public func actorReady<Act>(_ actor: Act) where Act: DistributedActor, Act.ID == ActorID {
        table.withLock { $0.local[actor.id.name] = WeakActor(actor) }
    }

    /// Forgets an actor that is gone.
    public func resignID(_ id: ActorID) {
        table.withLock { table in
            table.local[id.name] = nil
            table.claimed.remove(id.name)
        }
    }

    /// A new encoder for a call's arguments.
    public func makeInvocationEncoder() -> InvocationEncoder { CurtainInvocationEncoder() }

    /// Sends a call to the actor's host and returns its decoded result.
    ///
    /// - Throws: ``ActorCallError`` naming the actor and the method.
    public func remoteCall<Act, Err, Res>(
        on actor: Act, target: RemoteCallTarget, invocation: inout InvocationEncoder, throwing: Err.Type,
        returning: Res.Type
    ) async throws -> Res where Act: DistributedActor, Act.ID == ActorID, Err: Error, Res: Codable {
        let reply = try await call(actor, target: target, invocation: invocation)
        guard reply.status == .value else { throw Self.error(from: reply, actor: actor, target: target) }
        do {
            return try PayloadCodec.decodePayload(Res.self, from: reply.payload, actorSystem: self)
        } catch {
            throw ActorCallError(
                kind: .transport, actor: Self.label(actor), method: Self.method(target),
                message: "the result does not decode as \(Res.self): \(error)")
        }
    }

    /// Sends a call to the actor's host and waits for it to finish.
    ///
    /// - Throws: ``ActorCallError`` naming the actor and the method.
    public func remoteCallVoid<Act, Err>(
        on actor: Act, target: RemoteCallTarget, invocation: inout InvocationEncoder, throwing: Err.Type
    ) async throws where Act: DistributedActor, Act.ID == ActorID, Err: Error {
        let reply = try await call(actor, target: target, invocation: invocation)
        guard reply.status == .void || reply.status == .value else { throw Self.error(from: reply, actor: actor, target: target) }
    }

    private func call<Act: DistributedActor>(
        _ actor: Act, target: RemoteCallTarget, invocation: InvocationEncoder
    ) async throws -> ActorReply where Act.ID == ActorID {
        guard let transport else {
            throw ActorCallError(
                kind: .transport, actor: Self.label(actor), method: Self.method(target),
                message: "this actor system has no store, so it cannot reach \(actor.id.host)")
        }
        guard !invocation.hasGenerics else {
            throw ActorCallError(
                kind: .badCall, actor: Self.label(actor), method: Self.method(target),
                message: "generic distributed methods cannot be called across processes")
        }
        var message = ActorMessage(
            kind: .call, callID: 0, replyNode: node, actor: actor.id.name, target: target.identifier,
            arguments: invocation.arguments)
        // Named lazily: only a failure needs the text (printing a type's name costs a metadata lookup).
        let identifier = target.identifier
        let host = route(actor.id)
        // With a tracer, the call is a client span whose context travels in the message.
        var span: (any Span)?
        if let tracer {
            let opened = tracer.startSpan(
                "curtain.actor.call \(Act.self).\(Self.method(target))", context: ServiceContext.current ?? .topLevel, ofKind: .client)
            opened.attributes["curtain.actor"] = actor.id.name
            opened.attributes["curtain.actor.host"] = host
            tracer.inject(opened.context, into: &message.traceContext, using: TaskTracing.Headers())
            span = opened
        }
        let clock = ContinuousClock()
        let start = clock.now
        let recorder = TaskRecorder.shared
        let startedAt = recorder.isEnabled ? StoreClock.now() : 0
        var outcome = "transport"
        defer {
            let duration = clock.now - start
            CurtainMetrics.actorCall(duration)
            if recorder.isEnabled {
                recorder.actorCall(
                    ActorCallRecord(
                        actor: actor.id.name, host: host, caller: node, target: identifier, started: startedAt,
                        ended: startedAt + Int64(duration.microseconds), outcome: outcome))
            }
            if let span {
                if outcome != "ok" { span.setStatus(SpanStatus(code: .error, message: outcome)) }
                span.end()
            }
        }
        let reply = try await transport.send(
            message, to: host, label: { (Self.label(actor), Self.method(RemoteCallTarget(identifier))) })
        outcome = switch reply.status {
        case .value, .void: "ok"
        case .thrown: "thrown"
        case .unknownActor: "unknownActor"
        case .badCall: "badCall"
        }
        return reply
    }

    /// Runs `body` on the event loop of the direct connection to `actor`'s host, for a hot loop of calls
    /// to it: each call's request is written and its reply read on the thread that runs `body`, so a call
    /// costs no hand-over between threads (about twice the sequential calls per second on two cores).
    ///
    /// Like ``SharedMemory/withAffinity(_:)``: `body` should await, not compute at length, since it holds
    /// the loop that other connections of this process share. Without a direct connection (the store
    /// path, or an actor of this process) `body` simply runs.
    public func withAffinity<Act: DistributedActor, T: Sendable>(
        to actor: Act, _ body: () async throws -> T
    ) async throws -> T where Act.ID == ActorID {
        guard let transport, !isLocal(actor.id), let executor = await transport.directExecutor(to: route(actor.id)) else {
            return try await body()
        }
        return try await withTaskExecutorPreference(executor) { try await body() }
    }

    /// Whether the actor with `id` lives in this process.
    private func isLocal(_ id: ActorID) -> Bool {
        table.withLock { $0.local[id.name]?.actor != nil }
    }

    // MARK: Hosting

    /// The host a call to `id` goes to: where the actor was placed, or where it was restarted.
    func route(_ id: ActorID) -> String {
        table.withLock { $0.relocations[id.name] } ?? id.host
    }

    func relocate(_ name: String, to host: String) {
        table.withLock { $0.relocations[name] = host }
    }

    /// How many spawned actors this process hosts (its load, for placement).
    var hostedCount: Int { table.withLock { $0.managed.count } }

    /// Keeps `actor` alive until ``release(name:)``.
    func manage(_ actor: any DistributedActor, name: String) {
        table.withLock { $0.managed[name] = actor }
    }

    /// Lets a spawned actor go (it deinitializes once no one else holds it). Returns whether it was here.
    @discardableResult
    func release(name: String) -> Bool {
        let actor = table.withLock { $0.managed.removeValue(forKey: name) }
        return actor != nil
    }

    /// Runs one message from this node's inbox and answers it.
    func handle(_ message: ActorMessage, reply: @escaping @Sendable (ActorReply) async -> Void) async {
        switch message.kind {
        case .call:
            guard let actor = table.withLock({ $0.local[message.actor]?.actor }) else {
                await reply(ActorReply(
                    callID: message.callID, status: .unknownActor,
                    payload: Array("no actor named \(message.actor) lives on \(node)".utf8)))
                return
            }
            await execute(message, on: actor, reply: reply)
        case .spawn:
            guard let factory = registry.factory(named: message.target) else {
                await reply(ActorReply(
                    callID: message.callID, status: .badCall,
                    payload: Array("no actor type named '\(Abbreviation.text(message.target, limit: 80))' is registered on \(node) (registered: \(registry.names.joined(separator: ", ")))".utf8)))
                return
            }
            do {
                let actor = try await Self.$spawningName.withValue(message.actor) { try await factory(self) }
                guard (actor.id as? ActorID)?.name == message.actor else {
                    await reply(ActorReply(
                        callID: message.callID, status: .badCall,
                        payload: Array("the actor's name \(message.actor) is already taken on \(node)".utf8)))
                    return
                }
                manage(actor, name: message.actor)
                transport?.noteLoadChanged()
                await reply(ActorReply(callID: message.callID, status: .void))
            } catch {
                await reply(ActorReply(
                    callID: message.callID, status: .thrown, errorType: String(reflecting: type(of: error)),
                    payload: Array(String(describing: error).utf8)))
            }
        case .release:
            let released = release(name: message.actor)
            transport?.noteLoadChanged()
            await reply(ActorReply(
                callID: message.callID, status: released ? .void : .unknownActor,
                payload: released ? [] : Array("no spawned actor named \(message.actor) lives on \(node)".utf8)))
        }
    }

    /// `"$s"` and the mangled name of each actor type seen, the prefix of its methods' identifiers.
    private static let methodPrefixes = Mutex<[ObjectIdentifier: String]>([:])

    private static func methodPrefix(of type: any DistributedActor.Type) -> String? {
        let key = ObjectIdentifier(type)
        if let known = methodPrefixes.withLock({ $0[key] }) { return known }
        guard let name = _mangledTypeName(type) else { return nil }
        methodPrefixes.withLock { $0[key] = "$s" + name }
        return "$s" + name
    }

    private func execute(_ message: ActorMessage, on actor: any DistributedActor, reply: @escaping @Sendable (ActorReply) async -> Void) async {
        // The Distributed runtime finds the method by its mangled name alone: only names of this actor's
        // own type are accepted, so a call can never run another type's method on it.
        guard let prefix = Self.methodPrefix(of: type(of: actor)), message.target.hasPrefix(prefix) else {
            await reply(ActorReply(
                callID: message.callID, status: .badCall,
                payload: Array("\(type(of: actor)) has no distributed method '\(Abbreviation.text(message.target, limit: 100))'".utf8)))
            return
        }
        // A traced caller's call runs in a server span, the child of the caller's.
        guard !message.traceContext.isEmpty, let tracer else {
            await run(message, on: actor, reply: reply)
            return
        }
        var context = ServiceContext.topLevel
        tracer.extract(message.traceContext, into: &context, using: TaskTracing.Headers())
        let served = tracer.startSpan(
            "curtain.actor \(type(of: actor)).\(Self.method(RemoteCallTarget(message.target)))", context: context, ofKind: .server)
        served.attributes["curtain.actor"] = message.actor
        served.attributes["curtain.actor.host"] = node
        let status = Mutex<ActorReply.Status?>(nil)
        await ServiceContext.withValue(served.context) {
            await run(message, on: actor) { answer in
                status.withLock { $0 = answer.status }
                await reply(answer)
            }
        }
        if let failed = status.withLock({ $0 }), failed != .value, failed != .void {
            served.setStatus(SpanStatus(code: .error, message: "\(failed)"))
        }
        served.end()
    }

    /// Decodes the call's arguments and runs the method, answering through `reply`.
    private func run(_ message: ActorMessage, on actor: any DistributedActor, reply: @escaping @Sendable (ActorReply) async -> Void) async {
        var decoder = CurtainInvocationDecoder(arguments: message.arguments, system: self)
        let handler = CurtainResultHandler(callID: message.callID, send: reply)
        do {
            try await executeDistributedTarget(
                on: actor, target: RemoteCallTarget(message.target), invocationDecoder: &decoder, handler: handler)
        } catch let error as ActorCallError {
            await reply(ActorReply(callID: message.callID, status: .badCall, payload: Array(error.message.utf8)))
        } catch {
            await reply(ActorReply(
                callID: message.callID, status: .badCall,
                payload: Array("\(type(of: actor)) cannot run '\(Abbreviation.text(message.target, limit: 100))': \(error)".utf8)))
        }
    }

    // MARK: Errors

    static func label<Act: DistributedActor>(_ actor: Act) -> String where Act.ID == ActorID {
        "\(Act.self)(\(actor.id))"
    }

    /// A readable method name, `add(_:)`, from the target's identifier.
    static func method(_ target: RemoteCallTarget) -> String {
        let text = target.description
        if let dot = text.lastIndex(of: "."), !text.hasPrefix("$s") { return String(text[text.index(after: dot)...]) }
        return text
    }

    static func error<Act: DistributedActor>(from reply: ActorReply, actor: Act, target: RemoteCallTarget) -> ActorCallError
    where Act.ID == ActorID {
        let message = String(decoding: reply.payload, as: UTF8.self)
        let kind: ActorCallError.Kind =
            switch reply.status {
            case .thrown: .thrown
            case .unknownActor: .unknownActor
            case .badCall, .value, .void: .badCall
            }
        return ActorCallError(kind: kind, actor: label(actor), method: method(target), errorType: reply.errorType, message: message)
    }
}
