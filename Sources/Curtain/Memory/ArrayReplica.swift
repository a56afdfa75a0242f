import CurtainRESP
import NIOCore
import Synchronization

/// When an ``ArrayReplica`` exchanges data with its shared array.
public enum ReplicaConsistency: Sendable, Hashable {
    /// Read-your-writes: nothing moves until ``ArrayReplica/push()`` (which writes the changed elements'
    /// values) or ``ArrayReplica/pull()`` (which replaces the local copy) is called.
    case explicit
    /// HOGWILD!-style with bounded staleness: ``ArrayReplica/sync()`` (called as often as convenient) starts
    /// a background exchange once `updates` writes have accumulated or `interval` has passed since the last
    /// one, and waits for a running exchange once another `updates` writes were made meanwhile, so that a
    /// replica is never more than about two exchanges (2 × `updates` writes) ahead of what the others have
    /// seen of it, however slow the store. An exchange sends
    /// this replica's *deltas* (each changed element's local value minus the value it last knew) to the
    /// array's delta log, and brings back the deltas the other replicas sent since, which a later `sync()`
    /// adds to the local copy under every write made meanwhile. The deltas are added to the stored array
    /// itself (atomically per chunk) every second, and at ``ArrayReplica/push()``, ``ArrayReplica/finish()``
    /// and ``ArrayReplica/pull()``.
    case asynchronous(updates: Int, interval: Duration)
}

/// A worker's local copy of a ``SharedArray`` with a chosen consistency: reads and writes at memory speed,
/// exchanges with the store explicitly or in the background.
///
/// ```swift
/// let replica = try await weights.replica(.asynchronous(updates: 100_000, interval: .milliseconds(100)))
/// for batch in shard {
///     replica.withLocal { w in for (j, x) in batch.features { w[j] -= rate * gradient * x } }
///     try await replica.sync()              // cheap unless it is time to exchange
/// }
/// try await replica.finish()                // the last deltas reach the store
/// ```
///
/// Guarantees, asynchronous mode:
/// - a replica always reads its own writes; one exchange runs at a time;
/// - every write reaches the stored array exactly once, as part of a delta added atomically per chunk, and
///   none is lost to another replica's exchange; a replica that dies loses what it had not yet added
///   (at most about a second of its writes);
/// - a replica sees the deltas other replicas send after it was made, within about one exchange of theirs,
///   and its own writes reach the others within at most two of its exchanges. The delta log keeps the
///   latest 64 exchanges: a replica that falls further behind misses some in its own view
///   (``missedExchanges`` counts them; the stored array is not affected). A replica made (or pulled) while
///   others are already exchanging may, in its own view, miss a delta sent before that but added to the
///   stored array after, or count twice one sent after but added before: make replicas before the
///   writing starts, as a job's tasks do.
///
/// Use a replica from one task at a time.
public final class ArrayReplica<Element: SharedArrayElement> {
    /// The shared array.
    public let array: SharedArray<Element>
    /// The consistency in force.
    public let consistency: ReplicaConsistency
    /// The local copy.
    public private(set) var local: LocalArray<Element>
    /// Exchanges of other replicas this one read too late to see (asynchronous mode).
    public private(set) var missedExchanges = 0
    /// Per element, side by side (one cache line for both, since deltas touch random elements): `base`,
    /// what this replica knows the others to know (the stored values when it was made plus every delta
    /// exchanged since, its own and theirs; a delta is `local − base`), and `pending`, the sum of its own
    /// deltas sent to the log but not yet added to the stored array.
    private var known: [Known<Element>]
    /// The chunks with pending deltas.
    private var unfoldedChunks: [Bool]
    private var lastFold = ContinuousClock.now
    /// The number of the last log entry read.
    private var position: Int
    /// Tells this replica's log entries from the others'.
    private let tag = UInt64.random(in: 1...UInt64.max)
    /// `local.writes` at the last exchange.
    private var writesAtExchange = 0
    private var lastExchange = ContinuousClock.now
    private var exchange: Task<Void, Never>?
    private let exchanged = ExchangeBox<Result<Received<Element>, any Error>>()
    private var folding: Task<Void, Never>?
    private let folded = ExchangeBox<FoldOutcome<Element>>()

    /// Log entries kept for replicas that read late.
    static var logLimit: Int { 64 }
    /// How often a replica adds its deltas to the stored array.
    static var foldInterval: Duration { .seconds(1) }

    init(array: SharedArray<Element>, consistency: ReplicaConsistency, local: LocalArray<Element>, position: Int) {
        self.array = array
        self.consistency = consistency
        self.local = local
        self.known = local.storage.map { Known(base: $0, pending: .zero) }
        self.position = position
        self.unfoldedChunks = [Bool](repeating: false, count: array.chunkCount)
    }

