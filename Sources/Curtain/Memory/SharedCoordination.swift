import CurtainRESP
import NIOCore

/// A barrier for `parties` participants, reusable round after round: ``arrive(timeout:)`` returns once all
/// parties of the round have arrived.
///
/// Arrivals are numbered by one atomic counter; the last arrival of a round releases the others. A party
/// that died never arrives: the others get a ``SharedMemoryError`` naming the round and how many arrived
/// once their timeout passes, never a hang.
public struct SharedBarrier: Codable, Sendable, Hashable {
    /// The store key.
    public let key: String
    let scope: String
    /// How many parties each round waits for.
    public let parties: Int

    var object: String { "barrier \(key)" }

    /// Waits until every party of this round has arrived.
    ///
    /// - Throws: ``SharedMemoryError`` if the round is not complete within `timeout`.
    public func arrive(timeout: Duration = .seconds(60)) async throws {
        let client = try MemoryBinding.client(for: key, scope: scope)
        let arrival = try await client.send(RESPCommand("INCR", key + ":arrivals")).int ?? 1
        let round = (arrival - 1) / parties
        let go = "\(key):go:\(round)"
        if (arrival - 1) % parties == parties - 1 {
            guard parties > 1 else { return }
            let tokens = Array(repeating: "1", count: parties - 1)
            _ = try await client.pipeline([
                RESPCommand("RPUSH", arguments: [go] + tokens), RESPCommand("PEXPIRE", go, 3_600_000),
            ])
            return
        }
        if try await client.blpop([go], timeout: timeout.blockingTimeout) == nil {
            let arrived = try await client.send(RESPCommand("GET", key + ":arrivals")).string.flatMap { Int($0) } ?? arrival
            throw SharedMemoryError(
                description: "\(object): round \(round) incomplete after \(Format.duration(timeout)): \(min(parties, arrived - round * parties)) of \(parties) parties arrived")
        }
    }
}

/// A counting semaphore of `permits`: ``acquire(timeout:)`` takes a permit, waiting for one;
/// ``release()`` returns it. Permits are tokens in a list, so waiters are served first come, first served.
///
/// A permit held by a process that dies is not returned (unlike ``SharedLock``, a semaphore has no
/// owner to lease it to).
public struct SharedSemaphore: Codable, Sendable, Hashable {
    /// The store key.
    public let key: String
    let scope: String

    var object: String { "semaphore \(key)" }
    var permitsKey: String { key + ":permits" }

    /// Creates the permits once, however many processes make handles.
    static func open(key: String, scope: String, permits: Int) async throws -> SharedSemaphore {
        guard permits >= 1, permits <= 1_000_000 else {
            throw SharedMemoryError(description: "semaphore \(key): permits must be from 1 to 1000000, not \(permits)")
        }
        let semaphore = SharedSemaphore(key: key, scope: scope)
        let client = try MemoryBinding.client(for: key, scope: scope)
        let created = try await client.send(RESPCommand("SET", key, permits, "NX"))
        if created.string == "OK" {
            _ = try await client.send(RESPCommand("RPUSH", arguments: [semaphore.permitsKey] + Array(repeating: "1", count: permits)))
        } else if try await client.send(RESPCommand("GET", key)).string != String(permits) {
            throw SharedMemoryError(description: "semaphore \(key) exists with another number of permits")
        }
        return semaphore
    }

    /// Takes a permit, waiting at most `timeout`.
    ///
    /// - Throws: ``SharedMemoryError`` if no permit came in time.
    public func acquire(timeout: Duration = .seconds(60)) async throws {
        let client = try MemoryBinding.client(for: key, scope: scope)
        guard try await client.blpop([permitsKey], timeout: timeout.blockingTimeout) != nil else {
            throw SharedMemoryError(description: "\(object): no permit within \(Format.duration(timeout))")
        }
    }

