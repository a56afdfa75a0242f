import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension Commands {
    /// The version reported by `HELLO`.
    static let helloVersion = "7.0.0"
    /// The version reported by `INFO server`.
    static let infoVersion = "7.0.0-curtain"

    static let serverCommands: [CommandSpec] = [
        CommandSpec("ping", arity: -1, .pubSubContext, ping),
        CommandSpec("echo", arity: 2, [], echo),
        CommandSpec("hello", arity: -1, [.noAuth], hello),
        CommandSpec("auth", arity: -2, [.noAuth], auth),
        CommandSpec("client", arity: -2, .container, client),
        CommandSpec("quit", arity: -1, [.noAuth, .pubSubContext, .transactionControl], quit),
        CommandSpec("reset", arity: 1, [.noAuth, .pubSubContext, .transactionControl], reset),
        CommandSpec("command", arity: -1, .container, command),
        CommandSpec("config", arity: -2, .container, config),
        CommandSpec("time", arity: 1, [], time),
        CommandSpec("info", arity: -1, [], info),
    ]

    // MARK: Connection

    private static func ping(_ context: inout CommandContext) throws(CommandError) {
        guard context.args.count <= 2 else {
            throw .message("ERR wrong number of arguments for 'ping' command")
        }
        if context.client.isInSubscribeMode {
            context.out.writeArrayHeader(2)
            context.out.writeBulk("pong")
            if context.args.count == 2 {
                context.args.withBytes(1) { context.out.writeBulk($0) }
            } else {
                context.out.writeBulk("")
            }
        } else if context.args.count == 2 {
            context.args.withBytes(1) { context.out.writeBulk($0) }
        } else {
            context.out.writeStaticString("+PONG\r\n")
        }
    }

    private static func echo(_ context: inout CommandContext) throws(CommandError) {
        context.args.withBytes(1) { context.out.writeBulk($0) }
    }

    /// Checks a `default` user / password pair against the configuration.
    private static func credentialsValid(_ context: CommandContext, user: String, password: String) -> Bool {
        guard user == "default" else { return false }
        guard let required = context.store.configuration.requirePass else { return true }
        // Constant-time comparison of the bytes.
        let a = Array(required.utf8)
        let b = Array(password.utf8)
        var difference = a.count ^ b.count
        for i in 0..<max(a.count, b.count) {
            difference |= Int((i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0))
        }
        return difference == 0
    }

    private static let wrongPass = CommandError.message("WRONGPASS invalid username-password pair or user is disabled.")

    private static func auth(_ context: inout CommandContext) throws(CommandError) {
        guard context.args.count <= 3 else { throw .syntax }
        if context.args.count == 2 {
            guard context.store.configuration.requirePass != nil else {
                throw .message(
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
                )
            }
            guard credentialsValid(context, user: "default", password: context.args.string(1)) else { throw wrongPass }
        } else {
            guard credentialsValid(context, user: context.args.string(1), password: context.args.string(2)) else {
                throw wrongPass
            }
        }
        context.client.isAuthenticated = true
        context.out.writeOK()
    }

    private static func hello(_ context: inout CommandContext) throws(CommandError) {
        var version = context.client.protocolVersion
        if context.args.count >= 2 {
            guard let requested = context.args.int64(1) else {
                throw .message("ERR Protocol version is not an integer or out of range")
            }
            guard requested == 2 || requested == 3 else { throw .message("NOPROTO unsupported protocol version") }
            version = Int(requested)
        }
        var credentials: (String, String)? = nil
        var newName: String? = nil
        var index = 2
        while index < context.args.count {
            let remaining = context.args.count - index - 1
            if context.args.matches(index, "auth") && remaining >= 2 {
                credentials = (context.args.string(index + 1), context.args.string(index + 2))
                index += 3
            } else if context.args.matches(index, "setname") && remaining >= 1 {
                newName = context.args.string(index + 1)
                index += 2
            } else {
                throw .message("ERR Syntax error in HELLO option '\(context.args.string(index))'")
            }
        }
        if let (user, password) = credentials {
            guard credentialsValid(context, user: user, password: password) else { throw wrongPass }
            context.client.isAuthenticated = true
        }
        guard context.client.isAuthenticated else {
            throw .message(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
            )
        }
        if let newName {
            try validateClientName(newName)
            context.client.name = newName.isEmpty ? nil : newName
        }
        context.client.protocolVersion = version
        let resp3 = version == 3
        context.out.writeMapHeader(7, resp3: resp3)
        context.out.writeBulk("server")
        context.out.writeBulk("redis")
        context.out.writeBulk("version")
        context.out.writeBulk(helloVersion)
        context.out.writeBulk("proto")
        context.out.writeIntegerReply(version)
        context.out.writeBulk("id")
        context.out.writeRESPInteger(context.client.id)
        context.out.writeBulk("mode")
        context.out.writeBulk("standalone")
        context.out.writeBulk("role")
        context.out.writeBulk("master")
        context.out.writeBulk("modules")
        context.out.writeArrayHeader(0)
    }

    private static func validateClientName(_ name: String) throws(CommandError) {
        for byte in name.utf8 where byte < UInt8(ascii: "!") || byte > UInt8(ascii: "~") {
            throw .message("ERR Client names cannot contain spaces, newlines or special characters.")
        }
    }

    private static func quit(_ context: inout CommandContext) throws(CommandError) {
        context.out.writeOK()
        context.client.closeAfterReply()
    }

    private static func reset(_ context: inout CommandContext) throws(CommandError) {
        let client = context.client
        client.transaction = .none
        client.unwatchAll()
        context.store.unsubscribeAll(client)
        client.databaseIndex = 0
        client.protocolVersion = 2
        client.name = nil
        if context.store.configuration.requirePass != nil { client.isAuthenticated = false }
        context.out.writeSimpleString("RESET")
    }

    // MARK: CLIENT

    private static func client(_ context: inout CommandContext) throws(CommandError) {
        let client = context.client
        let subcommand = context.args.string(1).lowercased()
        func arity(_ expected: Int) throws(CommandError) {
            guard context.args.count == expected else {
                throw .message("ERR wrong number of arguments for 'client|\(subcommand)' command")
            }
        }
        switch subcommand {
        case "id":
            try arity(2)
            context.out.writeRESPInteger(client.id)
        case "setname":
            try arity(3)
            let name = context.args.string(2)
            try validateClientName(name)
            client.name = name.isEmpty ? nil : name
            context.out.writeOK()
        case "getname":
            try arity(2)
            if let name = client.name { context.out.writeBulk(name) } else { context.out.writeNullBulk(resp3: context.resp3) }
        case "setinfo":
            try arity(4)
            let value = context.args.string(3)
            if context.args.matches(2, "lib-name") {
                try validateClientName(value)
                client.libraryName = value
            } else if context.args.matches(2, "lib-ver") {
                try validateClientName(value)
                client.libraryVersion = value
            } else {
                throw .message("ERR Unrecognized option '\(context.args.string(2))'")
            }
            context.out.writeOK()
        case "info":
            try arity(2)
            context.out.writeVerbatimText(clientInfoLine(client, context.store) + "\n", resp3: context.resp3)
        case "list":
            guard context.args.count == 2 else {
                throw .message("ERR CLIENT LIST options (TYPE, ID) are not supported by the embedded store")
            }
            var text = ""
            for other in context.store.clients.values.sorted(by: { $0.id < $1.id }) {
                text += clientInfoLine(other, context.store) + "\n"
            }
            context.out.writeVerbatimText(text, resp3: context.resp3)
        case "reply":
            try arity(3)
            if context.args.matches(2, "on") {
                client.replyState = 0
                context.out.writeOK()
            } else if context.args.matches(2, "off") {
                client.replyState |= ClientConnection.replyOff
            } else if context.args.matches(2, "skip") {
                if client.replyState & ClientConnection.replyOff == 0 { client.replyState |= ClientConnection.replySkipNext }
            } else {
                throw .syntax
            }
        case "no-evict":
            // The store never evicts keys, so every client is already exempt: ON and OFF are both true.
            try arity(3)
            guard context.args.matches(2, "on") || context.args.matches(2, "off") else { throw .syntax }
            context.out.writeOK()
        case "unblock":
            guard context.args.count == 3 || context.args.count == 4 else {
                throw .message("ERR wrong number of arguments for 'client|unblock' command")
            }
            guard let id = context.args.int64(2) else { throw .notInteger }
            var withError = false
            if context.args.count == 4 {
                if context.args.matches(3, "error") {
                    withError = true
                } else if !context.args.matches(3, "timeout") {
                    throw .message("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
                }
            }
            guard let target = context.store.clients[id], target.blocked != nil else {
                context.out.writeIntegerReply(0)
                return
            }
            context.store.unblockByRequest(target, withError: withError)
            context.out.writeIntegerReply(1)
        case "help":
            let lines = [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ID", "    Return the ID of the current connection.",
                "INFO", "    Return information about the current client connection.",
                "LIST", "    Return information about client connections.",
                "GETNAME", "    Return the name of the current connection.",
                "SETNAME <name>", "    Assign the name <name> to the current connection.",
                "SETINFO <option> <value>", "    Set client meta attr. Options are LIB-NAME and LIB-VER.",
                "REPLY (ON|OFF|SKIP)", "    Control the replies sent to the current connection.",
                "NO-EVICT (ON|OFF)", "    Accepted: the store never evicts keys.",
                "UNBLOCK <clientid> [TIMEOUT|ERROR]", "    Unblock the specified blocked client.",
                "HELP", "    Print this help.",
            ]
            context.out.writeArrayHeader(lines.count)
            for line in lines {
                context.out.writeStaticString("+")
                context.out.writeString(line)
                context.out.writeCRLF()
            }
        default:
            throw .unknownSubcommand(context.args.string(1), of: "client")
        }
    }

    private static func clientInfoLine(_ client: ClientConnection, _ store: StoreState) -> String {
        let now = store.coarseNow
        let age = (now - client.connectedAt) / 1000
        let idle = (now - client.lastInteraction) / 1000
        var flags = ""
        if case .queuing = client.transaction { flags += "x" }
        if client.blocked != nil { flags += "b" }
        if !client.subscribedChannels.isEmpty || !client.subscribedPatterns.isEmpty || !client.subscribedShardChannels.isEmpty {
            flags += "P"
        }
        if flags.isEmpty { flags = "N" }
        var multi = -1
        if case .queuing(let commands, _) = client.transaction { multi = commands.count }
        return "id=\(client.id) addr=\(client.remoteAddress) laddr=\(client.localAddress) fd=-1 name=\(client.name ?? "") "
            + "age=\(age) idle=\(idle) flags=\(flags) db=\(client.databaseIndex) sub=\(client.subscribedChannels.count) "
            + "psub=\(client.subscribedPatterns.count) ssub=\(client.subscribedShardChannels.count) multi=\(multi) watch=\(client.watchedKeys.count) "
            + "cmd=\(client.lastCommand) user=default lib-name=\(client.libraryName ?? "") "
            + "lib-ver=\(client.libraryVersion ?? "") resp=\(client.protocolVersion)"
    }

    // MARK: COMMAND

    private static func command(_ context: inout CommandContext) throws(CommandError) {
        // The table holds no key positions, flags or docs: rather than an empty or null answer (which a client
        // would read as "no such command"), COMMAND, COMMAND INFO and COMMAND DOCS say they are not there.
        guard context.args.count >= 2 else {
            throw .message("ERR COMMAND without a subcommand is not supported by the embedded store (COUNT and LIST are)")
        }
        let subcommand = context.args.string(1).lowercased()
        switch subcommand {
        case "count":
            context.out.writeIntegerReply(CommandTable.all.count)
        case "docs", "info", "getkeys", "getkeysandflags":
            throw .message("ERR COMMAND \(subcommand.uppercased()) is not supported by the embedded store (COUNT and LIST are)")
        case "list":
            guard context.args.count == 2 else {
                throw .message("ERR COMMAND LIST FILTERBY is not supported by the embedded store")
            }
            context.out.writeArrayHeader(CommandTable.all.count)
            for spec in CommandTable.all { context.out.writeBulk("\(spec.name)") }
        case "help":
            context.out.writeArrayHeader(1)
            context.out.writeStaticString("+COMMAND [COUNT|LIST]\r\n")
        default:
            throw .unknownSubcommand(context.args.string(1), of: "command")
        }
    }

    // MARK: TIME, INFO

    private static func time(_ context: inout CommandContext) throws(CommandError) {
        let micros = StoreState.wallClockMicroseconds()
        context.out.writeArrayHeader(2)
        context.out.writeRESPBulkDecimal(micros / 1_000_000)
        context.out.writeRESPBulkDecimal(micros % 1_000_000)
    }

    private static func info(_ context: inout CommandContext) throws(CommandError) {
        var sections = Set<String>()
        for index in 1..<max(context.args.count, 1) { sections.insert(context.args.string(index).lowercased()) }
        let all = sections.isEmpty || sections.contains("all") || sections.contains("default")
            || sections.contains("everything")
        func wanted(_ name: String) -> Bool { all || sections.contains(name) }
        let store = context.store
        var text = ""
        if wanted("server") {
            let uptime = (store.now - store.startTime) / 1000
            text += "# Server\r\n"
            text += "redis_version:\(infoVersion)\r\n"
            text += "redis_mode:standalone\r\n"
            text += "curtain_store:1\r\n"
            text += "arch_bits:\(MemoryLayout<Int>.size * 8)\r\n"
            text += "multiplexing_api:nio\r\n"
            text += "process_id:\(getpid())\r\n"
            text += "run_id:\(store.runID)\r\n"
            text += "tcp_port:\(store.tcpPort ?? 0)\r\n"
            text += "uptime_in_seconds:\(uptime)\r\n"
            text += "uptime_in_days:\(uptime / 86400)\r\n"
            text += "\r\n"
        }
        if wanted("clients") {
            let blocked = store.clients.values.filter { $0.blocked != nil }.count
            text += "# Clients\r\n"
            text += "connected_clients:\(store.clients.count)\r\n"
            text += "maxclients:\(store.configuration.maxClients)\r\n"
            text += "blocked_clients:\(blocked)\r\n"
            text += "\r\n"
        }
        if wanted("memory") {
            var used = 1_000_000
            for database in store.databases {
                for (key, entry) in database.entries {
                    used += 64 + key.approximateHeapSize + entry.value.approximateSize
                }
            }
            text += "# Memory\r\n"
            text += "used_memory:\(used)\r\n"
            text += "used_memory_human:\(humanBytes(used))\r\n"
            text += "mem_allocator:libc\r\n"
            text += "maxmemory:0\r\n"
            text += "maxmemory_policy:noeviction\r\n"
            text += "\r\n"
        }
        if wanted("persistence") {
            var changes = 0
            for database in store.databases { changes &+= database.changeCount }
            text += "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:\(changes)\r\naof_enabled:0\r\n\r\n"
        }
        if wanted("stats") {
            text += "# Stats\r\n"
            text += "total_connections_received:\(store.stats.totalConnections)\r\n"
            text += "total_commands_processed:\(store.stats.totalCommands)\r\n"
            text += "rejected_connections:\(store.stats.rejectedConnections)\r\n"
            text += "expired_keys:\(store.stats.expiredKeys)\r\n"
            text += "pubsub_channels:\(store.channels.count)\r\n"
            text += "pubsub_patterns:\(store.patterns.count)\r\n"
            text += "pubsubshard_channels:\(store.shardChannels.count)\r\n"
            text += "\r\n"
        }
        if wanted("replication") {
            text += "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n"
        }
        if wanted("keyspace") {
            text += "# Keyspace\r\n"
            let now = store.now
            for database in store.databases where database.count > 0 {
                text += "db\(database.index):keys=\(database.count),expires=\(database.expiringCount),"
                text += "avg_ttl=\(database.averageTTL(now: now))\r\n"
            }
        }
        // "\r\n" is one Character in Swift: drop blank lines until the text ends with a single CRLF, as Redis does.
        while text.hasSuffix("\r\n\r\n") { text.removeLast() }
        context.out.writeVerbatimText(text, resp3: context.resp3)
    }

    private static func humanBytes(_ bytes: Int) -> String {
        let value = Double(bytes)
        if value >= Double(1 << 30) { return formatTwoDecimals(value / Double(1 << 30)) + "G" }
        if value >= Double(1 << 20) { return formatTwoDecimals(value / Double(1 << 20)) + "M" }
        if value >= Double(1 << 10) { return formatTwoDecimals(value / Double(1 << 10)) + "K" }
        return "\(bytes)B"
    }

    private static func formatTwoDecimals(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
