public import CurtainRESP
public import Logging
import NIOCore
import Synchronization

/// The loop a worker runs: take tasks of its build from the store's queues, run them with the registry,
/// push each result to its job's result list.
///
/// Tasks are taken with `BLMOVE queue → in-flight` (atomic, so a dead worker's tasks stay visible in its
/// in-flight list and can be put back) and, when more are waiting, with up to `batchSize - 1` further
/// `LMOVE`s pipelined in the same round trip. Results and the in-flight removals of a batch leave in one
/// pipeline. A malformed envelope or an unknown function is logged and answered, never fatal.
///
/// A worker with a heartbeat also says which shared values its cache holds (`curtain:{B}:held:<hash>`), so
/// that drivers place the tasks that need them on its own queue (`curtain:{B}:queue:<worker>`). It takes
/// from its own queue first, then from the shared one; with both empty it steals from the tail of the
/// longest own queue of another worker, so no worker idles while another has a backlog.
public struct WorkerLoop: Sendable {
    let client: RESPClient
    let registry: FunctionRegistry
    let keys: StoreKeys
    /// This worker's id, unique among live workers.
    public let workerID: String
    let batchSize: Int
    /// How long a timed-out function has to react to cancellation before the worker gives up on it.
    let stuckGrace: Duration
    let logger: Logger
    /// Where outputs above the spill threshold go; `nil` keeps every output inline.
    let spill: SpillSettings?
    /// Checks envelopes and signs results when the worker has a secret.
    let sealer: Sealer?
    /// Entries larger than this are refused unread.
    let maxEntryBytes: Int
    /// The worker's heartbeat, when it keeps one: the loop then announces its connection (for drivers to
    /// wake it) and the shared values it holds (for drivers to place tasks near them).
    let heartbeat: WorkerHeartbeat?
    /// Where this process keeps shared values.
    let cache: SharedValueCache
    /// What the loop shares with ``drain()`` and across reconnections.
    private let state = LoopState()

    private final class LoopState: Sendable {
        let draining = Atomic<Bool>(false)
        /// The answers (results and in-flight removals) of a batch whose pipeline failed.
        let unsent = Mutex<[RESPCommand]?>(nil)
        /// Jobs seen running, and when: not asked about again for ``liveFor`` (one round trip less per
        /// task of a job with long tasks, which take one at a time).
        let live = Mutex<[String: ContinuousClock.Instant]>([:])
        /// Whether the own queue may hold tasks (at start: one left from an earlier process of this id).
        let ownPending = Atomic<Bool>(true)
        /// Whether this worker has said it holds a shared value (drivers may then place tasks on it, so
        /// each batch's answers ask how many wait on its own queue).
        let holds = Atomic<Bool>(false)
        /// The loop connection's `CLIENT ID` (what a driver's `CLIENT UNBLOCK` names), when the store gave one.
        let connectionID = Mutex<Int?>(nil)
        /// Whether the last steal found tasks (the next step steals again before it waits).
        let stealing = Atomic<Bool>(false)
        /// Whether another worker's own queue had tasks at the last look (an idle wait is then shorter,
        /// so a backlog on one of them is stolen from sooner).
        let placementSeen = Atomic<Bool>(false)
        /// Whether ``run()`` has returned (or thrown).
        let stopped = Atomic<Bool>(false)
    }

    /// How long a job seen running is taken to be running still (its tasks queued after it ended run
    /// at most this much longer).
    static let liveFor: Duration = .milliseconds(100)

    /// Creates a worker loop for executables of `buildID`.
    public init(
        client: RESPClient, registry: FunctionRegistry, buildID: String, workerID: String, batchSize: Int = 64,
        stuckGrace: Duration = .milliseconds(500), logger: Logger = Logger(label: "curtain.worker")
    ) {
        self.init(
            client: client, registry: registry, buildID: buildID, workerID: workerID, batchSize: batchSize,
            stuckGrace: stuckGrace, logger: logger, spill: nil, sealer: nil)
    }