    /// Returns a permit.
    public func release() async throws {
        _ = try await MemoryBinding.client(for: key, scope: scope).send(RESPCommand("RPUSH", permitsKey, "1"))
    }

    /// Runs `body` holding a permit.
    public func withPermit<R: Sendable>(timeout: Duration = .seconds(60), _ body: () async throws -> R) async throws -> R {
        try await acquire(timeout: timeout)
        do {
            let result = try await body()
            try await release()
            return result
        } catch {
            try? await release()
            throw error
        }
    }
}

/// A FIFO queue of `Codable` values, optionally bounded: with a capacity, ``send(_:timeout:)`` waits for
/// room (backpressure). Receivers read it as an `AsyncSequence` that ends once the queue is closed and
/// drained.
///
/// ```swift
/// let jobs = try await cloud.memory.queue("jobs", of: Job.self, capacity: 100)
/// try await jobs.send(job)                       // producer
/// for try await job in jobs { … }                // consumers, anywhere
/// ```
public struct SharedQueue<Element: Codable & Sendable>: Codable, Sendable, Hashable, AsyncSequence {
    /// The store key of the items list.
    public let key: String
    let scope: String
    /// The most items waiting at once, or `nil` for unbounded.
    public let capacity: Int?

    var object: String { "queue \(key)" }
    var slotsKey: String { key + ":slots" }
    /// The item that marks a closed queue: receivers put it back so that every receiver sees it.
    static var closedMarker: ByteBuffer { ByteBuffer(bytes: [0]) }

    static func open(key: String, scope: String, capacity: Int?) async throws -> SharedQueue {
        if let capacity, capacity < 1 || capacity > 1_000_000 {
            throw SharedMemoryError(description: "queue \(key): capacity must be from 1 to 1000000, not \(capacity)")
        }
        let queue = SharedQueue(key: key, scope: scope, capacity: capacity)
        let client = try MemoryBinding.client(for: key, scope: scope)
        let description = "curtain-queue \(capacity.map(String.init) ?? "unbounded")"
        let created = try await client.send(RESPCommand("SET", key + ":meta", description, "NX"))
        if created.string == "OK" {
            if let capacity {
                _ = try await client.send(RESPCommand("RPUSH", arguments: [queue.slotsKey] + Array(repeating: "1", count: capacity)))
            }
        } else if try await client.send(RESPCommand("GET", key + ":meta")).string != description {
            throw SharedMemoryError(description: "queue \(key) exists with another capacity")
        }
        return queue
    }

    private func client() throws -> RESPClient { try MemoryBinding.client(for: key, scope: scope) }

    /// Appends `value`, waiting up to `timeout` for room in a bounded queue.
    ///
    /// - Throws: ``SharedMemoryError`` if the queue stayed full, or is closed (nothing is added).
    public func send(_ value: Element, timeout: Duration = .seconds(60)) async throws {
        let client = try client()
        let bytes = try TypedPayload.encode(value)
        if try await client.send(RESPCommand("EXISTS", key + ":closed")).int == 1 {
            throw SharedMemoryError(description: "\(object) is closed")
        }
        if capacity != nil {
            guard try await client.blpop([slotsKey], timeout: timeout.blockingTimeout) != nil else {
                throw SharedMemoryError(description: "\(object) stayed full for \(Format.duration(timeout))")
            }
        }
        if try await client.send(RESPCommand("EXISTS", key + ":closed")).int == 1 {
            if capacity != nil { _ = try await client.send(RESPCommand("RPUSH", slotsKey, "1")) }
            throw SharedMemoryError(description: "\(object) is closed")
        }
        _ = try await client.send(RESPCommand("RPUSH", key, ByteBuffer(bytes: bytes)))
    }

    enum Taken {
        case item(Element)
        case closed
        case nothing
    }

