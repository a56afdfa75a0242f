import NIOCore

/// What a client blocked in `BLPOP`, `BRPOP`, `BLMOVE`, `BRPOPLPUSH` or `BLMPOP` waits for.
struct BlockedOperation {
    /// The operation to perform once a key has elements.
    enum Kind {
        /// Pop one element and reply `[key, element]` (`BLPOP`, `BRPOP`).
        case pop(fromLeft: Bool)
        /// Move one element to `destination` and reply with it (`BLMOVE`, `BRPOPLPUSH`).
        case move(destination: StoreBytes, fromLeft: Bool, toLeft: Bool)
        /// Pop up to `count` elements and reply `[key, [elements…]]` (`BLMPOP`).
        case multiPop(fromLeft: Bool, count: Int)
    }

    /// The database of the keys.
    let database: Database
    /// The keys waited on, in the order given.
    let keys: [StoreBytes]
    /// The operation.
    let kind: Kind
    /// The timeout timer, `nil` when waiting forever.
    var timeout: Scheduled<Void>?

    /// The longest timeout a timer is scheduled for: `TimeAmount` counts nanoseconds in an `Int64`.
    static let longestTimerMilliseconds = Int64.max / 1_000_000 - 1
}

extension StoreState {
    /// Blocks `client` on `keys` until one has elements or `timeoutMilliseconds` (0: forever) pass.
    func block(_ client: ClientConnection, on keys: [StoreBytes], in database: Database, kind: BlockedOperation.Kind, timeoutMilliseconds: Int64) {
        var operation = BlockedOperation(database: database, keys: keys, kind: kind, timeout: nil)
        var seen = Set<StoreBytes>()
        for key in keys where seen.insert(key).inserted {
            database.blocked[key, default: []].append(client)
        }
        // A timeout beyond what a timer can represent (about 292 years in nanoseconds) is waited out forever.
        if timeoutMilliseconds > 0 && timeoutMilliseconds <= BlockedOperation.longestTimerMilliseconds {
            operation.timeout = eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(timeoutMilliseconds)) { [self] in
                self.blockTimedOut(client)
            }
        }
        client.blocked = operation
    }

    /// Removes `client` from every queue it is blocked in and cancels its timer; no reply is sent.
    func unblock(_ client: ClientConnection) {
        guard let operation = client.blocked else { return }
        client.blocked = nil
        operation.timeout?.cancel()
        let database = operation.database
        for key in Set(operation.keys) {
            guard var queue = database.blocked[key] else { continue }
            if let index = queue.firstIndex(where: { $0 === client }) {
                queue.remove(at: index)
            }
            database.blocked[key] = queue.isEmpty ? nil : queue
        }
    }

    /// Serves `client`, blocked on `key` (which holds the non-empty `list`): pops or moves one element,
    /// replies, unblocks it and lets it continue with its pipelined input.
    func serveBlocked(_ client: ClientConnection, from key: StoreBytes, list: ListValue, in database: Database) {
        guard let operation = client.blocked else { return }
        unblock(client)
        switch operation.kind {
        case .pop(let fromLeft):
            let value = Commands.popElement(from: list, at: key, fromLeft: fromLeft, in: database)
            client.deliver { out in
                out.writeArrayHeader(2)
                out.writeBulk(key)
                out.writeBulk(value)
            }
        case .move(let destination, let fromLeft, let toLeft):
            do {
                let value = try Commands.moveElement(
                    from: list, at: key, to: destination, fromLeft: fromLeft, toLeft: toLeft, in: database
                )
                client.deliver { $0.writeBulk(value) }
            } catch {
                client.deliver { $0.writeErrorReply(error.message) }
            }
        case .multiPop(let fromLeft, let count):
            client.deliver { out in
                Commands.popMany(count, from: list, at: key, fromLeft: fromLeft, in: database, into: &out)
            }
        }
        client.scheduleResume()
    }

    /// `CLIENT UNBLOCK`: replies as if timed out, or with the `UNBLOCKED` error, and lets it continue.
    func unblockByRequest(_ client: ClientConnection, withError: Bool) {
        guard client.blocked != nil else { return }
        unblock(client)
        let resp3 = client.protocolVersion == 3
        client.deliver { out in
            if withError {
                out.writeErrorReply("UNBLOCKED client unblocked via CLIENT UNBLOCK")
            } else {
                out.writeNullArray(resp3: resp3)
            }
        }
        client.scheduleResume()
    }

    /// The timeout of a blocked client fired: reply null and let it continue.
    private func blockTimedOut(_ client: ClientConnection) {
        guard client.blocked != nil else { return }
        unblock(client)
        let resp3 = client.protocolVersion == 3
        client.deliver { $0.writeNullArray(resp3: resp3) }
        client.scheduleResume()
    }
}

extension CommandContext {
    /// Parses a blocking timeout in seconds (a double; 0 = forever) into milliseconds, as Redis does.
    func blockingTimeout(_ index: Int) throws(CommandError) -> Int64 {
        guard let seconds = args.double(index) else {
            throw .message("ERR timeout is not a float or out of range")
        }
        let milliseconds = (seconds * 1000).rounded(.up)
        guard milliseconds >= 0 else { throw .message("ERR timeout is negative") }
        // As Redis 7.2 does: a deadline (now + timeout) that does not fit in 64 bits is refused.
        guard milliseconds < 9.2e18, Int64(milliseconds) <= Int64.max - store.now else {
            throw .message("ERR timeout is out of range")
        }
        return Int64(milliseconds)
    }
}
