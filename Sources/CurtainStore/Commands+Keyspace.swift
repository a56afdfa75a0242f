import NIOCore

extension Commands {
    static let keyspaceCommands: [CommandSpec] = [
        CommandSpec("del", arity: -2, .write, del),
        CommandSpec("unlink", arity: -2, .write, del),
        CommandSpec("exists", arity: -2, [], exists),
        CommandSpec("touch", arity: -2, [], exists),
        CommandSpec("type", arity: 2, [], type),
        CommandSpec("expire", arity: -3, .write) { try expire(&$0, milliseconds: false, absolute: false) },
        CommandSpec("pexpire", arity: -3, .write) { try expire(&$0, milliseconds: true, absolute: false) },
        CommandSpec("expireat", arity: -3, .write) { try expire(&$0, milliseconds: false, absolute: true) },
        CommandSpec("pexpireat", arity: -3, .write) { try expire(&$0, milliseconds: true, absolute: true) },
        CommandSpec("ttl", arity: 2, []) { try ttl(&$0, milliseconds: false, absolute: false) },
        CommandSpec("pttl", arity: 2, []) { try ttl(&$0, milliseconds: true, absolute: false) },
        CommandSpec("expiretime", arity: 2, []) { try ttl(&$0, milliseconds: false, absolute: true) },
        CommandSpec("pexpiretime", arity: 2, []) { try ttl(&$0, milliseconds: true, absolute: true) },
        CommandSpec("persist", arity: 2, .write, persist),
        CommandSpec("rename", arity: 3, .write) { try rename(&$0, onlyIfAbsent: false) },
        CommandSpec("renamenx", arity: 3, .write) { try rename(&$0, onlyIfAbsent: true) },
        CommandSpec("keys", arity: 2, [], keys),
        CommandSpec("scan", arity: -2, [], scan),
        CommandSpec("dbsize", arity: 1, [], dbsize),
        CommandSpec("flushdb", arity: -1, .write, flushdb),
        CommandSpec("flushall", arity: -1, .write, flushall),
        CommandSpec("select", arity: 2, [], select),
    ]

    private static func del(_ context: inout CommandContext) throws(CommandError) {
        let database = context.db
        var removed = 0
        for index in 1..<context.args.count {
            let key = context.args.bytes(index)
            if database.lookup(key) != nil {
                database.remove(key)
                database.touch(key)
                database.notify(.generic, "del", key)
                removed += 1
            }
        }
        context.out.writeIntegerReply(removed)
    }

    private static func exists(_ context: inout CommandContext) throws(CommandError) {
        let database = context.db
        var found = 0
        for index in 1..<context.args.count where database.lookup(context.args.bytes(index)) != nil {
            found += 1
        }
        context.out.writeIntegerReply(found)
    }

    private static func type(_ context: inout CommandContext) throws(CommandError) {
        if let entry = context.db.lookup(context.args.bytes(1)) {
            context.out.writeSimpleString(entry.value.typeName)
        } else {
            context.out.writeSimpleString("none")
        }
    }

    // MARK: Expiry

    private static func expire(_ context: inout CommandContext, milliseconds: Bool, absolute: Bool) throws(CommandError) {
        var nx = false
        var xx = false
        var gt = false
        var lt = false
        for index in 3..<context.args.count {
            if context.args.matches(index, "nx") {
                nx = true
            } else if context.args.matches(index, "xx") {
                xx = true
            } else if context.args.matches(index, "gt") {
                gt = true
            } else if context.args.matches(index, "lt") {
                lt = true
            } else {
                throw .message("ERR Unsupported option \(context.args.string(index))")
            }
        }
        if nx && (xx || gt || lt) {
            throw .message("ERR NX and XX, GT or LT options at the same time are not compatible")
        }
        if gt && lt { throw .message("ERR GT and LT options at the same time are not compatible") }
        var when = try context.integer(2)
        let name = context.commandName
        if !milliseconds {
            guard when <= Int64.max / 1000 && when >= Int64.min / 1000 else { throw .invalidExpireTime(name) }
            when *= 1000
        }
        if !absolute {
            let now = context.store.now
            guard when <= Int64.max - now else { throw .invalidExpireTime(name) }
            when += now
        }
        let key = context.args.bytes(1)
        let database = context.db
        guard let entry = database.lookup(key) else {
            context.out.writeIntegerReply(0)
            return
        }
        let current = entry.expiresAt
        if (nx && current != 0) || (xx && current == 0) || (gt && (current == 0 || when <= current))
            || (lt && current != 0 && when >= current)
        {
            context.out.writeIntegerReply(0)
            return
        }
        if when <= context.store.now {
            database.remove(key)
            database.notify(.generic, "del", key)
        } else {
            database.setExpiry(key, at: when)
            database.notify(.generic, "expire", key)
        }
        database.touch(key)
        context.out.writeIntegerReply(1)
    }

