import NIOCore

extension Commands {
    static let stringCommands: [CommandSpec] = [
        CommandSpec("get", arity: 2, [], get),
        CommandSpec("set", arity: -3, .write, set),
        CommandSpec("setnx", arity: 3, .write, setnx),
        CommandSpec("setex", arity: 4, .write) { try setWithExpiry(&$0, milliseconds: false) },
        CommandSpec("psetex", arity: 4, .write) { try setWithExpiry(&$0, milliseconds: true) },
        CommandSpec("getdel", arity: 2, .write, getdel),
        CommandSpec("getset", arity: 3, .write, getset),
        CommandSpec("getex", arity: -2, .write, getex),
        CommandSpec("incr", arity: 2, .write) { try incrementBy(&$0, 1) },
        CommandSpec("decr", arity: 2, .write) { try incrementBy(&$0, -1) },
        CommandSpec("incrby", arity: 3, .write) { try incrementBy(&$0, try $0.integer(2)) },
        CommandSpec("decrby", arity: 3, .write, decrby),
        CommandSpec("incrbyfloat", arity: 3, .write, incrbyfloat),
        CommandSpec("append", arity: 3, .write, append),
        CommandSpec("strlen", arity: 2, [], strlen),
        CommandSpec("getrange", arity: 4, [], getrange),
        CommandSpec("substr", arity: 4, [], getrange),
        CommandSpec("setrange", arity: 4, .write, setrange),
        CommandSpec("mget", arity: -2, [], mget),
        CommandSpec("mset", arity: -3, .write, mset),
        CommandSpec("msetnx", arity: -3, .write, msetnx),
    ]

    /// The largest string value (Redis' `proto-max-bulk-len`).
    static let maxStringLength = 512 * 1024 * 1024

    // MARK: GET / SET

    private static func get(_ context: inout CommandContext) throws(CommandError) {
        if let value = try context.stringValue(context.args.bytes(1)) {
            context.out.writeBulk(value)
        } else {
            context.out.writeNullBulk(resp3: context.resp3)
        }
    }

    /// How `SET` treats an existing key's expiry.
    private enum ExpiryOption {
        case clear
        case keep
        case at(Int64)
    }

    private static func set(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let database = context.db
        if context.args.count == 3 {
            // The common case: no options.
            database.set(key, .string(context.args.bytes(2)))
            database.touch(key)
            context.out.writeOK()
            return
        }
        var onlyIfAbsent = false
        var onlyIfPresent = false
        var returnOld = false
        var expiry = ExpiryOption.clear
        var hasExpiry = false
        var index = 3
        let count = context.args.count
        while index < count {
            let hasNext = index + 1 < count
            if context.args.matches(index, "nx") && !onlyIfPresent {
                onlyIfAbsent = true
            } else if context.args.matches(index, "xx") && !onlyIfAbsent {
                onlyIfPresent = true
            } else if context.args.matches(index, "get") {
                returnOld = true
            } else if context.args.matches(index, "keepttl") && !hasExpiry {
                expiry = .keep
                hasExpiry = true
            } else if hasNext && !hasExpiry, let unit = expiryUnit(context.args, index) {
                expiry = .at(try absoluteExpiry(context, index + 1, unit: unit, command: "set"))
                hasExpiry = true
                index += 1
            } else {
                throw .syntax
            }
            index += 1
        }
        let existing = database.lookup(key)
        var old: StoreBytes? = nil
        if returnOld, let existing {
            guard case .string(let bytes) = existing.value else { throw .wrongType }
            old = bytes
        }
        if (onlyIfAbsent && existing != nil) || (onlyIfPresent && existing == nil) {
            if returnOld, let old {
                context.out.writeBulk(old)
            } else {
                context.out.writeNullBulk(resp3: context.resp3)
            }
            return
        }
        let value = StoreValue.string(context.args.bytes(2))
        switch expiry {
        case .clear:
            database.set(key, value)
        case .keep:
            database.set(key, value, expiresAt: existing?.expiresAt ?? 0)
        case .at(let time):
            if time <= context.store.now {
                database.remove(key)
            } else {
                database.set(key, value, expiresAt: time)
            }
        }
        database.touch(key)
        if returnOld {
            if let old { context.out.writeBulk(old) } else { context.out.writeNullBulk(resp3: context.resp3) }
        } else {
            context.out.writeOK()
        }
    }

