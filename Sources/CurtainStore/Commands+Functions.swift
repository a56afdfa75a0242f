import NIOCore

/// `FCALL` and `FUNCTION LOAD` for Curtain's own function library, `curtain_v1`.
///
/// On `redis-server` the library is Lua, loaded once with `FUNCTION LOAD` (its source is in the `Curtain`
/// module, `StoreFunctions`); the embedded store runs no Lua and has the same functions built in, written
/// here against the keyspace with the same keys, types and replies, so one conformance suite checks both.
/// They make a lock a queue with hand-over: a release passes the lock (and a guarded value) straight to the
/// next live waiter, who is blocked in `BLPOP` on its own grant list, so a contended hand-over costs one
/// round trip instead of a wake-up followed by a retry.
///
/// Keys derived from a lock key `L`: `L` (the holder's token, with the lease as its expiry), `L:fence` (the
/// fencing counter), `L:queue` (waiting tokens, oldest first), `L:waiters` (a hash: token → the Unix
/// millisecond after which a waiter that stopped polling is presumed dead, and the lease it asked for,
/// which a hand-over grants it, as `"<deadline>:<lease>"`) and `L:grant:<token>` (a list
/// receiving `"<fence>"`, or `"<fence>:<value>"` when the lock guards a value key).
extension Commands {
    static let functionCommands: [CommandSpec] = [
        CommandSpec("fcall", arity: -3, .write, fcall),
        CommandSpec("function", arity: -2, .write, function),
    ]

    /// The library's name, as `FUNCTION LOAD` reports it.
    static let functionLibrary = "curtain_v1"

    private static func function(_ context: inout CommandContext) throws(CommandError) {
        if context.args.matches(1, "load") {
            // FUNCTION LOAD [REPLACE] code: accept Curtain's own library (built in), refuse any other.
            let code = context.args.string(context.args.count - 1)
            guard context.args.count <= 4, code.hasPrefix("#!lua name=\(functionLibrary)") else {
                throw .message("ERR the embedded store runs no Lua: only the built-in library '\(functionLibrary)' exists")
            }
            context.out.writeBulk(functionLibrary)
        } else if context.args.matches(1, "flush") {
            context.out.writeOK()  // the built-in library cannot be removed
        } else {
            throw .message("ERR unknown subcommand '\(context.args.string(1))'. The embedded store supports FUNCTION LOAD and FLUSH")
        }
    }

    private static func fcall(_ context: inout CommandContext) throws(CommandError) {
        guard let keyCount = context.args.int64(2), keyCount >= 0 else {
            throw .message("ERR Bad number of keys provided")
        }
        guard Int(keyCount) <= context.args.count - 3 else {
            throw .message("ERR Number of keys can't be greater than number of args")
        }
        let keys = (0..<Int(keyCount)).map { context.args.bytes(3 + $0) }
        let args = (3 + Int(keyCount)..<context.args.count).map { context.args.bytes($0) }
        let name = context.args.string(1)
        let result: Int
        switch name {
        case "curtain_lock_v1":
            try requireShape(name, keys: keys, args: args, keyRange: 1...2, argCount: 3)
            result = try lockFunction(context.db, keys: keys, args: args)
        case "curtain_unlock_v1":
            try requireShape(name, keys: keys, args: args, keyRange: 1...2, argCount: keys.count == 2 ? 2...3 : 2...2)
            result = try unlockFunction(context.db, keys: keys, args: args)
        case "curtain_renew_v1":
            try requireShape(name, keys: keys, args: args, keyRange: 1...1, argCount: 2)
            result = try renewFunction(context.db, keys: keys, args: args)
        case "curtain_log_append_v1":
            try requireShape(name, keys: keys, args: args, keyRange: 1...1, argCount: 2)
            result = try logAppendFunction(context.db, keys: keys, args: args)
        case "curtain_log_read_v1":
            try requireShape(name, keys: keys, args: args, keyRange: 1...1, argCount: 1...2)
            try logReadFunction(&context, keys: keys, args: args)
            return
        default:
            throw .message("ERR Function not found")
        }
        context.out.writeIntegerReply(result)
    }

