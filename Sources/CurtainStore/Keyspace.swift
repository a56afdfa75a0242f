import DequeModule

/// One logical database (`SELECT n`): the keyspace, its expiry index, and who watches or blocks on its keys.
///
/// Only ever touched on the store's event loop thread, by commands of that loop's connections, so it needs
/// no locks. Every read goes through ``lookup(_:)``, which expires keys lazily; ``activeExpireCycle(budget:)``
/// reclaims expired keys nobody reads. Like ``ClientConnection``, its hot properties skip dynamic
/// exclusivity checks (loop-confined, no overlapping accesses).
final class Database {
    /// The database number.
    let index: Int
    /// The store this database belongs to (for the clock and the ready-key queue).
    unowned let store: StoreState
    /// Every key and its entry (possibly logically expired; use ``lookup(_:)`` to read).
    @exclusivity(unchecked) private(set) var entries: [StoreBytes: StoreEntry] = [:]
    /// How many entries have an expiry.
    @exclusivity(unchecked) private(set) var expiringCount = 0
    /// Whether the expiry index holds records (live or stale) for the active cycle to look at.
    var hasExpiryRecords: Bool { expiryHeap.count > 0 }
    /// Expiry times, earliest first (may hold stale records for keys whose expiry changed).
    @exclusivity(unchecked) private var expiryHeap = ExpiryHeap()
    /// Clients watching each key (`WATCH`), in watch order.
    @exclusivity(unchecked) var watchers: [StoreBytes: [ClientConnection]] = [:]
    /// Clients blocked on each key (`BLPOP` and friends), first come first served.
    @exclusivity(unchecked) var blocked: [StoreBytes: Deque<ClientConnection>] = [:]
    /// String keys whose Redis encoding is not what their bytes alone suggest, until the key is next
    /// overwritten or deleted: modified in place (`APPEND`, `SETRANGE`, `SETBIT`, `BITOP`: `raw`), or written
    /// as text (`INCRBYFLOAT`: never `int`). Usually empty, so keeping it costs writes one test.
    @exclusivity(unchecked) var stringEncodings: [StoreBytes: StringEncodingHint] = [:]
    /// Modifications signalled since the store started (`INFO` `rdb_changes_since_last_save`: the store never
    /// saves, so every change is unsaved).
    @exclusivity(unchecked) var changeCount = 0
    /// A copy of the store's ``StoreState/notifyFlags``, so that the check on every write stays local.
    @exclusivity(unchecked) var notifyFlags: NotifyFlags = []

    init(index: Int, store: StoreState) {
        self.index = index
        self.store = store
    }

    /// The number of keys (including expired keys not yet reclaimed, as Redis' `DBSIZE` does).
    var count: Int { entries.count }

    /// The mean remaining time to live of the keys with an expiry, in milliseconds (`INFO keyspace`); 0
    /// without any. Redis reports a running estimate; this is exact.
    func averageTTL(now: Int64) -> Int64 {
        // Summed as a double: a client can give many keys TTLs near Int64.max.
        var total = 0.0
        var counted = 0.0
        for entry in entries.values where entry.expiresAt > now {
            total += Double(entry.expiresAt - now)
            counted += 1
        }
        return counted == 0 ? 0 : Int64(total / counted)
    }

    // MARK: Reading

    /// The live entry for `key`, deleting it first if it has expired.
    @inline(__always)
    func lookup(_ key: StoreBytes) -> StoreEntry? {
        guard let entry = entries[key] else { return nil }
        if entry.expiresAt != 0 && entry.expiresAt <= store.now {
            expire(key)
            return nil
        }
        return entry
    }

    /// The string at `key`, `nil` if absent, `WRONGTYPE` if another type.
    @inline(__always)
    func stringValue(_ key: StoreBytes) throws(CommandError) -> StoreBytes? {
        guard let entry = lookup(key) else { return nil }
        guard case .string(let bytes) = entry.value else { throw .wrongType }
        return bytes
    }

    /// The list at `key`, `nil` if absent, `WRONGTYPE` if another type.
    @inline(__always)
    func listValue(_ key: StoreBytes) throws(CommandError) -> ListValue? {
        guard let entry = lookup(key) else { return nil }
        guard case .list(let list) = entry.value else { throw .wrongType }
        return list
    }

