import DequeModule
import NIOCore

extension Commands {
    static let listCommands: [CommandSpec] = [
        CommandSpec("lpush", arity: -3, .write) { try push(&$0, left: true, onlyExisting: false) },
        CommandSpec("rpush", arity: -3, .write) { try push(&$0, left: false, onlyExisting: false) },
        CommandSpec("lpushx", arity: -3, .write) { try push(&$0, left: true, onlyExisting: true) },
        CommandSpec("rpushx", arity: -3, .write) { try push(&$0, left: false, onlyExisting: true) },
        CommandSpec("lpop", arity: -2, .write) { try pop(&$0, left: true) },
        CommandSpec("rpop", arity: -2, .write) { try pop(&$0, left: false) },
        CommandSpec("llen", arity: 2, [], llen),
        CommandSpec("lrange", arity: 4, [], lrange),
        CommandSpec("lindex", arity: 3, [], lindex),
        CommandSpec("lset", arity: 4, .write, lset),
        CommandSpec("ltrim", arity: 4, .write, ltrim),
        CommandSpec("lrem", arity: 4, .write, lrem),
        CommandSpec("linsert", arity: 5, .write, linsert),
        CommandSpec("lmove", arity: 5, .write, lmove),
        CommandSpec("rpoplpush", arity: 3, .write, rpoplpush),
        CommandSpec("blpop", arity: -3, .write) { try blockingPop(&$0, left: true) },
        CommandSpec("brpop", arity: -3, .write) { try blockingPop(&$0, left: false) },
        CommandSpec("blmove", arity: 6, .write, blmove),
        CommandSpec("brpoplpush", arity: 4, .write, brpoplpush),
        CommandSpec("lpos", arity: -3, [], lpos),
        CommandSpec("lmpop", arity: -4, .write) { try multiPop(&$0, numberOfKeysIndex: 1, blocking: false) },
        CommandSpec("blmpop", arity: -5, .write) { try multiPop(&$0, numberOfKeysIndex: 2, blocking: true) },
    ]

    // MARK: LPOS

    private static func lpos(_ context: inout CommandContext) throws(CommandError) {
        var rank: Int64 = 1
        var count: Int64 = -1
        var maxLength: Int64 = 0
        var index = 3
        while index < context.args.count {
            let hasValue = index + 1 < context.args.count
            if hasValue && context.args.matches(index, "rank") {
                rank = try context.integer(index + 1)
                if rank == 0 {
                    throw .message(
                        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"
                    )
                }
            } else if hasValue && context.args.matches(index, "count") {
                guard let value = context.args.int64(index + 1), value >= 0 else {
                    throw .message("ERR COUNT can't be negative")
                }
                count = value
            } else if hasValue && context.args.matches(index, "maxlen") {
                guard let value = context.args.int64(index + 1), value >= 0 else {
                    throw .message("ERR MAXLEN can't be negative")
                }
                maxLength = value
            } else {
                throw .syntax
            }
            index += 2
        }
        // Int64.min has no positive counterpart; Redis' `-rank` would overflow, here it only means "from the
        // tail, a match that cannot exist".
        let fromTail = rank < 0
        let wanted = rank == Int64.min ? UInt64(Int64.max) + 1 : rank.magnitude
        guard let list = try context.listValue(context.args.bytes(1)) else {
            if count >= 0 { context.out.writeArrayHeader(0) } else { context.out.writeNullBulk(resp3: context.resp3) }
            return
        }
        let element = context.args.bytes(2)
        let length = list.items.count
        var matches: UInt64 = 0
        var found: [Int] = []
        var scanned: Int64 = 0
        var position = 0
        while position < length && (maxLength == 0 || scanned < maxLength) {
            let itemIndex = fromTail ? length - 1 - position : position
            if list.items[itemIndex] == element {
                matches += 1
                if matches >= wanted {
                    found.append(itemIndex)
                    if count >= 0 ? (count != 0 && Int64(found.count) == count) : true { break }
                }
            }
            scanned += 1
            position += 1
        }
        if count >= 0 {
            context.out.writeArrayHeader(found.count)
            for item in found { context.out.writeIntegerReply(item) }
        } else if let first = found.first {
            context.out.writeIntegerReply(first)
        } else {
            context.out.writeNullBulk(resp3: context.resp3)
        }
    }

    // MARK: LMPOP, BLMPOP

    /// Pops up to `count` elements of the non-empty `list` at `key` and writes `[key, [elements…]]`.
    static func popMany(_ count: Int, from list: ListValue, at key: StoreBytes, fromLeft: Bool, in database: Database, into out: inout ByteBuffer) {
        let taken = min(count, list.items.count)
        out.writeArrayHeader(2)
        out.writeBulk(key)
        out.writeArrayHeader(taken)
        for _ in 0..<taken {
            out.writeBulk(fromLeft ? list.items.removeFirst() : list.items.removeLast())
        }
        database.notify(.list, fromLeft ? "lpop" : "rpop", key)
        if list.items.isEmpty {
            database.remove(key)
            database.notify(.generic, "del", key)
        }
        database.touch(key)
    }