    /// Reads or writes one element locally (a write counts towards the next exchange).
    public subscript(index: Int) -> Element {
        get { local[index] }
        set { local[index] = newValue }
    }

    /// Runs `body` on the local copy itself: for hot loops, whose `LocalArray` subscripts then compile to
    /// plain array accesses in the caller's module. Writes made there count towards the next exchange.
    public func withLocal<R>(_ body: (inout LocalArray<Element>) throws -> R) rethrows -> R {
        try body(&local)
    }

    /// The number of elements.
    public var count: Int { local.count }

    /// Sends the changes now and waits until they are stored: in explicit mode the changed elements'
    /// values; in asynchronous mode the deltas, to the other replicas and added to the stored array (then
    /// merges the others' deltas, as an exchange does).
    public func push() async throws {
        if case .explicit = consistency {
            try await array.push(&local)
            writesAtExchange = local.writes
            return
        }
        try await settle()
        startExchange()
        try await settle()
        try await settleFold()
        try await foldNow()
    }

    /// Replaces the local copy with the store's values, dropping changes not yet sent (in asynchronous mode
    /// the deltas already sent are first added to the stored array).
    public func pull() async throws {
        try await settle()
        var newPosition = position
        if case .asynchronous = consistency {
            try await settleFold()
            try await foldNow()
            newPosition = try await array.logPosition()
        }
        // Into a fresh copy, swapped in whole: a pull that fails midway leaves the replica as it was.
        var fresh = local
        try await array.refresh(&fresh)
        local = fresh
        writesAtExchange = local.writes
        known = local.storage.map { Known(base: $0, pending: .zero) }
        position = newPosition
    }

    /// In asynchronous mode: merges a finished exchange, and starts the next one if enough writes or time
    /// have accumulated and none is running. Returns at once otherwise (and in explicit mode).
    public func sync() async throws {
        guard case .asynchronous(let updates, let interval) = consistency else { return }
        if exchange != nil, let done = exchanged.take() {
            exchange = nil
            try merge(done)
        }
        if exchange != nil, local.writes &- writesAtExchange >= updates {
            // Bounded staleness: another `updates` writes were made while the exchange ran; wait for it
            // rather than drift further from the other replicas.
            try await settle()
        }
        let now = ContinuousClock.now
        if folding != nil, let outcome = folded.take() {
            folding = nil
            try restore(outcome)
        }
        if folding == nil, now - lastFold >= Self.foldInterval { startFold() }
        guard exchange == nil, local.writes &- writesAtExchange >= updates || now - lastExchange >= interval else {
            return
        }
        startExchange()
    }

    /// Waits for the running exchange, sends what is left, adds it to the stored array, and merges the
    /// others' deltas.
    public func finish() async throws {
        try await push()
    }

    /// Waits for the running exchange (if any) and merges it.
    private func settle() async throws {
        guard let running = exchange else { return }
        await running.value
        exchange = nil
        if let done = exchanged.take() { try merge(done) }
    }

    /// Adds the pending deltas to the stored array in the background (exchanges go on meanwhile).
    private func startFold() {
        let parts = takeUnfolded()
        guard !parts.isEmpty else { return }
        let (array, box) = (self.array, folded)
        folding = Task { box.put(await array.fold(parts)) }
    }

    /// Waits for the running fold (if any); throws its error.
    private func settleFold() async throws {
        guard let running = folding else { return }
        await running.value
        folding = nil
        if let outcome = folded.take() { try restore(outcome) }
    }

    /// Adds the pending deltas to the stored array now.
    private func foldNow() async throws {
        try restore(await array.fold(takeUnfolded()))
    }

    /// Puts the deltas of a fold that failed back into `pending` (none is lost, none added twice unless
    /// the store applied a chunk whose reply was lost), then throws its error.
    private func restore(_ outcome: FoldOutcome<Element>) throws {
        guard let error = outcome.error else { return }
        for part in outcome.remaining {
            for (offset, i) in part.span.enumerated() {
                known[i].pending = Element.adding(part.deltas[offset], minus: .zero, to: known[i].pending)
            }
            unfoldedChunks[part.chunk] = true
        }
        throw error
    }

    /// Sends this replica's deltas and fetches the others', in the background.
    private func startExchange() {
        let (indices, deltas) = collectDeltas()
        writesAtExchange = local.writes
        lastExchange = .now
        let entry = indices.isEmpty ? nil : Self.encode(tag: tag, indices: indices, deltas: deltas)
        let array = self.array
        let box = exchanged
        let tag = self.tag
        let position = self.position
        exchange = Task {
            do {
                box.put(.success(try await array.exchange(sending: entry, after: position, tag: tag)))
            } catch {
                box.put(.failure(error))
            }
        }
    }

