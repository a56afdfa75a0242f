/// One command the store implements: its name, arity, flags and implementation.
struct CommandSpec: Sendable {
    /// Properties the dispatcher checks before running a command.
    struct Flags: OptionSet, Sendable {
        let rawValue: UInt8
        /// Allowed before authentication (`AUTH`, `HELLO`, `QUIT`, `RESET`).
        static let noAuth = Flags(rawValue: 1 << 0)
        /// Allowed in RESP2 subscribe mode.
        static let pubSubContext = Flags(rawValue: 1 << 1)
        /// Runs immediately inside `MULTI` instead of being queued (`EXEC`, `DISCARD`, `MULTI`, `WATCH`, …).
        static let transactionControl = Flags(rawValue: 1 << 2)
        /// Modifies the keyspace.
        static let write = Flags(rawValue: 1 << 3)
        /// A container (`CONFIG`, `OBJECT`, …): its subcommand and that subcommand's arity are checked before
        /// it runs or is queued, as Redis checks them (``CommandTable/subcommandArity``).
        static let container = Flags(rawValue: 1 << 4)
    }

    /// The implementation. It appends exactly one reply to `context.out`, or throws the ``CommandError`` to
    /// reply (commands are written with typed throws; the table erases it so closures can be literals).
    typealias Handler = @Sendable (_ context: inout CommandContext) throws -> Void

    /// The lowercase name.
    let name: StaticString
    /// Redis arity: `n` means exactly `n` arguments including the name, `-n` at least `n`.
    let arity: Int
    /// Dispatch flags.
    let flags: Flags
    /// The implementation.
    let handler: Handler

    init(_ name: StaticString, arity: Int, _ flags: Flags = [], _ handler: @escaping Handler) {
        self.name = name
        self.arity = arity
        self.flags = flags
        self.handler = handler
    }

    /// Whether `count` arguments (including the name) satisfy the arity.
    @inline(__always)
    func accepts(argumentCount count: Int) -> Bool {
        arity >= 0 ? count == arity : count >= -arity
    }
}

/// A command name folded to lowercase and packed into two words, for allocation-free lookup.
struct CommandName: Hashable, Sendable {
    private let low: UInt64
    private let high: UInt64

    /// The longest name that can be packed (the last byte holds the length).
    static let maxLength = 15

    /// Packs `bytes`, or returns `nil` if too long to be any command's name.
    @inline(__always)
    init?(_ bytes: UnsafeRawBufferPointer) {
        let count = bytes.count
        guard count > 0 && count <= CommandName.maxLength else { return nil }
        var words: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &words) { raw in
            for i in 0..<count { raw[i] = ASCII.lowercase(bytes[i]) }
            raw[15] = UInt8(truncatingIfNeeded: count)
        }
        low = words.0
        high = words.1
    }

    init?(_ name: StaticString) {
        guard let packed = name.withUTF8Buffer({ CommandName(UnsafeRawBufferPointer($0)) }) else { return nil }
        self = packed
    }
}

/// The table of every implemented command, and the lookup by name.
enum CommandTable {
    /// Every command, in the order `COMMAND LIST` reports them.
    static let all: [CommandSpec] =
        Commands.serverCommands + Commands.keyspaceCommands + Commands.stringCommands + Commands.listCommands
        + Commands.hashCommands + Commands.setCommands + Commands.pubSubCommands + Commands.transactionCommands
        + Commands.functionCommands + Commands.objectCommands + Commands.sortCommands + Commands.bitfieldCommands

    private static let byName: [CommandName: CommandSpec] = {
        var table: [CommandName: CommandSpec] = [:]
        for spec in all {
            guard let name = CommandName(spec.name) else { preconditionFailure("command name too long: \(spec.name)") }
            precondition(table[name] == nil, "duplicate command \(spec.name)")
            table[name] = spec
        }
        return table
    }()

    /// The arity of each subcommand of the ``CommandSpec/Flags/container`` commands, as Redis declares them.
    static let subcommandArity: [String: [String: Int]] = [
        "config": ["get": -3, "set": -4, "resetstat": 2, "rewrite": 2, "help": 2],
        "object": ["encoding": 3, "refcount": 3, "idletime": 3, "freq": 3, "help": 2],
        "memory": ["usage": -3, "help": 2],
        "client": [
            "id": 2, "setname": 3, "getname": 2, "setinfo": 4, "info": 2, "list": -2, "reply": 3, "no-evict": 3,
            "unblock": -3, "help": 2,
        ],
        "pubsub": ["channels": -2, "numsub": -2, "numpat": 2, "shardchannels": -2, "shardnumsub": -2, "help": 2],
        "command": ["count": 2, "list": -2, "docs": -2, "info": -2, "getkeys": -3, "getkeysandflags": -3, "help": 2],
    ]

    /// The error for a container command whose subcommand is unknown or has the wrong number of arguments,
    /// worded as Redis words it; `nil` when it is fine.
    static func subcommandError(_ spec: CommandSpec, _ arguments: CommandArguments) -> String? {
        let name = "\(spec.name)"
        guard arguments.count >= 2, let table = subcommandArity[name] else { return nil }
        let subcommand = arguments.string(1).lowercased()
        guard let arity = table[subcommand] else {
            return "ERR unknown subcommand '\(arguments.string(1).prefix(128))'. Try \(name.uppercased()) HELP."
        }
        let count = arguments.count
        guard arity >= 0 ? count == arity : count >= -arity else {
            return "ERR wrong number of arguments for '\(name)|\(subcommand)' command"
        }
        return nil
    }

    /// The command named by argument 0 of `arguments`, or `nil`.
    @inline(__always)
    static func lookup(_ arguments: CommandArguments) -> CommandSpec? {
        arguments.withBytes(0) { bytes in
            guard let name = CommandName(bytes) else { return nil }
            return byName[name]
        }
    }
}

/// Namespace for the command implementations (one extension per data type or concern).
enum Commands {}