    private static func ttl(_ context: inout CommandContext, milliseconds: Bool, absolute: Bool) throws(CommandError) {
        guard let entry = context.db.lookup(context.args.bytes(1)) else {
            context.out.writeIntegerReply(-2)
            return
        }
        guard entry.expiresAt != 0 else {
            context.out.writeIntegerReply(-1)
            return
        }
        if absolute {
            context.out.writeRESPInteger(milliseconds ? entry.expiresAt : entry.expiresAt / 1000)
            return
        }
        let remaining = max(entry.expiresAt - context.store.now, 0)
        context.out.writeRESPInteger(milliseconds ? remaining : (remaining + 500) / 1000)
    }

    private static func persist(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let database = context.db
        guard database.lookup(key) != nil, database.removeExpiry(key) else {
            context.out.writeIntegerReply(0)
            return
        }
        database.touch(key)
        database.notify(.generic, "persist", key)
        context.out.writeIntegerReply(1)
    }

    private static func rename(_ context: inout CommandContext, onlyIfAbsent: Bool) throws(CommandError) {
        let source = context.args.bytes(1)
        let destination = context.args.bytes(2)
        let database = context.db
        guard let entry = database.lookup(source) else { throw .noSuchKey }
        if source == destination {
            if onlyIfAbsent { context.out.writeIntegerReply(0) } else { context.out.writeOK() }
            return
        }
        if onlyIfAbsent && database.lookup(destination) != nil {
            context.out.writeIntegerReply(0)
            return
        }
        let hint = database.stringEncodings[source]
        database.remove(source)
        database.set(destination, entry.value, expiresAt: entry.expiresAt)
        if let hint { database.noteStringEncoding(destination, hint) }
        database.touch(source)
        database.touch(destination)
        database.notify(.generic, "rename_from", source)
        database.notify(.generic, "rename_to", destination)
        if case .list = entry.value { database.signalListPush(destination) }
        if onlyIfAbsent { context.out.writeIntegerReply(1) } else { context.out.writeOK() }
    }

    // MARK: Iteration

