import CurtainRESP
import NIOCore
import Synchronization

/// A lock shared by every process of a cloud, held through a lease: the holder renews it every third of
/// the lease while it holds the lock, so if the holder dies (even by `kill -9`) the lock is free again at
/// most one lease later. Each acquisition gets a fencing token, strictly increasing per lock, for callers
/// that must reject writes from a holder that lost its lease.
///
/// ```swift
/// let lock = try cloud.memory.lock("ledger", lease: .seconds(5))
/// try await lock.withLock { lease in
///     let n = try await balance.load()
///     try await balance.store(n + 10)
/// }
/// ```
public struct SharedLock: Codable, Sendable, Hashable {
    /// The store key.
    public let key: String
    /// The namespace of the cloud that made the handle: which store connection of this process it uses.
    let scope: String
    /// The lease, in milliseconds.
    public let leaseMilliseconds: Int

    var object: String { "lock \(key)" }

    /// How long a waiter blocks for its grant before asking again (which also notices a dead holder's
    /// expired lease, and keeps the waiter's place in the queue).
    static let pollSeconds = 0.05
    /// How long a waiter that stopped asking keeps its place: after that it is presumed dead and skipped.
    static let waiterWindowMilliseconds = 1_000

    /// The list a grant for `token` is pushed to.
    func grantKey(_ token: String) -> String { key + ":grant:" + token }

    /// The keys of the library's lock functions: the lock, and the value it guards if any.
    func functionKeys(guarding valueKey: String?) -> [String] { [key] + (valueKey.map { [$0] } ?? []) }

    /// How often a holder renews its lease (and how long one renewal may take): a third of the lease.
    var renewalPeriod: Duration { .milliseconds(max(30, leaseMilliseconds / 3)) }

    /// Takes the lock if it is free (one round trip).
    ///
    /// - Returns: the lease, or `nil` if another holder has the lock.
    public func tryAcquire() async throws -> LockLease? {
        try await tryAcquire(guarding: nil)?.lease
    }

    /// Takes the lock, waiting for it in a first-come, first-served queue: a releaser hands the lock straight
    /// to the oldest waiter (if the holder died, the lock is free once its lease runs out, noticed within
    /// 50 ms). A waiter that dies while queued is skipped after one second.
    ///
    /// - Parameter timeout: the longest to wait; `nil` waits until the lock is free.
    /// - Throws: ``SharedMemoryError`` if `timeout` passes first; `CancellationError`.
    public func acquire(timeout: Duration? = nil) async throws -> LockLease {
        try await acquire(guarding: nil, timeout: timeout).lease
    }

    /// Runs `body` holding the lock, and releases it however `body` ends.
    ///
    /// - Throws: what `body` throws; ``SharedMemoryError`` if the lock could not be taken within `timeout`,
    ///   or if the lease was lost while `body` ran (another holder may have had the lock meanwhile).
    ///
    /// The whole critical section (taking the lock, `body`, releasing it) runs on the I/O thread of this
    /// process's store connection, so its round trips skip the hops between threads (see
    /// ``SharedMemory/withAffinity(_:)``): keep CPU-heavy work out of `body`, as out of any critical section.
    public func withLock<R: Sendable>(timeout: Duration? = nil, _ body: (LockLease) async throws -> R) async throws -> R {
        try await withAffinity {
            let lease = try await acquire(timeout: timeout)
            let result: R
            do {
                result = try await body(lease)
            } catch {
                try? await lease.release()
                throw error
            }
            try await lease.release()
            return result
        }
    }