    private static func requireShape(
        _ name: String, keys: [StoreBytes], args: [StoreBytes], keyRange: ClosedRange<Int>, argCount: Int
    ) throws(CommandError) {
        try requireShape(name, keys: keys, args: args, keyRange: keyRange, argCount: argCount...argCount)
    }

    private static func requireShape(
        _ name: String, keys: [StoreBytes], args: [StoreBytes], keyRange: ClosedRange<Int>, argCount: ClosedRange<Int>
    ) throws(CommandError) {
        guard keyRange.contains(keys.count), argCount.contains(args.count) else {
            throw .message("ERR \(name): wrong number of keys or arguments")
        }
    }

    // MARK: The functions

    /// `curtain_lock_v1` KEYS: lock [value]; ARGV: token, lease ms, waiter window ms (0: do not queue).
    /// A free lock is granted at once (1); a held one queues the caller, or refreshes its place (0).
    private static func lockFunction(_ db: Database, keys: [StoreBytes], args: [StoreBytes]) throws(CommandError) -> Int {
        let (lock, token) = (keys[0], args[0])
        let lease = try positive(args[1])
        guard let window = args[2].withUnsafeBytes({ Number.parseInt64($0) }), window >= 0 else {
            throw .message("ERR value is not a non-negative integer")
        }
        guard window <= longestDuration else { throw durationOutOfRange }
        let queue = derived(lock, ":queue")
        let waiters = derived(lock, ":waiters")
        try checkTypes(db, lock: lock, valueKey: keys.count > 1 ? keys[1] : nil)
        guard let holder = try db.stringValue(lock) else {
            _ = try removeFromQueue(db, queue: queue, waiters: waiters, token: token)
            try grant(db, lock: lock, to: token, lease: lease, valueKey: keys.count > 1 ? keys[1] : nil)
            return 1
        }
        if holder == token { return 1 }  // handed over already: the grant waits in its list
        if window == 0 { return 0 }  // a try: do not queue
        let now = db.store.now
        let table = try hashCreating(db, waiters)
        let isNew = table.fields.updateValue(StoreBytes("\(now + window):\(lease)"), forKey: token) == nil
        db.touch(waiters)
        if isNew { Commands.pushElement(token, onto: queue, toLeft: false, in: db) }
        for key in [queue, waiters] where (db.peek(key)?.expiresAt ?? 0) < now + window {
            db.setExpiry(key, at: now + window)  // extended, never shortened
        }
        return 0
    }

    /// `curtain_unlock_v1` KEYS: lock [value]; ARGV: token, lease ms [new value]. Leaves the queue (a waiter
    /// giving up); if the caller holds the lock, stores the new value and hands the lock to the oldest live
    /// waiter, or frees it (1). 0 if the caller did not hold it (nothing stored).
    private static func unlockFunction(_ db: Database, keys: [StoreBytes], args: [StoreBytes]) throws(CommandError) -> Int {
        let (lock, token) = (keys[0], args[0])
        _ = try positive(args[1])  // checked as in Lua; a hand-over grants the waiter's own lease
        let queue = derived(lock, ":queue")
        let waiters = derived(lock, ":waiters")
        try checkTypes(db, lock: lock, valueKey: keys.count > 1 ? keys[1] : nil)
        _ = try removeFromQueue(db, queue: queue, waiters: waiters, token: token)
        let ownGrant = derived(lock, ":grant:", token)
        if db.remove(ownGrant) != nil { db.touch(ownGrant) }
        guard try db.stringValue(lock) == token else { return 0 }
        let valueKey = keys.count > 1 ? keys[1] : nil
        if let valueKey, args.count > 2 {
            db.set(valueKey, .string(args[2]))
            db.touch(valueKey)
        }
        let now = db.store.now
        while let list = try db.listValue(queue), !list.items.isEmpty {
            let next = Commands.popElement(from: list, at: queue, fromLeft: true, in: db)
            var entry: (deadline: Int64, lease: Int64)?
            if let table = try db.hashValue(waiters) {
                entry = table.fields.removeValue(forKey: next).flatMap(Self.waiterEntry)
                if table.fields.isEmpty { db.remove(waiters) }
                db.touch(waiters)
            }
            if let entry, entry.deadline >= now {
                try grant(db, lock: lock, to: next, lease: entry.lease, valueKey: valueKey)
                return 1
            }
        }
        db.remove(lock)
        db.touch(lock)
        return 1
    }

