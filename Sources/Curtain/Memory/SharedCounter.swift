import CurtainRESP

/// A shared integer, like Synchronization's `Atomic<Int>` but in the store: every operation is atomic across
/// all processes of the cloud.
///
/// ```swift
/// let seen = try cloud.memory.counter("seen")
/// let now = try await seen.add(1)          // the new value
/// ```
public struct SharedCounter: Codable, Sendable, Hashable {
    /// The store key.
    public let key: String
    /// The namespace of the cloud that made the handle: which store connection of this process it uses.
    let scope: String

    var object: String { "counter \(key)" }

    /// Adds `delta` and returns the new value.
    ///
    /// - Throws: ``SharedMemoryError`` if the key holds something other than an integer (nothing changes),
    ///   or if the result would overflow `Int64`.
    @discardableResult
    public func add(_ delta: Int) async throws -> Int {
        let reply = try await send(RESPCommand("INCRBY", key, delta))
        guard let value = reply.int else { throw SharedMemoryError(description: "\(object): unexpected reply \(reply)") }
        return value
    }

    /// The current value (0 if never set).
    public func load() async throws -> Int {
        let reply = try await send(RESPCommand("GET", key))
        return try Self.integer(reply, object: object)
    }

    /// Replaces the value.
    public func store(_ value: Int) async throws {
        _ = try await send(RESPCommand("SET", key, value))
    }

    /// Sets the value to `desired` if it is `expected`; returns whether it did and the value found.
    public func compareExchange(expected: Int, desired: Int) async throws -> (exchanged: Bool, original: Int) {
        let client = try MemoryBinding.client(for: key, scope: scope)
        let object = self.object
        var found = 0
        let exchanged = try await client.watching(key) { connection -> (commands: [RESPCommand], result: Bool)? in
            found = try Self.integer(try await connection.send(RESPCommand("GET", key)), object: object)
            guard found == expected else { return nil }
            return ([RESPCommand("SET", key, desired)], true)
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