    /// Runs `body` on the I/O thread of the store connection this lock uses, so that a loop of `withLock`
    /// calls in it skips the thread hops into and out of each critical section (see
    /// ``SharedMemory/withAffinity(_:)``; keep CPU-heavy work out of `body`).
    public func withAffinity<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        try await MemoryBinding.client(for: key, scope: scope).withAffinity(body)
    }

    // MARK: The protocol (see StoreFunctions)

    private func lockCommand(token: String, valueKey: String?, window: Int) -> RESPCommand {
        StoreFunctions.call(StoreFunctions.lock, keys: functionKeys(guarding: valueKey), arguments: [token, leaseMilliseconds, window])
    }

    /// Takes the lock if free, with the bytes of the value at `valueKey` (`nil` if absent) when given.
    func tryAcquire(guarding valueKey: String?) async throws -> (lease: LockLease, value: [UInt8]?)? {
        let client = try MemoryBinding.client(for: key, scope: scope)
        let token = Self.newToken()
        let sentAt = ContinuousClock.now
        let replies = try await StoreFunctions.pipeline(
            [lockCommand(token: token, valueKey: valueKey, window: 0), RESPCommand("LPOP", grantKey(token))], using: client
        ) { try await client.pipeline($0) }
        try SharedMemoryError.check(replies, object: object)
        guard let grant = replies[1].buffer else { return nil }
        return try lease(from: grant, token: token, valueKey: valueKey, client: client, requestedAt: sentAt)
    }

    /// Queues for the lock and waits for its grant.
    func acquire(guarding valueKey: String?, timeout: Duration?) async throws -> (lease: LockLease, value: [UInt8]?) {
        let clock = ContinuousClock()
        let deadline = timeout.map { clock.now + $0 }
        let client = try MemoryBinding.client(for: key, scope: scope)
        let token = Self.newToken()
        let box = grantKey(token)
        let command = lockCommand(token: token, valueKey: valueKey, window: Self.waiterWindowMilliseconds)
        let grant: (bytes: ByteBuffer, sentAt: ContinuousClock.Instant)?
        do {
            grant = try await client.withDedicatedConnection { connection in
                var attempted = false
                var waitingSince = clock.now
                while true {
                    var wait = Self.pollSeconds
                    if let deadline {
                        let left = deadline - clock.now
                        // At least one attempt, even with no time left: a free lock is taken.
                        guard left > .zero || !attempted else { return nil }
                        wait = min(wait, left.blockingTimeout)
                    }
                    if Task.isCancelled { return nil }
                    attempted = true
                    let sentAt = clock.now
                    let replies = try await StoreFunctions.pipeline([command, RESPCommand("BLPOP", box, wait)], using: client) {
                        try await connection.pipeline($0)
                    }
                    try SharedMemoryError.check(replies, object: object)
                    // The grant may have been made before this request (a hand-over while the previous
                    // one waited), so the lease is dated from when waiting began: conservative.
                    if let grant = replies[1].array?.last?.buffer { return (grant, waitingSince) }
                    waitingSince = sentAt
                }
            }
        } catch {
            await abandon(token: token, valueKey: valueKey, client: client)
            throw error
        }
        guard let grant else {
            await abandon(token: token, valueKey: valueKey, client: client)
            try Task.checkCancellation()
            throw SharedMemoryError(description: "\(object): not acquired within \(Format.duration(timeout ?? .zero))")
        }
        return try lease(from: grant.bytes, token: token, valueKey: valueKey, client: client, requestedAt: grant.sentAt)
    }

    /// Leaves the queue; a grant that reached `token` meanwhile (even one already popped) is passed on to
    /// the next waiter, so the lock is never left held by nobody.
    private func abandon(token: String, valueKey: String?, client: RESPClient) async {
        _ = try? await StoreFunctions.send(
            StoreFunctions.call(StoreFunctions.unlock, keys: functionKeys(guarding: valueKey), arguments: [token, leaseMilliseconds]),
            using: client)
    }

    /// Reads a grant, `"<fence>"` or `"<fence>:<value bytes>"`.
    private func lease(
        from grant: ByteBuffer, token: String, valueKey: String?, client: RESPClient, requestedAt: ContinuousClock.Instant
    ) throws -> (lease: LockLease, value: [UInt8]?) {
        let bytes = Array(grant.readableBytesView)
        let colon = bytes.firstIndex(of: UInt8(ascii: ":")) ?? bytes.endIndex
        guard let fence = Int(String(decoding: bytes[..<colon], as: UTF8.self)) else {
            throw SharedMemoryError(description: "\(object): unreadable grant '\(String(decoding: bytes.prefix(40), as: UTF8.self))'")
        }
        let value = colon < bytes.endIndex ? Array(bytes[(colon + 1)...]) : nil
        return (LockLease(lock: self, token: token, fence: fence, valueKey: valueKey, client: client, requestedAt: requestedAt), value)
    }

    private static func newToken() -> String { TaskDispatcher.newJobID() + TaskDispatcher.newJobID() }
}

