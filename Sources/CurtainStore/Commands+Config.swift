import NIOCore

/// The thresholds Redis uses to choose a compact encoding; `CONFIG SET` changes them and `OBJECT ENCODING`
/// reports what Redis would use under them.
struct EncodingLimits {
    /// `set-max-intset-entries`.
    var setMaxIntsetEntries: Int64 = 512
    /// `hash-max-listpack-entries` (alias `hash-max-ziplist-entries`).
    var hashMaxListpackEntries: Int64 = 128
    /// `hash-max-listpack-value` (alias `hash-max-ziplist-value`).
    var hashMaxListpackValue: Int64 = 64
    /// `list-max-listpack-size` (alias `list-max-ziplist-size`): quicklist node size; every list is a
    /// quicklist in Redis 7.0, so it changes nothing a client sees.
    var listMaxListpackSize: Int64 = -2
    /// `list-compress-depth`: quicklist compression; changes nothing a client sees.
    var listCompressDepth: Int64 = 0
}

extension Commands {
    /// One `CONFIG` parameter: how to read it and, if the store can change it, how to check and apply a value.
    private struct ConfigParameter: Sendable {
        typealias Change = @Sendable (StoreState) -> Void
        let name: String
        let aliases: [String]
        let get: @Sendable (StoreState) -> String
        /// Checks `value` and returns the change to apply, or `nil` for a read-only parameter.
        let set: (@Sendable (StoreState, String) throws(CommandError) -> Change)?

        init(
            _ name: String,
            aliases: [String] = [],
            get: @escaping @Sendable (StoreState) -> String,
            set: (@Sendable (StoreState, String) throws(CommandError) -> Change)? = nil
        ) {
            self.name = name
            self.aliases = aliases
            self.get = get
            self.set = set
        }
    }

    /// A settable integer encoding threshold.
    private static func limit(
        _ name: String,
        aliases: [String] = [],
        range: ClosedRange<Int64>,
        get: @escaping @Sendable (EncodingLimits) -> Int64,
        set: @escaping @Sendable (inout EncodingLimits, Int64) -> Void
    ) -> ConfigParameter {
        ConfigParameter(name, aliases: aliases, get: { String(get($0.encodingLimits)) }) {
            (_, text) throws(CommandError) -> ConfigParameter.Change in
            guard let value = Int64(text), range.contains(value) else {
                throw .message("ERR CONFIG SET failed (possibly related to argument '\(name)') - argument must be between \(range.lowerBound) and \(range.upperBound) inclusive")
            }
            return { set(&$0.encodingLimits, value) }
        }
    }

    /// Every parameter `CONFIG GET` reports; those without a setter are fixed in the embedded store.
    private static let configParameters: [ConfigParameter] = [
        ConfigParameter("notify-keyspace-events", get: { $0.notifyFlags.letters }) {
            (_, text) throws(CommandError) -> ConfigParameter.Change in
            guard let flags = NotifyFlags(letters: text) else {
                throw .message("ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")
            }
            if flags.contains(.keyMiss) {
                throw .message("ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - the embedded store does not publish key-miss ('m') events")
            }
            return { $0.notifyFlags = flags }
        },
        limit("set-max-intset-entries", range: 0...Int64(Int32.max),
              get: { $0.setMaxIntsetEntries }, set: { $0.setMaxIntsetEntries = $1 }),
        limit("hash-max-listpack-entries", aliases: ["hash-max-ziplist-entries"], range: 0...Int64(Int32.max),
              get: { $0.hashMaxListpackEntries }, set: { $0.hashMaxListpackEntries = $1 }),
        limit("hash-max-listpack-value", aliases: ["hash-max-ziplist-value"], range: 0...Int64(Int32.max),
              get: { $0.hashMaxListpackValue }, set: { $0.hashMaxListpackValue = $1 }),
        limit("list-max-listpack-size", aliases: ["list-max-ziplist-size"], range: Int64(Int32.min)...Int64(Int32.max),
              get: { $0.listMaxListpackSize }, set: { $0.listMaxListpackSize = $1 }),
        limit("list-compress-depth", range: 0...Int64(Int32.max),
              get: { $0.listCompressDepth }, set: { $0.listCompressDepth = $1 }),
        ConfigParameter("save", get: { _ in "" }),
        ConfigParameter("appendonly", get: { _ in "no" }),
        ConfigParameter("databases", get: { String($0.databases.count) }),
        ConfigParameter("maxclients", get: { String($0.configuration.maxClients) }),
        ConfigParameter("port", get: { String($0.tcpPort ?? 0) }),
        ConfigParameter("bind", get: { $0.configuration.host ?? "" }),
        ConfigParameter("unixsocket", get: { $0.configuration.unixSocketPath ?? "" }),
        ConfigParameter("requirepass", get: { $0.configuration.requirePass ?? "" }),
        ConfigParameter("timeout", get: { _ in "0" }),
        ConfigParameter("maxmemory", get: { _ in "0" }),
        ConfigParameter("maxmemory-policy", get: { _ in "noeviction" }),
        ConfigParameter("proto-max-bulk-len", get: { _ in String(maxStringLength) }),
    ]