    private static func multiPop(_ context: inout CommandContext, numberOfKeysIndex: Int, blocking: Bool) throws(CommandError) {
        let timeout = blocking ? try context.blockingTimeout(1) : 0
        let keyCount = try numberOfKeys(context, numberOfKeysIndex)
        let sideIndex = numberOfKeysIndex + keyCount + 1
        guard sideIndex < context.args.count else { throw .syntax }
        let fromLeft = try side(context, sideIndex)
        var count: Int64 = -1
        var index = sideIndex + 1
        while index < context.args.count {
            guard count == -1, context.args.matches(index, "count"), index + 1 < context.args.count else { throw .syntax }
            guard let value = context.args.int64(index + 1), value > 0 else {
                throw .message("ERR count should be greater than 0")
            }
            count = value
            index += 2
        }
        let popCount = count == -1 ? 1 : Int(count)
        let database = context.db
        var keys: [StoreBytes] = []
        for keyIndex in (numberOfKeysIndex + 1)..<sideIndex {
            let key = context.args.bytes(keyIndex)
            if let list = try context.listValue(key) {
                popMany(popCount, from: list, at: key, fromLeft: fromLeft, in: database, into: &context.out)
                return
            }
            keys.append(key)
        }
        if !blocking || context.inTransaction {
            context.out.writeNullArray(resp3: context.resp3)
            return
        }
        context.store.block(
            context.client, on: keys, in: database, kind: .multiPop(fromLeft: fromLeft, count: popCount),
            timeoutMilliseconds: timeout
        )
    }

    // MARK: Shared element moves

    /// Pops one element from the non-empty `list` stored at `key`, deleting the key when it empties, and
    /// signals the modification.
    static func popElement(from list: ListValue, at key: StoreBytes, fromLeft: Bool, in database: Database) -> StoreBytes {
        let value = fromLeft ? list.items.removeFirst() : list.items.removeLast()
        database.notify(.list, fromLeft ? "lpop" : "rpop", key)
        if list.items.isEmpty {
            database.remove(key)
            database.notify(.generic, "del", key)
        }
        database.touch(key)
        return value
    }

    /// Pushes `value` onto the list at `key` (creating it), signalling watchers and blocked clients.
    static func pushElement(_ value: StoreBytes, onto key: StoreBytes, toLeft: Bool, in database: Database) {
        if let entry = database.lookup(key), case .list(let list) = entry.value {
            if toLeft { list.items.prepend(value) } else { list.items.append(value) }
        } else {
            database.set(key, .list(ListValue([value])))
        }
        database.touch(key)
        database.notify(.list, toLeft ? "lpush" : "rpush", key)
        database.signalListPush(key)
    }

    /// `LMOVE`: moves one element of the non-empty `source` list to `destination`.
    ///
    /// - Throws: `WRONGTYPE` (and changes nothing) when `destination` holds a non-list.
    static func moveElement(
        from source: ListValue,
        at sourceKey: StoreBytes,
        to destinationKey: StoreBytes,
        fromLeft: Bool,
        toLeft: Bool,
        in database: Database
    ) throws(CommandError) -> StoreBytes {
        if let entry = database.lookup(destinationKey) {
            guard case .list = entry.value else { throw .wrongType }
        }
        let value = fromLeft ? source.items.removeFirst() : source.items.removeLast()
        database.notify(.list, fromLeft ? "lpop" : "rpop", sourceKey)
        if sourceKey == destinationKey {
            if toLeft { source.items.prepend(value) } else { source.items.append(value) }
            database.touch(sourceKey)
            database.notify(.list, toLeft ? "lpush" : "rpush", sourceKey)
            database.signalListPush(sourceKey)
            return value
        }
        if source.items.isEmpty {
            database.remove(sourceKey)
            database.notify(.generic, "del", sourceKey)
        }
        database.touch(sourceKey)
        pushElement(value, onto: destinationKey, toLeft: toLeft, in: database)
        return value
    }

    // MARK: Push and pop

    private static func push(_ context: inout CommandContext, left: Bool, onlyExisting: Bool) throws(CommandError) {
        let key = context.args.bytes(1)
        let database = context.db
        let list: ListValue
        if let existing = try context.listValue(key) {
            list = existing
        } else {
            if onlyExisting {
                context.out.writeIntegerReply(0)
                return
            }
            list = ListValue()
            database.set(key, .list(list))
        }
        let count = context.args.count
        if left {
            for index in 2..<count { list.items.prepend(context.args.bytes(index)) }
        } else {
            for index in 2..<count { list.items.append(context.args.bytes(index)) }
        }
        database.touch(key)
        database.notify(.list, left ? "lpush" : "rpush", key)
        database.signalListPush(key)
        context.out.writeIntegerReply(list.items.count)
    }

