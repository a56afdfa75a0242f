import CurtainRESP
import Synchronization

/// When an ``ArrayReplica`` exchanges data with its shared array.
public enum ReplicaConsistency: Sendable, Hashable {
    /// Read-your-writes: nothing moves until ``ArrayReplica/push()`` (which writes the changed elements'
    /// values) or ``ArrayReplica/pull()`` (which replaces the local copy) is called.
    case explicit
    /// HOGWILD!-style: ``ArrayReplica/sync()`` (called as often as convenient) starts a background exchange
    /// once `updates` writes have accumulated or `interval` has passed since the last one. An exchange adds
    /// this replica's *deltas* (local value minus the value last received) to the stored chunks it changed,
    /// atomically per chunk, so concurrent replicas' changes add up instead of overwriting one another, and
    /// brings back the stored values, merged at a later `sync()` under every write made meanwhile.
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
/// Guarantees: a replica always reads its own writes; in asynchronous mode one exchange runs at a time,
/// every write is sent exactly once as part of a delta, and none is lost to another replica's exchange.
/// Use a replica from one task at a time.
public final class ArrayReplica<Element: SharedArrayElement> {
    /// The shared array.
    public let array: SharedArray<Element>
    /// The consistency in force.
    public let consistency: ReplicaConsistency
    /// The local copy.
    public private(set) var local: LocalArray<Element>
    /// The stored values as last received (what deltas are measured from).
    private var base: [Element]
    /// `local.writes` at the last exchange.
    private var writesAtExchange = 0
    private var lastExchange = ContinuousClock.now
    private var exchange: Task<Void, Never>?
    private let exchanged = ExchangeBox<Element>()

    init(array: SharedArray<Element>, consistency: ReplicaConsistency, local: LocalArray<Element>) {
        self.array = array
        self.consistency = consistency
        self.local = local
        self.base = local.storage
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
    /// values, in asynchronous mode the deltas (then merges the stored values, as an exchange does).
    public func push() async throws {
        if case .explicit = consistency {
            try await array.push(&local)
            writesAtExchange = local.writes
            return
        }
        try await settle()
        startExchange()
        try await settle()
    }

    /// Replaces the local copy with the store's values, dropping changes not yet sent.
    public func pull() async throws {
        try await settle()
        try await array.refresh(&local)
        base = local.storage
    }

    /// In asynchronous mode: merges a finished exchange, and starts the next one if enough writes or time
    /// have accumulated and none is running. Returns at once otherwise (and in explicit mode).
    public func sync() async throws {
        guard case .asynchronous(let updates, let interval) = consistency else { return }
        if exchange != nil, let done = exchanged.take() {
            exchange = nil
            try merge(done)
        }
        guard exchange == nil, local.writes &- writesAtExchange >= updates || ContinuousClock.now - lastExchange >= interval else {
            return
        }
        startExchange()
    }

    /// Waits for the running exchange, sends what is left, and merges the result.
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

    private func startExchange() {
        let chunkElements = array.chunkElements
        var deltas: [Int: Range<Int>] = [:]
        for span in local.dirtySpans { deltas[span.lowerBound / chunkElements] = span }
        let snapshot = local.storage  // copy on write: the exchange reads this version
        let base = self.base
        local.markClean()
        writesAtExchange = local.writes
        lastExchange = .now
        let (array, box) = (self.array, exchanged)
        exchange = Task {
            do {
                var fresh: [Element] = []
                fresh.reserveCapacity(snapshot.count)
                for chunk in 0..<array.chunkCount {
                    if let span = deltas[chunk] {
                        fresh += try await array.addDelta(chunk: chunk, span: span, local: snapshot[...], base: base[...])
                    } else {
                        fresh += try await array.chunkValues(chunk)
                    }
                }
                box.put(.success(Exchanged(fresh: fresh, snapshot: snapshot)))
            } catch {
                box.put(.failure(error))
            }
        }
    }

    /// The local copy becomes the stored values plus every write made since the exchange started.
    private func merge(_ result: Result<Exchanged<Element>, any Error>) throws {
        let done = try result.get()
        let chunkElements = array.chunkElements
        let changed = local.dirtyLow.map { $0 != .max }  // chunks written since the exchange started
        local.storage.withUnsafeMutableBufferPointer { out in
            for chunk in 0..<array.chunkCount {
                let start = chunk * chunkElements
                let end = Swift.min(start + chunkElements, out.count)
                if !changed[chunk] {
                    for i in start..<end { out[i] = done.fresh[i] }
                } else {
                    for i in start..<end {
                        out[i] = Element.adding(out[i], minus: done.snapshot[i], to: done.fresh[i])
                    }
                }
            }
        }
        base = done.fresh
    }
}

/// What an exchange brings back: the stored values after its deltas, and the local values it sent.
struct Exchanged<Element: SharedArrayElement>: Sendable {
    var fresh: [Element]
    var snapshot: [Element]
}

/// Where a background exchange leaves its result for the replica's owner to merge.
final class ExchangeBox<Element: SharedArrayElement>: Sendable {
    private let result = Mutex<Result<Exchanged<Element>, any Error>?>(nil)

    func put(_ value: Result<Exchanged<Element>, any Error>) {
        result.withLock { $0 = value }
    }

    func take() -> Result<Exchanged<Element>, any Error>? {
        result.withLock { value in
            defer { value = nil }
            return value
        }
    }
}

extension SharedArray {
    /// A local copy of this array with the given consistency, filled from the store.
    public func replica(_ consistency: ReplicaConsistency = .explicit) async throws -> ArrayReplica<Element> {
        if case .asynchronous(let updates, let interval) = consistency, updates < 1 || interval <= .zero {
            throw SharedMemoryError(description: "\(object): asynchronous replicas need updates ≥ 1 and a positive interval")
        }
        return ArrayReplica(array: self, consistency: consistency, local: try await pull())
    }
}

