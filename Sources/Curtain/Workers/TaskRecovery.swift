import CurtainRESP
import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A task given up on: kept in `curtain:{B}:dead` (the latest 1,000) for `curtain status` and people.
struct DeadLetter: Codable, Sendable, Hashable {
    var job: String
    var index: UInt64
    var function: String
    var attempts: Int
    var worker: String
    var reason: String
    /// Unix milliseconds.
    var at: Int
}

/// Puts a dead worker's in-flight tasks back on the queue, or gives up on them.
enum TaskRecovery {
    /// Recovers the in-flight list of `workerID`, and its own queue, atomically (`WATCH`/`MULTI`): when
    /// several processes notice the same death, exactly one recovers its tasks.
    ///
    /// Only a task that was alone in the worker's hands is charged the crash: when it held several (a
    /// batch), none is known to be guilty, so all go back uncharged and marked suspect, and each then runs
    /// alone, where a second crash names its culprit. A task charged `1 + crashRetries` crashes is answered
    /// as ``RemoteFailure/Kind/crashed`` and recorded as a ``DeadLetter``. Then the tasks placed on the
    /// worker's own queue (never taken) go back to the head of the shared queue as they were, one atomic
    /// move each (idle workers may be stealing from it at the same time).
    ///
    /// `forget` (for a process known to be dead, not just silent) also removes its heartbeat, so that no
    /// driver places tasks on it any more (a driver's placement watches the heartbeat).
    ///
    /// - Returns: the tasks put back and those given up on; `nil` if another process recovered them first.
    @discardableResult
    static func recover(
        workerID: String, how: String, keys: StoreKeys, crashRetries: Int, client: RESPClient, sealer: Sealer? = nil,
        forget: Bool = false
    ) async throws -> (requeued: Int, givenUp: Int)? {
        let inflight = keys.inflight(worker: workerID)
        let own = keys.ownQueue(worker: workerID)
        return try await client.withDedicatedConnection { connection in
            // Only the in-flight list is watched: nothing but a recovery touches a dead worker's, while its
            // own queue may be stolen from meanwhile (which must not abort the recovery).
            _ = try await connection.send(RESPCommand("WATCH", inflight))
            let taken = (try await connection.send(RESPCommand("LRANGE", inflight, 0, -1)).array ?? []).compactMap(\.buffer)
            var commands: [RESPCommand] = [RESPCommand("MULTI")]
            if forget {
                commands.append(RESPCommand("DEL", keys.worker(workerID)))
                commands.append(RESPCommand("SREM", keys.workers, workerID))
            }
            let alone = taken.count == 1
            var counts = (requeued: 0, givenUp: 0)
            for raw in taken.reversed() {
                // An entry that is not to be trusted is dropped with the list.
                guard let opened = try? Sealer.open(raw, with: sealer), var envelope = try? TaskEnvelope(decoding: opened) else { continue }
                if alone && Int(envelope.crashes) >= crashRetries {
                    let attempts = Int(envelope.crashes) + 1
                    let reason = "the worker \(how) (attempt \(attempts) of \(crashRetries + 1))"
                    let result = TaskResult(
                        jobID: envelope.jobID, index: envelope.index, attempt: envelope.attempt,
                        crashes: envelope.crashes &+ 1, workerID: workerID,
                        outcome: .failure(RemoteFailure(kind: .crashed, errorType: "Curtain.WorkerCrash", message: reason)))
                    commands.append(RESPCommand("RPUSH", StoreKeys.results(job: envelope.jobID), Sealer.seal(try result.encoded(), with: sealer)))
                    let letter = DeadLetter(
                        job: envelope.jobID, index: envelope.index, function: envelope.function, attempts: attempts,
                        worker: workerID, reason: reason, at: Int(time(nil)) * 1000)
                    commands.append(RESPCommand("RPUSH", keys.deadLetters, ByteBuffer(bytes: try PayloadCodec.encode(letter))))
                    commands.append(RESPCommand("LTRIM", keys.deadLetters, -1000, -1))
                    counts.givenUp += 1
                } else {
                    envelope.attempt &+= 1
                    if alone {
                        envelope.crashes += 1
                    } else {
                        envelope.suspect = true
                    }
                    commands.append(RESPCommand("LPUSH", keys.queue, Sealer.seal(try envelope.encoded(), with: sealer)))
                    counts.requeued += 1
                }
            }
            commands.append(RESPCommand("DEL", inflight))
            commands.append(RESPCommand("EXEC"))
            let replies = try await connection.pipeline(commands)
            if let error = replies.first(where: { $0.errorMessage != nil })?.errorMessage { throw RESPError.server(error) }
            if replies.last?.isNull == true { return nil }
            // No driver places anything on it now (its heartbeat is gone): its own queue goes back.
            while try await connection.send(RESPCommand("LMOVE", own, keys.queue, "RIGHT", "LEFT")).buffer != nil {
                counts.requeued += 1
            }
            _ = try await connection.send(RESPCommand("SREM", keys.placed, workerID))
            return counts
        }
    }
}

