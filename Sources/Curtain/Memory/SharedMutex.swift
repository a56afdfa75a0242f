import CurtainRESP
import NIOCore

/// A value guarded by a lock in the store, like Synchronization's `Mutex`: the only way to change it is
/// inside ``withLock(timeout:_:)``, which holds the lock (a ``SharedLock``, with its lease) around `body`.
///
/// The value travels with the lock: taking the lock brings the current value in the same round trip, and
/// releasing it stores the new value in the same round trip, and a contended lock is handed (value
/// included) straight to the next waiter. A critical section like `withLock { $0 += 1 }` therefore costs
/// two round trips, where a ``SharedLock`` around a ``SharedValue`` load and store costs four.
///
/// ```swift
/// let balance = try await cloud.memory.mutex("balance", initialValue: 100)
/// try await balance.withLock { $0 -= 30 }
/// ```
///
/// If the holder dies, the lock is free again after its lease and the value is the one the last completed
/// `withLock` stored; a holder whose lease ran out stores nothing (its `withLock` throws).
public struct SharedMutex<Value: Codable & Sendable>: Codable, Sendable, Hashable {
    /// The lock guarding the value.
    public let lock: SharedLock
    /// The value before the first ``withLock(timeout:_:)`` stores one (for a mutex made by ``init(_:)``,
    /// which creates nothing in the store until it is used).
    let initial: [UInt8]?

    var valueKey: String { lock.key + ":value" }
    var object: String { "mutex \(lock.key)" }

    init(lock: SharedLock, initial: [UInt8]? = nil) {
        self.lock = lock
        self.initial = initial
    }

    /// A new mutex of the ambient cloud (``Cloud/ambient``) holding `initialValue`, spelled like
    /// Synchronization's `Mutex(initialValue)`, so that a port changes the declaration's type and not how
    /// the mutex is made.
    ///
    /// Nothing is sent to the store until the mutex is first used: building many of them (an array of a
    /// thousand accounts) costs no round trip, and the first ``withLock(timeout:_:)`` finds `initialValue`.
    /// Its handle can be passed into remote functions like any other; it is removed with the cloud's other
    /// objects at shutdown.
    ///
    /// - Precondition: a cloud has been started in this program (``Cloud/start()``), or is bound to the
    ///   calling task; on a worker, make mutexes with ``SharedMemory/mutex(_:initialValue:lease:persistent:)``
    ///   of a handle passed in.
    public init(_ initialValue: Value, lease: Duration = .seconds(10)) {
        guard let cloud = Cloud.ambient else {
            preconditionFailure("SharedMutex(_:) needs a cloud: call Cloud.start() before making one")
        }
        let encoded: [UInt8]
        do {
            encoded = try TypedPayload.encode(initialValue)
        } catch {
            preconditionFailure("SharedMutex(_:): the initial value cannot be encoded: \(error)")
        }
        do {
            self.init(
                lock: try cloud.memory.lock(kind: "mutex", "anonymous-\(TaskDispatcher.newJobID())", lease: lease, persistent: false),
                initial: encoded)
        } catch {
            preconditionFailure("SharedMutex(_:): \(error)")
        }
    }

    /// Stores `initialValue` unless the mutex already has a value (one round trip).
    func create(initialValue: Value) async throws {
        let client = try MemoryBinding.client(for: lock.key, scope: lock.scope)
        let bytes = try TypedPayload.encode(initialValue)
        let reply = try await client.send(RESPCommand("SET", valueKey, ByteBuffer(bytes: bytes), "NX"))
        if reply.isNull {
            _ = try await load()  // an existing value must be of this type
        }
    }

    /// Runs `body` on the value with the lock held, and stores what `body` leaves in it.
    ///
    /// Like ``SharedLock/withLock(timeout:_:)``, this runs on the I/O thread of the store connection: keep
    /// CPU-heavy work out of `body`.
    ///
    /// - Parameter timeout: the longest to wait for the lock; `nil` waits until it is free.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws (nothing is stored); ``SharedMemoryError`` if the lock was not taken
    ///   within `timeout`, if the stored value is of another type (nothing is stored), or if the lease ran
    ///   out before the release (nothing is stored).
    public func withLock<R: Sendable>(
        timeout: Duration? = nil, _ body: sending (inout Value) async throws -> R
    ) async throws -> R {
        try await lock.withAffinity { try await locked(timeout: timeout, body) }
    }

    private func locked<R: Sendable>(timeout: Duration?, _ body: (inout Value) async throws -> R) async throws -> R {
        let (lease, bytes) = try await lock.acquire(guarding: valueKey, timeout: timeout)
        var value: Value
        do {
            guard let bytes = bytes ?? initial else {
                throw SharedMemoryError(description: "\(object) has no value (it was removed)")
            }
            value = try TypedPayload.decode(Value.self, from: bytes, object: object)
        } catch {
            try? await lease.release(storing: nil)
            throw error
        }
        let result: R
        let encoded: [UInt8]
        do {
            result = try await body(&value)
            encoded = try TypedPayload.encode(value)
        } catch {
            try? await lease.release(storing: nil)
            throw error
        }
        try await lease.release(storing: encoded)
        return result
    }

    /// Runs `body` on the I/O thread of the store connection this mutex uses, so that a loop of
    /// `withLock` calls in it skips the thread hops into and out of each critical section (see
    /// ``SharedMemory/withAffinity(_:)``; keep CPU-heavy work out of `body`).
    public func withAffinity<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        try await lock.withAffinity(body)
    }

    /// The value last stored, read without taking the lock (one round trip).
    ///
    /// - Throws: ``SharedMemoryError`` if there is no value, or it is of another type.
    public func load() async throws -> Value {
        let client = try MemoryBinding.client(for: lock.key, scope: lock.scope)
        let reply = try await client.send(RESPCommand("GET", valueKey))
        guard let value = try SharedValue<Value>.decode(reply, object: object) else {
            throw SharedMemoryError(description: "\(object) has no value (it was removed)")
        }
        return value
    }
}