    func take(timeout: Duration) async throws -> Taken {
        let client = try client()
        guard let (_, buffer) = try await client.blpop([key], timeout: timeout.blockingTimeout) else { return .nothing }
        if buffer == Self.closedMarker {
            _ = try await client.send(RESPCommand("LPUSH", key, Self.closedMarker))  // for the other receivers
            return .closed
        }
        if capacity != nil { _ = try await client.send(RESPCommand("RPUSH", slotsKey, "1")) }
        return .item(try TypedPayload.decode(Element.self, from: Array(buffer.readableBytesView), object: object))
    }

    /// Takes the oldest item, waiting up to `timeout`; `nil` if the queue is closed and empty.
    ///
    /// - Throws: ``SharedMemoryError`` if nothing came in time, or an item is of another type.
    public func receive(timeout: Duration = .seconds(60)) async throws -> Element? {
        switch try await take(timeout: timeout) {
        case .item(let value): return value
        case .closed: return nil
        case .nothing: throw SharedMemoryError(description: "\(object): nothing received within \(Format.duration(timeout))")
        }
    }

    /// Closes the queue: senders are refused; receivers get what is queued, then the end of the sequence.
    public func close() async throws {
        _ = try await client().pipeline([
            RESPCommand("SET", key + ":closed", "1"), RESPCommand("RPUSH", key, Self.closedMarker),
        ])
    }

    /// The items in arrival order, until the queue is closed and drained.
    public func makeAsyncIterator() -> Iterator { Iterator(queue: self) }

    /// Receives a ``SharedQueue``'s items one by one, waiting as long as it takes for each.
    public struct Iterator: AsyncIteratorProtocol {
        let queue: SharedQueue
        /// The next item, or `nil` once the queue is closed and empty.
        public mutating func next() async throws -> Element? {
            while true {
                try Task.checkCancellation()
                switch try await queue.take(timeout: .seconds(1)) {
                case .item(let value): return value
                case .closed: return nil
                case .nothing: continue
                }
            }
        }
    }
}

/// A flag that processes can wait for, like a manual-reset event: ``wait(timeout:)`` returns once
/// ``set()`` has been called (at once if it already was), until ``clear()``.
///
/// `set` leaves one token on a wake list; each waiter that wakes passes it on, so every waiter wakes
/// promptly; a waiter also rechecks the flag every 50 ms.
public struct SharedEvent: Codable, Sendable, Hashable {
    /// The store key of the flag.
    public let key: String
    let scope: String

    var object: String { "event \(key)" }
    var wakeKey: String { key + ":wake" }

    private func client() throws -> RESPClient { try MemoryBinding.client(for: key, scope: scope) }

    private var wakeOthers: [RESPCommand] {
        [RESPCommand("RPUSH", wakeKey, "1"), RESPCommand("LTRIM", wakeKey, -1, -1), RESPCommand("PEXPIRE", wakeKey, 60_000)]
    }

    /// Sets the flag and wakes every waiter.
    public func set() async throws {
        _ = try await client().pipeline([RESPCommand("SET", key, "1")] + wakeOthers)
    }

    /// Clears the flag: later waits block until the next ``set()``.
    public func clear() async throws {
        _ = try await client().pipeline([RESPCommand("DEL", key), RESPCommand("DEL", wakeKey)])
    }

    /// Whether the flag is set.
    public func isSet() async throws -> Bool {
        try await client().send(RESPCommand("EXISTS", key)).int == 1
    }

    /// Waits until the flag is set.
    ///
    /// - Throws: ``SharedMemoryError`` if it is not set within `timeout`.
    public func wait(timeout: Duration = .seconds(60)) async throws {
        let client = try client()
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            if try await client.send(RESPCommand("EXISTS", key)).int == 1 {
                _ = try await client.pipeline(wakeOthers)  // pass the wake-up on
                return
            }
            let left = deadline - clock.now
            guard left > .zero else {
                throw SharedMemoryError(description: "\(object): not set within \(Format.duration(timeout))")
            }
            _ = try await client.blpop([wakeKey], timeout: Swift.min(0.05, left.blockingTimeout))
        }
    }
}
