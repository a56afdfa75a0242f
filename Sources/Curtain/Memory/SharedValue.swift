import CurtainRESP
import NIOCore

/// A shared value of a `Codable` type, like a `Mutex<T?>` in the store: loads and stores are atomic, and
/// ``update(_:)`` is a read-modify-write that no other process can interleave with.
///
/// ```swift
/// let best = try cloud.memory.value("best", of: Score.self)
/// try await best.update { current in if current == nil || candidate > current! { current = candidate } }
/// ```
public struct SharedValue<T: Codable & Sendable>: Codable, Sendable, Hashable {
    /// The store key.
    public let key: String
    /// The namespace of the cloud that made the handle: which store connection of this process it uses.
    let scope: String

    var object: String { "value \(key)" }

    /// The value, or `nil` if none was stored.
    ///
    /// - Throws: ``SharedMemoryError`` if the stored value is of another type or does not decode.
    public func load() async throws -> T? {
        let reply = try await MemoryBinding.client(for: key, scope: scope).send(RESPCommand("GET", key))
        return try Self.decode(reply, object: object)
    }

    /// Replaces the value.
    public func store(_ value: T) async throws {
        let bytes = try TypedPayload.encode(value)
        _ = try await MemoryBinding.client(for: key, scope: scope).send(RESPCommand("SET", key, ByteBuffer(bytes: bytes)))
    }

    /// Removes the value.
    public func remove() async throws {
        _ = try await MemoryBinding.client(for: key, scope: scope).send(RESPCommand("DEL", key))
    }

    /// Reads the value, lets `body` change it (set it to `nil` to remove it), and writes it back atomically:
    /// if another process changes it meanwhile, `body` runs again on the new value.
    ///
    /// - Returns: what `body` returns on the run that was committed.
    /// - Throws: what `body` throws (nothing is written); ``SharedMemoryError`` if the stored value is of
    ///   another type (nothing is written).
    @discardableResult
    public func update<R: Sendable>(_ body: (inout T?) throws -> R) async throws -> R {
        let client = try MemoryBinding.client(for: key, scope: scope)
        let (key, object) = (self.key, self.object)
        let result = try await client.watching(key) { connection -> (commands: [RESPCommand], result: R)? in
            var value = try Self.decode(try await connection.send(RESPCommand("GET", key)), object: object)
            let result = try body(&value)
            if let value {
                return ([RESPCommand("SET", key, ByteBuffer(bytes: try TypedPayload.encode(value)))], result)
            }
            return ([RESPCommand("DEL", key)], result)
        }
        return result!  // the plan never declines, so a committed run always has a result
    }

    static func decode(_ reply: RESPValue, object: String) throws -> T? {
        if reply.isNull { return nil }
        guard let buffer = reply.buffer else { throw SharedMemoryError(description: "\(object) holds a non-string value") }
        return try TypedPayload.decode(T.self, from: Array(buffer.readableBytesView), object: object)
    }
}