    private static func pop(_ context: inout CommandContext, left: Bool) throws(CommandError) {
        guard context.args.count <= 3 else {
            throw .message("ERR wrong number of arguments for '\(context.commandName)' command")
        }
        let key = context.args.bytes(1)
        var count: Int64? = nil
        if context.args.count == 3 {
            guard let parsed = context.args.int64(2), parsed >= 0 else { throw .notPositive }
            count = parsed
        }
        guard let list = try context.listValue(key) else {
            if count != nil {
                context.out.writeNullArray(resp3: context.resp3)
            } else {
                context.out.writeNullBulk(resp3: context.resp3)
            }
            return
        }
        let database = context.db
        guard let count else {
            let value = popElement(from: list, at: key, fromLeft: left, in: database)
            context.out.writeBulk(value)
            return
        }
        let taken = Int(min(count, Int64(list.items.count)))
        context.out.writeArrayHeader(taken)
        for _ in 0..<taken {
            context.out.writeBulk(left ? list.items.removeFirst() : list.items.removeLast())
        }
        if taken > 0 {
            database.notify(.list, left ? "lpop" : "rpop", key)
            if list.items.isEmpty {
                database.remove(key)
                database.notify(.generic, "del", key)
            }
            database.touch(key)
        }
    }

    // MARK: Reading

    private static func llen(_ context: inout CommandContext) throws(CommandError) {
        let list = try context.listValue(context.args.bytes(1))
        context.out.writeIntegerReply(list?.items.count ?? 0)
    }

    private static func lrange(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        var start = try context.integer(2)
        var end = try context.integer(3)
        guard let list = try context.listValue(key) else {
            context.out.writeArrayHeader(0)
            return
        }
        let length = Int64(list.items.count)
        if start < 0 { start = length + start }
        if end < 0 { end = length + end }
        if start < 0 { start = 0 }
        if start > end || start >= length {
            context.out.writeArrayHeader(0)
            return
        }
        if end >= length { end = length - 1 }
        context.out.writeArrayHeader(Int(end - start + 1))
        for index in Int(start)...Int(end) {
            context.out.writeBulk(list.items[index])
        }
    }

    private static func lindex(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        // Redis looks the key up (and checks its type) before it parses the index.
        guard let list = try context.listValue(key) else {
            context.out.writeNullBulk(resp3: context.resp3)
            return
        }
        let index = try context.integer(2)
        let resolved = index < 0 ? Int64(list.items.count) + index : index
        guard resolved >= 0 && resolved < Int64(list.items.count) else {
            context.out.writeNullBulk(resp3: context.resp3)
            return
        }
        context.out.writeBulk(list.items[Int(resolved)])
    }

    // MARK: Editing

    private static func lset(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        guard let list = try context.listValue(key) else { throw .noSuchKey }
        let index = try context.integer(2)
        let resolved = index < 0 ? Int64(list.items.count) + index : index
        guard resolved >= 0 && resolved < Int64(list.items.count) else { throw .indexOutOfRange }
        list.items[Int(resolved)] = context.args.bytes(3)
        context.db.touch(key)
        context.notify(.list, "lset", key)
        context.out.writeOK()
    }

    private static func ltrim(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        var start = try context.integer(2)
        var end = try context.integer(3)
        guard let list = try context.listValue(key) else {
            context.out.writeOK()
            return
        }
        let length = Int64(list.items.count)
        if start < 0 { start = length + start }
        if end < 0 { end = length + end }
        if start < 0 { start = 0 }
        let removeHead: Int64
        let removeTail: Int64
        if start > end || start >= length {
            removeHead = length
            removeTail = 0
        } else {
            if end >= length { end = length - 1 }
            removeHead = start
            removeTail = length - end - 1
        }
        list.items.removeFirst(Int(removeHead))
        list.items.removeLast(Int(removeTail))
        let database = context.db
        database.notify(.list, "ltrim", key)
        if list.items.isEmpty {
            database.remove(key)
            database.notify(.generic, "del", key)
        }
        database.touch(key)
        context.out.writeOK()
    }