    init(
        client: RESPClient, registry: FunctionRegistry, buildID: String, workerID: String, batchSize: Int = 64,
        stuckGrace: Duration = .milliseconds(500), logger: Logger = Logger(label: "curtain.worker"), spill: SpillSettings?,
        sealer: Sealer?, maxEntryBytes: Int = CloudConfiguration.defaultMaxPayload, heartbeat: WorkerHeartbeat? = nil,
        cache: SharedValueCache = .process
    ) {
        self.maxEntryBytes = maxEntryBytes
        self.heartbeat = heartbeat
        self.cache = cache
        if heartbeat != nil { cache.trackHoldings() }
        self.spill = spill
        self.sealer = sealer
        self.stuckGrace = stuckGrace
        self.client = client
        self.registry = registry
        self.keys = StoreKeys(buildID: buildID)
        self.workerID = workerID
        self.batchSize = max(1, batchSize)
        self.logger = logger
    }

    /// Runs until the calling task is cancelled or ``drain()`` is called.
    ///
    /// - Throws: ``WorkerStuckError`` when a timed-out function will not stop; `CancellationError`.
    ///
    /// The batch size adapts to task length: it starts at 1 and doubles (up to `batchSize`) while a batch
    /// runs in under 2 ms, and drops back to 1 when a batch takes more than 20 ms, so short tasks share round
    /// trips while long ones stay spread over all workers instead of piling up on the first one to ask.
    ///
    /// A lost connection (the store restarted, the network went away for a while) does not stop the loop: it
    /// reconnects with a growing delay (up to 2 s). Answers of a batch that could not be sent are sent first
    /// on the new connection, and anything else in this worker's in-flight list (a task whose `BLMOVE`
    /// reply was lost with the connection) goes back to the queue, so nothing is stranded.
    public func run() async throws {
        try await run(startingAfter: {})
    }