/// One holding of a ``SharedLock``: renews the lease in the background until released.
public final class LockLease: Sendable {
    /// The lock held.
    public let lock: SharedLock
    /// The fencing token of this acquisition: larger than that of every earlier holder of the lock.
    public let fence: Int
    let token: String
    /// The value handed over with the lock (a ``SharedMutex``'s), written back by the release.
    let valueKey: String?
    let client: RESPClient
    let lost = Atomic<Bool>(false)
    private let released = Atomic<Bool>(false)
    /// A time no later than the store's last start of the lease: when the request that granted or renewed
    /// it was sent.
    private let confirmed: Mutex<ContinuousClock.Instant>

    init(lock: SharedLock, token: String, fence: Int, valueKey: String?, client: RESPClient, requestedAt: ContinuousClock.Instant) {
        self.lock = lock
        self.token = token
        self.fence = fence
        self.valueKey = valueKey
        self.client = client
        self.confirmed = Mutex(requestedAt)
        LeaseRenewer.shared.register(self)
    }

    /// Whether the lease is still ours: not released, not found taken by the last renewal, and, by this
    /// process's clock, not past a lease since the store last confirmed it (so a store that stops answering
    /// cannot leave a holder believing in a lease the store has already expired).
    public var isHeld: Bool {
        guard !lost.load(ordering: .relaxed), !released.load(ordering: .relaxed) else { return false }
        return ContinuousClock.now < lastConfirmed + .milliseconds(lock.leaseMilliseconds)
    }

    /// Notes that a renewal sent at `time` was confirmed.
    func confirm(sentAt time: ContinuousClock.Instant) {
        confirmed.withLock { $0 = Swift.max($0, time) }
    }

    /// When the store last confirmed the lease (at the latest).
    var lastConfirmed: ContinuousClock.Instant { confirmed.withLock { $0 } }

    /// Extends the lease if the lock is still ours: true if it did, false if the lock is someone else's (or
    /// nobody's), `nil` if the store could not be asked.
    func renew() async -> Bool? {
        let command = StoreFunctions.call(StoreFunctions.renew, keys: [lock.key], arguments: [token, lock.leaseMilliseconds])
        // A slow answer still counts while the lease may hold (it is dated from when it was sent), so the wait
        // lasts what is left of the lease, at least a renewal period: a shorter one would give up on a loaded
        // store's late answer and drop the connection (a timed-out reply cannot be matched), making the next
        // renewal slower still. An unanswered renewal is retried at the next tick.
        let sentAt = ContinuousClock.now
        let left = Duration.milliseconds(lock.leaseMilliseconds) - (sentAt - lastConfirmed)
        let timeout = TimeAmount.milliseconds(Int64(Swift.max(lock.renewalPeriod, left).wholeMilliseconds))
        // Through the keeper: its connection lives on the keeper thread, which user code never holds.
        guard let reply = try? await StoreFunctions.send(command, using: client.keeper, timeout: timeout) else { return nil }
        if reply.int == 1 { confirm(sentAt: sentAt) }
        return reply.int == 1
    }

    /// Releases the lock, handing it to the oldest waiter if there is one.
    ///
    /// - Throws: ``SharedMemoryError`` if the lease had already expired (another process may have held the
    ///   lock since; the fencing token tells them apart).
    public func release() async throws {
        try await release(storing: nil)
    }

