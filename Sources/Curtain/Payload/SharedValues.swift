import CurtainRESP
import NIOCore
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A value stored once and referenced from payloads: `ref` and its bytes (a complete payload).
typealias SharedBlob = (ref: SharedRef, bytes: [UInt8])

/// One encoded payload and the shared values it references.
struct EncodedPayload: Sendable {
    var bytes: [UInt8]
    var shared: [SharedBlob] = []
}

/// Why a task could not get a value its payload shares by reference.
struct SharedValueMissing: Error, CustomStringConvertible {
    var ref: SharedRef
    var reason: String
    var description: String {
        "the shared value \(ref.hex.prefix(16))… (\(ref.length) bytes) cannot be fetched: \(reason)"
    }
}

/// Each process's cache of shared values, decoded: a value captured by every task of every job reaches a
/// worker once and is decoded once (``CloudConfiguration/cacheBytes``, `CURTAIN_CACHE_BYTES`; least
/// recently used first out, by the size of their encoded form).
final class SharedValueCache: Sendable {
    /// The process's cache.
    static let process = SharedValueCache(limit: SharedValueCache.configuredLimit())

    /// The default limit: 1 GiB.
    static let defaultLimit = 1 << 30

    /// `CURTAIN_CACHE_BYTES`, or the default (an unreadable value falls back to the default, with a warning).
    static func configuredLimit() -> Int {
        guard let text = ProcessInfo.processInfo.environment["CURTAIN_CACHE_BYTES"], !text.isEmpty else { return defaultLimit }
        guard let limit = Int(text), limit >= 0 else {
            StandardError.write("curtain: CURTAIN_CACHE_BYTES='\(text)' is not a byte count; using \(defaultLimit)\n")
            return defaultLimit
        }
        return limit
    }

    /// A decoded value (boxed, whatever its type).
    final class Box: @unchecked Sendable {
        let value: Any
        init(_ value: Any) { self.value = value }
    }

    private struct Entry {
        var values: [ObjectIdentifier: Box] = [:]
        var cost: Int
        var lastUse: UInt64
    }

    private struct State {
        var entries: [[UInt8]: Entry] = [:]
        var used = 0
        var tick: UInt64 = 0
        var inFlight: [[UInt8]: Task<[UInt8], any Error>] = [:]
        /// Whether changes to what is held are recorded (a worker announces them to drivers).
        var tracking = false
        /// Values kept, and values let go, since the changes were last taken.
        var added: Set<[UInt8]> = []
        var dropped: Set<[UInt8]> = []
    }

    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = limit }

    /// Bytes held now.
    var used: Int { state.withLock { $0.used } }

    /// The decoded values at hand for `hash` (by type), marking them used; `nil` if none.
    func pin(_ hash: [UInt8]) -> [ObjectIdentifier: Box]? {
        state.withLock { state in
            guard var entry = state.entries[hash] else { return nil }
            state.tick += 1
            entry.lastUse = state.tick
            state.entries[hash] = entry
            return entry.values
        }
    }

    /// Keeps a decoded value.
    func insert(_ hash: [UInt8], type: ObjectIdentifier, value: Box, cost: Int) {
        // Larger than the whole cache: used by the task at hand, kept by nobody (nothing else is evicted).
        guard cost <= limit else { return }
        state.withLock { state in
            state.tick += 1
            var entry = state.entries[hash] ?? Entry(cost: 0, lastUse: state.tick)
            if entry.cost == 0 {
                entry.cost = max(cost, 1)
                state.used += entry.cost
                if state.tracking {
                    state.added.insert(hash)
                    state.dropped.remove(hash)
                }
            }
            entry.values[type] = value
            entry.lastUse = state.tick
            state.entries[hash] = entry
            evict(&state, keeping: hash)
        }
    }

    private func evict(_ state: inout State, keeping hash: [UInt8]) {
        while state.used > limit, state.entries.count > 1 || state.entries[hash] == nil {
            guard let oldest = state.entries.filter({ $0.key != hash }).min(by: { $0.value.lastUse < $1.value.lastUse }) else { break }
            state.used -= oldest.value.cost
            state.entries[oldest.key] = nil
            if state.tracking {
                state.added.remove(oldest.key)
                state.dropped.insert(oldest.key)
            }
        }
    }

    /// Starts recording which values this cache keeps and lets go (see ``takeHoldingChanges()``).
    func trackHoldings() {
        state.withLock { $0.tracking = true }
    }

    /// Counts every value kept now as newly kept, so the next ``takeHoldingChanges()`` announces them all
    /// (a new lease of the process announces under its new id what earlier leases cached).
    func announceAll() {
        state.withLock { state in
            guard state.tracking else { return }
            state.added = Set(state.entries.keys)
            state.dropped = []
        }
    }

    /// The hashes of the values kept, and of those let go, since the last call (only while tracking).
    func takeHoldingChanges() -> (added: [[UInt8]], dropped: [[UInt8]]) {
        state.withLock { state in
            defer {
                state.added = []
                state.dropped = []
            }
            return (Array(state.added), Array(state.dropped))
        }
    }


    /// The bytes of `ref`, fetched once however many tasks of this process ask at the same time; and
    /// whether this caller's request is the one that fetched them.
    func fetch(_ ref: SharedRef, with fetch: @escaping @Sendable () async throws -> [UInt8]) async throws -> (bytes: [UInt8], fetched: Bool) {
        let (task, mine) = state.withLock { state -> (Task<[UInt8], any Error>, Bool) in
            if let running = state.inFlight[ref.hash] { return (running, false) }
            let task = Task { try await fetch() }
            state.inFlight[ref.hash] = task
            return (task, true)
        }
        defer { if mine { _ = state.withLock { $0.inFlight.removeValue(forKey: ref.hash) } } }
        return (try await task.value, mine)
    }

    /// Empties the cache (tests).
    func removeAll() {
        state.withLock { state in
            if state.tracking {
                state.dropped.formUnion(state.entries.keys)
                state.added = []
            }
            state.entries = [:]
            state.used = 0
        }
    }
}

