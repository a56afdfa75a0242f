import NIOCore

extension Commands {
    static let objectCommands: [CommandSpec] = [
        CommandSpec("object", arity: -2, .container, object),
        CommandSpec("copy", arity: -3, .write, copy),
        CommandSpec("move", arity: 3, .write, move),
        CommandSpec("swapdb", arity: 3, .write, swapdb),
        CommandSpec("randomkey", arity: 1, [], randomkey),
    ]

    // MARK: OBJECT

    private static func object(_ context: inout CommandContext) throws(CommandError) {
        if context.args.count == 2 && context.args.matches(1, "help") {
            let lines = [
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>", "    Return the kind of internal representation Redis would use for <key>.",
                "FREQ <key>", "    Not tracked: the store has no LFU eviction policy.",
                "IDLETIME <key>", "    Not tracked: the store keeps no access times.",
                "REFCOUNT <key>", "    Return the number of references of the value associated with the specified key.",
                "HELP", "    Print this help.",
            ]
            context.out.writeArrayHeader(lines.count)
            for line in lines {
                context.out.writeStaticString("+")
                context.out.writeString(line)
                context.out.writeCRLF()
            }
            return
        }
        let known = ["encoding", "refcount", "idletime", "freq", "help"]
        let subcommand = context.args.string(1).lowercased()
        guard known.contains(subcommand) else { throw .unknownSubcommand(context.args.string(1), of: "object") }
        guard context.args.count == 3 else {
            throw .message("ERR wrong number of arguments for 'object|\(subcommand)' command")
        }
        guard let entry = context.db.lookup(context.args.bytes(2)) else {
            context.out.writeNullBulk(resp3: context.resp3)
            return
        }
        switch subcommand {
        case "encoding":
            context.out.writeBulk(encodingName(entry.value, key: context.args.bytes(2), in: context.db))
        case "refcount":
            // Redis shares the integers 0…9999 (reported as INT_MAX); everything else has one reference.
            if case .string(let bytes) = entry.value, let number = bytes.withUnsafeBytes({ Number.parseInt64($0) }),
                number >= 0 && number < 10_000 && context.db.stringEncodings[context.args.bytes(2)] == nil
            {
                context.out.writeIntegerReply(Int(Int32.max))
            } else {
                context.out.writeIntegerReply(1)
            }
        case "idletime":
            throw .message("ERR OBJECT IDLETIME is not supported: the embedded store keeps no access times")
        default:
            throw .message(
                "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."
            )
        }
    }

    /// The encoding Redis 7.0 would report for `value` under the configured thresholds.
    static func encodingName(_ value: StoreValue, key: StoreBytes, in database: Database) -> String {
        let limits = database.store.encodingLimits
        switch value {
        case .string(let bytes):
            switch database.stringEncodings[key] {
            case .raw?: return "raw"
            case .text?: return bytes.count <= 44 ? "embstr" : "raw"
            case nil: break
            }
            if bytes.count <= 20, bytes.withUnsafeBytes({ Number.parseInt64($0) }) != nil { return "int" }
            return bytes.count <= 44 ? "embstr" : "raw"
        case .list:
            return "quicklist"
        case .set(let set):
            if set.isHashtable { return "hashtable" }
            guard Int64(set.members.count) <= limits.setMaxIntsetEntries else { return "hashtable" }
            for member in set.members where member.withUnsafeBytes({ Number.parseInt64($0) }) == nil {
                return "hashtable"
            }
            return "intset"
        case .hash(let hash):
            if hash.isHashtable { return "hashtable" }
            guard Int64(hash.fields.count) <= limits.hashMaxListpackEntries else { return "hashtable" }
            let longest = limits.hashMaxListpackValue
            for (field, value) in hash.fields where Int64(field.count) > longest || Int64(value.count) > longest {
                return "hashtable"
            }
            return "listpack"
        }
    }

    // MARK: COPY, MOVE, SWAPDB, RANDOMKEY

