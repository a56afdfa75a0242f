import NIOCore

/// The classes of keyspace notifications (`CONFIG SET notify-keyspace-events`), with Redis' flag letters.
struct NotifyFlags: OptionSet, Sendable {
    let rawValue: UInt16

    init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    /// `K`: publish to `__keyspace@<db>__:<key>`.
    static let keyspace = NotifyFlags(rawValue: 1 << 0)
    /// `E`: publish to `__keyevent@<db>__:<event>`.
    static let keyevent = NotifyFlags(rawValue: 1 << 1)
    /// `g`: generic commands (`DEL`, `EXPIRE`, `RENAME`, …).
    static let generic = NotifyFlags(rawValue: 1 << 2)
    /// `$`: string commands.
    static let string = NotifyFlags(rawValue: 1 << 3)
    /// `l`: list commands.
    static let list = NotifyFlags(rawValue: 1 << 4)
    /// `s`: set commands.
    static let set = NotifyFlags(rawValue: 1 << 5)
    /// `h`: hash commands.
    static let hash = NotifyFlags(rawValue: 1 << 6)
    /// `z`: sorted-set commands (the store has none, so never published).
    static let zset = NotifyFlags(rawValue: 1 << 7)
    /// `x`: a key expired.
    static let expired = NotifyFlags(rawValue: 1 << 8)
    /// `e`: a key was evicted (the store never evicts, so never published).
    static let evicted = NotifyFlags(rawValue: 1 << 9)
    /// `t`: stream commands (the store has none, so never published).
    static let stream = NotifyFlags(rawValue: 1 << 10)
    /// `d`: module events (the store has no modules, so never published).
    static let module = NotifyFlags(rawValue: 1 << 11)
    /// `n`: a new key was created.
    static let new = NotifyFlags(rawValue: 1 << 12)
    /// `m`: a key was read and missed.
    static let keyMiss = NotifyFlags(rawValue: 1 << 13)

    /// `A`: every class but `n` and `m`, as in Redis.
    static let all: NotifyFlags = [.generic, .string, .list, .set, .hash, .zset, .expired, .evicted, .stream, .module]

    private static let letters: [(Character, NotifyFlags)] = [
        ("g", .generic), ("$", .string), ("l", .list), ("s", .set), ("h", .hash), ("z", .zset), ("x", .expired),
        ("e", .evicted), ("t", .stream), ("d", .module), ("n", .new), ("K", .keyspace), ("E", .keyevent),
        ("m", .keyMiss),
    ]

    /// Parses Redis' class letters; `nil` for an unknown letter.
    init?(letters text: String) {
        var flags: NotifyFlags = []
        for character in text {
            if character == "A" {
                flags.formUnion(.all)
            } else if let match = NotifyFlags.letters.first(where: { $0.0 == character }) {
                flags.formUnion(match.1)
            } else {
                return nil
            }
        }
        self = flags
    }

    /// The letters `CONFIG GET notify-keyspace-events` reports, in Redis' order.
    var letters: String {
        var text = ""
        if isSuperset(of: .all) {
            text = "A"
        } else {
            for (letter, flag) in NotifyFlags.letters.prefix(11) where contains(flag) { text.append(letter) }
        }
        if contains(.keyspace) { text += "K" }
        if contains(.keyevent) { text += "E" }
        if contains(.keyMiss) { text += "m" }
        return text
    }
}

extension Database {
    /// Publishes the keyspace notification `event` of class `type` for `key`, if that class is enabled.
    ///
    /// Costs one flag test when notifications are off (the default), so commands call it unconditionally.
    @inline(__always)
    func notify(_ type: NotifyFlags, _ event: StaticString, _ key: StoreBytes) {
        if notifyFlags.isEmpty { return }
        guard notifyFlags.contains(type), !notifyFlags.isDisjoint(with: [.keyspace, .keyevent]) else { return }
        store.publishNotification(type: type, event: event, key: key, database: index)
    }
}

extension CommandContext {
    /// Publishes the keyspace notification `event` of class `type` for `key` in the selected database.
    @inline(__always)
    func notify(_ type: NotifyFlags, _ event: StaticString, _ key: StoreBytes) {
        db.notify(type, event, key)
    }
}

extension StoreState {
    /// Publishes `__keyspace@<db>__:<key> <event>` and/or `__keyevent@<db>__:<event> <key>`.
    func publishNotification(type: NotifyFlags, event: StaticString, key: StoreBytes, database: Int) {
        let eventBytes = StoreBytes("\(event)")
        if notifyFlags.contains(.keyspace) {
            var channel = Array("__keyspace@\(database)__:".utf8)
            key.withUnsafeBytes { channel.append(contentsOf: $0) }
            publishFromServer(eventBytes, to: StoreBytes(channel))
        }
        if notifyFlags.contains(.keyevent) {
            publishFromServer(key, to: StoreBytes("__keyevent@\(database)__:\(event)"))
        }
    }

    /// Delivers `message` on `channel` to its subscribers and matching patterns, from inside a command or a
    /// timer. A subscriber that is itself running a command gets the message ahead of that command's reply.
    func publishFromServer(_ message: StoreBytes, to channel: StoreBytes) {
        if let subscribers = channels[channel] {
            for subscriber in subscribers {
                let resp3 = subscriber.protocolVersion == 3
                subscriber.push { out in
                    out.writePushHeader(3, resp3: resp3)
                    out.writeStaticString("$7\r\nmessage\r\n")
                    out.writeBulk(channel)
                    out.writeBulk(message)
                }
            }
        }
        if !patterns.isEmpty {
            for (pattern, subscribers) in patterns where GlobPattern.matches(pattern, channel) {
                for subscriber in subscribers {
                    let resp3 = subscriber.protocolVersion == 3
                    subscriber.push { out in
                        out.writePushHeader(4, resp3: resp3)
                        out.writeStaticString("$8\r\npmessage\r\n")
                        out.writeBulk(pattern)
                        out.writeBulk(channel)
                        out.writeBulk(message)
                    }
                }
            }
        }
    }
}