/// What one task used of the shared values: how many were at hand, how many bytes were fetched.
struct SharedUse: Sendable, Hashable {
    var hits = 0
    var fetchedBytes = 0
}

/// The shared values of one task's payloads, fetched before decoding and held until the task ends.
final class TaskSharedValues: SharedValueSource, @unchecked Sendable {
    // Used by one task at a time (its decode runs synchronously after `prepare`).
    private var pinned: [[UInt8]: (values: [ObjectIdentifier: SharedValueCache.Box], bytes: [UInt8]?)] = [:]
    private let cache: SharedValueCache
    private(set) var use = SharedUse()

    private init(cache: SharedValueCache) { self.cache = cache }

    /// Fetches (or finds at hand) every shared value `payloads` reference, and those they reference.
    ///
    /// - Throws: ``SharedValueMissing`` when one cannot be fetched.
    static func prepare(_ payloads: [[UInt8]], from place: SharedValuePlace?, cache: SharedValueCache = .process) async throws -> TaskSharedValues? {
        var refs: [SharedRef] = []
        for payload in payloads { refs += try payload.withUnsafeBytes { try PayloadDecoder.references(in: $0) } }
        guard !refs.isEmpty else { return nil }
        let values = TaskSharedValues(cache: cache)
        try await values.gather(refs, from: place)
        return values
    }

    /// A source holding `blobs` already (as if fetched).
    static func preloaded(_ blobs: [SharedBlob], cache: SharedValueCache = .process) throws -> TaskSharedValues {
        let values = TaskSharedValues(cache: cache)
        for blob in blobs { values.pinned[blob.ref.hash] = ([:], blob.bytes) }
        return values
    }

    private func gather(_ refs: [SharedRef], from place: SharedValuePlace?) async throws {
        var missing: [SharedRef] = []
        for ref in refs where pinned[ref.hash] == nil {
            if let held = cache.pin(ref.hash) {
                pinned[ref.hash] = (held, nil)
                use.hits += 1
            } else {
                missing.append(ref)
            }
        }
        guard !missing.isEmpty else { return }
        guard let place else { throw SharedValueMissing(ref: missing[0], reason: "this process has no store to fetch it from") }
        let fetched = try await withThrowingTaskGroup(of: (SharedRef, [UInt8], Bool).self) { group in
            for ref in missing {
                group.addTask { [cache] in
                    let (bytes, mine) = try await cache.fetch(ref) { try await place.fetch(ref) }
                    return (ref, bytes, mine)
                }
            }
            var all: [(SharedRef, [UInt8], Bool)] = []
            for try await item in group { all.append(item) }
            return all
        }
        var nested: [SharedRef] = []
        for (ref, bytes, mine) in fetched {
            // Counted once per process: by the task whose request fetched them.
            if mine { use.fetchedBytes += bytes.count } else { use.hits += 1 }
            pinned[ref.hash] = ([:], bytes)
            nested += try bytes.withUnsafeBytes { try PayloadDecoder.references(in: $0) }
        }
        if !nested.isEmpty { try await gather(nested, from: place) }
    }

    func value<T: Decodable>(_ ref: SharedRef, as type: T.Type, decode: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        let id = ObjectIdentifier(T.self)
        guard let held = pinned[ref.hash] else { throw SharedValueMissing(ref: ref, reason: "it was not fetched before decoding") }
        if let box = held.values[id], let value = box.value as? T { return value }
        guard let bytes = held.bytes else {
            // At hand only as another type: that is a different program reading it (a build mismatch).
            throw SharedValueMissing(ref: ref, reason: "it is at hand only decoded as another type than \(T.self)")
        }
        let value = try bytes.withUnsafeBytes { try decode($0) }
        let box = SharedValueCache.Box(value)
        pinned[ref.hash]!.values[id] = box
        cache.insert(ref.hash, type: id, value: box, cost: bytes.count)
        return value
    }
}

