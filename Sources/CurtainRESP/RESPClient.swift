public import NIOCore
public import NIOPosix
import Synchronization

/// An async client for Redis and the embedded store: a pool of pipelined connections that reconnects by itself.
///
/// ```swift
/// let client = try RESPClient(url: "redis://127.0.0.1:6379")
/// try await client.set("greeting", "hello")
/// let value = try await client.get("greeting")          // "hello"
/// let popped = try await client.blpop(["jobs"], timeout: 1)
/// await client.close()
/// ```
///
/// - Ordinary commands share ``RESPConfiguration/poolSize`` multiplexed connections: many callers' commands
///   are in flight at once on each.
/// - Blocking commands (`BLPOP`, `BLMOVE`, …) run on connections of their own, so they never stall others.
/// - Session state (`WATCH`/`MULTI`/`EXEC`) needs one connection for a whole exchange:
///   ``withDedicatedConnection(_:)``.
/// - Pub/sub runs on a dedicated connection too: ``subscribe(to:)``.
///
/// When a connection drops, commands in flight on it fail with ``RESPError/connectionClosed(_:)`` (they may
/// or may not have run); the next command reconnects, backing off exponentially while the server is away.
public final class RESPClient: Sendable {
    /// The configuration in force.
    public let configuration: RESPConfiguration
    private let group: any EventLoopGroup

    /// The event loops this client's connections run on (other channels of the same process may share them).
    public var eventLoopGroup: any EventLoopGroup { group }
    private let slots: [PoolSlot]
    private let next = Atomic<Int>(0)
    private let dedicated: Mutex<DedicatedPool>
    /// The sibling on the keeper thread (see ``keeper``), made on first use.
    private let keeperSibling = Mutex<RESPClient?>(nil)

    private struct DedicatedPool {
        var idle: [RESPConnection] = []
        /// A connection being opened ahead of its use (``openDedicatedConnection()``): the next caller
        /// without a loop of its own takes it rather than opening another.
        var opening: Task<RESPConnection, any Error>?
        var closed = false
    }

