import NIOCore

extension Commands {
    static let pubSubCommands: [CommandSpec] = [
        CommandSpec("subscribe", arity: -2, .pubSubContext) { subscribe(&$0, pattern: false) },
        CommandSpec("psubscribe", arity: -2, .pubSubContext) { subscribe(&$0, pattern: true) },
        CommandSpec("unsubscribe", arity: -1, .pubSubContext) { unsubscribe(&$0, pattern: false) },
        CommandSpec("punsubscribe", arity: -1, .pubSubContext) { unsubscribe(&$0, pattern: true) },
        CommandSpec("publish", arity: 3, [], publish),
        CommandSpec("pubsub", arity: -2, .container, pubsub),
        CommandSpec("ssubscribe", arity: -2, .pubSubContext, ssubscribe),
        CommandSpec("sunsubscribe", arity: -1, .pubSubContext, sunsubscribe),
        CommandSpec("spublish", arity: 3, [], spublish),
    ]

    // MARK: Sharded pub/sub (one shard: the store is not a cluster)

    private static func ssubscribe(_ context: inout CommandContext) {
        let client = context.client
        client.replyIsPush = true
        for index in 1..<context.args.count {
            let name = context.args.bytes(index)
            if client.subscribedShardChannels.insert(name).inserted {
                context.store.shardChannels[name, default: []].append(client)
            }
            context.out.writePushHeader(3, resp3: context.resp3)
            context.out.writeBulk("ssubscribe")
            context.out.writeBulk(name)
            context.out.writeIntegerReply(client.subscribedShardChannels.count)
        }
    }

    private static func sunsubscribe(_ context: inout CommandContext) {
        let client = context.client
        client.replyIsPush = true
        var names: [StoreBytes] = []
        if context.args.count > 1 {
            for index in 1..<context.args.count { names.append(context.args.bytes(index)) }
        } else {
            names = Array(client.subscribedShardChannels)
        }
        if names.isEmpty {
            context.out.writePushHeader(3, resp3: context.resp3)
            context.out.writeBulk("sunsubscribe")
            context.out.writeNullBulk(resp3: context.resp3)
            context.out.writeIntegerReply(0)
            return
        }
        for name in names {
            context.store.unsubscribeShard(client, from: name)
            context.out.writePushHeader(3, resp3: context.resp3)
            context.out.writeBulk("sunsubscribe")
            context.out.writeBulk(name)
            context.out.writeIntegerReply(client.subscribedShardChannels.count)
        }
    }

    private static func spublish(_ context: inout CommandContext) throws(CommandError) {
        let channel = context.args.bytes(1)
        let message = context.args.bytes(2)
        var receivers = 0
        for subscriber in context.store.shardChannels[channel] ?? [] {
            let resp3 = subscriber.protocolVersion == 3
            let write: (inout ByteBuffer) -> Void = { out in
                out.writePushHeader(3, resp3: resp3)
                out.writeStaticString("$8\r\nsmessage\r\n")
                out.writeBulk(channel)
                out.writeBulk(message)
            }
            if subscriber === context.client { write(&context.out) } else { subscriber.deliver(write) }
            receivers += 1
        }
        context.out.writeIntegerReply(receivers)
    }

    private static func subscribe(_ context: inout CommandContext, pattern: Bool) {
        let client = context.client
        client.replyIsPush = true
        for index in 1..<context.args.count {
            let name = context.args.bytes(index)
            context.store.subscribe(client, to: name, pattern: pattern)
            context.out.writePushHeader(3, resp3: context.resp3)
            context.out.writeBulk(pattern ? "psubscribe" : "subscribe")
            context.out.writeBulk(name)
            context.out.writeIntegerReply(client.subscribedChannels.count + client.subscribedPatterns.count)
        }
    }

    private static func unsubscribe(_ context: inout CommandContext, pattern: Bool) {
        let client = context.client
        client.replyIsPush = true
        var names: [StoreBytes] = []
        if context.args.count > 1 {
            for index in 1..<context.args.count { names.append(context.args.bytes(index)) }
        } else {
            names = Array(pattern ? client.subscribedPatterns : client.subscribedChannels)
        }
        let kind = pattern ? "punsubscribe" : "unsubscribe"
        if names.isEmpty {
            context.out.writePushHeader(3, resp3: context.resp3)
            context.out.writeBulk(kind)
            context.out.writeNullBulk(resp3: context.resp3)
            context.out.writeIntegerReply(client.subscribedChannels.count + client.subscribedPatterns.count)
            return
        }
        for name in names {
            context.store.unsubscribe(client, from: name, pattern: pattern)
            context.out.writePushHeader(3, resp3: context.resp3)
            context.out.writeBulk(kind)
            context.out.writeBulk(name)
            context.out.writeIntegerReply(client.subscribedChannels.count + client.subscribedPatterns.count)
        }
    }

    private static func publish(_ context: inout CommandContext) throws(CommandError) {
        let channel = context.args.bytes(1)
        let message = context.args.bytes(2)
        let receivers = context.store.publish(message, to: channel, from: &context)
        context.out.writeIntegerReply(receivers)
    }