    /// The unit of an `EX`/`PX`/`EXAT`/`PXAT` option: (milliseconds?, absolute?).
    static func expiryUnit(_ args: CommandArguments, _ index: Int) -> (milliseconds: Bool, absolute: Bool)? {
        if args.matches(index, "ex") { return (false, false) }
        if args.matches(index, "px") { return (true, false) }
        if args.matches(index, "exat") { return (false, true) }
        if args.matches(index, "pxat") { return (true, true) }
        return nil
    }

    /// Parses an expiry argument into absolute Unix milliseconds, with Redis' checks and messages.
    static func absoluteExpiry(
        _ context: CommandContext,
        _ index: Int,
        unit: (milliseconds: Bool, absolute: Bool),
        command: String
    ) throws(CommandError) -> Int64 {
        let raw = try context.integer(index)
        guard raw > 0, unit.milliseconds || raw <= Int64.max / 1000 else { throw .invalidExpireTime(command) }
        let milliseconds = unit.milliseconds ? raw : raw * 1000
        if unit.absolute { return milliseconds }
        let now = context.store.now
        guard milliseconds <= Int64.max - now else { throw .invalidExpireTime(command) }
        return now + milliseconds
    }

    private static func setnx(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let database = context.db
        if database.lookup(key) != nil {
            context.out.writeIntegerReply(0)
            return
        }
        database.set(key, .string(context.args.bytes(2)))
        database.touch(key)
        context.out.writeIntegerReply(1)
    }

    private static func setWithExpiry(_ context: inout CommandContext, milliseconds: Bool) throws(CommandError) {
        let name = milliseconds ? "psetex" : "setex"
        let time = try absoluteExpiry(context, 2, unit: (milliseconds, false), command: name)
        let key = context.args.bytes(1)
        context.db.set(key, .string(context.args.bytes(3)), expiresAt: time)
        context.db.touch(key)
        context.out.writeOK()
    }

    private static func getdel(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        guard let value = try context.stringValue(key) else {
            context.out.writeNullBulk(resp3: context.resp3)
            return
        }
        context.db.remove(key)
        context.db.touch(key)
        context.out.writeBulk(value)
    }

    private static func getset(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let old = try context.stringValue(key)
        context.db.set(key, .string(context.args.bytes(2)))
        context.db.touch(key)
        if let old { context.out.writeBulk(old) } else { context.out.writeNullBulk(resp3: context.resp3) }
    }

    private static func getex(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        var expiry: Int64? = nil
        var persist = false
        var index = 2
        while index < context.args.count {
            if context.args.matches(index, "persist") && expiry == nil && !persist {
                persist = true
            } else if index + 1 < context.args.count && expiry == nil && !persist,
                      let unit = expiryUnit(context.args, index) {
                expiry = try absoluteExpiry(context, index + 1, unit: unit, command: "getex")
                index += 1
            } else {
                throw .syntax
            }
            index += 1
        }
        guard let value = try context.stringValue(key) else {
            context.out.writeNullBulk(resp3: context.resp3)
            return
        }
        let database = context.db
        if let expiry {
            if expiry <= context.store.now {
                database.remove(key)
            } else {
                database.setExpiry(key, at: expiry)
            }
            database.touch(key)
        } else if persist, database.removeExpiry(key) {
            database.touch(key)
        }
        context.out.writeBulk(value)
    }

    // MARK: Counters

    private static func decrby(_ context: inout CommandContext) throws(CommandError) {
        let decrement = try context.integer(2)
        guard decrement != Int64.min else { throw .message("ERR decrement would overflow") }
        try incrementBy(&context, -decrement)
    }

    private static func incrementBy(_ context: inout CommandContext, _ increment: Int64) throws(CommandError) {
        let key = context.args.bytes(1)
        let database = context.db
        var current: Int64 = 0
        if let value = try context.stringValue(key) {
            guard let parsed = value.withUnsafeBytes({ Number.parseInt64($0) }) else { throw .notInteger }
            current = parsed
        }
        let (result, overflow) = current.addingReportingOverflow(increment)
        if overflow { throw .overflow }
        database.replaceValue(key, .string(StoreBytes(decimal: result)))
        database.touch(key)
        context.out.writeRESPInteger(result)
    }

    private static func incrbyfloat(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        var current: Number.WideFloat = 0
        if let value = try context.stringValue(key) {
            guard let parsed = value.withUnsafeBytes({ Number.parseWideFloat($0) }) else { throw .notFloat }
            current = parsed
        }
        guard let increment = context.args.withBytes(2, { Number.parseWideFloat($0) }) else { throw .notFloat }
        let result = current + increment
        guard result.isFinite else { throw .message("ERR increment would produce NaN or Infinity") }
        let formatted = Number.formatHuman(result)
        context.db.replaceValue(key, .string(formatted))
        context.db.touch(key)
        context.out.writeBulk(formatted)
    }