    /// Creates a client; connections open lazily, on first use.
    ///
    /// - Throws: ``RESPError/invalidConfiguration(_:)`` for unusable settings.
    public init(
        configuration: RESPConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws(RESPError) {
        try configuration.validate()
        self.configuration = configuration
        self.group = eventLoopGroup
        self.slots = (0..<configuration.poolSize).map { _ in
            PoolSlot(configuration: configuration, eventLoop: eventLoopGroup.next())
        }
        self.dedicated = Mutex(DedicatedPool())
    }

    /// Creates a client from a `redis://`, `rediss://` or `unix://` URL.
    public convenience init(
        url: String,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws(RESPError) {
        try self.init(configuration: RESPConfiguration(url: url), eventLoopGroup: eventLoopGroup)
    }

    /// Sends one command and returns its reply.
    ///
    /// - Throws: ``RESPError/server(_:)`` with Redis' message for an error reply; the connection errors of
    ///   ``RESPError`` otherwise.
    public func send(_ command: RESPCommand, timeout: TimeAmount? = nil) async throws -> RESPValue {
        if command.isBlocking {
            return try await withDedicatedConnection { try await $0.send(command, timeout: timeout) }
        }
        let connection = try await pooledConnection()
        return try await connection.send(command, timeout: timeout)
    }

    /// Sends a command given as its name and arguments: `try await client.send("HSET", "h", "f", 1)`.
    public func send(_ name: String, _ arguments: any RESPArgument...) async throws -> RESPValue {
        try await send(RESPCommand(name, arguments: arguments))
    }

    /// Sends `commands` back to back on one connection and returns their replies in order; error replies
    /// are returned as ``RESPValue/error(_:)`` values.
    public func pipeline(_ commands: [RESPCommand], timeout: TimeAmount? = nil) async throws -> [RESPValue] {
        if commands.contains(where: \.isBlocking) {
            return try await withDedicatedConnection { try await $0.pipeline(commands, timeout: timeout) }
        }
        let connection = try await pooledConnection()
        return try await connection.pipeline(commands, timeout: timeout)
    }

    /// Runs `body` with a connection no one else uses meanwhile, for exchanges that keep session state:
    /// `WATCH` … `MULTI` … `EXEC`, blocking commands.
    ///
    /// The connection returns to an idle list afterwards, unless `body` threw or left session state behind
    /// (an open `MULTI`, a `WATCH` not ended by `EXEC`/`DISCARD`/`UNWATCH`), in which case it is closed.
    public func withDedicatedConnection<T: Sendable>(
        _ body: (RESPConnection) async throws -> T
    ) async throws -> T {
        let connection = try await takeDedicated()
        let result: T
        do {
            result = try await body(connection)
        } catch {
            await connection.close()
            throw error
        }
        await giveBack(connection)
        return result
    }

    /// The event loop thread shared by every ``keeper`` client of this process: it runs nothing but small
    /// periodic work and its round trips, so it is free whenever a timer fires.
    static let keeperGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// A client to the same server whose one connection and whose tasks live on a thread of their own (one per
    /// process, shared by all keepers), for small periodic work that must keep its schedule: lease renewals,
    /// heartbeats, reapers. Neither the cooperative pool (which CPU-bound user code may fill) nor this client's
    /// own event loops (which a long critical section or actor method run with ``withAffinity(_:)`` may hold)
    /// can delay it; only the operating system's scheduler can, and it runs a thread that wakes from a sleep
    /// within milliseconds even when every core is busy.
    ///
    /// Run the periodic work on ``backgroundExecutor()`` and send its commands through this client. It is made
    /// on first use and closed with this client.
    public var keeper: RESPClient {
        if group === Self.keeperGroup { return self }
        return keeperSibling.withLock { sibling in
            if let sibling { return sibling }
            var configuration = self.configuration
            configuration.poolSize = 1
            // Valid: it differs from a configuration that validated only in its pool size, which is positive.
            let made = try! RESPClient(configuration: configuration, eventLoopGroup: Self.keeperGroup)
            sibling = made
            return made
        }
    }

    /// An executor on the keeper thread (see ``keeper``), for small periodic work (lease renewals,
    /// heartbeats) that must keep its schedule even while the cooperative pool and this client's event loops
    /// are busy with user code. Send its commands through ``keeper``, whose connection lives on that thread,
    /// so that they skip this client's loops too.
    public func backgroundExecutor() -> EventLoopTaskExecutor {
        Self.keeperExecutor()
    }

    /// The executor of ``backgroundExecutor()``, for code that has no client (yet): the keeper thread is
    /// one per process, whatever client asks for it.
    public static func keeperExecutor() -> EventLoopTaskExecutor {
        EventLoopTaskExecutor(eventLoop: keeperGroup.next())
    }

    /// Runs `body` every `period` on the keeper thread (see ``keeper``), sleeping on that thread's own timer
    /// (``EventLoopTaskExecutor/sleep(for:)``), until the returned task is cancelled or `body` returns `false`:
    /// the shape of every heartbeat, reaper and watchdog.
    @discardableResult
    public func everyPeriod(_ period: Duration, _ body: @escaping @Sendable () async -> Bool) -> Task<Void, Never> {
        let keeper = backgroundExecutor()
        return Task(executorPreference: keeper) {
            while !Task.isCancelled {
                try? await keeper.sleep(for: period)
                guard !Task.isCancelled, await body() else { return }
            }
        }
    }

    /// Runs `body` on the event loop of one of the client's pooled connections (or on the one it already
    /// runs on). Commands that `body` sends through this client then use connections of that loop, so each
    /// round trip skips the two thread hops between Swift's cooperative pool and the I/O thread, which
    /// roughly halves the latency of a small command:
    ///
    /// ```swift
    /// try await client.withAffinity {
    ///     for _ in 0..<1_000 { _ = try await client.send("INCR", "hits") }
    /// }
    /// ```
    ///
    /// `body` shares its thread with that loop's I/O: keep CPU-heavy or blocking work out of it.
    public func withAffinity<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        if affinityLoop != nil { return try await body() }
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
        let slot = slots[Int(UInt(bitPattern: index) % UInt(slots.count))]
        return try await withTaskExecutorPreference(EventLoopTaskExecutor(eventLoop: slot.eventLoop)) {
            try await body()
        }
    }

    /// Takes a connection of its own out of the client, for a caller that keeps it across calls (a job's
    /// result reader, say). Give it back with ``returnDedicatedConnection(_:)``; prefer
    /// ``withDedicatedConnection(_:)`` when the use fits in one closure.
    public func leaseDedicatedConnection() async throws -> RESPConnection {
        try await takeDedicated()
    }

    /// Opens a dedicated connection ahead of its first use (a fresh worker does so while it starts, so
    /// that its loop's first blocking command does not wait for a connection): the next caller of
    /// ``withDedicatedConnection(_:)`` that finds none idle takes it, still opening or open.
    ///
    /// - Throws: the connection's error, if it could not be opened.
    public func openDedicatedConnection() async throws {
        let opening = try dedicated.withLock { state throws(RESPError) -> Task<RESPConnection, any Error>? in
            if state.closed { throw .clientClosed }
            guard state.opening == nil else { return nil }
            let loop = group.next()
            let configuration = self.configuration
            let task = Task { try await RESPConnection.connect(configuration: configuration, eventLoop: loop) }
            state.opening = task
            return task
        }
        guard let opening else { return }
        // Whoever still finds it pending after this no longer does.
        let result = await opening.result
        let taken = dedicated.withLock { state in
            guard state.opening == opening else { return true }
            state.opening = nil
            return false
        }
        let connection = try result.get()
        // Not taken while it opened: it waits with the idle ones.
        if !taken { await giveBack(connection) }
    }

    /// Gives back a connection from ``leaseDedicatedConnection()``: kept for reuse if it is healthy and has
    /// no session state, closed otherwise.
    public func returnDedicatedConnection(_ connection: RESPConnection) async {
        await giveBack(connection)
    }

    /// Opens a pub/sub subscription on a connection of its own.
    ///
    /// ```swift
    /// let subscription = try await client.subscribe(to: ["news"])
    /// for try await message in subscription { print(message.channel, message.payloadString) }
    /// ```
    public func subscribe(to channels: [String] = [], patterns: [String] = []) async throws -> RESPSubscription {
        if dedicated.withLock({ $0.closed }) { throw RESPError.clientClosed }
        let connection = try await RESPConnection.connect(configuration: configuration, eventLoop: group.next())
        let subscription = try await RESPSubscription(connection: connection)
        do {
            if !channels.isEmpty { try await subscription.subscribe(channels) }
            if !patterns.isEmpty { try await subscription.psubscribe(patterns) }
        } catch {
            await subscription.close()
            throw error
        }
        return subscription
    }

    /// Closes every connection; later commands fail with ``RESPError/clientClosed``.
    public func close() async {
        let idle = dedicated.withLock { state -> [RESPConnection] in
            state.closed = true
            defer { state.idle = [] }
            return state.idle
        }
        for connection in idle { await connection.close() }
        for slot in slots { await slot.close() }
        if let keeper = keeperSibling.withLock({ $0 }) { await keeper.close() }
    }

    // MARK: Pool internals

    private func pooledConnection() async throws -> RESPConnection {
        // A caller on one of the pool's loops (see withAffinity) uses that loop's connection: no thread hop.
        if let slot = slots.first(where: { $0.eventLoop.inEventLoop }) { return try await slot.connection() }
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
        let slot = slots[Int(UInt(bitPattern: index) % UInt(slots.count))]
        return try await slot.connection()
    }

    /// The pool's event loop the caller runs on, if any.
    private var affinityLoop: (any EventLoop)? {
        slots.first(where: { $0.eventLoop.inEventLoop })?.eventLoop
    }

    private func takeDedicated() async throws -> RESPConnection {
        let affinityLoop = self.affinityLoop
        enum Found {
            case idle(RESPConnection)
            case opening(Task<RESPConnection, any Error>)
        }
        let found = try dedicated.withLock { state throws(RESPError) -> Found? in
            if state.closed { throw .clientClosed }
            state.idle.removeAll { !$0.isActive }
            // A caller on one of the pool's loops (see withAffinity) gets a connection of that loop, a new
            // one if need be; any other caller the most recently used, or the one being opened ahead.
            if let loop = affinityLoop {
                return state.idle.lastIndex(where: { $0.eventLoop === loop }).map { .idle(state.idle.remove(at: $0)) }
            }
            if let idle = state.idle.popLast() { return .idle(idle) }
            defer { state.opening = nil }
            return state.opening.map { .opening($0) }
        }
        switch found {
        case .idle(let connection): return connection
        case .opening(let task):
            // Opened ahead for this use; if that failed, a connection is opened now, as it would have been.
            if let connection = try? await task.value, connection.isActive { return connection }
        case nil: break
        }
        let loop = affinityLoop ?? group.next()
        return try await RESPConnection.connect(configuration: configuration, eventLoop: loop)
    }

    private func giveBack(_ connection: RESPConnection) async {
        guard connection.isActive, await !connection.hasSessionState() else {
            await connection.close()
            return
        }
        // The newest is kept and the oldest idle one closed when the list is full: callers on one loop (see
        // withAffinity) must not find the list full of other loops' connections and open one per call.
        let evicted = dedicated.withLock { state -> RESPConnection? in
            guard !state.closed else { return connection }
            state.idle.append(connection)
            return state.idle.count > 16 ? state.idle.removeFirst() : nil
        }
        if let evicted { await evicted.close() }
    }
}

/// One reconnecting connection of the pool.
final class PoolSlot: Sendable {
    private enum State {
        case idle(failures: Int)
        case connecting(EventLoopFuture<RESPConnection>)
        case connected(RESPConnection)
        case closed
    }

