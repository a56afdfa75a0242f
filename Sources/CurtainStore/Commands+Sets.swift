import NIOCore

extension Commands {
    static let setCommands: [CommandSpec] = [
        CommandSpec("sadd", arity: -3, .write, sadd),
        CommandSpec("srem", arity: -3, .write, srem),
        CommandSpec("smembers", arity: 2, [], smembers),
        CommandSpec("sismember", arity: 3, [], sismember),
        CommandSpec("smismember", arity: -3, [], smismember),
        CommandSpec("scard", arity: 2, [], scard),
        CommandSpec("spop", arity: -2, .write, spop),
        CommandSpec("srandmember", arity: -2, [], srandmember),
        CommandSpec("smove", arity: 4, .write, smove),
        CommandSpec("sinter", arity: -2, []) { try combine(&$0, .intersection, store: false) },
        CommandSpec("sinterstore", arity: -3, .write) { try combine(&$0, .intersection, store: true) },
        CommandSpec("sunion", arity: -2, []) { try combine(&$0, .union, store: false) },
        CommandSpec("sunionstore", arity: -3, .write) { try combine(&$0, .union, store: true) },
        CommandSpec("sdiff", arity: -2, []) { try combine(&$0, .difference, store: false) },
        CommandSpec("sdiffstore", arity: -3, .write) { try combine(&$0, .difference, store: true) },
        CommandSpec("sintercard", arity: -3, [], sintercard),
        CommandSpec("sscan", arity: -3, [], sscan),
    ]

    // MARK: Moves and algebra

    private static func smove(_ context: inout CommandContext) throws(CommandError) {
        let sourceKey = context.args.bytes(1)
        let destinationKey = context.args.bytes(2)
        let member = context.args.bytes(3)
        let database = context.db
        // As in Redis: a missing source answers 0 before either type is checked.
        guard database.lookup(sourceKey) != nil else {
            context.out.writeIntegerReply(0)
            return
        }
        guard let source = try context.setValue(sourceKey) else {
            context.out.writeIntegerReply(0)
            return
        }
        let destination = try context.setValue(destinationKey)
        if sourceKey == destinationKey {
            context.out.writeIntegerReply(source.members.contains(member) ? 1 : 0)
            return
        }
        guard source.members.remove(member) != nil else {
            context.out.writeIntegerReply(0)
            return
        }
        database.notify(.set, "srem", sourceKey)
        if source.members.isEmpty {
            database.remove(sourceKey)
            database.notify(.generic, "del", sourceKey)
        }
        database.touch(sourceKey)
        // As in Redis, the destination is signalled only when the member was not already there.
        if let destination {
            if destination.members.insert(member).inserted {
                destination.noteInsertion(member, limits: database.store.encodingLimits)
                database.touch(destinationKey)
                database.notify(.set, "sadd", destinationKey)
            }
        } else {
            let created = SetValue([member])
            created.noteInsertion(member, limits: database.store.encodingLimits)
            database.set(destinationKey, .set(created))
            database.touch(destinationKey)
            database.notify(.set, "sadd", destinationKey)
        }
        context.out.writeIntegerReply(1)
    }

    /// The set operations of `SINTER`, `SUNION`, `SDIFF` and their `STORE` forms.
    enum SetOperation {
        case intersection, union, difference

        var storeEvent: StaticString {
            switch self {
            case .intersection: return "sinterstore"
            case .union: return "sunionstore"
            case .difference: return "sdiffstore"
            }
        }
    }

    /// The members of the sets at `keys` combined by `operation` (every key's type is checked first).
    private static func combined(_ database: Database, _ keys: [StoreBytes], _ operation: SetOperation) throws(CommandError) -> Set<StoreBytes> {
        var sets: [Set<StoreBytes>?] = []
        sets.reserveCapacity(keys.count)
        for key in keys { sets.append(try database.setValue(key)?.members) }
        switch operation {
        case .intersection:
            if sets.contains(where: { $0 == nil }) { return [] }
            let ordered = sets.compactMap { $0 }.sorted { $0.count < $1.count }
            var result = ordered[0]
            for other in ordered.dropFirst() {
                result = result.filter { other.contains($0) }
                if result.isEmpty { break }
            }
            return result
        case .union:
            var result = Set<StoreBytes>()
            for set in sets { if let set { result.formUnion(set) } }
            return result
        case .difference:
            guard var result = sets[0] else { return [] }
            for set in sets.dropFirst() {
                guard let set else { continue }
                result.subtract(set)
                if result.isEmpty { break }
            }
            return result
        }
    }