    private static func keys(_ context: inout CommandContext) throws(CommandError) {
        let database = context.db
        let now = context.store.now
        var matched: [StoreBytes] = []
        context.args.withBytes(1) { pattern in
            let all = GlobPattern.isMatchAll(pattern)
            for (key, entry) in database.entries where entry.expiresAt == 0 || entry.expiresAt > now {
                if all || key.withUnsafeBytes({ GlobPattern.matches(pattern, $0) }) {
                    matched.append(key)
                }
            }
        }
        context.out.writeArrayHeader(matched.count)
        for key in matched { context.out.writeBulk(key) }
    }

    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`.
    ///
    /// Keys are visited in the order of a stable 64-bit hash, and the cursor is the hash to resume from, so
    /// every key present for the whole iteration is returned (keys sharing a hash are returned together).
    private static func scan(_ context: inout CommandContext) throws(CommandError) {
        guard let cursor = context.args.withBytes(1, { parseCursor($0) }) else {
            throw .message("ERR invalid cursor")
        }
        var count = 10
        var patternIndex: Int? = nil
        var typeFilter: String? = nil
        var index = 2
        while index < context.args.count {
            guard index + 1 < context.args.count else { throw .syntax }
            if context.args.matches(index, "count") {
                guard let value = context.args.int64(index + 1) else { throw .notInteger }
                guard value >= 1 else { throw .syntax }
                count = Int(min(value, Int64(Int32.max)))
            } else if context.args.matches(index, "match") {
                patternIndex = index + 1
            } else if context.args.matches(index, "type") {
                typeFilter = context.args.string(index + 1).lowercased()
            } else {
                throw .syntax
            }
            index += 2
        }
        let database = context.db
        var candidates: [(hash: UInt64, key: StoreBytes)] = []
        for key in database.entries.keys {
            let hash = key.stableHash
            if hash >= cursor { candidates.append((hash, key)) }
        }
        candidates.sort { $0.hash < $1.hash }
        var end = min(count, candidates.count)
        while end < candidates.count && end > 0 && candidates[end].hash == candidates[end - 1].hash {
            end += 1
        }
        let next: UInt64 = end < candidates.count ? candidates[end].hash : 0
        var results: [StoreBytes] = []
        for (_, key) in candidates[0..<end] {
            guard let entry = database.lookup(key) else { continue }
            if let typeFilter, "\(entry.value.typeName)" != typeFilter { continue }
            if let patternIndex {
                let matched = context.args.withBytes(patternIndex) { pattern in
                    key.withUnsafeBytes { GlobPattern.matches(pattern, $0) }
                }
                if !matched { continue }
            }
            results.append(key)
        }
        context.out.writeArrayHeader(2)
        context.out.writeBulk(String(next))
        context.out.writeArrayHeader(results.count)
        for key in results { context.out.writeBulk(key) }
    }

    /// The options of `SCAN`, `SSCAN` and `HSCAN`: `MATCH pattern`, `COUNT n` (at least 1), `TYPE t` (SCAN only).
    struct ScanOptions {
        /// The `COUNT` hint (10 by default).
        var count = 10
        /// The argument index of the `MATCH` pattern.
        var patternIndex: Int?
        /// The `TYPE` filter, lowercased.
        var type: String?

        init(_ context: CommandContext, from start: Int, allowType: Bool) throws(CommandError) {
            var index = start
            while index < context.args.count {
                guard index + 1 < context.args.count else { throw .syntax }
                if context.args.matches(index, "count") {
                    guard let value = context.args.int64(index + 1) else { throw .notInteger }
                    guard value >= 1 else { throw .syntax }
                    count = Int(Swift.min(value, Int64(Int32.max)))
                } else if context.args.matches(index, "match") {
                    patternIndex = index + 1
                } else if allowType && context.args.matches(index, "type") {
                    type = context.args.string(index + 1).lowercased()
                } else {
                    throw .syntax
                }
                index += 2
            }
        }

        /// Whether `item` matches the `MATCH` pattern (always, without one).
        func matches(_ context: CommandContext, _ item: StoreBytes) -> Bool {
            guard let patternIndex else { return true }
            return context.args.withBytes(patternIndex) { pattern in
                item.withUnsafeBytes { GlobPattern.matches(pattern, $0) }
            }
        }
    }

    /// Parses the cursor at argument `index` (`ERR invalid cursor`).
    static func scanCursor(_ context: CommandContext, _ index: Int) throws(CommandError) -> UInt64 {
        guard let cursor = context.args.withBytes(index, { parseCursor($0) }) else {
            throw .message("ERR invalid cursor")
        }
        return cursor
    }

    /// One page of a cursor iteration over `items`, visited in the order of their stable hash: the cursor is
    /// the hash to resume from, so every item present for a whole iteration is returned at least once.
    static func scanPage(_ items: [StoreBytes], cursor: UInt64, count: Int) -> (next: UInt64, page: [StoreBytes]) {
        var candidates: [(hash: UInt64, item: StoreBytes)] = []
        for item in items {
            let hash = item.stableHash
            if hash >= cursor { candidates.append((hash, item)) }
        }
        candidates.sort { $0.hash < $1.hash }
        var end = Swift.min(count, candidates.count)
        while end < candidates.count && end > 0 && candidates[end].hash == candidates[end - 1].hash {
            end += 1
        }
        let next: UInt64 = end < candidates.count ? candidates[end].hash : 0
        return (next, candidates[0..<end].map(\.item))
    }

    /// Writes `[next cursor, [items…]]`.
    static func writeScanReply(_ context: inout CommandContext, next: UInt64, items: [StoreBytes]) {
        context.out.writeArrayHeader(2)
        context.out.writeBulk(String(next))
        context.out.writeArrayHeader(items.count)
        for item in items { context.out.writeBulk(item) }
    }

    /// Parses an unsigned decimal cursor.
    private static func parseCursor(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            let digit = byte &- 48
            guard digit < 10 else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(digit))
            guard !o1 && !o2 else { return nil }
            value = sum
        }
        return value
    }

    private static func dbsize(_ context: inout CommandContext) throws(CommandError) {
        context.out.writeIntegerReply(context.db.count)
    }

    private static func flushMode(_ context: CommandContext) throws(CommandError) {
        guard context.args.count <= 2 else { throw .syntax }
        if context.args.count == 2 && !context.args.matches(1, "sync") && !context.args.matches(1, "async") {
            throw .syntax
        }
    }

    private static func flushdb(_ context: inout CommandContext) throws(CommandError) {
        try flushMode(context)
        context.db.flush()
        context.out.writeOK()
    }

    private static func flushall(_ context: inout CommandContext) throws(CommandError) {
        try flushMode(context)
        for database in context.store.databases { database.flush() }
        context.out.writeOK()
    }

    private static func select(_ context: inout CommandContext) throws(CommandError) {
        guard let index = context.args.int64(1), index >= Int64(Int32.min), index <= Int64(Int32.max) else {
            throw .notInteger
        }
        guard index >= 0 && index < Int64(context.store.databases.count) else {
            throw .message("ERR DB index is out of range")
        }
        context.client.databaseIndex = Int(index)
        context.out.writeOK()
    }
}