    /// ``run()``, with `gate` awaited once before the first task is taken (after the loop's connection is
    /// open and its heartbeat written): a fresh worker's start-up that must have worked before any user
    /// code runs (``WorkerSetup/storeReady()``). If `gate` throws, the loop ends with its error, having
    /// taken nothing.
    func run(startingAfter gate: @Sendable () async throws -> Void) async throws {
        defer { state.stopped.store(true, ordering: .relaxed) }
        let clock = ContinuousClock()
        var batch = 1
        var delay = Duration.milliseconds(50)
        var announced = false
        while !Task.isCancelled && !draining {
            do {
                try await client.withDedicatedConnection { connection in
                    // Placement is an optimization: a store that refuses `CLIENT ID` only means no wake-ups. The
                    // heartbeat is written before the first task is taken either way.
                    let id = (try? await connection.send(RESPCommand("CLIENT", "ID")))?.int
                    state.connectionID.withLock { $0 = id }
                    if let heartbeat {
                        if let id {
                            try await heartbeat.announce(connection: id, through: connection)
                        } else if !announced {
                            try await heartbeat.beat()
                        }
                    }
                    if !announced {
                        // Not retried like a lost connection: a start-up that failed has failed for good.
                        do {
                            try await gate()
                        } catch {
                            throw WorkerStartError(underlying: error)
                        }
                        // Ready (for `waitForWorkers`) once it can take tasks and host actors.
                        try Self.check(try await connection.pipeline([
                            RESPCommand("RPUSH", keys.ready, workerID), RESPCommand("PEXPIRE", keys.ready, 60_000),
                        ]))
                        announced = true
                    } else {
                        try await resume(connection)
                        logger.info("reconnected to the store", metadata: ["worker": "\(workerID)"])
                    }
                    delay = .milliseconds(50)
                    while !Task.isCancelled && !draining {
                        let start = clock.now
                        let taken = try await step(connection, batch: batch)
                        guard taken > 0 else { continue }
                        let elapsed = clock.now - start
                        if elapsed < .milliseconds(2) {
                            batch = min(batch * 2, batchSize)
                        } else if elapsed > .milliseconds(20) {
                            batch = 1
                        }
                    }
                }
            } catch let error as RESPError {
                guard error.isTransient else { throw error }
                logger.warning(
                    "lost the store; reconnecting", metadata: ["worker": "\(workerID)", "error": "\(error)", "retry in": "\(delay)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    /// Asks the loop to stop taking tasks: the task running now finishes and is answered, the rest of its
    /// batch goes back to the queue (to the head, in order), and ``run()`` returns.
    public func drain() {
        state.draining.store(true, ordering: .relaxed)
        // No more tasks placed here: drivers see the worker withdrawn at once.
        if let heartbeat {
            Task(executorPreference: client.backgroundExecutor()) { await heartbeat.withdraw() }
        }
    }

    private var draining: Bool { state.draining.load(ordering: .relaxed) }

    /// Whether ``run()`` has returned.
    var hasStopped: Bool { state.stopped.load(ordering: .relaxed) }

    /// After a reconnection: sends the answers the lost connection did not carry, then hands back whatever
    /// else is still in this worker's in-flight list.
    private func resume(_ connection: RESPConnection) async throws {
        try await sendUnsent(on: connection, checked: true)
        let returned = try await handBack(connection)
        if returned > 0 {
            logger.warning("handed back tasks whose delivery was interrupted", metadata: ["worker": "\(workerID)", "tasks": "\(returned)"])
        }
    }

    /// Sends the answers a lost connection did not carry, if any; they are kept for another try unless
    /// they went through (and, when `checked`, the store accepted them).
    private func sendUnsent(on connection: RESPConnection, checked: Bool) async throws {
        guard let unsent = state.unsent.withLock({ $0 }) else { return }
        let replies = try await connection.pipeline(unsent)
        if checked { try Self.check(replies) }
        state.unsent.withLock { $0 = nil }
    }

    /// Moves every entry of this worker's in-flight list back to the head of the queue (tail first, so
    /// their order is kept); returns how many.
    @discardableResult
    func handBack(_ connection: RESPConnection) async throws -> Int {
        let inflight = keys.inflight(worker: workerID)
        var count = 0
        while try await connection.send(RESPCommand("LMOVE", inflight, keys.queue, "RIGHT", "LEFT")).buffer != nil { count += 1 }
        return count
    }

    /// Hands back whatever this worker still holds, with a connection of its own (after ``run()`` ended,
    /// before the process exits), and removes its heartbeat; then hands back the tasks placed on its own
    /// queue (no driver places more once the heartbeat is gone).
    public func handBackAll() async throws -> Int {
        try await client.withDedicatedConnection { connection in
            try await sendUnsent(on: connection, checked: false)
            var count = try await handBack(connection)
            _ = try await connection.pipeline([
                RESPCommand("DEL", keys.worker(workerID)), RESPCommand("SREM", keys.workers, workerID),
            ])
            let own = keys.ownQueue(worker: workerID)
            while try await connection.send(RESPCommand("LMOVE", own, keys.queue, "RIGHT", "LEFT")).buffer != nil { count += 1 }
            _ = try await connection.send(RESPCommand("SREM", keys.placed, workerID))
            return count
        }
    }

    /// Takes up to `batch` envelopes into this worker's in-flight list: from its own queue first (tasks
    /// placed here), then from the shared queue (waiting up to a second for one), and with both empty,
    /// from the tail of the longest own queue of another worker.
    func take(_ connection: RESPConnection, batch: Int) async throws -> [ByteBuffer] {
        let inflight = keys.inflight(worker: workerID)
        let fromOwn = RESPCommand("LMOVE", keys.ownQueue(worker: workerID), inflight, "LEFT", "RIGHT")
        let fromShared = RESPCommand("LMOVE", keys.queue, inflight, "LEFT", "RIGHT")
        var taken: [ByteBuffer] = []
        // Tasks placed here come first.
        if state.ownPending.load(ordering: .relaxed) {
            taken = try await connection.pipeline(Array(repeating: fromOwn, count: batch)).compactMap(\.buffer)
            state.ownPending.store(taken.count == batch, ordering: .relaxed)
            if taken.count == batch { return taken }
            if !taken.isEmpty {
                taken += try await connection.pipeline(Array(repeating: fromShared, count: batch - taken.count)).compactMap(\.buffer)
                return taken
            }
        }
        if state.stealing.load(ordering: .relaxed) {
            // Busy stealing: no waiting on the shared queue, which was empty a moment ago.
            taken = try await connection.pipeline(Array(repeating: fromShared, count: batch)).compactMap(\.buffer)
            if !taken.isEmpty { return taken }
        } else {
            let wait = state.placementSeen.load(ordering: .relaxed) ? "0.25" : "1"
            let block = RESPCommand("BLMOVE", keys.queue, inflight, "LEFT", "RIGHT", wait)
            let waited: ByteBuffer?
            if state.holds.load(ordering: .relaxed), let id = state.connectionID.withLock({ $0 }) {
                // Drivers may place tasks here at any moment, and wake the wait with `CLIENT UNBLOCK`. Looked
                // at and waited for in two steps, a task placed in between found nobody waiting and sat out
                // the whole wait (up to a second, measured). Sent together, the store runs both with nothing
                // in between: a task placed before is found by the look, one placed after finds the wait.
                let replies = connection.sendTogether([fromOwn, block])
                if let placed = try await replies.reply(0).buffer {
                    taken = [placed]
                    state.ownPending.store(true, ordering: .relaxed)
                    // End the wait now, as a driver would (a shared task it took meanwhile is kept too).
                    _ = try? await client.send(RESPCommand("CLIENT", "UNBLOCK", id))
                }
                waited = try await replies.reply(1).buffer
            } else {
                waited = try await connection.send(block).buffer
            }
            if !taken.isEmpty { return taken + (waited.map { [$0] } ?? []) }
            if let first = waited {
                taken = [first]
                if batch > 1 {
                    taken += try await connection.pipeline(Array(repeating: fromShared, count: batch - 1)).compactMap(\.buffer)
                }
                return taken
            }
            // Waited in vain, or woken by a driver that placed tasks here (`CLIENT UNBLOCK`).
            taken = try await connection.pipeline(Array(repeating: fromOwn, count: batch)).compactMap(\.buffer)
            if !taken.isEmpty {
                state.ownPending.store(taken.count == batch, ordering: .relaxed)
                return taken
            }
        }
        let stolen = try await steal(connection, batch: batch)
        state.stealing.store(!stolen.isEmpty, ordering: .relaxed)
        // While stealing, the own queue is looked at before each steal.
        if !stolen.isEmpty { state.ownPending.store(true, ordering: .relaxed) }
        return stolen
    }

    /// Moves up to `batch` tasks (at most half of what waits there, at least one) from the tail of the
    /// longest own queue of another worker into this worker's in-flight list.
    private func steal(_ connection: RESPConnection, batch: Int) async throws -> [ByteBuffer] {
        // Its own queue is empty: it leaves the set thieves and reapers look at (a driver that places
        // tasks here adds it again), so the set holds the workers with a backlog, not every worker ever.
        let replies = try await connection.pipeline([RESPCommand("SREM", keys.placed, workerID), RESPCommand("SMEMBERS", keys.placed)])
        let others = (replies[1].array ?? []).compactMap(\.string).filter { $0 != workerID }
        guard !others.isEmpty else {
            state.placementSeen.store(false, ordering: .relaxed)
            return []
        }
        let lengths = try await connection.pipeline(others.map { RESPCommand("LLEN", keys.ownQueue(worker: $0)) }).map { $0.int ?? 0 }
        state.placementSeen.store(lengths.contains { $0 > 0 }, ordering: .relaxed)
        guard let longest = lengths.indices.max(by: { lengths[$0] < lengths[$1] }), lengths[longest] > 0 else { return [] }
        let count = min(batch, max(1, lengths[longest] / 2))
        let victim = RESPCommand("LMOVE", keys.ownQueue(worker: others[longest]), keys.inflight(worker: workerID), "RIGHT", "RIGHT")
        return try await connection.pipeline(Array(repeating: victim, count: count)).compactMap(\.buffer)
    }

    /// Takes and runs at most `batch` tasks; returns how many envelopes it took (0 after a wait of up to a
    /// second on empty queues).
    ///
    /// - Throws: ``WorkerStuckError`` after a timed-out function ignored cancellation for `stuckGrace`: the
    ///   batch's answered tasks are acknowledged and its unrun ones put back on the queue first, so the
    ///   process can be replaced without losing or charging anything.
    func step(_ connection: RESPConnection, batch: Int) async throws -> Int {
        let inflight = keys.inflight(worker: workerID)
        let taken = try await take(connection, batch: batch)
        guard !taken.isEmpty else { return 0 }
        // Busy until the batch is answered (a lease that ends when idle must not end in the middle of it).
        Self.busy.add(1, ordering: .relaxed)
        defer {
            Self.noteActivity()
            Self.busy.subtract(1, ordering: .relaxed)
        }
        var envelopes: [(raw: ByteBuffer, envelope: TaskEnvelope?)] = []
        for raw in taken {
            do {
                guard raw.readableBytes <= maxEntryBytes else {
                    Sealer.refused.add(1, ordering: .relaxed)
                    throw SealError(description: "\(raw.readableBytes) bytes, over the limit of \(maxEntryBytes) (CURTAIN_MAX_PAYLOAD_BYTES)")
                }
                envelopes.append((raw, try TaskEnvelope(decoding: try Sealer.open(raw, with: sealer))))
            } catch {
                // Never run, never answered (an answer would trust the entry's job id): logged and dropped.
                logger.warning("rejected a task envelope", metadata: ["reason": "\(error)", "worker": "\(workerID)"])
                envelopes.append((raw, nil))
            }
        }
        // A suspect (its last worker died holding it among others) runs alone: the rest go back first.
        if envelopes.count > 1, let suspect = envelopes.firstIndex(where: { $0.envelope?.suspect == true }) {
            let others = envelopes.indices.filter { $0 != suspect }.map { envelopes[$0].raw }
            var commands = [RESPCommand("MULTI")]
            commands += others.map { RESPCommand("LREM", inflight, 1, $0) }
            commands.append(RESPCommand("LPUSH", arguments: [keys.queue as any RESPArgument] + others.reversed().map { $0 as any RESPArgument }))
            commands.append(RESPCommand("EXEC"))
            let replies = try await connection.pipeline(commands)
            if let error = replies.first(where: { $0.errorMessage != nil })?.errorMessage { throw RESPError.server(error) }
            envelopes = [envelopes[suspect]]
        }
        // Skip the tasks of jobs that were cancelled or are over (asking only about jobs not seen running
        // within the last ``liveFor``).
        let now = ContinuousClock.now
        let jobs = state.live.withLock { live in
            Array(Set(envelopes.compactMap { $0.envelope?.jobID })).filter { job in live[job].map { now - $0 > Self.liveFor } ?? true }
        }
        let flags = jobs.isEmpty ? [] : try await connection.pipeline(jobs.map { RESPCommand("EXISTS", StoreKeys.cancelled(job: $0)) })
        let cancelled = Set(zip(jobs, flags).filter { $0.1.int == 1 }.map(\.0))
        state.live.withLock { live in
            live = live.filter { now - $0.value <= Self.liveFor }
            for job in jobs where !cancelled.contains(job) { live[job] = now }
        }

        var replies: [RESPCommand] = []
        var resultKeys = Set<String>()
        var answered = 0
        var failed = 0
        var stuck: String?
        for (raw, envelope) in envelopes {
            if stuck != nil || draining { break }
            guard let envelope, !cancelled.contains(envelope.jobID) else {
                replies.append(RESPCommand("LREM", inflight, 1, raw))
                continue
            }
            let outcome: Result<[UInt8], RemoteFailure>
            var duration: UInt64 = 0
            var shared = SharedUse()
            var started: Int64 = 0
            if envelope.buildID != keys.buildID {
                // Checked before running: code from another build must never run here.
                logger.warning(
                    "rejected a task of another build", metadata: ["build": "\(envelope.buildID)", "worker": "\(workerID)"])
                outcome = .failure(RemoteFailure(
                    kind: .badEnvelope, errorType: "Curtain.WorkerLoop",
                    message: "task of build \(envelope.buildID) reached a worker of build \(keys.buildID)"))
            } else {
                started = StoreClock.now()
                let ran = await Self.run(envelope, registry: registry, stuckGrace: stuckGrace, spill: spill)
                // Cancelled (a drain or a lease ran out of time): unanswered, the task stays in-flight to be
                // handed back; unless it had finished anyway, and its result is sent.
                if Task.isCancelled, case .failure = ran.outcome { break }
                (outcome, duration, shared) = (ran.outcome, ran.microseconds, ran.shared)
                if ran.stuck { stuck = envelope.function }
            }
            if case .failure(let failure) = outcome, failure.kind == .unknownFunction {
                logger.warning("rejected a task for an unknown function", metadata: ["function": "\(envelope.function)"])
            }
            if case .failure = outcome { failed += 1 }
            var result = TaskResult(
                jobID: envelope.jobID, index: envelope.index, attempt: envelope.attempt, crashes: envelope.crashes,
                workerID: workerID, durationMicroseconds: duration, outcome: outcome)
            result.shared = shared
            result.startedMicroseconds = UInt64(max(0, started))
            let resultsKey = StoreKeys.results(job: envelope.jobID)
            replies.append(RESPCommand("RPUSH", resultsKey, Sealer.seal(try result.encoded(), with: sealer)))
            replies.append(RESPCommand("LREM", inflight, 1, raw))
            resultKeys.insert(resultsKey)
            answered += 1
        }
        // A job whose driver vanished must not leave its results behind forever: one expiry per job per batch.
        for key in resultKeys { replies.append(RESPCommand("PEXPIRE", key, 24 * 3600 * 1000)) }
        // What the cache now holds, for drivers placing tasks (with the answers: none is sent alone), and,
        // once drivers may place tasks here, how many wait on the own queue (the last reply).
        var asksOwn = false
        if let heartbeat, !replies.isEmpty {
            let changes = cache.takeHoldingChanges()
            let member = workerID + " " + heartbeat.token
            for hash in changes.added {
                let holders = keys.holders(SharedRef.hex(hash))
                replies.append(RESPCommand("SADD", holders, member))
                replies.append(RESPCommand("PEXPIRE", holders, Int(SharedValueShelf.storeLifetime.wholeMilliseconds)))
            }
            for hash in changes.dropped { replies.append(RESPCommand("SREM", keys.holders(SharedRef.hex(hash)), member)) }
            if !changes.added.isEmpty { state.holds.store(true, ordering: .relaxed) }
            if state.holds.load(ordering: .relaxed) {
                replies.append(RESPCommand("LLEN", keys.ownQueue(worker: workerID)))
                asksOwn = true
            }
        }
        Self.tasksDone.add(answered, ordering: .relaxed)
        Self.tasksFailed.add(failed, ordering: .relaxed)
        guard !replies.isEmpty else { return taken.count }
        // All or nothing (a store out of memory refuses the results but would still have let the in-flight
        // removals through, losing the tasks). Kept until sent: a lost connection sends them on the next one
        // (see `resume`).
        let transaction = [RESPCommand("MULTI")] + replies + [RESPCommand("EXEC")]
        state.unsent.withLock { $0 = transaction }
        let outcome = try await connection.pipeline(transaction)
        try Self.check(outcome)
        state.unsent.withLock { $0 = nil }
        if asksOwn, let waiting = outcome.last?.array?.last?.int, waiting > 0 { state.ownPending.store(true, ordering: .relaxed) }
        if stuck != nil || draining {
            // Hand back what this batch did not run (tail first, each to the queue's head: order is kept).
            try await handBack(connection)
            if let stuck { throw WorkerStuckError(function: stuck) }
        }
        return taken.count
    }

    /// Throws the first error among the replies of a pipelined transaction (queued commands, `EXEC`, and
    /// the replies inside `EXEC`'s).
    static func check(_ replies: [RESPValue]) throws {
        if let error = replies.first(where: { $0.errorMessage != nil })?.errorMessage { throw RESPError.server(error) }
        if let inner = replies.last?.array, let error = inner.first(where: { $0.errorMessage != nil })?.errorMessage {
            throw RESPError.server(error)
        }
    }

    /// Tasks this process has answered (for its heartbeat).
    static let tasksDone = Atomic<Int>(0)
    /// Of those, the ones answered with a failure.
    static let tasksFailed = Atomic<Int>(0)
    /// Batches being run now, in this process.
    static let busy = Atomic<Int>(0)
    /// When a batch last started or ended (monotonic µs).
    static let lastActivity = Atomic<Int64>(Monotonic.microseconds())

    /// Notes activity now (a lease's start counts as such).
    static func noteActivity() { lastActivity.store(Monotonic.microseconds(), ordering: .relaxed) }

    /// How long this process's loops have had no task (0 while one runs), in microseconds.
    static func idleMicroseconds() -> Int64 {
        busy.load(ordering: .relaxed) > 0 ? 0 : max(0, Monotonic.microseconds() - lastActivity.load(ordering: .relaxed))
    }

    /// Runs one task, within its timeout if it has one.
    static func run(
        _ envelope: TaskEnvelope, registry: FunctionRegistry, stuckGrace: Duration, spill: SpillSettings? = nil
    ) async -> (outcome: Result<[UInt8], RemoteFailure>, microseconds: UInt64, stuck: Bool, shared: SharedUse) {
        let clock = ContinuousClock()
        let start = clock.now
        let context = spill.map {
            FunctionRegistry.SpillContext(settings: $0, jobID: envelope.jobID, index: envelope.index, attempt: envelope.attempt)
        }
        guard envelope.timeoutMilliseconds > 0 else {
            let (outcome, shared) = await TaskTracing.run(envelope) {
                await registry.run(envelope.function, function: envelope.functionPayload, input: envelope.input, spill: context)
            }
            return (outcome, (clock.now - start).microseconds, false, shared)
        }
        let limit = Duration.milliseconds(Int64(envelope.timeoutMilliseconds))
        let (function, captures, input) = (envelope.function, envelope.functionPayload, envelope.input)
        let ran = await TaskTracing.run(envelope) {
            await Deadline.run(within: limit, { await registry.run(function, function: captures, input: input, spill: context) })
        }
        switch ran {
        case .finished(let (outcome, shared)):
            return (outcome, (clock.now - start).microseconds, false, shared)
        case .timedOut(let task):
            let failure = RemoteFailure(
                kind: .timedOut, errorType: "Curtain.TaskTimeout",
                message: "ran longer than its timeout of \(Format.duration(limit))")
            let microseconds = (clock.now - start).microseconds
            let stuck = !(await Deadline.ends(task, within: stuckGrace))
            return (.failure(failure), microseconds, stuck, SharedUse())
        }
    }
}

/// A worker loop stopped because a timed-out function ignored cancellation and still holds a thread.
///
/// The worker's other tasks were acknowledged or handed back first; a worker process exits with
/// ``exitStatus`` so its supervisor replaces it.
public struct WorkerStuckError: Error, Sendable, CustomStringConvertible {
    /// The function that would not stop.
    public var function: String
    /// The exit status of a worker process replaced for this reason.
    public static let exitStatus: Int32 = 75
    /// One line naming the function.
    public var description: String { "a timed-out \(function) task ignored cancellation; this worker must be replaced" }
}