    /// `curtain_renew_v1` KEYS: lock; ARGV: token, lease ms. Extends the lease if the caller holds it (1).
    private static func renewFunction(_ db: Database, keys: [StoreBytes], args: [StoreBytes]) throws(CommandError) -> Int {
        let lease = try positive(args[1])
        guard try db.stringValue(keys[0]) == args[0] else { return 0 }
        db.setExpiry(keys[0], at: db.store.now + lease)
        return 1
    }

    /// `curtain_log_append_v1` KEYS: log; ARGV: entry, most entries kept. Appends to the delta log (its
    /// count of entries ever appended in `log:seq`), drops the oldest beyond the limit; the entry's number.
    private static func logAppendFunction(_ db: Database, keys: [StoreBytes], args: [StoreBytes]) throws(CommandError) -> Int {
        let log = keys[0]
        let limit = try positive(args[1])
        let seqKey = derived(log, ":seq")
        _ = try db.listValue(log)
        let seq = try successor(of: try counter(db, seqKey))
        db.replaceValue(seqKey, .string(StoreBytes(decimal: seq)))
        db.touch(seqKey)
        Commands.pushElement(args[0], onto: log, toLeft: false, in: db)
        if let entries = try db.listValue(log), Int64(entries.items.count) > limit {
            _ = Commands.popElement(from: entries, at: log, fromLeft: true, in: db)
        }
        return Int(seq)
    }

    /// `curtain_log_read_v1` KEYS: log; ARGV: after [tag]. Replies `[last number, entries no longer kept,
    /// entry…]`, leaving out the entries that start with the bytes `tag` (the reader's own).
    private static func logReadFunction(_ context: inout CommandContext, keys: [StoreBytes], args: [StoreBytes]) throws(CommandError) {
        let db = context.db
        guard let after = args[0].withUnsafeBytes({ Number.parseInt64($0) }), after >= 0 else {
            throw .message("ERR value is not a non-negative integer")
        }
        let entries = try db.listValue(keys[0])
        let seq = try counter(db, derived(keys[0], ":seq"))
        let count = Int64(entries?.items.count ?? 0)
        // Every step checked: `after` comes from the client and `seq` from a key a client may have rewritten.
        let (beforeFirst, overflow) = seq.subtractingReportingOverflow(count)
        guard !overflow, beforeFirst < Int64.max else { throw .overflow }
        let first = beforeFirst + 1
        let start = after < first ? first : after + (after < seq ? 1 : 0)
        var returned: [StoreBytes] = []
        if let entries, after < seq, start <= seq {
            let tag = args.count > 1 ? args[1].array : nil
            for item in entries.items[Int(start - first)...] {
                if let tag, item.count >= tag.count, item.withUnsafeBytes({ $0.starts(with: tag) }) { continue }
                returned.append(item)
            }
        }
        context.out.writeArrayHeader(2 + returned.count)
        context.out.writeRESPInteger(seq)
        context.out.writeRESPInteger(after < beforeFirst ? beforeFirst - after : 0)
        for item in returned { context.out.writeBulk(item) }
    }

    // MARK: Helpers

    /// Throws `WRONGTYPE` before anything changes if one of the lock's keys holds the wrong type.
    private static func checkTypes(_ db: Database, lock: StoreBytes, valueKey: StoreBytes?) throws(CommandError) {
        _ = try db.stringValue(lock)
        _ = try db.stringValue(derived(lock, ":fence"))
        _ = try db.listValue(derived(lock, ":queue"))
        _ = try db.hashValue(derived(lock, ":waiters"))
        if let valueKey { _ = try db.stringValue(valueKey) }
    }

