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
    ]

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
        for index in 2..<context.args.count where set.members.insert(context.args.bytes(index)).inserted {
            added += 1
        }
        if added > 0 { context.db.touch(key) }
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
            if set.members.isEmpty { context.db.remove(key) }
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
            if set.members.isEmpty { context.db.remove(key) }
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
            if set.members.isEmpty { context.db.remove(key) }
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