    static func config(_ context: inout CommandContext) throws(CommandError) {
        let subcommand = context.args.string(1).lowercased()
        switch subcommand {
        case "get":
            try configGet(&context)
        case "set":
            try configSet(&context)
        case "resetstat":
            guard context.args.count == 2 else {
                throw .message("ERR wrong number of arguments for 'config|resetstat' command")
            }
            context.store.stats = StoreState.Stats()
            context.out.writeOK()
        case "rewrite":
            throw .message("ERR The server is running without a config file")
        case "help":
            let lines = [
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>", "    Set the configuration <directive> to <value>.",
                "RESETSTAT", "    Reset statistics reported by the INFO command.",
                "HELP", "    Print this help.",
            ]
            context.out.writeArrayHeader(lines.count)
            for line in lines {
                context.out.writeStaticString("+")
                context.out.writeString(line)
                context.out.writeCRLF()
            }
        default:
            throw .unknownSubcommand(context.args.string(1), of: "config")
        }
    }

    private static func configGet(_ context: inout CommandContext) throws(CommandError) {
        guard context.args.count >= 3 else {
            throw .message("ERR wrong number of arguments for 'config|get' command")
        }
        let store = context.store
        var matched: [(String, String)] = []
        for index in 2..<context.args.count {
            let pattern = StoreBytes(context.args.string(index).lowercased())
            for parameter in configParameters {
                for name in [parameter.name] + parameter.aliases
                where !matched.contains(where: { $0.0 == name }) && GlobPattern.matches(pattern, StoreBytes(name)) {
                    matched.append((name, parameter.get(store)))
                }
            }
        }
        context.out.writeMapHeader(matched.count, resp3: context.resp3)
        for (name, value) in matched {
            context.out.writeBulk(name)
            context.out.writeBulk(value)
        }
    }

    /// `CONFIG SET name value [name value …]`: every pair is checked before any is applied, as in Redis. A
    /// parameter the store cannot change is refused unless the value is the one it already has.
    private static func configSet(_ context: inout CommandContext) throws(CommandError) {
        guard context.args.count >= 4 else {
            throw .message("ERR wrong number of arguments for 'config|set' command")
        }
        guard context.args.count % 2 == 0 else { throw .syntax }  // a name without its value, as Redis says
        let store = context.store
        var changes: [ConfigParameter.Change] = []
        var seen: Set<String> = []
        for index in stride(from: 2, to: context.args.count, by: 2) {
            let name = context.args.string(index).lowercased()
            let value = context.args.string(index + 1)
            guard let parameter = configParameters.first(where: { $0.name == name || $0.aliases.contains(name) }) else {
                throw .message("ERR Unknown option or number of arguments for CONFIG SET - '\(context.args.string(index))'")
            }
            guard seen.insert(parameter.name).inserted else {
                throw .message("ERR CONFIG SET failed - duplicate parameter '\(context.args.string(index))'")
            }
            if let set = parameter.set {
                changes.append(try set(store, value))
            } else if value != parameter.get(store) {
                throw .message("ERR CONFIG SET failed (possibly related to argument '\(name)') - the embedded store cannot change it (it is '\(parameter.get(store))')")
            }
        }
        for change in changes { change(store) }
        context.out.writeOK()
    }
}