    private static func lrem(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let count = try context.integer(2)
        let element = context.args.bytes(3)
        guard let list = try context.listValue(key) else {
            context.out.writeIntegerReply(0)
            return
        }
        var removed = 0
        let limit = count == 0 ? Int.max : Int(min(count.magnitude, UInt64(Int.max)))
        if count >= 0 {
            var index = 0
            while index < list.items.count && removed < limit {
                if list.items[index] == element {
                    list.items.remove(at: index)
                    removed += 1
                } else {
                    index += 1
                }
            }
        } else {
            var index = list.items.count - 1
            while index >= 0 && removed < limit {
                if list.items[index] == element {
                    list.items.remove(at: index)
                    removed += 1
                }
                index -= 1
            }
        }
        if removed > 0 {
            let database = context.db
            database.notify(.list, "lrem", key)
            if list.items.isEmpty {
                database.remove(key)
                database.notify(.generic, "del", key)
            }
            database.touch(key)
        }
        context.out.writeIntegerReply(removed)
    }

    private static func linsert(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let before: Bool
        if context.args.matches(2, "before") {
            before = true
        } else if context.args.matches(2, "after") {
            before = false
        } else {
            throw .syntax
        }
        guard let list = try context.listValue(key) else {
            context.out.writeIntegerReply(0)
            return
        }
        let pivot = context.args.bytes(3)
        guard let index = list.items.firstIndex(of: pivot) else {
            context.out.writeIntegerReply(-1)
            return
        }
        list.items.insert(context.args.bytes(4), at: before ? index : index + 1)
        context.db.touch(key)
        context.notify(.list, "linsert", key)
        context.db.signalListPush(key)
        context.out.writeIntegerReply(list.items.count)
    }

    // MARK: Moves

    /// Parses `LEFT` / `RIGHT`.
    private static func side(_ context: CommandContext, _ index: Int) throws(CommandError) -> Bool {
        if context.args.matches(index, "left") { return true }
        if context.args.matches(index, "right") { return false }
        throw .syntax
    }

    private static func move(_ context: inout CommandContext, fromLeft: Bool, toLeft: Bool) throws(CommandError) -> Bool {
        let source = context.args.bytes(1)
        let destination = context.args.bytes(2)
        guard let list = try context.listValue(source) else { return false }
        let value = try moveElement(from: list, at: source, to: destination, fromLeft: fromLeft, toLeft: toLeft, in: context.db)
        context.out.writeBulk(value)
        return true
    }

    private static func lmove(_ context: inout CommandContext) throws(CommandError) {
        let fromLeft = try side(context, 3)
        let toLeft = try side(context, 4)
        if try !move(&context, fromLeft: fromLeft, toLeft: toLeft) {
            context.out.writeNullBulk(resp3: context.resp3)
        }
    }

    private static func rpoplpush(_ context: inout CommandContext) throws(CommandError) {
        if try !move(&context, fromLeft: false, toLeft: true) {
            context.out.writeNullBulk(resp3: context.resp3)
        }
    }

    // MARK: Blocking

    private static func blockingPop(_ context: inout CommandContext, left: Bool) throws(CommandError) {
        let timeout = try context.blockingTimeout(context.args.count - 1)
        let database = context.db
        var keys: [StoreBytes] = []
        keys.reserveCapacity(context.args.count - 2)
        for index in 1..<(context.args.count - 1) {
            let key = context.args.bytes(index)
            if let list = try context.listValue(key) {
                let value = popElement(from: list, at: key, fromLeft: left, in: database)
                context.out.writeArrayHeader(2)
                context.out.writeBulk(key)
                context.out.writeBulk(value)
                return
            }
            keys.append(key)
        }
        if context.inTransaction {
            context.out.writeNullArray(resp3: context.resp3)
            return
        }
        context.store.block(context.client, on: keys, in: database, kind: .pop(fromLeft: left), timeoutMilliseconds: timeout)
    }

    private static func blockingMove(_ context: inout CommandContext, fromLeft: Bool, toLeft: Bool, timeoutIndex: Int) throws(CommandError) {
        let timeout = try context.blockingTimeout(timeoutIndex)
        if try move(&context, fromLeft: fromLeft, toLeft: toLeft) { return }
        if context.inTransaction {
            context.out.writeNullBulk(resp3: context.resp3)
            return
        }
        let source = context.args.bytes(1)
        let destination = context.args.bytes(2)
        context.store.block(
            context.client,
            on: [source],
            in: context.db,
            kind: .move(destination: destination, fromLeft: fromLeft, toLeft: toLeft),
            timeoutMilliseconds: timeout
        )
    }

    private static func blmove(_ context: inout CommandContext) throws(CommandError) {
        let fromLeft = try side(context, 3)
        let toLeft = try side(context, 4)
        try blockingMove(&context, fromLeft: fromLeft, toLeft: toLeft, timeoutIndex: 5)
    }

    private static func brpoplpush(_ context: inout CommandContext) throws(CommandError) {
        try blockingMove(&context, fromLeft: false, toLeft: true, timeoutIndex: 3)
    }
}