    private static func combine(_ context: inout CommandContext, _ operation: SetOperation, store: Bool) throws(CommandError) {
        let first = store ? 2 : 1
        let keys = (first..<context.args.count).map { context.args.bytes($0) }
        let database = context.db
        let result = try combined(database, keys, operation)
        guard store else {
            context.out.writeSetHeader(result.count, resp3: context.resp3)
            for member in result { context.out.writeBulk(member) }
            return
        }
        let destination = context.args.bytes(1)
        if result.isEmpty {
            if database.lookup(destination) != nil {
                database.remove(destination)
                database.touch(destination)
                database.notify(.generic, "del", destination)
            }
        } else {
            database.set(destination, .set(SetValue(result)))
            database.touch(destination)
            database.notify(.set, operation.storeEvent, destination)
        }
        context.out.writeIntegerReply(result.count)
    }

    /// Parses a `numkeys` argument (`SINTERCARD`, `LMPOP`, `BLMPOP`) that must be 1…LONG_MAX; a count beyond
    /// the arguments is returned as `args.count + 1` (each caller words that error as Redis does).
    static func numberOfKeys(_ context: CommandContext, _ index: Int) throws(CommandError) -> Int {
        guard let count = context.args.int64(index), count > 0 else {
            throw .message("ERR numkeys should be greater than 0")
        }
        return count > Int64(context.args.count) ? context.args.count + 1 : Int(count)
    }

    private static func sintercard(_ context: inout CommandContext) throws(CommandError) {
        let keyCount = try numberOfKeys(context, 1)
        guard keyCount <= context.args.count - 2 else {
            throw .message("ERR Number of keys can't be greater than number of args")
        }
        var limit = 0
        var index = 2 + keyCount
        while index < context.args.count {
            guard context.args.matches(index, "limit"), index + 1 < context.args.count else { throw .syntax }
            guard let value = context.args.int64(index + 1), value >= 0 else {
                throw .message("ERR LIMIT can't be negative")
            }
            limit = Int(value)
            index += 2
        }
        let keys = (2..<(2 + keyCount)).map { context.args.bytes($0) }
        let result = try combined(context.db, keys, .intersection)
        context.out.writeIntegerReply(limit == 0 ? result.count : min(limit, result.count))
    }

    private static func sscan(_ context: inout CommandContext) throws(CommandError) {
        let cursor = try scanCursor(context, 2)
        let options = try ScanOptions(context, from: 3, allowType: false)
        guard let set = try context.setValue(context.args.bytes(1)) else {
            writeScanReply(&context, next: 0, items: [])
            return
        }
        let (next, members) = scanPage(Array(set.members), cursor: cursor, count: options.count)
        let matched = members.filter { options.matches(context, $0) }
        writeScanReply(&context, next: next, items: matched)
    }

    private static func sadd(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let set: SetValue
        if let existing = try context.setValue(key) {
            set = existing
        } else {
            set = SetValue()
            context.db.set(key, .set(set))
        }
        var added = 0
        let limits = context.store.encodingLimits
        for index in 2..<context.args.count {
            let member = context.args.bytes(index)
            if set.members.insert(member).inserted {
                added += 1
                set.noteInsertion(member, limits: limits)
            }
        }
        if added > 0 {
            context.db.touch(key)
            context.notify(.set, "sadd", key)
        }
        context.out.writeIntegerReply(added)
    }

    private static func srem(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        guard let set = try context.setValue(key) else {
            context.out.writeIntegerReply(0)
            return
        }
        var removed = 0
        for index in 2..<context.args.count where set.members.remove(context.args.bytes(index)) != nil {
            removed += 1
        }
        if removed > 0 {
            context.notify(.set, "srem", key)
            if set.members.isEmpty {
                context.db.remove(key)
                context.notify(.generic, "del", key)
            }
            context.db.touch(key)
        }
        context.out.writeIntegerReply(removed)
    }

    private static func smembers(_ context: inout CommandContext) throws(CommandError) {
        guard let set = try context.setValue(context.args.bytes(1)) else {
            context.out.writeSetHeader(0, resp3: context.resp3)
            return
        }
        context.out.writeSetHeader(set.members.count, resp3: context.resp3)
        for member in set.members { context.out.writeBulk(member) }
    }

