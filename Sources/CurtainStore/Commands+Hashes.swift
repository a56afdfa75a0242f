import NIOCore

extension Commands {
    static let hashCommands: [CommandSpec] = [
        CommandSpec("hset", arity: -4, .write) { try hset(&$0, replyOK: false) },
        CommandSpec("hmset", arity: -4, .write) { try hset(&$0, replyOK: true) },
        CommandSpec("hsetnx", arity: 4, .write, hsetnx),
        CommandSpec("hget", arity: 3, [], hget),
        CommandSpec("hmget", arity: -3, [], hmget),
        CommandSpec("hgetall", arity: 2, [], hgetall),
        CommandSpec("hdel", arity: -3, .write, hdel),
        CommandSpec("hincrby", arity: 4, .write, hincrby),
        CommandSpec("hincrbyfloat", arity: 4, .write, hincrbyfloat),
        CommandSpec("hlen", arity: 2, [], hlen),
        CommandSpec("hexists", arity: 3, [], hexists),
        CommandSpec("hkeys", arity: 2, [], hkeys),
        CommandSpec("hvals", arity: 2, [], hvals),
        CommandSpec("hstrlen", arity: 3, [], hstrlen),
        CommandSpec("hrandfield", arity: -2, [], hrandfield),
        CommandSpec("hscan", arity: -3, [], hscan),
    ]

    private static func hrandfield(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        guard context.args.count >= 3 else {
            if let hash = try context.hashValue(key), let field = hash.fields.keys.randomElement() {
                context.out.writeBulk(field)
            } else {
                context.out.writeNullBulk(resp3: context.resp3)
            }
            return
        }
        let count = try randomSampleCount(context, 2)
        guard context.args.count == 3 || (context.args.count == 4 && context.args.matches(3, "withvalues")) else {
            throw .syntax
        }
        let withValues = context.args.count == 4
        if withValues && count > Int64.max / 2 { throw .message("ERR value is out of range") }
        guard let hash = try context.hashValue(key), count != 0 else {
            context.out.writeArrayHeader(0)
            return
        }
        let chosen: [StoreBytes]
        if count < 0 {
            let fields = Array(hash.fields.keys)
            chosen = (0..<Int(-count)).map { _ in fields.randomElement()! }
        } else {
            chosen = Array(hash.fields.keys.shuffled().prefix(Int(min(count, Int64(hash.fields.count)))))
        }
        let pairs = withValues && context.resp3
        context.out.writeArrayHeader(withValues && !pairs ? chosen.count * 2 : chosen.count)
        for field in chosen {
            if pairs { context.out.writeArrayHeader(2) }
            context.out.writeBulk(field)
            if withValues { context.out.writeBulk(hash.fields[field]!) }
        }
    }

    private static func hscan(_ context: inout CommandContext) throws(CommandError) {
        let cursor = try scanCursor(context, 2)
        let options = try ScanOptions(context, from: 3, allowType: false)
        guard let hash = try context.hashValue(context.args.bytes(1)) else {
            writeScanReply(&context, next: 0, items: [])
            return
        }
        let (next, fields) = scanPage(Array(hash.fields.keys), cursor: cursor, count: options.count)
        var items: [StoreBytes] = []
        for field in fields where options.matches(context, field) {
            items.append(field)
            items.append(hash.fields[field]!)
        }
        writeScanReply(&context, next: next, items: items)
    }

    /// The hash at argument 1, created (and stored) if absent.
    private static func hashForWriting(_ context: inout CommandContext) throws(CommandError) -> (StoreBytes, HashValue) {
        let key = context.args.bytes(1)
        if let hash = try context.hashValue(key) { return (key, hash) }
        let hash = HashValue()
        context.db.set(key, .hash(hash))
        return (key, hash)
    }

    private static func hset(_ context: inout CommandContext, replyOK: Bool) throws(CommandError) {
        guard context.args.count % 2 == 0 else {
            throw .message("ERR wrong number of arguments for '\(context.commandName)' command")
        }
        let (key, hash) = try hashForWriting(&context)
        var added = 0
        let limits = context.store.encodingLimits
        for index in stride(from: 2, to: context.args.count, by: 2) {
            let field = context.args.bytes(index)
            let value = context.args.bytes(index + 1)
            if hash.fields.updateValue(value, forKey: field) == nil { added += 1 }
            hash.noteWrite(field, value, limits: limits)
        }
        context.db.touch(key)
        context.notify(.hash, "hset", key)
        if replyOK { context.out.writeOK() } else { context.out.writeIntegerReply(added) }
    }

    private static func hsetnx(_ context: inout CommandContext) throws(CommandError) {
        let (key, hash) = try hashForWriting(&context)
        let field = context.args.bytes(2)
        if hash.fields[field] != nil {
            context.out.writeIntegerReply(0)
            return
        }
        hash.fields[field] = context.args.bytes(3)
        hash.noteWrite(field, context.args.bytes(3), limits: context.store.encodingLimits)
        context.db.touch(key)
        context.notify(.hash, "hset", key)
        context.out.writeIntegerReply(1)
    }

