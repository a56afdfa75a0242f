import DequeModule
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The whole state of one embedded store: databases, connected clients, pub/sub subscriptions and the
/// queue of keys whose blocked clients may now be served.
///
/// Like Redis, the store is single threaded: this object is created on the server's event loop and only ever
/// used there (the server holds it in a `NIOLoopBound`), by the connection handlers and timers of that
/// loop, which is why it needs no locks.
final class StoreState {
    /// Counters reported by `INFO`.
    struct Stats {
        var totalConnections = 0
        var totalCommands = 0
        var expiredKeys = 0
        var rejectedConnections = 0
    }

    /// A key in a database, for the ready-key queue.
    private struct ReadyKey: Hashable {
        var database: Int
        var key: StoreBytes
    }

    let configuration: StoreConfiguration
    let logger: Logger
    let eventLoop: any EventLoop
    /// The databases, indexed by number.
    @exclusivity(unchecked) private(set) var databases: [Database] = []
    /// Connected clients by id.
    var clients: [Int64: ClientConnection] = [:]
    private var nextClientID: Int64 = 1
    /// The current time in Unix milliseconds, as of the start of the current batch of commands (read lazily:
    /// most commands never need it).
    @inline(__always)
    var now: Int64 {
        if clockIsStale {
            cachedNow = StoreState.wallClockMilliseconds()
            clockIsStale = false
        }
        return cachedNow
    }
    @exclusivity(unchecked) private var cachedNow: Int64 = 0
    /// A clock refreshed by the 10 Hz timer: for bookkeeping that tolerates 100 ms of error (client idle
    /// times), so that ordinary commands never read the clock.
    @exclusivity(unchecked) private(set) var coarseNow: Int64 = 0
    @exclusivity(unchecked) private var clockIsStale = true
    @exclusivity(unchecked) var stats = Stats()
    /// When the store started (Unix milliseconds).
    let startTime: Int64
    /// A random run id, as `INFO server` reports.
    let runID: String
    /// The bound TCP port, once listening (for `INFO` and `CONFIG GET port`).
    var tcpPort: Int?

    /// The enabled keyspace notification classes (`notify-keyspace-events`; empty by default).
    var notifyFlags: NotifyFlags = [] {
        didSet { for database in databases { database.notifyFlags = notifyFlags } }
    }
    /// Encoding thresholds (`CONFIG SET`), for `OBJECT ENCODING`.
    var encodingLimits = EncodingLimits()

    /// Subscribers of each channel, in subscription order.
    var channels: [StoreBytes: [ClientConnection]] = [:]
    /// Subscribers of each shard channel (`SSUBSCRIBE`), in subscription order.
    var shardChannels: [StoreBytes: [ClientConnection]] = [:]
    /// Subscribers of each pattern, in subscription order.
    var patterns: [StoreBytes: [ClientConnection]] = [:]

    /// Keys that received list pushes while clients were blocked on them, in signal order.
    @exclusivity(unchecked) private var readyKeys: Deque<ReadyKey> = []
    private var readySet: Set<ReadyKey> = []
    /// Whether ``serveReadyKeys()`` has work to do.
    @inline(__always)
    var hasReadyKeys: Bool { !readyKeys.isEmpty }

    private var expiryTask: Scheduled<Void>?
    private var isShutDown = false

    init(configuration: StoreConfiguration, eventLoop: any EventLoop) {
        self.configuration = configuration
        self.logger = configuration.logger
        self.eventLoop = eventLoop
        self.startTime = StoreState.wallClockMilliseconds()
        self.coarseNow = startTime
        var generator = SystemRandomNumberGenerator()
        self.runID = (0..<40).map { _ in String(Int.random(in: 0..<16, using: &generator), radix: 16) }.joined()
        self.databases = (0..<max(configuration.databases, 1)).map { Database(index: $0, store: self) }
    }

    // MARK: Clock

    /// The wall clock in Unix milliseconds.
    static func wallClockMilliseconds() -> Int64 {
        wallClockMicroseconds() / 1000
    }

    /// The wall clock in Unix microseconds.
    static func wallClockMicroseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000
    }

    /// Makes ``now`` re-read the clock on its next use; called before each batch of commands and each timer.
    @inline(__always)
    func refreshClock() {
        clockIsStale = true
    }

    // MARK: Clients

    /// Assigns a client id.
    func makeClientID() -> Int64 {
        defer { nextClientID += 1 }
        return nextClientID
    }

    /// Registers a connected client; returns `false` when ``StoreConfiguration/maxClients`` is reached.
    func register(_ client: ClientConnection) -> Bool {
        guard clients.count < configuration.maxClients, !isShutDown else {
            stats.rejectedConnections += 1
            return false
        }
        clients[client.id] = client
        stats.totalConnections += 1
        return true
    }

    /// Forgets a disconnected client: unblocks it, drops its subscriptions and watches.
    func unregister(_ client: ClientConnection) {
        guard clients.removeValue(forKey: client.id) != nil else { return }
        unblock(client)
        unsubscribeAll(client)
        client.unwatchAll()
    }

    // MARK: Ready keys

    /// Records that `key` in `database` got elements while clients block on it.
    func markReady(database: Database, key: StoreBytes) {
        let ready = ReadyKey(database: database.index, key: key)
        if readySet.insert(ready).inserted {
            readyKeys.append(ready)
        }
    }

    /// Serves clients blocked on keys that became ready, first come first served, until no ready key has
    /// both elements and waiting clients. Called after each command (and after `EXEC`), as Redis does.
    func serveReadyKeys() {
        while let ready = readyKeys.popFirst() {
            readySet.remove(ready)
            let database = databases[ready.database]
            while let waiting = database.blocked[ready.key], let client = waiting.first {
                guard let list = listForServing(database, ready.key), !list.items.isEmpty else { break }
                serveBlocked(client, from: ready.key, list: list, in: database)
            }
        }
    }

    private func listForServing(_ database: Database, _ key: StoreBytes) -> ListValue? {
        guard let entry = database.lookup(key), case .list(let list) = entry.value else { return nil }
        return list
    }

    // MARK: Active expiry

    /// Starts the active expiry cycle (10 times a second, sooner while many keys are due).
    func startActiveExpiry() {
        scheduleExpiry(in: .milliseconds(100))
    }

    private func scheduleExpiry(in delay: TimeAmount) {
        guard !isShutDown else { return }
        expiryTask = eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            self.refreshClock()
            self.coarseNow = self.now
            var behind = false
            for database in self.databases where database.hasExpiryRecords {
                if database.activeExpireCycle(budget: 20_000) { behind = true }
            }
            if self.hasReadyKeys { self.serveReadyKeys() }
            self.scheduleExpiry(in: behind ? .milliseconds(1) : .milliseconds(100))
        }
    }

    /// Stops timers and closes every client connection.
    func shutdown() {
        isShutDown = true
        expiryTask?.cancel()
        expiryTask = nil
        for client in clients.values {
            client.close()
        }
    }
}
