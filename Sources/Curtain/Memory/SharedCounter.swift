import CurtainRESP
public import Synchronization

/// A shared integer, like Synchronization's `Atomic<Int>` but in the store: every operation is atomic across
/// all processes of the cloud.
///
/// ```swift
/// let seen = try cloud.memory.counter("seen")
/// let now = try await seen.add(1)          // the new value
/// ```
///
/// A port of code using `Atomic<Int>` changes the declaration and marks each use (`try await`):
///
/// ```swift
/// let hits = SharedCounter(0)                                 // was: let hits = Atomic<Int>(0)
/// try await hits.add(1, ordering: .relaxed)                   // was: hits.add(1, ordering: .relaxed)
/// print(try await hits.load(ordering: .relaxed))
/// ```
///
/// Every operation is sequentially consistent whatever ordering is asked for (the store runs one command at
/// a time), and overflow throws where `Atomic` would trap.
public struct SharedCounter: Codable, Sendable, Hashable {
    /// The store key.
    public let key: String
    /// The namespace of the cloud that made the handle: which store connection of this process it uses.
    let scope: String
    /// Added to what the store holds (which starts at 0): the initial value of ``init(_:)``, so that making a
    /// counter costs no round trip.
    let base: Int

    init(key: String, scope: String, base: Int = 0) {
        self.key = key
        self.scope = scope
        self.base = base
    }

    /// A new counter of the ambient cloud (``Cloud/ambient``) holding `initialValue`, spelled like
    /// Synchronization's `Atomic<Int>(initialValue)`. Nothing is sent to the store until it is used.
    ///
    /// - Precondition: a cloud has been started in this program (``Cloud/start()``) or bound to the calling
    ///   task; on a worker, use a handle passed in.
    public init(_ initialValue: Int) {
        guard let cloud = Cloud.ambient else {
            preconditionFailure("SharedCounter(_:) needs a cloud: call Cloud.start() before making one")
        }
        let named: SharedCounter
        do {
            named = try cloud.memory.counter("anonymous-\(TaskDispatcher.newJobID())")
        } catch {
            preconditionFailure("SharedCounter(_:): \(error)")
        }
        self.init(key: named.key, scope: named.scope, base: initialValue)
    }

    /// Adds `operand`, like `Atomic<Int>.add(_:ordering:)`: returns the values before and after.
    ///
    /// - Throws: ``SharedMemoryError`` on overflow (nothing changes) or if the key holds something else.
    @discardableResult
    public func add(_ operand: Int, ordering: AtomicUpdateOrdering) async throws -> (oldValue: Int, newValue: Int) {
        let new = try await add(operand)
        return (new - operand, new)
    }

    /// Subtracts `operand`, like `Atomic<Int>.subtract(_:ordering:)`: returns the values before and after.
    @discardableResult
    public func subtract(_ operand: Int, ordering: AtomicUpdateOrdering) async throws -> (oldValue: Int, newValue: Int) {
        guard operand != Int.min else { throw SharedMemoryError(description: "\(object): cannot subtract Int.min") }
        let new = try await add(-operand)
        return (new + operand, new)
    }

    /// The current value, like `Atomic<Int>.load(ordering:)`.
    public func load(ordering: AtomicLoadOrdering) async throws -> Int {
        try await load()
    }

    /// Replaces the value, like `Atomic<Int>.store(_:ordering:)`.
    public func store(_ desired: Int, ordering: AtomicStoreOrdering) async throws {
        try await store(desired)
    }

    /// Sets the value to `desired` if it is `expected`, like `Atomic<Int>.compareExchange(expected:desired:ordering:)`.
    public func compareExchange(expected: Int, desired: Int, ordering: AtomicUpdateOrdering) async throws -> (exchanged: Bool, original: Int) {
        try await compareExchange(expected: expected, desired: desired)
    }

    var object: String { "counter \(key)" }

    /// Adds `delta` and returns the new value.
    ///
    /// - Throws: ``SharedMemoryError`` if the key holds something other than an integer (nothing changes),
    ///   or if the result would overflow `Int64`.
    @discardableResult
    public func add(_ delta: Int) async throws -> Int {
        let reply = try await send(RESPCommand("INCRBY", key, delta))
        guard let value = reply.int else { throw SharedMemoryError(description: "\(object): unexpected reply \(reply)") }
        let (result, overflow) = value.addingReportingOverflow(base)
        guard !overflow else { throw SharedMemoryError(description: "\(object): the value overflows Int") }
        return result
    }

    /// The current value (0 if never set).
    public func load() async throws -> Int {
        let reply = try await send(RESPCommand("GET", key))
        return try Self.integer(reply, object: object) &+ base
    }

    /// Replaces the value.
    public func store(_ value: Int) async throws {
        let base = self.base
        _ = try await send(RESPCommand("SET", key, value &- base))
    }

    /// Sets the value to `desired` if it is `expected`; returns whether it did and the value found.
    public func compareExchange(expected: Int, desired: Int) async throws -> (exchanged: Bool, original: Int) {
        let client = try MemoryBinding.client(for: key, scope: scope)
        let (object, base) = (self.object, self.base)
        var found = 0
        let exchanged = try await client.watching(key) { connection -> (commands: [RESPCommand], result: Bool)? in
            found = try Self.integer(try await connection.send(RESPCommand("GET", key)), object: object) &+ base
            guard found == expected else { return nil }
            return ([RESPCommand("SET", key, desired &- base)], true)
        }
        return (exchanged ?? false, found)
    }

    private func send(_ command: RESPCommand) async throws -> RESPValue {
        do {
            return try await MemoryBinding.client(for: key, scope: scope).send(command)
        } catch RESPError.server(let message) {
            throw SharedMemoryError(description: "\(object): \(message)")
        }
    }

    static func integer(_ reply: RESPValue, object: String) throws -> Int {
        if reply.isNull { return 0 }
        guard let text = reply.string, let value = Int(text) else {
            throw SharedMemoryError(description: "\(object) does not hold an integer")
        }
        return value
    }
}
