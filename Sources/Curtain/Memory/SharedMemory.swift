import CurtainRESP
import NIOCore
import Synchronization

/// Why a shared object could not be used.
public struct SharedMemoryError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, naming the object.
    public var description: String

    /// Throws the first error reply among `replies`, naming `object`.
    static func check(_ replies: [RESPValue], object: String) throws {
        if let error = replies.first(where: { $0.errorMessage != nil })?.errorMessage {
            throw SharedMemoryError(description: "\(object): \(error)")
        }
    }
}

/// Where shared objects live: the store of the cloud this process belongs to, as a driver or a worker.
///
/// ```swift
/// let seen = try await cloud.memory.counter("seen")            // a Codable handle…
/// let weights = try await cloud.memory.value("weights", of: [Double].self)
/// try await cloud.map(CountWords(seen: seen), over: files)      // …used inside remote functions
/// ```
///
/// Handles are small `Codable` values naming their object; inside a remote function they reach the store
/// the worker process is connected to. Objects live under the cloud's namespace and are removed when the
/// driver's ``Cloud/shutdown()`` runs, unless created with `persistent: true`.
public struct SharedMemory: Sendable {
    /// The key prefix of this cloud's objects.
    let namespace: String
    /// The namespace of the cloud these objects belong to: which store connection their handles use.
    let scope: String

    /// Shared memory under `namespace` (the cloud's id), or a sub-namespace of the cloud `scope`.
    init(namespace: String, scope: String? = nil) {
        self.namespace = namespace
        self.scope = scope ?? namespace
    }

    private func key(_ kind: String, _ name: String, persistent: Bool) throws -> String {
        guard !name.isEmpty, name.utf8.count <= 512, !name.contains(where: \.isNewline) else {
            throw SharedMemoryError(description: "shared object name '\(name.prefix(40))' must be 1–512 bytes without line breaks")
        }
        return "\(persistent ? "curtain:mem:persistent" : namespace):\(kind):\(name)"
    }

    /// Runs `body` with shared memory of its own: the objects it makes there are deleted when `body` ends
    /// (returns or throws), except those made `persistent`. For objects that belong to one job:
    ///
    /// ```swift
    /// let total = try await cloud.memory.scoped { memory in
    ///     let seen = try memory.counter("seen")
    ///     _ = try await cloud.map(CountWords(seen: seen), over: files)
    ///     return try await seen.load()
    /// }                                               // "seen" is gone here
    /// ```
    public func scoped<R: Sendable>(_ body: (SharedMemory) async throws -> R) async throws -> R {
        let client = try MemoryBinding.client(for: namespace, scope: scope)
        let inner = SharedMemory(namespace: "\(namespace):job-\(TaskDispatcher.newJobID())", scope: scope)
        do {
            let result = try await body(inner)
            await inner.removeAll(using: client)
            return result
        } catch {
            await inner.removeAll(using: client)
            throw error
        }
    }