    private static func pubsub(_ context: inout CommandContext) throws(CommandError) {
        let store = context.store
        switch context.args.string(1).lowercased() {
        case "channels":
            guard context.args.count <= 3 else {
                throw .message("ERR wrong number of arguments for 'pubsub|channels' command")
            }
            let pattern = context.args.count == 3 ? context.args.bytes(2) : nil
            let names = store.channels.keys.filter { pattern == nil || GlobPattern.matches(pattern!, $0) }
            context.out.writeArrayHeader(names.count)
            for name in names { context.out.writeBulk(name) }
        case "numsub":
            context.out.writeMapHeader(context.args.count - 2, resp3: context.resp3)
            for index in 2..<max(context.args.count, 2) {
                let name = context.args.bytes(index)
                context.out.writeBulk(name)
                context.out.writeIntegerReply(store.channels[name]?.count ?? 0)
            }
        case "shardchannels":
            guard context.args.count <= 3 else {
                throw .message("ERR wrong number of arguments for 'pubsub|shardchannels' command")
            }
            let pattern = context.args.count == 3 ? context.args.bytes(2) : nil
            let names = store.shardChannels.keys.filter { pattern == nil || GlobPattern.matches(pattern!, $0) }
            context.out.writeArrayHeader(names.count)
            for name in names { context.out.writeBulk(name) }
        case "shardnumsub":
            context.out.writeMapHeader(context.args.count - 2, resp3: context.resp3)
            for index in 2..<max(context.args.count, 2) {
                let name = context.args.bytes(index)
                context.out.writeBulk(name)
                context.out.writeIntegerReply(store.shardChannels[name]?.count ?? 0)
            }
        case "numpat":
            guard context.args.count == 2 else {
                throw .message("ERR wrong number of arguments for 'pubsub|numpat' command")
            }
            context.out.writeIntegerReply(store.patterns.count)
        default:
            throw .unknownSubcommand(context.args.string(1), of: "pubsub")
        }
    }
}

extension StoreState {
    /// Adds a channel (or pattern) subscription.
    func subscribe(_ client: ClientConnection, to name: StoreBytes, pattern: Bool) {
        if pattern {
            if client.subscribedPatterns.insert(name).inserted { patterns[name, default: []].append(client) }
        } else {
            if client.subscribedChannels.insert(name).inserted { channels[name, default: []].append(client) }
        }
    }

    /// Removes a channel (or pattern) subscription.
    func unsubscribe(_ client: ClientConnection, from name: StoreBytes, pattern: Bool) {
        if pattern {
            guard client.subscribedPatterns.remove(name) != nil else { return }
            patterns[name]?.removeAll { $0 === client }
            if patterns[name]?.isEmpty == true { patterns[name] = nil }
        } else {
            guard client.subscribedChannels.remove(name) != nil else { return }
            channels[name]?.removeAll { $0 === client }
            if channels[name]?.isEmpty == true { channels[name] = nil }
        }
    }

    /// Removes a shard channel subscription.
    func unsubscribeShard(_ client: ClientConnection, from name: StoreBytes) {
        guard client.subscribedShardChannels.remove(name) != nil else { return }
        shardChannels[name]?.removeAll { $0 === client }
        if shardChannels[name]?.isEmpty == true { shardChannels[name] = nil }
    }

    /// Drops every subscription of `client` (disconnect, `RESET`).
    func unsubscribeAll(_ client: ClientConnection) {
        for name in client.subscribedChannels { unsubscribe(client, from: name, pattern: false) }
        for name in client.subscribedPatterns { unsubscribe(client, from: name, pattern: true) }
        for name in client.subscribedShardChannels { unsubscribeShard(client, from: name) }
    }

    /// Delivers `message` to the subscribers of `channel` and of matching patterns.
    ///
    /// - Returns: the number of deliveries (a client matching twice counts twice, as in Redis).
    func publish(_ message: StoreBytes, to channel: StoreBytes, from context: inout CommandContext) -> Int {
        var receivers = 0
        if let subscribers = channels[channel] {
            for subscriber in subscribers {
                let resp3 = subscriber.protocolVersion == 3
                send(to: subscriber, context: &context) { out in
                    out.writePushHeader(3, resp3: resp3)
                    out.writeStaticString("$7\r\nmessage\r\n")
                    out.writeBulk(channel)
                    out.writeBulk(message)
                }
                receivers += 1
            }
        }
        if !patterns.isEmpty {
            for (pattern, subscribers) in patterns where GlobPattern.matches(pattern, channel) {
                for subscriber in subscribers {
                    let resp3 = subscriber.protocolVersion == 3
                    send(to: subscriber, context: &context) { out in
                        out.writePushHeader(4, resp3: resp3)
                        out.writeStaticString("$8\r\npmessage\r\n")
                        out.writeBulk(pattern)
                        out.writeBulk(channel)
                        out.writeBulk(message)
                    }
                    receivers += 1
                }
            }
        }
        return receivers
    }

    /// Writes to `client`'s output: the running batch's buffer when it is the caller, else its own.
    private func send(to client: ClientConnection, context: inout CommandContext, _ write: (inout ByteBuffer) -> Void) {
        if client === context.client {
            write(&context.out)
        } else {
            client.deliver(write)
        }
    }
}
