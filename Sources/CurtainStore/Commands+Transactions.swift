import NIOCore

extension Commands {
    static let transactionCommands: [CommandSpec] = [
        CommandSpec("multi", arity: 1, .transactionControl, multi),
        CommandSpec("exec", arity: 1, .transactionControl, exec),
        CommandSpec("discard", arity: 1, .transactionControl, discard),
        CommandSpec("watch", arity: -2, .transactionControl, watch),
        CommandSpec("unwatch", arity: 1, [], unwatch),
    ]

    private static func multi(_ context: inout CommandContext) throws(CommandError) {
        if case .queuing = context.client.transaction { throw .message("ERR MULTI calls can not be nested") }
        context.client.transaction = .queuing(commands: [], aborted: false)
        context.out.writeOK()
    }

    private static func exec(_ context: inout CommandContext) throws(CommandError) {
        let client = context.client
        guard case .queuing(let commands, let aborted) = client.transaction else {
            throw .message("ERR EXEC without MULTI")
        }
        client.transaction = .none
        if aborted {
            client.unwatchAll()
            throw .message("EXECABORT Transaction discarded because of previous errors.")
        }
        if client.watchDirty || watchedKeyExpired(client, context.store) {
            client.unwatchAll()
            context.out.writeNullArray(resp3: context.resp3)
            return
        }
        client.unwatchAll()
        context.out.writeArrayHeader(commands.count)
        let saved = context.args
        context.inTransaction = true
        for queued in commands {
            context.args = queued
            guard let spec = CommandTable.lookup(queued) else {
                context.out.writeErrorReply("ERR unknown command")
                continue
            }
            client.run(spec, &context)
        }
        context.inTransaction = false
        context.args = saved
    }

    /// Whether a watched key expired after it was watched (Redis treats that as a modification).
    private static func watchedKeyExpired(_ client: ClientConnection, _ store: StoreState) -> Bool {
        for watched in client.watchedKeys where !watched.expiredWhenWatched {
            if store.databases[watched.database].isLogicallyExpired(watched.key) { return true }
        }
        return false
    }

    private static func discard(_ context: inout CommandContext) throws(CommandError) {
        guard case .queuing = context.client.transaction else { throw .message("ERR DISCARD without MULTI") }
        context.client.transaction = .none
        context.client.unwatchAll()
        context.out.writeOK()
    }

    private static func watch(_ context: inout CommandContext) throws(CommandError) {
        let client = context.client
        if case .queuing = client.transaction { throw .message("ERR WATCH inside MULTI is not allowed") }
        let database = context.db
        for index in 1..<context.args.count {
            let key = context.args.bytes(index)
            if client.watchedKeys.contains(where: { $0.database == database.index && $0.key == key }) { continue }
            client.watchedKeys.append(
                ClientConnection.WatchedKey(
                    database: database.index,
                    key: key,
                    expiredWhenWatched: database.isLogicallyExpired(key)
                )
            )
            database.watchers[key, default: []].append(client)
        }
        context.out.writeOK()
    }

    private static func unwatch(_ context: inout CommandContext) throws(CommandError) {
        context.client.unwatchAll()
        context.out.writeOK()
    }
}