    /// Runs `body` on the I/O thread of this cloud's store connection, so that each shared-memory operation
    /// in it skips the two hops between Swift's cooperative thread pool and that thread, about halving the
    /// latency of a small operation such as `counter.add(1)`. For loops of small operations; keep CPU-heavy
    /// or blocking work out of `body`, which shares the thread with the connection's I/O.
    ///
    /// ```swift
    /// try await cloud.memory.withAffinity {
    ///     for _ in 0..<10_000 { try await hits.add(1) }
    /// }
    /// ```
    public func withAffinity<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        try await MemoryBinding.client(for: namespace, scope: scope).withAffinity(body)
    }

    /// Deletes every non-persistent object of this namespace (at the cloud's shutdown).
    func removeAll(using client: RESPClient) async {
        await client.scanKeys(matching: namespace + ":*") { keys in
            _ = try? await client.send(RESPCommand("DEL", arguments: keys))
        }
    }

    /// An integer counter, `0` until first changed.
    public func counter(_ name: String, persistent: Bool = false) throws -> SharedCounter {
        SharedCounter(key: try key("counter", name, persistent: persistent), scope: scope)
    }

    /// A value of type `T`, absent until first stored.
    public func value<T: Codable & Sendable>(_ name: String, of type: T.Type, persistent: Bool = false) throws -> SharedValue<T> {
        SharedValue(key: try key("value", name, persistent: persistent), scope: scope)
    }

    /// A dictionary from `Key` to `Value`.
    public func dictionary<Key: Codable & Hashable & Sendable, Value: Codable & Sendable>(
        _ name: String, of: [Key: Value].Type, persistent: Bool = false
    ) throws -> SharedDictionary<Key, Value> {
        SharedDictionary(key: try key("dictionary", name, persistent: persistent), scope: scope)
    }

    /// A fixed-size array of `count` numbers, created (all zero) if absent.
    ///
    /// - Throws: ``SharedMemoryError`` if an array of that name exists with another element type or count.
    public func array<Element: SharedArrayElement>(
        _ name: String, of: Element.Type, count: Int, persistent: Bool = false
    ) async throws -> SharedArray<Element> {
        try await SharedArray<Element>.open(key: try key("array", name, persistent: persistent), scope: scope, count: count)
    }

    /// A reusable barrier for `parties` participants.
    public func barrier(_ name: String, parties: Int, persistent: Bool = false) throws -> SharedBarrier {
        guard parties >= 1 else { throw SharedMemoryError(description: "barrier '\(name)': parties must be at least 1, not \(parties)") }
        return SharedBarrier(key: try key("barrier", name, persistent: persistent), scope: scope, parties: parties)
    }

    /// An event (a flag processes can wait for), initially clear.
    public func event(_ name: String, persistent: Bool = false) throws -> SharedEvent {
        SharedEvent(key: try key("event", name, persistent: persistent), scope: scope)
    }

    /// A counting semaphore with `permits` permits (created once; later handles must agree on the number).
    public func semaphore(_ name: String, permits: Int, persistent: Bool = false) async throws -> SharedSemaphore {
        try await SharedSemaphore.open(key: try key("semaphore", name, persistent: persistent), scope: scope, permits: permits)
    }

    /// A FIFO queue of `Element`s; with a `capacity`, senders wait for room.
    public func queue<Element: Codable & Sendable>(
        _ name: String, of: Element.Type, capacity: Int? = nil, persistent: Bool = false
    ) async throws -> SharedQueue<Element> {
        try await SharedQueue<Element>.open(key: try key("queue", name, persistent: persistent), scope: scope, capacity: capacity)
    }

    /// A lock whose holder keeps it by renewing a lease of `lease`; if the holder dies, the lock is free
    /// again at most `lease` later.
    public func lock(_ name: String, lease: Duration = .seconds(10), persistent: Bool = false) throws -> SharedLock {
        try lock(kind: "lock", name, lease: lease, persistent: persistent)
    }

    /// A value guarded by a lock whose lease is `lease` (see ``SharedMutex``), holding `initialValue`
    /// unless a mutex of that name exists already.
    ///
    /// - Throws: ``SharedMemoryError`` if an existing mutex of that name holds another type.
    public func mutex<Value: Codable & Sendable>(
        _ name: String, initialValue: Value, lease: Duration = .seconds(10), persistent: Bool = false
    ) async throws -> SharedMutex<Value> {
        let mutex = SharedMutex<Value>(lock: try lock(kind: "mutex", name, lease: lease, persistent: persistent))
        try await mutex.create(initialValue: initialValue)
        return mutex
    }

    func lock(kind: String, _ name: String, lease: Duration, persistent: Bool) throws -> SharedLock {
        guard lease >= .milliseconds(100) else {
            throw SharedMemoryError(description: "\(kind) '\(name)': the lease must be at least 100 ms, not \(lease)")
        }
        return SharedLock(
            key: try key(kind, name, persistent: persistent), scope: scope, leaseMilliseconds: Int(lease.wholeMilliseconds))
    }
}

/// The store connections of this process, for shared-object handles: `Cloud.start` binds its client to its
/// namespace in a driver (several clouds may coexist, in tests for one), and the worker loop binds its
/// client as the fallback in a worker process, where it is the only one.
enum MemoryBinding {
    private struct Bindings {
        var byNamespace: [String: RESPClient] = [:]
        var fallback: RESPClient?
    }