    /// This replica's changes since the last exchange, as deltas; they now count as known to the others
    /// (`base`) and wait to be added to the stored array (`pending`).
    @_specialize(where Element == Double)
    @_specialize(where Element == Float)
    @_specialize(where Element == Int)
    private func collectDeltas() -> (indices: [UInt32], deltas: [Element]) {
        // First the written indices, in order (a sequential pass over the bitmap), then one independent
        // step per index: the loads of random elements then overlap instead of waiting on one another.
        let touched = local.touched
        var total = 0
        for bits in touched where bits != 0 { total &+= bits.nonzeroBitCount }
        let indices = [UInt32](unsafeUninitializedCapacity: total) { out, initialized in
            var k = 0
            for (word, bits) in touched.enumerated() where bits != 0 {
                var rest = bits
                while rest != 0 {
                    out[k] = UInt32(truncatingIfNeeded: word &<< 6 | rest.trailingZeroBitCount)
                    k &+= 1
                    rest &= rest &- 1
                }
            }
            initialized = k
        }
        let shift = array.chunkElements.trailingZeroBitCount
        var chunks = unfoldedChunks
        var pairs = known
        known = []  // uniquely referenced while updated below
        let deltas = local.storage.withUnsafeBufferPointer { values in
            pairs.withUnsafeMutableBufferPointer { pairs in
                [Element](unsafeUninitializedCapacity: indices.count) { out, initialized in
                    for k in indices.indices {
                        let i = Int(indices[k])
                        let value = values[i]
                        let pair = pairs[i]
                        let delta = Element.adding(value, minus: pair.base, to: .zero)  // zero if unchanged
                        out[k] = delta
                        pairs[i] = Known(base: value, pending: Element.adding(delta, minus: .zero, to: pair.pending))
                    }
                    initialized = indices.count
                }
            }
        }
        for index in indices { chunks[Int(index) &>> shift] = true }
        known = pairs
        unfoldedChunks = chunks
        local.markClean()
        return (indices, deltas)
    }

    /// The deltas not yet added to the stored array, by chunk; they are then this call's to add.
    @_specialize(where Element == Double)
    @_specialize(where Element == Float)
    @_specialize(where Element == Int)
    private func takeUnfolded() -> [FoldChunk<Element>] {
        lastFold = .now
        var taken: [FoldChunk<Element>] = []
        let size = array.chunkElements
        for chunk in unfoldedChunks.indices where unfoldedChunks[chunk] {
            let span = chunk * size..<Swift.min((chunk + 1) * size, known.count)
            var deltas = [Element]()
            deltas.reserveCapacity(span.count)
            for i in span {
                deltas.append(known[i].pending)
                known[i].pending = .zero
            }
            taken.append(FoldChunk(chunk: chunk, span: span, deltas: deltas))
            unfoldedChunks[chunk] = false
        }
        return taken
    }

    /// Adds the other replicas' deltas to the local copy (under every write made since) and to `base`.
    @_specialize(where Element == Double)
    @_specialize(where Element == Float)
    @_specialize(where Element == Int)
    private func merge(_ result: Result<Received<Element>, any Error>) throws {
        let received = try result.get()
        // A log numbered below our position was deleted and started anew (its array removed and made
        // again): what it held before this read is unknown, so count it as missed.
        if received.position < position { missedExchanges += 1 }
        position = received.position
        missedExchanges += received.missed
        local.storage.withUnsafeMutableBufferPointer { out in
            known.withUnsafeMutableBufferPointer { known in
                for (i, delta) in zip(received.indices, received.deltas) {
                    let index = Int(i)
                    out[index] = Element.adding(delta, minus: .zero, to: out[index])
                    known[index].base = Element.adding(delta, minus: .zero, to: known[index].base)
                }
            }
        }
    }

