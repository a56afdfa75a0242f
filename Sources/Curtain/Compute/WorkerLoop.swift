public import CurtainRESP
public import Logging
import NIOCore
import Synchronization

/// The loop a worker runs: take tasks of its build from the store's queue, run them with the registry,
/// push each result to its job's result list.
///
/// Tasks are taken with `BLMOVE queue → in-flight` (atomic, so a dead worker's tasks stay visible in its
/// in-flight list and can be put back) and, when more are waiting, with up to `batchSize - 1` further
/// `LMOVE`s pipelined in the same round trip. Results and the in-flight removals of a batch leave in one
/// pipeline. A malformed envelope or an unknown function is logged and answered, never fatal.
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
        sealer: Sealer?
    ) {
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

    /// Runs until the calling task is cancelled.
    ///
    /// - Throws: ``WorkerStuckError`` when a timed-out function will not stop; store errors.
    ///
    /// The batch size adapts to task length: it starts at 1 and doubles (up to `batchSize`) while a batch
    /// runs in under 2 ms, and drops back to 1 when a batch takes more than 20 ms, so short tasks share round
    /// trips while long ones stay spread over all workers instead of piling up on the first one to ask.
    public func run() async throws {
        let clock = ContinuousClock()
        var batch = 1
        try await client.withDedicatedConnection { connection in
            _ = try await connection.pipeline([
                RESPCommand("RPUSH", keys.ready, workerID), RESPCommand("PEXPIRE", keys.ready, 60_000),
            ])
            while !Task.isCancelled {
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
    }

    /// Takes and runs at most `batch` tasks; returns how many envelopes it took (0 after a 1 s wait on an
    /// empty queue).
    ///
    /// - Throws: ``WorkerStuckError`` after a timed-out function ignored cancellation for `stuckGrace`: the
    ///   batch's answered tasks are acknowledged and its unrun ones put back on the queue first, so the
    ///   process can be replaced without losing or charging anything.
    func step(_ connection: RESPConnection, batch: Int) async throws -> Int {
        let inflight = keys.inflight(worker: workerID)
        let first = try await connection.send(RESPCommand("BLMOVE", keys.queue, inflight, "LEFT", "RIGHT", 1))
        guard let firstBytes = first.buffer else { return 0 }
        var taken = [firstBytes]
        if batch > 1 {
            let more = try await connection.pipeline(
                Array(repeating: RESPCommand("LMOVE", keys.queue, inflight, "LEFT", "RIGHT"), count: batch - 1))
            taken += more.compactMap(\.buffer)
        }
        var envelopes: [(raw: ByteBuffer, envelope: TaskEnvelope?)] = []
        for raw in taken {
            do {
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
        // Skip the tasks of jobs that were cancelled or are over.
        let jobs = Array(Set(envelopes.compactMap { $0.envelope?.jobID }))
        let flags = try await connection.pipeline(jobs.map { RESPCommand("EXISTS", StoreKeys.cancelled(job: $0)) })
        let cancelled = Set(zip(jobs, flags).filter { $0.1.int == 1 }.map(\.0))

        var replies: [RESPCommand] = []
        var resultKeys = Set<String>()
        var answered = 0
        var stuck: String?
        for (raw, envelope) in envelopes {
            if stuck != nil { break }
            defer { replies.append(RESPCommand("LREM", inflight, 1, raw)) }
            guard let envelope, !cancelled.contains(envelope.jobID) else { continue }
            let outcome: Result<[UInt8], RemoteFailure>
            var duration: UInt64 = 0
            if envelope.buildID != keys.buildID {
                // Checked before running: code from another build must never run here.
                outcome = .failure(RemoteFailure(
                    kind: .badEnvelope, errorType: "Curtain.WorkerLoop",
                    message: "task of build \(envelope.buildID) reached a worker of build \(keys.buildID)"))
            } else {
                let ran = await Self.run(envelope, registry: registry, stuckGrace: stuckGrace, spill: spill)
                (outcome, duration) = (ran.outcome, ran.microseconds)
                if ran.stuck { stuck = envelope.function }
            }
            if case .failure(let failure) = outcome, failure.kind == .unknownFunction {
                logger.warning("rejected a task for an unknown function", metadata: ["function": "\(envelope.function)"])
            }
            let result = TaskResult(
                jobID: envelope.jobID, index: envelope.index, attempt: envelope.attempt, crashes: envelope.crashes,
                workerID: workerID, durationMicroseconds: duration, outcome: outcome)
            let resultsKey = StoreKeys.results(job: envelope.jobID)
            replies.append(RESPCommand("RPUSH", resultsKey, Sealer.seal(try result.encoded(), with: sealer)))
            resultKeys.insert(resultsKey)
            answered += 1
        }
        // A job whose driver vanished must not leave its results behind forever: one expiry per job per batch.
        for key in resultKeys { replies.append(RESPCommand("PEXPIRE", key, 24 * 3600 * 1000)) }
        Self.tasksDone.add(answered, ordering: .relaxed)
        let answers = try await connection.pipeline(replies)
        if let error = answers.first(where: { $0.errorMessage != nil })?.errorMessage {
            throw RESPError.server(error)
        }
        if let stuck {
            // Hand back what this batch did not run (tail first, each to the queue's head: order is kept).
            while try await connection.send(RESPCommand("LMOVE", inflight, keys.queue, "RIGHT", "LEFT")).buffer != nil {}
            throw WorkerStuckError(function: stuck)
        }
        return taken.count
    }

    /// Tasks this process has answered (for its heartbeat).
    static let tasksDone = Atomic<Int>(0)

    /// Runs one task, within its timeout if it has one.
    static func run(
        _ envelope: TaskEnvelope, registry: FunctionRegistry, stuckGrace: Duration, spill: SpillSettings? = nil
    ) async -> (outcome: Result<[UInt8], RemoteFailure>, microseconds: UInt64, stuck: Bool) {
        let clock = ContinuousClock()
        let start = clock.now
        let context = spill.map {
            FunctionRegistry.SpillContext(settings: $0, jobID: envelope.jobID, index: envelope.index, attempt: envelope.attempt)
        }
        guard envelope.timeoutMilliseconds > 0 else {
            let outcome = await registry.run(envelope.function, function: envelope.functionPayload, input: envelope.input, spill: context)
            return (outcome, (clock.now - start).microseconds, false)
        }
        let limit = Duration.milliseconds(Int64(envelope.timeoutMilliseconds))
        let (function, captures, input) = (envelope.function, envelope.functionPayload, envelope.input)
        switch await Deadline.run(within: limit, { await registry.run(function, function: captures, input: input, spill: context) }) {
        case .finished(let outcome):
            return (outcome, (clock.now - start).microseconds, false)
        case .timedOut(let task):
            let failure = RemoteFailure(
                kind: .timedOut, errorType: "Curtain.TaskTimeout",
                message: "ran longer than its timeout of \(Format.duration(limit))")
            let microseconds = (clock.now - start).microseconds
            let stuck = !(await Deadline.ends(task, within: stuckGrace))
            return (.failure(failure), microseconds, stuck)
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