    private static func hget(_ context: inout CommandContext) throws(CommandError) {
        if let hash = try context.hashValue(context.args.bytes(1)), let value = hash.fields[context.args.bytes(2)] {
            context.out.writeBulk(value)
        } else {
            context.out.writeNullBulk(resp3: context.resp3)
        }
    }

    private static func hmget(_ context: inout CommandContext) throws(CommandError) {
        let hash = try context.hashValue(context.args.bytes(1))
        context.out.writeArrayHeader(context.args.count - 2)
        for index in 2..<context.args.count {
            if let value = hash?.fields[context.args.bytes(index)] {
                context.out.writeBulk(value)
            } else {
                context.out.writeNullBulk(resp3: context.resp3)
            }
        }
    }

    private static func hgetall(_ context: inout CommandContext) throws(CommandError) {
        guard let hash = try context.hashValue(context.args.bytes(1)) else {
            context.out.writeMapHeader(0, resp3: context.resp3)
            return
        }
        context.out.writeMapHeader(hash.fields.count, resp3: context.resp3)
        for (field, value) in hash.fields {
            context.out.writeBulk(field)
            context.out.writeBulk(value)
        }
    }

    private static func hdel(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        guard let hash = try context.hashValue(key) else {
            context.out.writeIntegerReply(0)
            return
        }
        var removed = 0
        for index in 2..<context.args.count where hash.fields.removeValue(forKey: context.args.bytes(index)) != nil {
            removed += 1
        }
        if removed > 0 {
            context.notify(.hash, "hdel", key)
            if hash.fields.isEmpty {
                context.db.remove(key)
                context.notify(.generic, "del", key)
            }
            context.db.touch(key)
        }
        context.out.writeIntegerReply(removed)
    }

    private static func hincrby(_ context: inout CommandContext) throws(CommandError) {
        let increment = try context.integer(3)
        let key = context.args.bytes(1)
        let field = context.args.bytes(2)
        var current: Int64 = 0
        let existing = try context.hashValue(key)
        if let value = existing?.fields[field] {
            guard let parsed = value.withUnsafeBytes({ Number.parseInt64($0) }) else {
                throw .message("ERR hash value is not an integer")
            }
            current = parsed
        }
        let (result, overflow) = current.addingReportingOverflow(increment)
        if overflow { throw .overflow }
        let (_, hash) = try hashForWriting(&context)
        hash.fields[field] = StoreBytes(decimal: result)
        hash.noteWrite(field, StoreBytes(decimal: result), limits: context.store.encodingLimits)
        context.db.touch(key)
        context.notify(.hash, "hincrby", key)
        context.out.writeRESPInteger(result)
    }

    private static func hincrbyfloat(_ context: inout CommandContext) throws(CommandError) {
        guard let increment = context.args.withBytes(3, { Number.parseWideFloat($0) }) else { throw .notFloat }
        guard increment.isFinite else { throw .message("ERR value is NaN or Infinity") }
        let key = context.args.bytes(1)
        let field = context.args.bytes(2)
        var current: Number.WideFloat = 0
        let existing = try context.hashValue(key)
        if let value = existing?.fields[field] {
            guard let parsed = value.withUnsafeBytes({ Number.parseWideFloat($0) }) else {
                throw .message("ERR hash value is not a float")
            }
            current = parsed
        }
        let result = current + increment
        guard result.isFinite else { throw .message("ERR increment would produce NaN or Infinity") }
        let formatted = Number.formatHuman(result)
        let (_, hash) = try hashForWriting(&context)
        hash.fields[field] = formatted
        hash.noteWrite(field, formatted, limits: context.store.encodingLimits)
        context.db.touch(key)
        context.notify(.hash, "hincrbyfloat", key)
        context.out.writeBulk(formatted)
    }

    private static func hlen(_ context: inout CommandContext) throws(CommandError) {
        context.out.writeIntegerReply(try context.hashValue(context.args.bytes(1))?.fields.count ?? 0)
    }

    private static func hexists(_ context: inout CommandContext) throws(CommandError) {
        let hash = try context.hashValue(context.args.bytes(1))
        context.out.writeIntegerReply(hash?.fields[context.args.bytes(2)] != nil ? 1 : 0)
    }

    private static func hkeys(_ context: inout CommandContext) throws(CommandError) {
        guard let hash = try context.hashValue(context.args.bytes(1)) else {
            context.out.writeArrayHeader(0)
            return
        }
        context.out.writeArrayHeader(hash.fields.count)
        for field in hash.fields.keys { context.out.writeBulk(field) }
    }

    private static func hvals(_ context: inout CommandContext) throws(CommandError) {
        guard let hash = try context.hashValue(context.args.bytes(1)) else {
            context.out.writeArrayHeader(0)
            return
        }
        context.out.writeArrayHeader(hash.fields.count)
        for value in hash.fields.values { context.out.writeBulk(value) }
    }

    private static func hstrlen(_ context: inout CommandContext) throws(CommandError) {
        let hash = try context.hashValue(context.args.bytes(1))
        context.out.writeIntegerReply(hash?.fields[context.args.bytes(2)]?.count ?? 0)
    }
}