    /// A log entry: the sender's tag and the number of deltas (8 bytes each, little-endian), their indices
    /// (4 bytes each), then their values (the element's in-memory bytes).
    @_specialize(where Element == Double)
    @_specialize(where Element == Float)
    @_specialize(where Element == Int)
    static func encode(tag: UInt64, indices: [UInt32], deltas: [Element]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16 + indices.count * (4 + MemoryLayout<Element>.stride))
        withUnsafeBytes(of: tag.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: UInt64(indices.count).littleEndian) { bytes += $0 }
        #if _endian(big)
        indices.map(\.littleEndian).withUnsafeBytes { bytes += $0 }
        #else
        indices.withUnsafeBytes { bytes += $0 }
        #endif
        deltas.withUnsafeBytes { bytes += $0 }
        return bytes
    }

    /// Appends the deltas of `entry` to `received` unless `tag` sent it.
    @_specialize(where Element == Double)
    @_specialize(where Element == Float)
    @_specialize(where Element == Int)
    static func decode(_ entry: ByteBuffer, skipping tag: UInt64, into received: inout Received<Element>, count: Int) throws {
        try entry.withUnsafeReadableBytes { raw in
            guard raw.count >= 16 else { throw SharedMemoryError(description: "a delta log entry of \(raw.count) bytes") }
            let sender = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
            let n = Int(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            let stride = MemoryLayout<Element>.stride
            guard n >= 0, n <= count, raw.count == 16 + n * (4 + stride) else {
                throw SharedMemoryError(description: "a delta log entry whose size (\(raw.count) bytes) does not fit its \(n) deltas")
            }
            guard sender != tag else { return }
            let values = 16 + 4 * n
            for k in 0..<n {
                let index = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 16 + 4 * k, as: UInt32.self))
                guard Int(index) < count else { throw SharedMemoryError(description: "a delta log entry with index \(index) beyond \(count)") }
                received.indices.append(index)
                received.deltas.append(raw.loadUnaligned(fromByteOffset: values + stride * k, as: Element.self))
            }
        }
    }
}

/// An element's base and pending delta in an ``ArrayReplica``.
struct Known<Element: SharedArrayElement>: BitwiseCopyable {
    var base: Element
    var pending: Element
}

/// A chunk's share of a replica's deltas, to be added to the stored array (`deltas[0]` is for
/// `span.lowerBound`).
struct FoldChunk<Element: SharedArrayElement>: Sendable {
    var chunk: Int
    var span: Range<Int>
    var deltas: [Element]
}

/// What an exchange brings back: the other replicas' deltas, and where the log was read up to.
struct Received<Element: SharedArrayElement>: Sendable {
    var position: Int
    var missed: Int
    var indices: [UInt32] = []
    var deltas: [Element] = []
}

/// How a fold ended: its error, and the parts not known to be applied (the failed one included).
struct FoldOutcome<Element: SharedArrayElement>: Sendable {
    var error: (any Error)?
    var remaining: [FoldChunk<Element>] = []
}

/// Where a background exchange or fold leaves its result for the replica's owner.
final class ExchangeBox<Value: Sendable>: Sendable {
    private let result = Mutex<Value?>(nil)

    func put(_ value: Value) {
        result.withLock { $0 = value }
    }

    func take() -> Value? {
        result.withLock { value in
            defer { value = nil }
            return value
        }
    }
}

extension SharedArray {
    /// One exchange of an asynchronous replica (one round trip): sends its entry and reads the others'
    /// since `position`.
    func exchange(sending entry: [UInt8]?, after position: Int, tag: UInt64) async throws -> Received<Element> {
        let log = try await appendAndReadLog(
            entry, limit: ArrayReplica<Element>.logLimit, after: position,
            except: withUnsafeBytes(of: tag.littleEndian) { Array($0) })
        var others = Received<Element>(position: log.last, missed: log.missed)
        for item in log.entries {
            try ArrayReplica<Element>.decode(item, skipping: tag, into: &others, count: count)
        }
        return others
    }

    /// Adds a replica's deltas to the stored chunks, each atomically; stops at the first failure.
    func fold(_ parts: [FoldChunk<Element>]) async -> FoldOutcome<Element> {
        for (index, part) in parts.enumerated() {
            do {
                try await addDelta(chunk: part.chunk, span: part.span, delta: part.deltas)
            } catch {
                return FoldOutcome(error: error, remaining: Array(parts[index...]))
            }
        }
        return FoldOutcome()
    }

    /// A local copy of this array with the given consistency, filled from the store.
    public func replica(_ consistency: ReplicaConsistency = .explicit) async throws -> ArrayReplica<Element> {
        if case .asynchronous(let updates, let interval) = consistency, updates < 1 || interval <= .zero {
            throw SharedMemoryError(description: "\(object): asynchronous replicas need updates ≥ 1 and a positive interval")
        }
        guard count <= Int(UInt32.max) else {
            throw SharedMemoryError(description: "\(object): replicas handle arrays of at most \(UInt32.max) elements")
        }
        // The log position first: deltas sent from now on are seen, older ones are in the pulled values
        // once their senders add them.
        var position = 0
        if case .asynchronous = consistency { position = try await logPosition() }
        return ArrayReplica(array: self, consistency: consistency, local: try await pull(), position: position)
    }
}

