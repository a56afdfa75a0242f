public import NIOCore

/// Options of `SET`.
public enum RESPSetCondition: Sendable, Hashable {
    /// Set unconditionally.
    case always
    /// Only set if the key does not exist (`NX`).
    case ifNotExists
    /// Only set if the key exists (`XX`).
    case ifExists
}

/// Typed helpers for the commands Curtain uses; everything else goes through ``RESPClient/send(_:_:)``.
extension RESPClient {
    /// `GET key`: the value as bytes, or `nil` if the key does not exist.
    public func get(_ key: String) async throws -> ByteBuffer? {
        try await send(RESPCommand("GET", key)).buffer
    }

    /// `GET key` as UTF-8 text, or `nil` if the key does not exist.
    public func getString(_ key: String) async throws -> String? {
        try await send(RESPCommand("GET", key)).string
    }

    /// `SET key value [NX|XX] [PX ms]`; returns whether the value was set.
    @discardableResult
    public func set(
        _ key: String, _ value: some RESPArgument, condition: RESPSetCondition = .always,
        expiresInMilliseconds: Int? = nil
    ) async throws -> Bool {
        var args: [any RESPArgument] = [key, value]
        switch condition {
        case .always: break
        case .ifNotExists: args.append("NX")
        case .ifExists: args.append("XX")
        }
        if let ms = expiresInMilliseconds { args += ["PX", ms] }
        return try await !send(RESPCommand("SET", arguments: args)).isNull
    }

    /// `DEL key…`: how many keys were removed.
    @discardableResult
    public func del(_ keys: [String]) async throws -> Int {
        try await send(RESPCommand("DEL", arguments: keys)).int ?? 0
    }

    /// `EXISTS key…`: how many of the keys exist.
    public func exists(_ keys: [String]) async throws -> Int {
        try await send(RESPCommand("EXISTS", arguments: keys)).int ?? 0
    }

    /// `INCRBY key n`: the new value.
    @discardableResult
    public func incr(_ key: String, by n: Int = 1) async throws -> Int {
        let reply = try await send(RESPCommand("INCRBY", key, n))
        guard let value = reply.int else { throw RESPError.protocolViolation("INCRBY replied \(reply)") }
        return value
    }

    /// `PEXPIRE key ms`: whether a timeout was set.
    @discardableResult
    public func pexpire(_ key: String, milliseconds: Int) async throws -> Bool {
        try await send(RESPCommand("PEXPIRE", key, milliseconds)).int == 1
    }

    /// `RPUSH key value…`: the list's new length.
    @discardableResult
    public func rpush(_ key: String, _ values: [any RESPArgument]) async throws -> Int {
        try await send(RESPCommand("RPUSH", arguments: [key] + values)).int ?? 0
    }

    /// `LPUSH key value…`: the list's new length.
    @discardableResult
    public func lpush(_ key: String, _ values: [any RESPArgument]) async throws -> Int {
        try await send(RESPCommand("LPUSH", arguments: [key] + values)).int ?? 0
    }

    /// `LPOP key`: the first element, or `nil` when the list is empty.
    public func lpop(_ key: String) async throws -> ByteBuffer? {
        try await send(RESPCommand("LPOP", key)).buffer
    }

    /// `LRANGE key start stop` as buffers.
    public func lrange(_ key: String, _ start: Int, _ stop: Int) async throws -> [ByteBuffer] {
        try await send(RESPCommand("LRANGE", key, start, stop)).array?.compactMap(\.buffer) ?? []
    }

    /// `BLPOP key… timeout`: the key and element popped, or `nil` after `timeout` seconds (0 waits forever).
    /// Runs on a dedicated connection.
    public func blpop(_ keys: [String], timeout: Double) async throws -> (key: String, value: ByteBuffer)? {
        let reply = try await send(RESPCommand("BLPOP", arguments: keys + [timeout]))
        guard let items = reply.array, items.count == 2, let key = items[0].string, let value = items[1].buffer else {
            return nil
        }
        return (key, value)
    }

    /// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout`: the element moved, or `nil` on timeout.
    public func blmove(
        _ source: String, _ destination: String, from: String = "LEFT", to: String = "RIGHT", timeout: Double
    ) async throws -> ByteBuffer? {
        try await send(RESPCommand("BLMOVE", source, destination, from, to, timeout)).buffer
    }

    /// `HSET key field value [field value…]`: how many fields were added.
    @discardableResult
    public func hset(_ key: String, _ fields: [(String, any RESPArgument)]) async throws -> Int {
        var args: [any RESPArgument] = [key]
        for (f, v) in fields { args += [f, v] }
        return try await send(RESPCommand("HSET", arguments: args)).int ?? 0
    }

    /// `HGET key field`.
    public func hget(_ key: String, _ field: String) async throws -> ByteBuffer? {
        try await send(RESPCommand("HGET", key, field)).buffer
    }

    /// `HGETALL key` as a dictionary of UTF-8 field names to values (RESP2 and RESP3 alike).
    public func hgetall(_ key: String) async throws -> [String: ByteBuffer] {
        let flat = try await send(RESPCommand("HGETALL", key)).array ?? []
        var result: [String: ByteBuffer] = [:]
        var i = 0
        while i + 1 < flat.count {
            if let f = flat[i].string, let v = flat[i + 1].buffer { result[f] = v }
            i += 2
        }
        return result
    }

    /// `PUBLISH channel message`: how many subscribers received it.
    @discardableResult
    public func publish(_ channel: String, _ message: some RESPArgument) async throws -> Int {
        try await send(RESPCommand("PUBLISH", channel, message)).int ?? 0
    }

    /// `PING`: round-trips to the server.
    public func ping() async throws {
        _ = try await send(RESPCommand("PING"))
    }
}
