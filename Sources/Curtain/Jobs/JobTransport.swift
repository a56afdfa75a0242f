import CurtainRESP
import Logging
import DequeModule
import NIOCore
import Synchronization

/// How a job's tasks reach whatever runs them and how their results come back: the one seam between the
/// job logic (windows, retries, statistics) and a backend.
protocol JobTransport: Sendable {
    /// Hands tasks over to be run.
    func submit(_ envelopes: [TaskEnvelope]) async throws
    /// Waits (about a second at most) for results; returns an empty array if none came.
    func receive() async throws -> [TaskResult]
    /// Ends the job: tasks not yet run never run, late results are dropped.
    func finish() async
    /// Publishes the job's progress where operators can see it (at most about once a second).
    func progress(_ statistics: JobStatistics, submitted: Int) async
    /// For a job reattached to after its first driver died: how many of its first tasks that driver had
    /// submitted (they are not submitted again). 0 otherwise.
    var alreadySubmitted: Int { get }
}

extension JobTransport {
    func progress(_ statistics: JobStatistics, submitted: Int) async {}
    var alreadySubmitted: Int { 0 }
}

/// Through the store: envelopes are `RPUSH`ed to the build's queue (pipelined, in chunks), results read with
/// `BLPOP` plus a bulk `LPOP` from the job's result list on a connection of the job's own. The path of the
/// `processes` backend and of any shared store.
///
/// It rides out a store that restarts or a network that drops for a while (up to ``outageLimit``):
/// submissions are retried and the result reader reconnects (a task pushed twice is answered twice; the
/// second answer is dropped as a duplicate). While it waits without results it says why when it can tell:
/// no worker of this build is connected (only workers of other builds, or none), or results are being
/// refused as unsigned or forged.
final class StoreTransport: JobTransport {
    let client: RESPClient
    let keys: StoreKeys
    let jobID: String
    private let resultsKey: String
    /// Envelopes per `RPUSH`.
    private let pushChunk = 256
    /// Signs envelopes and checks results when the cloud has a secret.
    private let sealer: Sealer?
    /// How long the store may be unreachable before the job fails.
    static let outageLimit: Duration = .seconds(60)
    /// How long without a result before the job looks for a reason.
    static let quietLimit: Duration = .seconds(5)
    private let clock = ContinuousClock()

    private struct State {
        var connection: RESPConnection?
        /// Since when the store has been unreachable.
        var outageSince: ContinuousClock.Instant?
        var lastResult: ContinuousClock.Instant
        var lastDiagnosis: ContinuousClock.Instant?
        var refused = 0
        var lastRecord: ContinuousClock.Instant?
        /// Results an earlier driver of a reattached job had received: delivered first.
        var backlog: [ByteBuffer] = []
        /// One past the highest task index pushed (recorded with the pushes of a named job).
        var highWater = 0
        /// How many entries of a named job's `received` list this driver has taken in.
        var taken = 0
        /// Whether a connection was lost since: moves whose replies were lost with it are read back from
        /// `received` (a named job loses no result to a dropped connection).
        var catchUp = false
    }
    private let state: Mutex<State>
    /// The job's record for `curtain status` (`curtain:{B}:job:<id>`).
    private let record: JobRecord
    /// Whether the job is named (``JobOptions/id``): its results are kept (moved to `received`) until it
    /// ends, and its submissions are recorded atomically with the pushes, so a new driver can reattach.
    private let durable: Bool
    /// Results already taken from the result list, kept for a driver that reattaches.
    private let receivedKey: String
    let alreadySubmitted: Int

    init(
        client: RESPClient, buildID: String, jobID: String, function: String = "", sealer: Sealer? = nil, durable: Bool = false
    ) async throws {
        self.sealer = sealer
        self.client = client
        self.keys = StoreKeys(buildID: buildID)
        self.jobID = jobID
        self.durable = durable
        self.resultsKey = StoreKeys.results(job: jobID)
        self.receivedKey = StoreKeys.received(job: jobID)
        self.record = JobRecord(key: keys.job(jobID), function: function, durable: durable)
        var resumed = 0
        var backlog: [ByteBuffer] = []
        if durable {
            let found = try await client.pipeline([
                RESPCommand("HMGET", record.key, "function", "submitted"), RESPCommand("LRANGE", receivedKey, 0, -1),
            ])
            let fields = found[0].array ?? []
            if let running = fields.first?.string {
                guard running == function else {
                    throw ConfigurationError(description: "job '\(jobID)' is running \(running), not \(function): choose another JobOptions.id")
                }
                resumed = Int(fields[1].string ?? "") ?? 0
                backlog = (found[1].array ?? []).compactMap(\.buffer)
                Self.logger.notice(
                    "reattached to a running job", metadata: ["job": "\(jobID)", "submitted": "\(resumed)", "results": "\(backlog.count)"])
            } else {
                // A fresh start under a name used before: nothing of an earlier run may count.
                _ = try await client.pipeline([
                    RESPCommand("DEL", StoreKeys.cancelled(job: jobID)), RESPCommand("DEL", resultsKey), RESPCommand("DEL", receivedKey),
                ])
            }
        }
        self.alreadySubmitted = resumed
        var initial = State(connection: try await client.leaseDedicatedConnection(), lastResult: ContinuousClock.now)
        initial.backlog = backlog
        initial.taken = backlog.count
        initial.highWater = resumed
        self.state = Mutex(initial)
    }