/// On a shared store, where no supervisor watches the workers' processes: finds workers whose heartbeat
/// lapsed and recovers their in-flight tasks (every driver of the build runs one; `WATCH` makes exactly
/// one of them recover each dead worker).
final class TaskReaper: Sendable {
    private let task: Task<Void, Never>

    init(
        client: RESPClient, keys: StoreKeys, heartbeatTTL: Duration, crashRetries: Int, sealer: Sealer? = nil,
        logger: Logger = Logger(label: "curtain.reaper")
    ) {
        // A tenth of the TTL: with heartbeats that expire after 0.9 TTL, a dead worker's tasks are back in
        // the queue within the TTL of its death.
        let period = max(heartbeatTTL / 10, .milliseconds(20))
        task = client.everyPeriod(period) {
            do {
                try await Self.sweep(client: client, keys: keys, crashRetries: crashRetries, sealer: sealer, logger: logger)
            } catch {
                logger.debug("reaper sweep failed", metadata: ["error": "\(error)"])
            }
            return true
        }
    }

    /// One pass: the build's registered workers (`curtain:{B}:workers`, kept by their heartbeats) whose
    /// heartbeat lapsed have their in-flight tasks recovered and leave the set. No keyspace scan, so it
    /// stays cheap on a big shared store.
    static func sweep(client: RESPClient, keys: StoreKeys, crashRetries: Int, sealer: Sealer?, logger: Logger) async throws {
        // The registered workers, and any worker with an own queue (a driver may have placed tasks on a
        // worker that died between its check and its push).
        let workers = (try await client.send(RESPCommand("SUNION", keys.workers, keys.placed)).array ?? []).compactMap(\.string)
        guard !workers.isEmpty else { return }
        let alive = try await client.pipeline(workers.map { RESPCommand("EXISTS", keys.worker($0)) })
        for (worker, beat) in zip(workers, alive) where beat.int == 0 {
            if let counts = try await TaskRecovery.recover(
                workerID: worker, how: "stopped sending heartbeats", keys: keys, crashRetries: crashRetries, client: client,
                sealer: sealer)
            {
                if counts.requeued + counts.givenUp > 0 {
                    logger.warning(
                        "a worker's heartbeat lapsed; recovered its tasks",
                        metadata: ["worker": "\(worker)", "requeued": "\(counts.requeued)", "given up": "\(counts.givenUp)"])
                }
                // Gone for good unless it beats again (a stalled worker re-registers with its next beat).
                _ = try await client.send(RESPCommand("SREM", keys.workers, worker))
            }
        }
    }

    func stop() { task.cancel() }
}