    /// The hash at `key`, `nil` if absent, `WRONGTYPE` if another type.
    @inline(__always)
    func hashValue(_ key: StoreBytes) throws(CommandError) -> HashValue? {
        guard let entry = lookup(key) else { return nil }
        guard case .hash(let hash) = entry.value else { throw .wrongType }
        return hash
    }

    /// The set at `key`, `nil` if absent, `WRONGTYPE` if another type.
    @inline(__always)
    func setValue(_ key: StoreBytes) throws(CommandError) -> SetValue? {
        guard let entry = lookup(key) else { return nil }
        guard case .set(let set) = entry.value else { throw .wrongType }
        return set
    }

    /// The entry for `key` without expiring it (for `WATCH` bookkeeping and `SCAN`).
    func peek(_ key: StoreBytes) -> StoreEntry? {
        entries[key]
    }

    /// Whether `key` holds an entry whose expiry has passed.
    func isLogicallyExpired(_ key: StoreBytes) -> Bool {
        guard let entry = entries[key] else { return false }
        return entry.expiresAt != 0 && entry.expiresAt <= store.now
    }

    // MARK: Writing

    /// Stores `value` under `key`, replacing any previous value and clearing its expiry.
    @inline(__always)
    func set(_ key: StoreBytes, _ value: StoreValue) {
        let old = entries.updateValue(StoreEntry(value), forKey: key)
        if let old, old.expiresAt != 0 { expiringCount -= 1 }
        if !stringEncodings.isEmpty { stringEncodings[key] = nil }
        if old == nil && !notifyFlags.isEmpty { notify(.new, "new", key) }
    }

    /// Stores `value` under `key` with an absolute expiry (`0` for none).
    func set(_ key: StoreBytes, _ value: StoreValue, expiresAt: Int64) {
        let old = entries.updateValue(StoreEntry(value, expiresAt: expiresAt), forKey: key)
        if let old, old.expiresAt != 0 { expiringCount -= 1 }
        if !stringEncodings.isEmpty { stringEncodings[key] = nil }
        if old == nil && !notifyFlags.isEmpty { notify(.new, "new", key) }
        if expiresAt != 0 {
            expiringCount += 1
            expiryHeap.push(at: expiresAt, key: key)
            compactExpiryHeapIfNeeded()
        }
    }

    /// Replaces the value of an existing `key`, keeping its expiry; stores it without expiry if absent.
    @inline(__always)
    func replaceValue(_ key: StoreBytes, _ value: StoreValue) {
        if !stringEncodings.isEmpty { stringEncodings[key] = nil }
        if entries[key] != nil {
            entries[key]!.value = value
        } else {
            entries[key] = StoreEntry(value)
            if !notifyFlags.isEmpty { notify(.new, "new", key) }
        }
    }

    /// Removes `key`, returning its entry.
    @discardableResult
    func remove(_ key: StoreBytes) -> StoreEntry? {
        guard let old = entries.removeValue(forKey: key) else { return nil }
        if old.expiresAt != 0 { expiringCount -= 1 }
        if !stringEncodings.isEmpty { stringEncodings[key] = nil }
        return old
    }

    /// Replaces the string at `key` with `bytes` modified in place (`APPEND`, `SETRANGE`, `SETBIT`): kept
    /// with its expiry (created without one) and reported `raw` by `OBJECT ENCODING`, as Redis does.
    func replaceStringInPlace(_ key: StoreBytes, _ bytes: StoreBytes) {
        replaceValue(key, .string(bytes))
        stringEncodings[key] = .raw
    }

    /// Records how Redis would encode the string just stored at `key` (see ``stringEncodings``).
    func noteStringEncoding(_ key: StoreBytes, _ hint: StringEncodingHint) {
        stringEncodings[key] = hint
    }

    /// A key drawn at random (possibly logically expired), `nil` if the database is empty.
    func randomKey() -> StoreBytes? {
        guard !entries.isEmpty else { return nil }
        let offset = Int.random(in: 0..<entries.count)
        return entries[entries.index(entries.startIndex, offsetBy: offset)].key
    }