    /// Releases the lock, first storing `value` at the guarded value key if given (only while the lease
    /// holds: a holder that lost it stores nothing).
    func release(storing value: [UInt8]?) async throws {
        guard !released.exchange(true, ordering: .relaxed) else { return }
        LeaseRenewer.shared.unregister(self)
        var arguments: [any RESPArgument] = [token, lock.leaseMilliseconds]
        if let value { arguments.append(ByteBuffer(bytes: value)) }
        let command = StoreFunctions.call(StoreFunctions.unlock, keys: lock.functionKeys(guarding: valueKey), arguments: arguments)
        let reply = try await StoreFunctions.send(command, using: client)
        guard reply.int == 1 else {
            let lost = value == nil ? "" : "; the new value was not stored"
            let since = Format.duration(ContinuousClock.now - lastConfirmed)
            let why = self.lost.load(ordering: .relaxed)
                ? "a renewal found the lock no longer ours"
                : "renewals went unanswered (the store unreachable or too slow)"
            throw SharedMemoryError(
                description: "\(lock.object): the lease (fence \(fence), \(Format.duration(.milliseconds(lock.leaseMilliseconds)))) "
                    + "expired before it was released: last confirmed \(since) ago, \(why)\(lost)")
        }
    }

    deinit { LeaseRenewer.shared.unregister(self) }
}

/// Renews the leases this process holds: one ticker on the keeper thread (``RESPClient/keeper``: not the
/// cooperative pool, which a holder's CPU-bound code may fill, nor the store connections' event loops, where
/// critical sections and actor methods run), which renews each lease a third of the way through it through the
/// keeper's own connection. Holding a lock briefly therefore costs no timer at all.
final class LeaseRenewer: Sendable {
    static let shared = LeaseRenewer()

    private struct Held {
        weak var lease: LockLease?
        /// When to renew next (far off while a renewal runs).
        var due: ContinuousClock.Instant
    }

    private struct State {
        var held: [ObjectIdentifier: Held] = [:]
        var ticking = false
    }

    private let state = Mutex(State())
    private static let tick = Duration.milliseconds(25)
    /// How long the ticker outlives the last lease before it stops.
    private static let linger = Duration.seconds(2)

    func register(_ lease: LockLease) {
        let now = ContinuousClock.now
        let start = state.withLock { state -> Bool in
            state.held[ObjectIdentifier(lease)] = Held(lease: lease, due: now + lease.lock.renewalPeriod)
            defer { state.ticking = true }
            return !state.ticking
        }
        if start {
            let keeper = lease.client.backgroundExecutor()
            Task(executorPreference: keeper) { await self.run(on: keeper) }
        }
    }

    func unregister(_ lease: LockLease) {
        _ = state.withLock { $0.held.removeValue(forKey: ObjectIdentifier(lease)) }
    }

    private func run(on keeper: EventLoopTaskExecutor) async {
        let clock = ContinuousClock()
        var idleSince = clock.now
        while true {
            try? await keeper.sleep(for: Self.tick)  // not Task.sleep: its wake-up needs the cooperative pool
            let now = clock.now
            let due = state.withLock { state -> [(ObjectIdentifier, LockLease)]? in
                state.held = state.held.filter { $0.value.lease != nil }
                if state.held.isEmpty {
                    if now - idleSince > Self.linger {
                        state.ticking = false
                        return nil
                    }
                } else {
                    idleSince = now
                }
                var due: [(ObjectIdentifier, LockLease)] = []
                for (id, held) in state.held where held.due <= now {
                    guard let lease = held.lease else { continue }
                    state.held[id]!.due = now + .seconds(3600)  // not again while this renewal runs
                    due.append((id, lease))
                }
                return due
            }
            guard let due else { return }
            // Concurrently: a store that does not answer must not hold up the renewal of other leases.
            await withTaskGroup(of: Void.self) { group in
                for (id, lease) in due {
                    group.addTask { await self.renew(lease, id: id) }
                }
            }
        }
    }

    private func renew(_ lease: LockLease, id: ObjectIdentifier) async {
        let renewed = await lease.renew()
        let now = ContinuousClock.now
        let keep: Bool
        switch renewed {
        case true?:
            keep = true
        case false?:
            keep = false  // someone else holds it now
        case nil:
            // The store did not answer: keep trying until the lease has surely run out.
            keep = now - lease.lastConfirmed <= .milliseconds(lease.lock.leaseMilliseconds)
        }
        if !keep { lease.lost.store(true, ordering: .relaxed) }
        state.withLock { state in
            guard state.held[id] != nil else { return }  // released meanwhile
            if keep {
                state.held[id]!.due = now + (renewed == true ? lease.lock.renewalPeriod : Self.tick)
            } else {
                state.held[id] = nil
            }
        }
    }
}