    /// A database number argument (a C `int`), `DB index is out of range` if there is no such database.
    private static func databaseArgument(_ context: CommandContext, _ index: Int, message: String? = nil) throws(CommandError) -> Database {
        guard let number = context.args.int64(index), number >= Int64(Int32.min), number <= Int64(Int32.max) else {
            throw message.map { CommandError.message($0) } ?? .notInteger
        }
        guard number >= 0 && number < Int64(context.store.databases.count) else {
            throw .message("ERR DB index is out of range")
        }
        return context.store.databases[Int(number)]
    }

    private static let sameObject = CommandError.message("ERR source and destination objects are the same")

    private static func copy(_ context: inout CommandContext) throws(CommandError) {
        let source = context.db
        var destination = source
        var replace = false
        var index = 3
        while index < context.args.count {
            if context.args.matches(index, "replace") {
                replace = true
            } else if context.args.matches(index, "db") && index + 1 < context.args.count {
                destination = try databaseArgument(context, index + 1)
                index += 1
            } else {
                throw .syntax
            }
            index += 1
        }
        let key = context.args.bytes(1)
        let newKey = context.args.bytes(2)
        if source === destination && key == newKey { throw sameObject }
        guard let entry = source.lookup(key) else {
            context.out.writeIntegerReply(0)
            return
        }
        if destination.lookup(newKey) != nil {
            guard replace else {
                context.out.writeIntegerReply(0)
                return
            }
            destination.remove(newKey)
        }
        destination.set(newKey, entry.value.copied(), expiresAt: entry.expiresAt)
        if let hint = source.stringEncodings[key] { destination.noteStringEncoding(newKey, hint) }
        destination.touch(newKey)
        if case .list = entry.value { destination.signalListPush(newKey) }
        destination.notify(.generic, "copy_to", newKey)
        context.out.writeIntegerReply(1)
    }

    private static func move(_ context: inout CommandContext) throws(CommandError) {
        let source = context.db
        let destination = try databaseArgument(context, 2)
        if source === destination { throw sameObject }
        let key = context.args.bytes(1)
        guard let entry = source.lookup(key), destination.lookup(key) == nil else {
            context.out.writeIntegerReply(0)
            return
        }
        let hint = source.stringEncodings[key]
        destination.set(key, entry.value, expiresAt: entry.expiresAt)
        if let hint { destination.noteStringEncoding(key, hint) }
        source.remove(key)
        source.touch(key)
        destination.touch(key)
        if case .list = entry.value { destination.signalListPush(key) }
        source.notify(.generic, "move_from", key)
        destination.notify(.generic, "move_to", key)
        context.out.writeIntegerReply(1)
    }

    private static func swapdb(_ context: inout CommandContext) throws(CommandError) {
        let first = try databaseArgument(context, 1, message: "ERR invalid first DB index")
        let second = try databaseArgument(context, 2, message: "ERR invalid second DB index")
        if first !== second { first.swapContents(with: second) }
        context.out.writeOK()
    }

    private static func randomkey(_ context: inout CommandContext) throws(CommandError) {
        let database = context.db
        // Draw until a live key turns up; expired ones met on the way are reclaimed, as Redis does.
        while database.count > 0 {
            guard let key = database.randomKey() else { break }
            if database.lookup(key) != nil {
                context.out.writeBulk(key)
                return
            }
        }
        context.out.writeNullBulk(resp3: context.resp3)
    }
}

extension StoreValue {
    /// A deep copy (aggregates are reference types), for `COPY`.
    func copied() -> StoreValue {
        switch self {
        case .string: return self
        case .list(let list): return .list(ListValue(list.items))
        case .hash(let hash):
            let copy = HashValue(hash.fields)
            copy.isHashtable = hash.isHashtable
            return .hash(copy)
        case .set(let set):
            let copy = SetValue(set.members)
            copy.isHashtable = set.isHashtable
            return .set(copy)
        }
    }
}
