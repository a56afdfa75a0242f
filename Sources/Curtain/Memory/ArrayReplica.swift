import CurtainRESP
import Synchronization

/// When an ``ArrayReplica`` exchanges data with its shared array.
public enum ReplicaConsistency: Sendable, Hashable {
    /// Read-your-writes: nothing moves until ``ArrayReplica/push()`` or ``ArrayReplica/pull()`` is called.
    case explicit
    /// HOGWILD!-style: ``ArrayReplica/sync()`` (called as often as convenient, say once per update) starts
    /// a background push of the changed elements once `updates` writes have accumulated or `interval` has
    /// passed since the last push, and merges a background pull of everyone else's values at the same
    /// cadence. Pushes send values, not increments: when several replicas change the same element, the
    /// last push wins.
    case asynchronous(updates: Int, interval: Duration)
}

/// A worker's local copy of a ``SharedArray`` with a chosen consistency: reads and writes at memory speed
/// (the subscript is a ``LocalArray``'s), exchanges with the store explicitly or in the background.
///
/// ```swift
/// let replica = try await weights.replica(.asynchronous(updates: 1_000, interval: .milliseconds(50)))
/// for sample in shard {
///     for (j, x) in sample.features { replica[j] -= rate * gradient * x }
///     try await replica.sync()              // cheap unless it is time to exchange
/// }
/// try await replica.finish()                // waits for the last push
/// ```
///
/// Guarantees: a replica always reads its own writes; its writes reach the store in order (a push starts
/// only after the previous one finished); a background pull never overwrites an element the replica
/// changed since its last push. Use a replica from one task at a time.
public final class ArrayReplica<Element: SharedArrayElement> {
    /// The shared array.
    public let array: SharedArray<Element>
    /// The consistency in force.
    public let consistency: ReplicaConsistency
    /// The local copy.
    public private(set) var local: LocalArray<Element>
    private var updatesSincePush = 0
    private var lastExchange = ContinuousClock.now
    private var pushing: Task<Void, any Error>?
    private var pulling: Task<Void, Never>?
    private let pulled = PulledBox<Element>()

    init(array: SharedArray<Element>, consistency: ReplicaConsistency, local: LocalArray<Element>) {
        self.array = array
        self.consistency = consistency
        self.local = local
    }

    /// Reads or writes one element locally (a write counts towards the next asynchronous push).
    public subscript(index: Int) -> Element {
        get { local[index] }
        set {
            local[index] = newValue
            updatesSincePush += 1
        }
    }

    /// The number of elements.
    public var count: Int { local.count }

    /// Sends the changed elements now and waits for them to be stored.
    public func push() async throws {
        try await pushing?.value
        pushing = nil
        try await array.push(&local)
        updatesSincePush = 0
        lastExchange = .now
    }

    /// Replaces the local copy with the store's values, dropping unpushed changes.
    public func pull() async throws {
        try await pushing?.value
        pushing = nil
        try await array.refresh(&local)
    }

    /// In asynchronous mode: if enough updates or time have accumulated, starts a background push of the
    /// changed elements (their values copied now) and a background pull; merges a pull that has finished.
    /// Returns at once otherwise (and in explicit mode). Waits only when the previous push is still running
    /// at the next exchange.
    public func sync() async throws {
        guard case .asynchronous(let updates, let interval) = consistency else { return }
        if pulling != nil, let fresh = pulled.take() {
            pulling = nil
            local.merge(try fresh.get())  // keeps every element changed here since the last push
        }
        guard updatesSincePush >= updates || ContinuousClock.now - lastExchange >= interval else { return }
        try await pushing?.value  // pushes stay in order
        let array = self.array
        let spans = local.dirtySpans
        let rounds = stride(from: 0, to: spans.count, by: 8).map {
            array.commands(writing: spans[$0..<Swift.min($0 + 8, spans.count)], of: local)
        }
        local.markClean()
        updatesSincePush = 0
        lastExchange = .now
        let push = Task { try await array.send(rounds) }
        pushing = push
        if pulling == nil {
            let pulled = self.pulled
            pulling = Task {
                _ = try? await push.value  // our own changes first
                let result: Result<LocalArray<Element>, any Error>
                do {
                    result = .success(try await array.pull())
                } catch {
                    result = .failure(error)
                }
                pulled.put(result)
            }
        }
    }

    /// Waits for background work and pushes what is left.
    public func finish() async throws {
        try await pushing?.value
        pushing = nil
        await pulling?.value
        pulling = nil
        _ = pulled.take()
        try await push()
    }
}

extension LocalArray {
    /// Takes `fresh`'s values for every element this copy has not changed since its last push.
    mutating func merge(_ fresh: LocalArray<Element>) {
        guard fresh.count == count else { return }
        let chunkElements = 1 << chunkShift
        for chunk in dirtyLow.indices {
            let start = chunk * chunkElements
            let end = Swift.min(start + chunkElements, count)
            let low = dirtyLow[chunk]
            if low == .max {
                storage.replaceSubrange(start..<end, with: fresh.storage[start..<end])
            } else {
                let high = dirtyHigh[chunk]
                storage.replaceSubrange(start..<low, with: fresh.storage[start..<low])
                storage.replaceSubrange(high..<end, with: fresh.storage[high..<end])
            }
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

/// Where a background pull leaves its result for the replica's owner to merge.
final class PulledBox<Element: SharedArrayElement>: Sendable {
    private let result = Mutex<Result<LocalArray<Element>, any Error>?>(nil)

    func put(_ value: Result<LocalArray<Element>, any Error>) {
        result.withLock { $0 = value }
    }

    func take() -> Result<LocalArray<Element>, any Error>? {
        result.withLock { value in
            defer { value = nil }
            return value
        }
    }
}