    /// Makes `token` the holder with a fresh fence, and pushes its grant.
    private static func grant(
        _ db: Database, lock: StoreBytes, to token: StoreBytes, lease: Int64, valueKey: StoreBytes?
    ) throws(CommandError) {
        let fenceKey = derived(lock, ":fence")
        let fence = try successor(of: try counter(db, fenceKey))
        var payload = StoreBytes(decimal: fence).array
        if let valueKey, let value = try db.stringValue(valueKey) {
            payload.append(UInt8(ascii: ":"))
            payload += value.array
        }
        let now = db.store.now
        db.set(lock, .string(token), expiresAt: now + lease)
        db.touch(lock)
        db.replaceValue(fenceKey, .string(StoreBytes(decimal: fence)))
        db.touch(fenceKey)
        let box = derived(lock, ":grant:", token)
        if db.remove(box) != nil { db.touch(box) }
        Commands.pushElement(StoreBytes(payload), onto: box, toLeft: false, in: db)
        db.setExpiry(box, at: now + lease)
    }

    /// A waiter's `"<deadline>:<lease>"`.
    private static func waiterEntry(_ bytes: StoreBytes) -> (deadline: Int64, lease: Int64)? {
        let parts = bytes.string.split(separator: ":")
        guard parts.count == 2, let deadline = Int64(parts[0]), let lease = Int64(parts[1]), deadline >= 0, lease > 0,
              lease <= longestDuration
        else {
            return nil
        }
        return (deadline, lease)
    }

    /// The integer at `key`, 0 if absent.
    private static func counter(_ db: Database, _ key: StoreBytes) throws(CommandError) -> Int64 {
        guard let current = try db.stringValue(key) else { return 0 }
        guard let parsed = current.withUnsafeBytes({ Number.parseInt64($0) }) else { throw .notInteger }
        return parsed
    }

    private static func successor(of value: Int64) throws(CommandError) -> Int64 {
        let (sum, overflow) = value.addingReportingOverflow(1)
        if overflow { throw .overflow }
        return sum
    }

    /// Removes `token` from the queue and the waiter table; whether it was queued.
    private static func removeFromQueue(
        _ db: Database, queue: StoreBytes, waiters: StoreBytes, token: StoreBytes
    ) throws(CommandError) -> Bool {
        var removed = false
        if let list = try db.listValue(queue), let index = list.items.firstIndex(of: token) {
            list.items.remove(at: index)
            if list.items.isEmpty { db.remove(queue) }
            db.touch(queue)
            removed = true
        }
        if let table = try db.hashValue(waiters), table.fields.removeValue(forKey: token) != nil {
            if table.fields.isEmpty { db.remove(waiters) }
            db.touch(waiters)
        }
        return removed
    }

    private static func derived(_ key: StoreBytes, _ suffix: String, _ tail: StoreBytes? = nil) -> StoreBytes {
        var bytes = key.array
        bytes += Array(suffix.utf8)
        if let tail { bytes += tail.array }
        return StoreBytes(bytes)
    }

    private static func positive(_ argument: StoreBytes) throws(CommandError) -> Int64 {
        guard let value = argument.withUnsafeBytes({ Number.parseInt64($0) }), value > 0 else {
            throw .message("ERR value is not a positive integer")
        }
        guard value <= longestDuration else { throw durationOutOfRange }
        return value
    }

    /// The longest lease or waiting window in milliseconds (about 35,000 years), so that `now + duration`
    /// can never overflow.
    private static let longestDuration: Int64 = 1 << 50

    private static let durationOutOfRange = CommandError.message("ERR value is out of range")

    /// The hash at `key`, made empty if absent.
    private static func hashCreating(_ db: Database, _ key: StoreBytes) throws(CommandError) -> HashValue {
        if let hash = try db.hashValue(key) { return hash }
        let hash = HashValue()
        db.set(key, .hash(hash))
        return hash
    }
}
