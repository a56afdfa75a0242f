import CurtainRESP
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

    var fenceKey: String { key + ":fence" }
    var object: String { "lock \(key)" }

    /// Takes the lock if it is free.
    ///
    /// - Returns: the lease, or `nil` if another holder has the lock.
    public func tryAcquire() async throws -> LockLease? {
        let client = try MemoryBinding.client(for: key, scope: scope)
        let token = TaskDispatcher.newJobID() + TaskDispatcher.newJobID()
        let set = try await client.send(RESPCommand("SET", key, token, "NX", "PX", leaseMilliseconds))
        guard set.string == "OK" else { return nil }
        let fence = try await client.send(RESPCommand("INCR", fenceKey)).int ?? 0
        return LockLease(lock: self, token: token, fence: fence, client: client)
    }

    /// Takes the lock, waiting for it.
    ///
    /// - Parameter timeout: the longest to wait; `nil` waits until the lock is free (at most one lease after
    ///   its holder died).
    /// - Throws: ``SharedMemoryError`` if `timeout` passes first; `CancellationError`.
    public func acquire(timeout: Duration? = nil) async throws -> LockLease {
        let clock = ContinuousClock()
        let deadline = timeout.map { clock.now + $0 }
        var pause = Duration.microseconds(200)
        while true {
            if let lease = try await tryAcquire() { return lease }
            if let deadline, clock.now >= deadline {
                throw SharedMemoryError(description: "\(object): not acquired within \(Format.duration(timeout!))")
            }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(20))
        }
    }

    /// Runs `body` holding the lock, and releases it however `body` ends.
    ///
    /// - Throws: what `body` throws; ``SharedMemoryError`` if the lock could not be taken within `timeout`,
    ///   or if the lease was lost while `body` ran (another holder may have had the lock meanwhile).
    public func withLock<R: Sendable>(timeout: Duration? = nil, _ body: (LockLease) async throws -> R) async throws -> R {
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

/// One holding of a ``SharedLock``: renews the lease in the background until released.
public final class LockLease: Sendable {
    /// The lock held.
    public let lock: SharedLock
    /// The fencing token of this acquisition: larger than that of every earlier holder of the lock.
    public let fence: Int
    let token: String
    private let client: RESPClient
    private let renewal = Mutex<Task<Void, Never>?>(nil)
    private let lost = Atomic<Bool>(false)
    private let released = Atomic<Bool>(false)

    init(lock: SharedLock, token: String, fence: Int, client: RESPClient) {
        self.lock = lock
        self.token = token
        self.fence = fence
        self.client = client
        let every = Duration.milliseconds(max(30, lock.leaseMilliseconds / 3))
        // On an event loop, not the cooperative pool: a holder whose own code keeps the pool busy must not
        // lose its lease for want of a thread to renew it.
        let leaseLength = Duration.milliseconds(lock.leaseMilliseconds)
        let task = Task(executorPreference: client.backgroundExecutor()) { [weak self] in
            let clock = ContinuousClock()
            var renewedAt = clock.now
            while !Task.isCancelled {
                try? await Task.sleep(for: every)
                guard !Task.isCancelled, let self else { return }
                switch await self.renew() {
                case true?:
                    renewedAt = clock.now
                case false?:
                    self.lost.store(true, ordering: .relaxed)  // someone else holds it now
                    return
                case nil:
                    // The store did not answer: keep trying until the lease has surely run out.
                    if clock.now - renewedAt > leaseLength {
                        self.lost.store(true, ordering: .relaxed)
                        return
                    }
                }
            }
        }
        renewal.withLock { $0 = task }
    }

    /// Whether the lease is still ours (as far as the last renewal knows).
    public var isHeld: Bool { !lost.load(ordering: .relaxed) && !released.load(ordering: .relaxed) }

    /// Extends the lease if the lock is still ours: true if it did, false if the lock is someone else's (or
    /// nobody's), `nil` if the store could not be asked.
    private func renew() async -> Bool? {
        let (key, token, lease) = (lock.key, token, lock.leaseMilliseconds)
        do {
            let renewed = try await client.watching(key) { connection -> (commands: [RESPCommand], result: Bool)? in
                guard try await connection.send(RESPCommand("GET", key)).string == token else { return nil }
                return ([RESPCommand("PEXPIRE", key, lease)], true)
            }
            return renewed == true
        } catch {
            return nil
        }
    }

    /// Releases the lock.
    ///
    /// - Throws: ``SharedMemoryError`` if the lease had already expired (another process may have held the
    ///   lock since; the fencing token tells them apart).
    public func release() async throws {
        guard !released.exchange(true, ordering: .relaxed) else { return }
        renewal.withLock { $0?.cancel() }
        let (key, token) = (lock.key, token)
        let deleted = try await client.watching(key) { connection -> (commands: [RESPCommand], result: Bool)? in
            guard try await connection.send(RESPCommand("GET", key)).string == token else { return nil }
            return ([RESPCommand("DEL", key)], true)
        }
        guard deleted == true else {
            throw SharedMemoryError(description: "\(lock.object): the lease (fence \(fence)) expired before it was released")
        }
    }

    deinit { renewal.withLock { $0?.cancel() } }
}