    func submit(_ envelopes: [TaskEnvelope]) async throws {
        var commands: [RESPCommand] = []
        var start = 0
        while start < envelopes.count {
            let end = min(start + pushChunk, envelopes.count)
            var arguments: [any RESPArgument] = [keys.queue]
            arguments.reserveCapacity(end - start + 1)
            for envelope in envelopes[start..<end] { arguments.append(Sealer.seal(try envelope.encoded(), with: sealer)) }
            commands.append(RESPCommand("RPUSH", arguments: arguments))
            start = end
        }
        if durable {
            // The pushes and the record of how far they got, atomically: a driver that dies between two
            // submissions leaves a record a new one can trust.
            let high = state.withLock { state -> Int in
                state.highWater = max(state.highWater, Int((envelopes.map(\.index).max() ?? 0) + 1))
                return state.highWater
            }
            commands = [RESPCommand("MULTI")] + commands + record.commands(submitted: high) + [RESPCommand("EXEC")]
        }
        while true {
            do {
                let replies = durable
                    ? try await client.withDedicatedConnection { try await $0.pipeline(commands) }
                    : try await client.pipeline(commands)
                if let message = replies.first(where: { $0.errorMessage != nil })?.errorMessage {
                    throw RESPError.server(message)
                }
                state.withLock { $0.outageSince = nil }
                return
            } catch let error as RESPError where error.isTransient {
                try await waitOutOutage(error)
            }
        }
    }

    func receive() async throws -> [TaskResult] {
        var entries: [ByteBuffer]
        let backlog = state.withLock { state -> [ByteBuffer] in
            defer { state.backlog = [] }
            return state.backlog
        }
        if !backlog.isEmpty {
            entries = backlog
        } else {
        do {
            let connection: RESPConnection
            if let current = state.withLock({ $0.connection }) {
                connection = current
            } else {
                connection = try await client.leaseDedicatedConnection()
                state.withLock { $0.connection = connection }
            }
            if durable, let from = state.withLock({ $0.catchUp ? $0.taken : nil }) {
                entries = (try await connection.send(RESPCommand("LRANGE", receivedKey, from, -1)).array ?? []).compactMap(\.buffer)
                state.withLock { state in
                    state.catchUp = false
                    state.outageSince = nil
                    state.taken += entries.count
                }
            } else if durable {
                // Results move (atomically, one by one) to the job's `received` list instead of being
                // popped, so a driver that reattaches finds them.
                let first = try await connection.send(RESPCommand("BLMOVE", resultsKey, receivedKey, "LEFT", "RIGHT", 1))
                state.withLock { $0.outageSince = nil }
                if let firstBytes = first.buffer {
                    let waiting = min(999, try await connection.send(RESPCommand("LLEN", resultsKey)).int ?? 0)
                    let more = waiting > 0
                        ? try await connection.pipeline(
                            Array(repeating: RESPCommand("LMOVE", resultsKey, receivedKey, "LEFT", "RIGHT"), count: waiting))
                        : []
                    entries = [firstBytes] + more.compactMap(\.buffer)
                } else {
                    entries = []
                }
                state.withLock { $0.taken += entries.count }
            } else {
                let first = try await connection.send(RESPCommand("BLPOP", resultsKey, 1))
                state.withLock { $0.outageSince = nil }
                if let pair = first.array, pair.count == 2, let firstBytes = pair[1].buffer {
                    let more = try await connection.send(RESPCommand("LPOP", resultsKey, 1000))
                    entries = [firstBytes] + (more.array ?? []).compactMap(\.buffer)
                } else {
                    entries = []
                }
            }
        } catch let error as RESPError where error.isTransient {
            // The connection is gone: a new one next time, once the store answers again.
            if let lost = state.withLock({ state -> RESPConnection? in
                defer {
                    state.connection = nil
                    state.catchUp = true
                }
                return state.connection
            }) {
                await lost.close()
            }
            try await waitOutOutage(error)
            return []
        }
        }
        var results: [TaskResult] = []
        var refused = 0
        for bytes in entries {
            // A result that is malformed, unsigned or forged is dropped: the task's real answer is awaited.
            do {
                results.append(try TaskResult(decoding: try Sealer.open(bytes, with: sealer)))
            } catch {
                refused += 1
                Self.logger.warning("dropped a result that is not to be trusted", metadata: ["job": "\(jobID)", "reason": "\(error)"])
            }
        }
        let now = clock.now
        let quiet = state.withLock { state -> Bool in
            state.refused += refused
            if !results.isEmpty { state.lastResult = now }
            guard now - state.lastResult >= Self.quietLimit else { return false }
            if let last = state.lastDiagnosis, now - last < .seconds(30) { return false }
            state.lastDiagnosis = now
            return true
        }
        if quiet { await diagnose() }
        return results
    }