    // MARK: Byte strings

    private static func append(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let database = context.db
        guard let existing = try context.stringValue(key) else {
            let value = context.args.bytes(2)
            database.set(key, .string(value))
            database.touch(key)
            context.out.writeIntegerReply(value.count)
            return
        }
        guard existing.count + context.args.length(2) <= maxStringLength else {
            throw .message("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        }
        var bytes = existing.array
        context.args.withBytes(2) { bytes.append(contentsOf: $0) }
        let length = bytes.count
        database.replaceValue(key, .string(StoreBytes(bytes)))
        database.touch(key)
        context.out.writeIntegerReply(length)
    }

    private static func strlen(_ context: inout CommandContext) throws(CommandError) {
        context.out.writeIntegerReply(try context.stringValue(context.args.bytes(1))?.count ?? 0)
    }

    private static func getrange(_ context: inout CommandContext) throws(CommandError) {
        var start = try context.integer(2)
        var end = try context.integer(3)
        guard let value = try context.stringValue(context.args.bytes(1)) else {
            context.out.writeBulk(StoreBytes.empty)
            return
        }
        let length = Int64(value.count)
        if start < 0 && end < 0 && start > end {
            context.out.writeBulk(StoreBytes.empty)
            return
        }
        if start < 0 { start = length + start }
        if end < 0 { end = length + end }
        if start < 0 { start = 0 }
        if end < 0 { end = 0 }
        if end >= length { end = length - 1 }
        if start > end || length == 0 {
            context.out.writeBulk(StoreBytes.empty)
            return
        }
        value.withUnsafeBytes { bytes in
            context.out.writeBulk(UnsafeRawBufferPointer(rebasing: bytes[Int(start)...Int(end)]))
        }
    }

    private static func setrange(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let offset = try context.integer(2)
        guard offset >= 0 else { throw .message("ERR offset is out of range") }
        let existing = try context.stringValue(key)
        let patchLength = context.args.length(3)
        if patchLength == 0 {
            context.out.writeIntegerReply(existing?.count ?? 0)
            return
        }
        // Compared without adding: a client-chosen offset near Int64.max must not overflow.
        guard offset <= Int64(maxStringLength - patchLength) else {
            throw .message("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        }
        var bytes = existing?.array ?? []
        let end = Int(offset) + patchLength
        if bytes.count < end { bytes.append(contentsOf: repeatElement(0, count: end - bytes.count)) }
        context.args.withBytes(3) { patch in
            for i in 0..<patch.count { bytes[Int(offset) + i] = patch[i] }
        }
        let length = bytes.count
        if existing == nil {
            context.db.set(key, .string(StoreBytes(bytes)))
        } else {
            context.db.replaceValue(key, .string(StoreBytes(bytes)))
        }
        context.db.touch(key)
        context.out.writeIntegerReply(length)
    }

    // MARK: Multiple keys

    private static func mget(_ context: inout CommandContext) throws(CommandError) {
        let database = context.db
        context.out.writeArrayHeader(context.args.count - 1)
        for index in 1..<context.args.count {
            if let entry = database.lookup(context.args.bytes(index)), case .string(let value) = entry.value {
                context.out.writeBulk(value)
            } else {
                context.out.writeNullBulk(resp3: context.resp3)
            }
        }
    }

    private static func mset(_ context: inout CommandContext) throws(CommandError) {
        guard context.args.count % 2 == 1 else {
            throw .message("ERR wrong number of arguments for '\(context.commandName)' command")
        }
        let database = context.db
        for index in stride(from: 1, to: context.args.count, by: 2) {
            let key = context.args.bytes(index)
            database.set(key, .string(context.args.bytes(index + 1)))
            database.touch(key)
        }
        context.out.writeOK()
    }

    private static func msetnx(_ context: inout CommandContext) throws(CommandError) {
        guard context.args.count % 2 == 1 else {
            throw .message("ERR wrong number of arguments for '\(context.commandName)' command")
        }
        let database = context.db
        for index in stride(from: 1, to: context.args.count, by: 2) where database.lookup(context.args.bytes(index)) != nil {
            context.out.writeIntegerReply(0)
            return
        }
        for index in stride(from: 1, to: context.args.count, by: 2) {
            let key = context.args.bytes(index)
            database.set(key, .string(context.args.bytes(index + 1)))
            database.touch(key)
        }
        context.out.writeIntegerReply(1)
    }
}