    private let state: Mutex<State>
    private let configuration: RESPConfiguration
    /// The loop the slot's connection runs on.
    let eventLoop: any EventLoop

    init(configuration: RESPConfiguration, eventLoop: any EventLoop) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.state = Mutex(.idle(failures: 0))
    }

    /// The open connection, opening (or waiting for) one when there is none.
    func connection() async throws -> RESPConnection {
        enum Next {
            case ready(RESPConnection)
            case wait(EventLoopFuture<RESPConnection>)
            case start(EventLoopPromise<RESPConnection>, failures: Int)
        }
        let next = try state.withLock { state throws(RESPError) -> Next in
            switch state {
            case .connected(let c) where c.isActive:
                return .ready(c)
            case .connecting(let future):
                return .wait(future)
            case .closed:
                throw .clientClosed
            case .connected:
                let promise = eventLoop.makePromise(of: RESPConnection.self)
                state = .connecting(promise.futureResult)
                return .start(promise, failures: 0)
            case .idle(let failures):
                let promise = eventLoop.makePromise(of: RESPConnection.self)
                state = .connecting(promise.futureResult)
                return .start(promise, failures: failures)
            }
        }
        switch next {
        case .ready(let c):
            return c
        case .wait(let future):
            return try await future.get()
        case .start(let promise, let failures):
            let future = promise.futureResult
            promise.completeWithTask { try await self.open(failures: failures) }
            return try await future.get()
        }
    }

    private func open(failures: Int) async throws -> RESPConnection {
        if failures > 0 {
            let base = configuration.initialReconnectDelay.nanoseconds
            let delay = min(base << min(failures - 1, 20), configuration.maximumReconnectDelay.nanoseconds)
            try? await Task.sleep(for: .nanoseconds(delay))
        }
        do {
            let connection = try await RESPConnection.connect(configuration: configuration, eventLoop: eventLoop)
            let stillWanted = state.withLock { state -> Bool in
                if case .closed = state { return false }
                state = .connected(connection)
                return true
            }
            if !stillWanted {
                await connection.close()
                throw RESPError.clientClosed
            }
            connection.closeFuture.whenComplete { _ in
                self.state.withLock { state in
                    if case .connected(let c) = state, c === connection { state = .idle(failures: 0) }
                }
            }
            return connection
        } catch {
            state.withLock { state in
                if case .closed = state { return }
                state = .idle(failures: failures + 1)
            }
            throw error
        }
    }

    func close() async {
        let current = state.withLock { state -> State in
            defer { state = .closed }
            return state
        }
        switch current {
        case .connected(let c): await c.close()
        case .connecting(let future): if let c = try? await future.get() { await c.close() }
        case .idle, .closed: break
        }
    }
}