    /// `SWAPDB`: exchanges every key (and expiry) with `other`. Watchers and blocked clients stay with their
    /// database number, as in Redis: watchers of keys present on either side are signalled, and clients
    /// blocked on keys that now hold lists are served.
    func swapContents(with other: Database) {
        let before = (Set(watchers.keys.filter { entries[$0] != nil }), Set(other.watchers.keys.filter { other.entries[$0] != nil }))
        swap(&entries, &other.entries)
        swap(&expiringCount, &other.expiringCount)
        swap(&expiryHeap, &other.expiryHeap)
        swap(&stringEncodings, &other.stringEncodings)
        for key in before.0.union(watchers.keys.filter { entries[$0] != nil }) { touch(key) }
        for key in before.1.union(other.watchers.keys.filter { other.entries[$0] != nil }) { other.touch(key) }
        for database in [self, other] {
            for key in database.blocked.keys {
                if let entry = database.lookup(key), case .list = entry.value { store.markReady(database: database, key: key) }
            }
        }
    }

    /// Sets the expiry of an existing `key` (absolute Unix milliseconds, non-zero).
    func setExpiry(_ key: StoreBytes, at time: Int64) {
        guard let old = entries[key]?.expiresAt else { return }
        entries[key]!.expiresAt = time
        if old == 0 { expiringCount += 1 }
        expiryHeap.push(at: time, key: key)
        compactExpiryHeapIfNeeded()
    }

    /// Clears the expiry of `key`; returns whether it had one.
    @discardableResult
    func removeExpiry(_ key: StoreBytes) -> Bool {
        guard let old = entries[key]?.expiresAt, old != 0 else { return false }
        entries[key]!.expiresAt = 0
        expiringCount -= 1
        return true
    }

    /// Removes every key, signalling watchers of keys that existed.
    func flush() {
        if !watchers.isEmpty {
            for key in watchers.keys where entries[key] != nil {
                touch(key)
            }
        }
        entries = [:]
        expiringCount = 0
        expiryHeap = ExpiryHeap()
        stringEncodings = [:]
    }

    // MARK: Expiry

    /// Deletes an expired `key` and tells its watchers.
    private func expire(_ key: StoreBytes) {
        remove(key)
        store.stats.expiredKeys += 1
        touch(key)
        notify(.expired, "expired", key)
    }

    /// Reclaims keys whose expiry has passed, at most `budget` heap records.
    ///
    /// - Returns: whether due records remain (the caller should run again soon).
    func activeExpireCycle(budget: Int) -> Bool {
        let now = store.now
        var examined = 0
        while examined < budget, let top = expiryHeap.top, top.at <= now {
            expiryHeap.pop()
            examined += 1
            // Stale record (key gone, or expiry changed since): skip.
            guard let entry = entries[top.key], entry.expiresAt == top.at else { continue }
            expire(top.key)
        }
        compactExpiryHeapIfNeeded()
        if let top = expiryHeap.top { return top.at <= now }
        return false
    }

    /// Rebuilds the heap from the entries when stale records outnumber live ones.
    private func compactExpiryHeapIfNeeded() {
        guard expiryHeap.count > 2 * expiringCount + 1024 else { return }
        var heap = ExpiryHeap()
        for (key, entry) in entries where entry.expiresAt != 0 {
            heap.push(at: entry.expiresAt, key: key)
        }
        expiryHeap = heap
    }

    // MARK: Signals

    /// Signals that `key` was modified: every client watching it will fail its `EXEC`.
    @inline(__always)
    func touch(_ key: StoreBytes) {
        changeCount &+= 1
        if watchers.isEmpty { return }
        guard let clients = watchers[key] else { return }
        for client in clients { client.watchedKeyTouched() }
    }

    /// Signals that elements were pushed to the list `key`, so clients blocked on it may be served.
    @inline(__always)
    func signalListPush(_ key: StoreBytes) {
        if blocked.isEmpty { return }
        if blocked[key] != nil { store.markReady(database: self, key: key) }
    }
}

/// A binary min-heap of (expiry time, key) records.
struct ExpiryHeap {
    struct Record {
        var at: Int64
        var key: StoreBytes
    }

    private var records: [Record] = []

    var count: Int { records.count }
    var top: Record? { records.first }

    mutating func push(at: Int64, key: StoreBytes) {
        records.append(Record(at: at, key: key))
        var child = records.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard records[child].at < records[parent].at else { break }
            records.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() {
        guard !records.isEmpty else { return }
        let last = records.removeLast()
        guard !records.isEmpty else { return }
        records[0] = last
        var parent = 0
        let count = records.count
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < count && records[left].at < records[smallest].at { smallest = left }
            if right < count && records[right].at < records[smallest].at { smallest = right }
            if smallest == parent { break }
            records.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
