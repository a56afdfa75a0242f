import CurtainRESP
import NIOCore

/// A shared dictionary (a store hash): each key's value is read and written atomically, and
/// ``update(_:_:)`` is an atomic read-modify-write of one entry.
///
/// ```swift
/// let owners = try cloud.memory.dictionary("owners", of: [String: Int].self)
/// try await owners.set(42, forKey: "ada")
/// let all = try await owners.all()
/// ```
public struct SharedDictionary<Key: Codable & Hashable & Sendable, Value: Codable & Sendable>: Codable, Sendable, Hashable {
    /// The store key.
    public let key: String
    /// The namespace of the cloud that made the handle: which store connection of this process it uses.
    let scope: String

    var object: String { "dictionary \(key)" }

    private func field(_ k: Key) throws -> ByteBuffer {
        ByteBuffer(bytes: try PayloadCodec.encode(k))
    }

    /// The value for `k`, or `nil`.
    public func value(forKey k: Key) async throws -> Value? {
        let reply = try await client().send(RESPCommand("HGET", key, try field(k)))
        return try decode(reply)
    }

    /// Sets the value for `k`.
    public func set(_ value: Value, forKey k: Key) async throws {
        _ = try await client().send(RESPCommand("HSET", key, try field(k), ByteBuffer(bytes: try TypedPayload.encode(value))))
    }

    /// Removes `k`; returns whether it was there.
    @discardableResult
    public func removeValue(forKey k: Key) async throws -> Bool {
        try await client().send(RESPCommand("HDEL", key, try field(k))).int == 1
    }

    /// How many entries there are.
    public func count() async throws -> Int {
        try await client().send(RESPCommand("HLEN", key)).int ?? 0
    }

    /// Every entry.
    ///
    /// - Throws: ``SharedMemoryError`` if an entry is of another type or does not decode.
    public func all() async throws -> [Key: Value] {
        let reply = try await client().send(RESPCommand("HGETALL", key))
        var pairs: [RESPValue] = []
        if let array = reply.array {
            pairs = array
        } else if case .map(let entries) = reply {
            pairs = entries.flatMap { [$0.key, $0.value] }
        }
        var result: [Key: Value] = [:]
        var index = 0
        while index + 1 < pairs.count {
            guard let fieldBytes = pairs[index].buffer else { throw SharedMemoryError(description: "\(object): bad field") }
            let k: Key
            do {
                k = try PayloadCodec.decode(Key.self, from: Array(fieldBytes.readableBytesView))
            } catch {
                throw SharedMemoryError(description: "\(object) has a key that does not decode as \(Key.self): \(error)")
            }
            result[k] = try decode(pairs[index + 1])
            index += 2
        }
        return result
    }

    /// Atomically reads the entry for `k`, lets `body` change it (`nil` removes it) and writes it back; runs
    /// `body` again if another process changed the dictionary meanwhile.
    @discardableResult
    public func update<R: Sendable>(_ k: Key, _ body: (inout Value?) throws -> R) async throws -> R {
        let field = try field(k)
        let key = self.key
        let result = try await client().watching(key) { connection -> (commands: [RESPCommand], result: R)? in
            var value = try decode(try await connection.send(RESPCommand("HGET", key, field)))
            let result = try body(&value)
            if let value {
                return ([RESPCommand("HSET", key, field, ByteBuffer(bytes: try TypedPayload.encode(value)))], result)
            }
            return ([RESPCommand("HDEL", key, field)], result)
        }
        return result!
    }

    /// Removes every entry.
    public func removeAll() async throws {
        _ = try await client().send(RESPCommand("DEL", key))
    }

    private func client() throws -> RESPClient { try MemoryBinding.client(for: key, scope: scope) }

    private func decode(_ reply: RESPValue) throws -> Value? {
        if reply.isNull { return nil }
        guard let buffer = reply.buffer else { throw SharedMemoryError(description: "\(object) holds a non-string entry") }
        return try TypedPayload.decode(Value.self, from: Array(buffer.readableBytesView), object: object)
    }
}