    private static func sismember(_ context: inout CommandContext) throws(CommandError) {
        let set = try context.setValue(context.args.bytes(1))
        context.out.writeIntegerReply(set?.members.contains(context.args.bytes(2)) == true ? 1 : 0)
    }

    private static func smismember(_ context: inout CommandContext) throws(CommandError) {
        let set = try context.setValue(context.args.bytes(1))
        context.out.writeArrayHeader(context.args.count - 2)
        for index in 2..<context.args.count {
            context.out.writeIntegerReply(set?.members.contains(context.args.bytes(index)) == true ? 1 : 0)
        }
    }

    private static func scard(_ context: inout CommandContext) throws(CommandError) {
        context.out.writeIntegerReply(try context.setValue(context.args.bytes(1))?.members.count ?? 0)
    }

    private static func spop(_ context: inout CommandContext) throws(CommandError) {
        guard context.args.count <= 3 else { throw .syntax }
        let key = context.args.bytes(1)
        var count: Int64? = nil
        if context.args.count == 3 {
            guard let parsed = context.args.int64(2), parsed >= 0 else { throw .notPositive }
            count = parsed
        }
        guard let set = try context.setValue(key) else {
            if count != nil {
                context.out.writeSetHeader(0, resp3: context.resp3)
            } else {
                context.out.writeNullBulk(resp3: context.resp3)
            }
            return
        }
        guard let count else {
            let member = set.members.randomElement()!
            set.members.remove(member)
            context.notify(.set, "spop", key)
            if set.members.isEmpty {
                context.db.remove(key)
                context.notify(.generic, "del", key)
            }
            context.db.touch(key)
            context.out.writeBulk(member)
            return
        }
        let taken = Int(min(count, Int64(set.members.count)))
        context.out.writeSetHeader(taken, resp3: context.resp3)
        for _ in 0..<taken {
            let member = set.members.randomElement()!
            set.members.remove(member)
            context.out.writeBulk(member)
        }
        if taken > 0 {
            context.notify(.set, "spop", key)
            if set.members.isEmpty {
                context.db.remove(key)
                context.notify(.generic, "del", key)
            }
            context.db.touch(key)
        }
    }

    private static func srandmember(_ context: inout CommandContext) throws(CommandError) {
        guard context.args.count <= 3 else { throw .syntax }
        let key = context.args.bytes(1)
        if context.args.count == 2 {
            if let set = try context.setValue(key), let member = set.members.randomElement() {
                context.out.writeBulk(member)
            } else {
                context.out.writeNullBulk(resp3: context.resp3)
            }
            return
        }
        let count = try randomSampleCount(context, 2)
        guard let set = try context.setValue(key), count != 0 else {
            context.out.writeArrayHeader(0)
            return
        }
        if count < 0 {
            // Repetitions allowed.
            let members = Array(set.members)
            context.out.writeArrayHeader(Int(-count))
            for _ in 0..<Int(-count) { context.out.writeBulk(members.randomElement()!) }
            return
        }
        let chosen = Array(set.members.shuffled().prefix(Int(min(count, Int64(set.members.count)))))
        context.out.writeArrayHeader(chosen.count)
        for member in chosen { context.out.writeBulk(member) }
    }

    /// The most elements a sampling reply with repetitions (`SRANDMEMBER`/`HRANDFIELD` with a negative count)
    /// may hold: Redis would try to build any size, which here would stall the store (and the program hosting
    /// it) for minutes and exhaust its memory.
    static let largestRepeatingSample: Int64 = 1 << 24

    /// Parses the count of `SRANDMEMBER`/`HRANDFIELD`: Redis' range is -LONG_MAX…LONG_MAX; a negative count
    /// (repetitions allowed) is limited to ``largestRepeatingSample`` elements, with the same message.
    static func randomSampleCount(_ context: CommandContext, _ index: Int) throws(CommandError) -> Int64 {
        let count = try context.integer(index)
        guard count >= -Int64.max else {
            throw .message("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        }
        guard count >= -largestRepeatingSample else {
            throw .message("ERR value is out of range, value must between -\(largestRepeatingSample) and 9223372036854775807")
        }
        return count
    }
}