/// A worker's heartbeat: `curtain:{B}:worker:<id>`, a hash of its host, process id, build, tasks done and
/// last beat (Unix ms), renewed every 0.3 TTL from the keeper thread through its own connection
/// (``RESPClient/keeper``: neither the cooperative pool, which CPU-bound tasks may be holding, nor the
/// connections' event loops can delay it) and expiring 0.9 TTL after the last renewal, so that with reapers
/// sweeping every 0.1 TTL a dead worker is noticed within the TTL.
final class WorkerHeartbeat: Sendable {
    let client: RESPClient
    let key: String
    let ttl: Duration
    let buildID: String
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// The build's set of registered workers, and this one's id in it.
    let workers: String
    let workerID: String

    init(client: RESPClient, keys: StoreKeys, workerID: String, ttl: Duration) {
        self.client = client
        self.workers = keys.workers
        self.workerID = workerID
        self.key = keys.worker(workerID)
        self.ttl = ttl
        self.buildID = keys.buildID
    }

    /// The store's id for the worker loop's connection (`CLIENT ID`), written with every beat as `conn`:
    /// a driver that places tasks on this worker's own queue wakes the loop with `CLIENT UNBLOCK`, and
    /// places tasks only on workers that have one.
    private let connection = Mutex<Int?>(nil)

    /// This process's token, written with every beat: the worker's entries in holder sets carry it, so a
    /// later process under the same id (a restarted container) is not taken to hold what this one held.
    let token: String = {
        var rng = SystemRandomNumberGenerator()
        return String(rng.next() as UInt64, radix: 36)
    }()

    /// The worker loop's connection id (`CLIENT ID`), once announced and until withdrawn.
    var connectionID: Int? { connection.withLock { $0 } }

    /// Records the worker loop's connection id and beats at once, so drivers can wake the loop; the beat
    /// goes through `loop`, the loop's own connection (idle then, and open already, where the keeper's may
    /// still be opening in a fresh worker).
    func announce(connection id: Int, through loop: RESPConnection) async throws {
        connection.withLock { $0 = id }
        try Self.check(try await loop.pipeline(commands()))
    }

    /// Stops offering the worker for placement (it is draining): drivers place nothing more on it.
    func withdraw() async {
        connection.withLock { $0 = nil }
        _ = try? await client.keeper.send(RESPCommand("HDEL", key, "conn"))
    }

    func beat() async throws {
        try Self.check(try await client.keeper.pipeline(commands()))
    }

    /// A beat refused by the store (a read-only replica, a full memory) is an error, not a silent gap.
    private static func check(_ replies: [RESPValue]) throws {
        if let message = replies.lazy.compactMap(\.errorMessage).first { throw RESPError.server(message) }
    }

    /// The commands of one beat.
    private func commands() -> [RESPCommand] {
        var fields: [any RESPArgument] = [
            key, "host", Self.hostName(), "pid", Int(getpid()), "build", buildID,
            "tasks", WorkerLoop.tasksDone.load(ordering: .relaxed), "beat", Int(time(nil)) * 1000,
        ]
        fields += ["token", token]
        if let rss = Self.residentBytes() { fields += ["rss", rss] }
        if let id = connection.withLock({ $0 }) { fields += ["conn", id] }
        return [
            RESPCommand("HSET", arguments: fields),
            RESPCommand("PEXPIRE", key, Int((ttl * 0.9).wholeMilliseconds)),
            RESPCommand("SADD", workers, workerID),
        ]
    }

    func start() {
        let task = client.everyPeriod(ttl * 0.3) { [self] in
            try? await beat()
            return true
        }
        self.task.withLock { $0 = task }
    }

    func stop() { task.withLock { $0?.cancel() } }

    /// Stops beating and waits for a beat under way, so that none lands after the heartbeat is deleted.
    func stopAndWait() async {
        let running = task.withLock { $0 }
        running?.cancel()
        await running?.value
    }

    /// This process's resident memory, from `/proc/self/statm` (Linux); `nil` elsewhere.
    static func residentBytes() -> Int? {
        #if os(Linux)
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return nil }
        let fields = String(decoding: buffer[..<n], as: UTF8.self).split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        return nil
        #endif
    }

    /// This machine's host name.
    static func hostName() -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "unknown-host" }
        return String(decoding: buffer.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
}