/// Where a worker fetches shared values from: the store (its client) and object stores (by URL).
struct SharedValuePlace: Sendable {
    var client: RESPClient?
    /// Check each fetched value against its SHA-256 name (only with a secret, so only with the Signing trait:
    /// when envelopes are signed, the hash is the only proof that the bytes are the driver's).
    var verify: Bool

    func fetch(_ ref: SharedRef) async throws -> [UInt8] {
        let bytes: [UInt8]
        switch ref.place {
        case .store:
            guard let client else { throw SharedValueMissing(ref: ref, reason: "this process has no store client") }
            guard let buffer = try await client.send(RESPCommand("GET", ref.storeKey)).buffer else {
                throw SharedValueMissing(ref: ref, reason: "\(ref.storeKey) is not in the store (expired, evicted or flushed)")
            }
            bytes = Array(buffer.readableBytesView)
        case .objects(let url):
            do {
                bytes = try await Storage(url: url).read(ref.objectKey)
            } catch {
                throw SharedValueMissing(ref: ref, reason: "\(ref.objectKey) cannot be read from \(url): \(error)")
            }
        }
        guard bytes.count == ref.length else {
            throw SharedValueMissing(ref: ref, reason: "\(bytes.count) bytes where \(ref.length) were stored")
        }
        if verify, ContentHash.of(bytes) != ref.hash {
            throw SharedValueMissing(ref: ref, reason: "its bytes do not match their hash (tampered with)")
        }
        return bytes
    }
}

/// The driver's side: puts shared values where workers fetch them, once, and remembers which are there.
///
/// A value in the store expires an hour after it was last put or confirmed (``storeLifetime``); one in an
/// object store stays until the cloud shuts down (``removeAll()``).
final class SharedValueShelf: Sendable {
    /// How long a shared value lives in the store after it was last confirmed.
    static let storeLifetime: Duration = .seconds(3600)
    /// How long the shelf trusts its memory that a value is there before confirming again.
    static let trust: Duration = .seconds(300)

    private let client: RESPClient?
    private struct State {
        var confirmed: [[UInt8]: ContinuousClock.Instant] = [:]
        var objects: [String: Set<String>] = [:]
        var sentBytes = 0
    }
    private let state = Mutex(State())
    private let clock = ContinuousClock()

    init(client: RESPClient?) { self.client = client }

    /// Makes sure every value of `blobs` is where its ref says; returns the bytes sent.
    func ensure(_ blobs: [SharedBlob]) async throws -> Int {
        let now = clock.now
        let due = state.withLock { state in
            blobs.filter { blob in state.confirmed[blob.ref.hash].map { now - $0 > Self.trust } ?? true }
        }
        guard !due.isEmpty else { return 0 }
        var unique: [[UInt8]: SharedBlob] = [:]
        for blob in due { unique[blob.ref.hash] = blob }
        var sent = 0
        let lifetime = Int(Self.storeLifetime.wholeMilliseconds)
        let inStore = unique.values.filter { $0.ref.place == .store }
        if !inStore.isEmpty {
            guard let client else { throw ConfigurationError(description: "shared values need a store, and this cloud has none") }
            let present = try await client.pipeline(inStore.map { RESPCommand("PEXPIRE", $0.ref.storeKey, lifetime) })
            var puts: [RESPCommand] = []
            for (blob, reply) in zip(inStore, present) where reply.int != 1 {
                puts.append(RESPCommand("SET", blob.ref.storeKey, ByteBuffer(bytes: blob.bytes), "PX", lifetime))
                sent += blob.bytes.count
            }
            if !puts.isEmpty { try WorkerLoop.check(try await client.pipeline(puts)) }
        }
        for blob in unique.values {
            guard case .objects(let url) = blob.ref.place else { continue }
            let storage = try Storage(url: url)
            if try await storage.info(blob.ref.objectKey)?.size != blob.bytes.count {
                try await storage.write(blob.ref.objectKey, blob.bytes)
                sent += blob.bytes.count
            }
            state.withLock { _ = $0.objects[url, default: []].insert(blob.ref.objectKey) }
        }
        let confirmedAt = clock.now
        state.withLock { state in
            for hash in unique.keys { state.confirmed[hash] = confirmedAt }
            state.sentBytes += sent
        }
        return sent
    }

    /// Forgets that these values are in place (a worker found one missing): the next ``ensure(_:)`` puts
    /// them again.
    func forget(_ blobs: [SharedBlob]) {
        state.withLock { state in for blob in blobs { state.confirmed[blob.ref.hash] = nil } }
    }

    /// Deletes the shared values this shelf put in object stores (best effort), and forgets the rest.
    func removeAll() async {
        let objects = state.withLock { state in
            defer {
                state.objects = [:]
                state.confirmed = [:]
            }
            return state.objects
        }
        for (url, keys) in objects {
            guard let storage = try? Storage(url: url) else { continue }
            for key in keys { try? await storage.delete(key) }
        }
    }
}