    private static let bindings = Mutex(Bindings())

    /// Binds `client` to `namespace` (if given) and makes it the fallback for other keys.
    static func bind(_ client: RESPClient, namespace: String? = nil) {
        bindings.withLock { bindings in
            if let namespace { bindings.byNamespace[namespace] = client }
            bindings.fallback = client
        }
    }

    /// Forgets every binding of `client`.
    static func unbind(_ client: RESPClient) {
        bindings.withLock { bindings in
            bindings.byNamespace = bindings.byNamespace.filter { $0.value !== client }
            if bindings.fallback === client { bindings.fallback = bindings.byNamespace.values.first }
        }
    }

    /// The client for an object of the cloud `scope` (the namespace of the cloud that created the handle):
    /// that cloud's, else the fallback (a worker's only client), else an error saying that shared memory is
    /// used outside a cloud.
    static func client(for key: String, scope: String) throws -> RESPClient {
        let found = bindings.withLock { bindings -> RESPClient? in
            bindings.byNamespace[scope] ?? bindings.fallback
        }
        guard let found else {
            throw SharedMemoryError(
                description: "shared object \(key) used outside a Curtain process: call Cloud.start first (a worker does so itself)")
        }
        return found
    }
}

extension RESPClient {
    /// Runs an optimistic transaction on `key`: `WATCH`es it, lets `plan` read what it needs on the same
    /// connection and return the commands to run atomically (or `nil` to do nothing), and retries from the
    /// start if another client changed the key before `EXEC`.
    func watching<T: Sendable>(
        _ key: String, _ plan: (RESPConnection) async throws -> (commands: [RESPCommand], result: T)?
    ) async throws -> T? {
        try await withDedicatedConnection { connection in
            while true {
                try Task.checkCancellation()
                _ = try await connection.send(RESPCommand("WATCH", key))
                guard let (commands, result) = try await plan(connection) else {
                    _ = try await connection.send(RESPCommand("UNWATCH"))
                    return nil
                }
                let replies = try await connection.pipeline([RESPCommand("MULTI")] + commands + [RESPCommand("EXEC")])
                if let error = replies.first(where: { $0.errorMessage != nil })?.errorMessage {
                    throw RESPError.server(error)
                }
                if replies.last?.isNull == false { return result }
                // EXEC answered null: the key changed under us; try again.
            }
        }
    }
}

extension RESPClient {
    /// Visits the keys matching `pattern` in batches, with one pass of `SCAN` (stopping quietly if the
    /// store stops answering: callers are clean-ups that may run again).
    func scanKeys(matching pattern: String, _ body: ([String]) async -> Void) async {
        var cursor = "0"
        repeat {
            guard let reply = try? await send(RESPCommand("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)),
                let parts = reply.array, parts.count == 2, let next = parts[0].string
            else { return }
            let keys = (parts[1].array ?? []).compactMap(\.string)
            if !keys.isEmpty { await body(keys) }
            cursor = next
        } while cursor != "0"
    }
}

/// The stored form of typed values: a tag naming the Swift type, then its JSON, so reading a value as
/// another type fails clearly instead of decoding garbage.
enum TypedPayload {
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let name = String(reflecting: T.self)
        return Array(name.utf8) + [0] + (try PayloadCodec.encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], object: String) throws -> T {
        guard let zero = bytes.firstIndex(of: 0) else {
            throw SharedMemoryError(description: "\(object) holds data Curtain did not write (no type tag)")
        }
        let stored = String(decoding: bytes[..<zero], as: UTF8.self)
        let wanted = String(reflecting: T.self)
        guard stored == wanted else {
            throw SharedMemoryError(description: "\(object) holds a \(stored), not a \(wanted)")
        }
        do {
            return try PayloadCodec.decode(T.self, from: Array(bytes[(zero + 1)...]))
        } catch {
            throw SharedMemoryError(description: "\(object) does not decode as \(wanted): \(error)")
        }
    }
}