    /// Keeps waiting through a store outage, up to ``outageLimit``.
    private func waitOutOutage(_ error: RESPError) async throws {
        let now = clock.now
        let since = state.withLock { state -> ContinuousClock.Instant in
            if state.outageSince == nil {
                state.outageSince = now
                Self.logger.warning(
                    "lost the store; waiting for it to come back", metadata: ["job": "\(jobID)", "error": "\(error)"])
            }
            return state.outageSince!
        }
        guard now - since < Self.outageLimit else { throw error }
        try await Task.sleep(for: .milliseconds(200))
    }

    /// Says why no result has come for a while, when the store tells.
    private func diagnose() async {
        let refused = state.withLock { $0.refused }
        if refused > 0 {
            Self.logger.warning(
                "\(refused) results of this job were refused as unsigned or forged: do its workers have the same CURTAIN_SECRET as the driver?",
                metadata: ["job": "\(jobID)"])
        }
        guard let census = try? await WorkerCensus.take(client: client) else { return }
        if let complaint = census.complaint(for: keys.buildID) {
            Self.logger.warning("\(complaint)", metadata: ["job": "\(jobID)"])
        }
    }

    func progress(_ statistics: JobStatistics, submitted: Int) async {
        let now = clock.now
        let due = state.withLock { state -> Bool in
            if let last = state.lastRecord, now - last < .seconds(1) { return false }
            state.lastRecord = now
            return true
        }
        guard due else { return }
        _ = try? await client.pipeline(record.commands(statistics, submitted: submitted))
    }

    private static let logger = Logger(label: "curtain.jobs")

    /// Marks the job over (workers skip whatever of it is still queued) and drops its results.
    func finish() async {
        let connection = state.withLock { state -> RESPConnection? in
            defer { state.connection = nil }
            return state.connection
        }
        if let connection {
            if Task.isCancelled {
                // A cancelled BLPOP may have left the connection mid-reply: do not reuse it.
                await connection.close()
            } else {
                await client.returnDedicatedConnection(connection)
            }
        }
        _ = try? await client.pipeline([
            RESPCommand("SET", StoreKeys.cancelled(job: jobID), "1", "EX", 3600),
            RESPCommand("DEL", resultsKey),
            RESPCommand("DEL", receivedKey),
            RESPCommand("DEL", keys.job(jobID)),
        ])
    }
}

/// In this process: at most `width` tasks run at once as Swift tasks, each through the same
/// decode → run → encode path a worker takes (``WorkerLoop/run(_:registry:stuckGrace:)``).
final class LocalTransport: JobTransport {
    private struct State {
        var queue = Deque<TaskEnvelope>()
        var running: [Int: Task<Void, Never>] = [:]
        var nextRunner = 0
        var finished = false
    }

    private let registry: FunctionRegistry
    private let width: Int
    private let spill: SpillSettings?
    private let state = Mutex(State())
    private let stream: AsyncStream<TaskResult>
    private let continuation: AsyncStream<TaskResult>.Continuation

    init(registry: FunctionRegistry, width: Int, spill: SpillSettings? = nil) {
        self.spill = spill
        self.registry = registry
        self.width = max(1, width)
        (stream, continuation) = AsyncStream<TaskResult>.makeStream()
    }

    func submit(_ envelopes: [TaskEnvelope]) async throws {
        // Runners are registered under the lock before they start, so `finish` always sees them.
        state.withLock { state in
            guard !state.finished else { return }
            state.queue.append(contentsOf: envelopes)
            while state.running.count < width, !state.queue.isEmpty {
                let id = state.nextRunner
                state.nextRunner += 1
                state.running[id] = Task { await self.runTasks(runner: id) }
            }
        }
    }

    private func runTasks(runner: Int) async {
        while let envelope = state.withLock({ state -> TaskEnvelope? in
            guard !state.finished, !Task.isCancelled, let next = state.queue.popFirst() else {
                state.running[runner] = nil
                return nil
            }
            return next
        }) {
            let ran = await WorkerLoop.run(envelope, registry: registry, stuckGrace: .zero, spill: spill)
            continuation.yield(TaskResult(
                jobID: envelope.jobID, index: envelope.index, attempt: envelope.attempt, crashes: envelope.crashes,
                workerID: "inprocess",
                durationMicroseconds: ran.microseconds, outcome: ran.outcome))
        }
    }

    func receive() async throws -> [TaskResult] {
        var iterator = stream.makeAsyncIterator()
        guard let result = await iterator.next() else {
            try Task.checkCancellation()
            throw CancellationError()
        }
        return [result]
    }

    func finish() async {
        let runners = state.withLock { state in
            state.finished = true
            state.queue.removeAll()
            return Array(state.running.values)
        }
        runners.forEach { $0.cancel() }
        continuation.finish()
    }
}
