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
    /// A list a releaser pushes one token to (trimmed to one), on which waiters block: the next waiter wakes
    /// as soon as the lock is free instead of polling.
    var wakeKey: String { key + ":wake" }
    var object: String { "lock \(key)" }

    /// Takes the lock if it is free (one round trip).
    ///
    /// - Returns: the lease, or `nil` if another holder has the lock.
    public func tryAcquire() async throws -> LockLease? {
        let client = try MemoryBinding.client(for: key, scope: scope)
        let token = TaskDispatcher.newJobID() + TaskDispatcher.newJobID()
        // The fence is counted on every attempt, so it stays strictly increasing across holders.
        let replies = try await client.pipeline([
            RESPCommand("SET", key, token, "NX", "PX", leaseMilliseconds), RESPCommand("INCR", fenceKey),
        ])
        if let error = replies.first(where: { $0.errorMessage != nil })?.errorMessage {
            throw SharedMemoryError(description: "\(object): \(error)")
        }
        guard replies[0].string == "OK", let fence = replies[1].int else { return nil }
        return LockLease(lock: self, token: token, fence: fence, client: client)
    }

    /// Takes the lock, waiting for it: a waiter blocks until a holder releases it (or, if the holder died,
    /// until its lease runs out, noticed within 50 ms).
    ///
    /// - Parameter timeout: the longest to wait; `nil` waits until the lock is free.
    /// - Throws: ``SharedMemoryError`` if `timeout` passes first; `CancellationError`.
    public func acquire(timeout: Duration? = nil) async throws -> LockLease {
        let clock = ContinuousClock()
        let deadline = timeout.map { clock.now + $0 }
        let client = try MemoryBinding.client(for: key, scope: scope)
        while true {
            if let lease = try await tryAcquire() { return lease }
            var wait = 0.05
            if let deadline {
                let left = deadline - clock.now
                guard left > .zero else {
                    throw SharedMemoryError(description: "\(object): not acquired within \(Format.duration(timeout!))")
                }
                wait = min(wait, left.blockingTimeout)
            }
            _ = try await client.blpop([wakeKey], timeout: wait)
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
        do {
            return try await ifStillOurs([RESPCommand("PEXPIRE", lock.key, lock.leaseMilliseconds)])
        } catch {
            return nil
        }
    }

    /// Runs `commands` atomically if the lock still holds our token (two round trips: `WATCH` + `GET`, then
    /// `MULTI` … `EXEC`); false if it does not.
    private func ifStillOurs(_ commands: [RESPCommand]) async throws -> Bool {
        let (key, token) = (lock.key, token)
        return try await client.withDedicatedConnection { connection in
            while true {
                let read = try await connection.pipeline([RESPCommand("WATCH", key), RESPCommand("GET", key)])
                guard read[1].string == token else {
                    _ = try await connection.send(RESPCommand("UNWATCH"))
                    return false
                }
                let replies = try await connection.pipeline([RESPCommand("MULTI")] + commands + [RESPCommand("EXEC")])
                if let error = replies.first(where: { $0.errorMessage != nil })?.errorMessage {
                    throw RESPError.server(error)
                }
                if replies.last?.isNull == false { return true }
            }
        }
    }

    /// Releases the lock and wakes one waiter.
    ///
    /// - Throws: ``SharedMemoryError`` if the lease had already expired (another process may have held the
    ///   lock since; the fencing token tells them apart).
    public func release() async throws {
        guard !released.exchange(true, ordering: .relaxed) else { return }
        renewal.withLock { $0?.cancel() }
        let wake = lock.wakeKey
        let deleted = try await ifStillOurs([
            RESPCommand("DEL", lock.key), RESPCommand("RPUSH", wake, 1), RESPCommand("LTRIM", wake, -1, -1),
            RESPCommand("PEXPIRE", wake, lock.leaseMilliseconds),
        ])
        guard deleted else {
            throw SharedMemoryError(description: "\(lock.object): the lease (fence \(fence)) expired before it was released")
        }
    }

    deinit { renewal.withLock { $0?.cancel() } }
}
