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
    /// Hands tasks over to be run, each preferably by a worker that holds the shared value of hash
    /// `near[i]` (see ``Placement``).
    func submit(_ envelopes: [TaskEnvelope], near: [[UInt8]?]) async throws
    /// Waits (about a second at most) for results; returns an empty array if none came.
    func receive() async throws -> [TaskResult]
    /// Ends the job: tasks not yet run never run, late results are dropped.
    func finish() async
    /// The job's id, as envelopes and results carry it.
    var jobID: String { get }
    /// Publishes the job's progress where operators can see it (at most about once a second).
    func progress(_ statistics: JobStatistics, submitted: Int) async
    /// For a job reattached to after its first driver died: how many of its first tasks that driver had
    /// submitted (they are not submitted again). 0 otherwise.
    var alreadySubmitted: Int { get }
}

extension JobTransport {
    func submit(_ envelopes: [TaskEnvelope], near: [[UInt8]?]) async throws { try await submit(envelopes) }
    func progress(_ statistics: JobStatistics, submitted: Int) async {}
    var alreadySubmitted: Int { 0 }
}

/// Through the store: envelopes are `RPUSH`ed to the build's queue (pipelined, in chunks), results read on a
/// connection of the job's own. The path of the `processes` backend and of any shared store.
///
/// On a shared store results are not popped but moved (`BLMOVE`, then `LMOVE`s) to the job's `received`
/// list, so that a reply lost with a connection loses no result: after a lost connection the driver reads
/// `received` again from the count it had taken in. (On the embedded store of the `processes` backend,
/// which dies with its driver, a `BLPOP` and a bulk `LPOP` do.)
///
/// It rides out a store that restarts or a network that drops for a while (up to ``outageLimit``):
/// submissions are retried and the result reader reconnects (a task pushed twice is answered twice; the
/// second answer is dropped as a duplicate). While it waits without results it says why when it can tell:
/// no worker of this build is connected (only workers of other builds, or none), or results are being
/// refused as unsigned or forged.
///
/// A named job (``JobOptions/id``) is owned by one driver at a time (a lease renewed about every second),
/// runs under `<name>.<run token>` so that nothing of an earlier run under the same name can count, and
/// records its submissions with its pushes, so that a driver that comes back can reattach.
final class StoreTransport: JobTransport {
    let client: RESPClient
    let keys: StoreKeys
    /// The job id the store's keys and the envelopes carry: a fresh random id, or `<name>.<run token>`.
    let jobID: String
    private let resultsKey: String
    /// Envelopes per `RPUSH`.
    private let pushChunk = 256
    /// Signs envelopes and checks results when the cloud has a secret.
    private let sealer: Sealer?
    /// The largest queue entry workers accept (``CloudConfiguration/maxPayloadBytes``).
    private let maxEntryBytes: Int
    /// Whether tasks are placed on workers that hold the shared values they need
    /// (``CloudConfiguration/placement``).
    private let placement: Bool
    /// How long the store may be unreachable before the job fails.
    static let outageLimit: Duration = .seconds(60)
    /// How long without a result before the job looks for a reason.
    static let quietLimit: Duration = .seconds(5)
    /// How long a named job's owner lease lasts without renewal.
    static let ownerLease: Duration = .seconds(5)
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
        /// How many entries of the `received` list this driver has taken in.
        var taken = 0
        /// Whether a connection was lost since: moves whose replies were lost with it are read back from
        /// `received`.
        var catchUp = false
    }
    private let state: Mutex<State>
    /// The job's record for `curtain status` (`curtain:{B}:job:<id or name>`).
    private let record: JobRecord
    /// Whether the job is named (``JobOptions/id``).
    private let durable: Bool
    /// Whether results are moved to `received` rather than popped (a shared store, or a named job).
    private let keepsResults: Bool
    /// Results taken from the result list, until the job ends.
    private let receivedKey: String
    /// A named job's owner lease, and this driver's token in it.
    private let owner: (key: String, token: String)?
    let alreadySubmitted: Int

    /// Prepares a job's transport; for a named job, takes ownership (waiting up to the lease for a driver
    /// that died) and reattaches to its running job if there is one.
    ///
    /// - Throws: ``ConfigurationError`` if another live driver owns the named job, or it runs another
    ///   function; store errors.
    init(
        client: RESPClient, buildID: String, jobID name: String, function: String = "", sealer: Sealer? = nil,
        durable: Bool = false, sharedStore: Bool = false, maxEntryBytes: Int = CloudConfiguration.defaultMaxPayload,
        placement: Bool = true
    ) async throws {
        self.sealer = sealer
        self.placement = placement
        self.client = client
        self.maxEntryBytes = maxEntryBytes
        let keys = StoreKeys(buildID: buildID)
        self.keys = keys
        self.durable = durable
        self.keepsResults = durable || sharedStore
        var jobID = name
        var resumed = 0
        var backlog: [ByteBuffer] = []
        let record = JobRecord(key: keys.job(name), function: function, durable: durable)
        if durable {
            let owner = (key: keys.owner(name), token: record.driver + "-" + TaskDispatcher.newJobID().prefix(6))
            try await Self.takeOwnership(owner, name: name, client: client)
            self.owner = owner
            let found = try await client.send(RESPCommand("HMGET", record.key, "function", "submitted", "run"))
            let fields = (found.array ?? []).map(\.string)
            if let running = fields.first ?? nil, let run = fields.count > 2 ? fields[2] : nil {
                guard running == function else {
                    _ = try? await client.send(RESPCommand("DEL", owner.key))
                    throw ConfigurationError(description: "job '\(name)' is running \(running), not \(function): choose another JobOptions.id")
                }
                jobID = name + "." + run
                resumed = Int(fields[1] ?? "") ?? 0
                backlog = (try await client.send(RESPCommand("LRANGE", StoreKeys.received(job: jobID), 0, -1)).array ?? [])
                    .compactMap(\.buffer)
                Self.logger.notice(
                    "reattached to a running job", metadata: ["job": "\(name)", "submitted": "\(resumed)", "results": "\(backlog.count)"])
            } else {
                // A fresh run under this name: its own token, so nothing left of an earlier run can count.
                let run = String(TaskDispatcher.newJobID().prefix(8))
                jobID = name + "." + run
                _ = try await client.pipeline([RESPCommand("HSET", record.key, "function", function, "run", run), record.expiry])
            }
        } else {
            self.owner = nil
        }
        self.jobID = jobID
        self.record = record
        self.resultsKey = StoreKeys.results(job: jobID)
        self.receivedKey = StoreKeys.received(job: jobID)
        self.alreadySubmitted = resumed
        var initial = State(connection: try await client.leaseDedicatedConnection(), lastResult: ContinuousClock.now)
        initial.backlog = backlog
        initial.taken = backlog.count
        initial.highWater = resumed
        self.state = Mutex(initial)
    }

    /// Takes a named job's owner lease, waiting up to one lease for a driver that died to lose it.
    private static func takeOwnership(_ owner: (key: String, token: String), name: String, client: RESPClient) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + ownerLease + .seconds(1)
        var logged = false
        while true {
            let taken = try await client.send(
                RESPCommand("SET", owner.key, owner.token, "NX", "PX", Int(ownerLease.wholeMilliseconds)))
            if taken.string == "OK" { return }
            guard clock.now < deadline else {
                let holder = (try? await client.send(RESPCommand("GET", owner.key)).string) ?? "another driver"
                throw ConfigurationError(
                    description: "job '\(name)' is being run by a live driver (\(holder)): one driver per JobOptions.id")
            }
            if !logged {
                logger.notice("waiting for the job's previous driver to lose its lease", metadata: ["job": "\(name)"])
                logged = true
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    func submit(_ envelopes: [TaskEnvelope]) async throws {
        try await push(entries(envelopes), of: envelopes, to: keys.queue)
    }

    func submit(_ envelopes: [TaskEnvelope], near: [[UInt8]?]) async throws {
        guard placement, near.contains(where: { $0 != nil }) else { return try await submit(envelopes) }
        // Placing is an optimization: if the store cannot say who holds what, the tasks go to the shared queue.
        guard let plan = try? await Self.plan(near: near, keys: keys, client: client), plan.placesAny else {
            return try await submit(envelopes)
        }
        let sealed = try entries(envelopes)
        var shared: [ByteBuffer] = []
        var placed = [[ByteBuffer]](repeating: [], count: plan.targets.count)
        for (entry, target) in zip(sealed, plan.assignments) {
            if let target { placed[target].append(entry) } else { shared.append(entry) }
        }
        // One transaction: the pushes, and for each target whether it still offers itself (`conn` in its
        // heartbeat). One that died or began draining meanwhile has its queue handed back right after
        // (its supervisor or reaper, or its own hand-back, may also do it: each move is atomic).
        var commands = pushCommands(shared, to: keys.queue)
        var checks: [(target: Placement.Target, reply: Int)] = []
        for (target, entries) in zip(plan.targets, placed) where !entries.isEmpty {
            commands += pushCommands(entries, to: keys.ownQueue(worker: target.worker))
            commands.append(RESPCommand("SADD", keys.placed, target.worker))
            checks.append((target, commands.count))
            commands.append(RESPCommand("HEXISTS", keys.worker(target.worker), "conn"))
        }
        commands += durableRecord(envelopes)
        let replies: [RESPValue]
        do {
            replies = try await client.withDedicatedConnection { connection in
                let replies = try await connection.pipeline([RESPCommand("MULTI")] + commands + [RESPCommand("EXEC")])
                try WorkerLoop.check(replies)
                return replies.last?.array ?? []
            }
        } catch let error as RESPError where error.isTransient {
            // Whether the transaction ran is unknown: sent again through the shared queue (a task pushed
            // twice is answered twice, the first answer winning).
            return try await submit(envelopes)
        }
        state.withLock { $0.outageSince = nil }
        var woken: [Int] = []
        for (target, reply) in checks {
            if reply < replies.count, replies[reply].int == 1 {
                if let id = target.connection { woken.append(id) }
                continue
            }
            let own = keys.ownQueue(worker: target.worker)
            _ = try? await client.withDedicatedConnection { connection in
                while try await connection.send(RESPCommand("LMOVE", own, self.keys.queue, "RIGHT", "LEFT")).buffer != nil {}
            }
        }
        // Wake the targets if they are waiting on the shared queue (best effort: a worker also looks at its
        // own queue after every wait, and learns with each batch's answers whether tasks wait there).
        if !woken.isEmpty {
            _ = try? await client.pipeline(woken.map { RESPCommand("CLIENT", "UNBLOCK", $0) })
        }
    }

    /// Who holds the values `near` names, among live workers, and where each task goes; `nil` when no
    /// task's value has a live holder.
    static func plan(near: [[UInt8]?], keys: StoreKeys, client: RESPClient) async throws -> Placement? {
        let hashes = Array(Set(near.compactMap { $0 }))
        let replies = try await client.pipeline(
            [RESPCommand("SMEMBERS", keys.workers)] + hashes.map { RESPCommand("SMEMBERS", keys.holders(SharedRef.hex($0))) })
        let live = Set((replies[0].array ?? []).compactMap(\.string))
        // Members are `<worker> <process token>`: a later process under the same id holds nothing yet.
        var holding: [[UInt8]: [(worker: String, token: String)]] = [:]
        for (hash, reply) in zip(hashes, replies.dropFirst()) {
            let members = (reply.array ?? []).compactMap(\.string).compactMap { member -> (worker: String, token: String)? in
                guard let space = member.lastIndex(of: " ") else { return nil }
                let worker = String(member[..<space])
                return live.contains(worker) ? (worker, String(member[member.index(after: space)...])) : nil
            }
            if !members.isEmpty { holding[hash] = members }
        }
        let candidates = Array(Set(holding.values.joined().map(\.worker)))
        guard !candidates.isEmpty else { return nil }
        var commands: [RESPCommand] = []
        for worker in candidates {
            commands.append(RESPCommand("HMGET", keys.worker(worker), "conn", "token"))
            commands.append(RESPCommand("LLEN", keys.ownQueue(worker: worker)))
        }
        let details = try await client.pipeline(commands)
        var targets: [Placement.Target] = []
        var index: [String: Int] = [:]
        var tokens: [String: String] = [:]
        for (n, worker) in candidates.enumerated() {
            // Only a worker whose loop announced its connection (and is not draining) takes placed tasks.
            let fields = (details[2 * n].array ?? []).map(\.string)
            guard fields.count == 2, let text = fields[0], let connection = Int(text), let token = fields[1] else { continue }
            index[worker] = targets.count
            tokens[worker] = token
            targets.append(Placement.Target(worker: worker, connection: connection, waiting: details[2 * n + 1].int ?? 0))
        }
        guard !targets.isEmpty else { return nil }
        let holders = holding.mapValues { members in
            members.compactMap { member in tokens[member.worker] == member.token ? index[member.worker] : nil }
        }
        return Placement(near: near, holders: holders, targets: targets, liveWorkers: live.count)
    }

    /// The envelopes sealed as queue entries, each checked against the workers' limit.
    private func entries(_ envelopes: [TaskEnvelope]) throws -> [ByteBuffer] {
        var entries: [ByteBuffer] = []
        entries.reserveCapacity(envelopes.count)
        for envelope in envelopes {
            let entry = Sealer.seal(try envelope.encoded(), with: sealer)
            guard entry.readableBytes <= maxEntryBytes else {
                throw InputEncodingError(
                    function: envelope.function, index: Int(envelope.index),
                    message: "its task is \(entry.readableBytes) bytes with the function value, over the limit of \(maxEntryBytes) (CURTAIN_MAX_PAYLOAD_BYTES) that workers accept")
            }
            entries.append(entry)
        }
        return entries
    }

    /// `RPUSH`es of `entries` to `key`, in chunks.
    private func pushCommands(_ entries: [ByteBuffer], to key: String) -> [RESPCommand] {
        var commands: [RESPCommand] = []
        var start = 0
        while start < entries.count {
            let end = min(start + pushChunk, entries.count)
            var arguments: [any RESPArgument] = [key]
            arguments.reserveCapacity(end - start + 1)
            for entry in entries[start..<end] { arguments.append(entry) }
            commands.append(RESPCommand("RPUSH", arguments: arguments))
            start = end
        }
        return commands
    }

    /// For a named job: the record of how far its submissions got (to go in the same transaction as the
    /// pushes, so a driver that dies between two submissions leaves a record a new one can trust).
    private func durableRecord(_ envelopes: [TaskEnvelope]) -> [RESPCommand] {
        guard durable else { return [] }
        let high = state.withLock { state -> Int in
            state.highWater = max(state.highWater, Int((envelopes.map(\.index).max() ?? 0) + 1))
            return state.highWater
        }
        return record.commands(submitted: high)
    }

    /// Pushes `entries` (of `envelopes`) to `key`, with a named job's record atomically, riding out a store
    /// outage.
    private func push(_ entries: [ByteBuffer], of envelopes: [TaskEnvelope], to key: String) async throws {
        var commands = pushCommands(entries, to: key)
        if durable { commands = [RESPCommand("MULTI")] + commands + durableRecord(envelopes) + [RESPCommand("EXEC")] }
        while true {
            do {
                let replies = durable
                    ? try await client.withDedicatedConnection { try await $0.pipeline(commands) }
                    : try await client.pipeline(commands)
                try WorkerLoop.check(replies)  // errors inside a named job's EXEC too
                state.withLock { $0.outageSince = nil }
                // A driver that leases workers on demand looks at the backlog now, not at its next tick.
                LeaseLauncher.nudge(client: client, build: keys.buildID)
                return
            } catch let error as RESPError where error.isTransient {
                try await waitOutOutage(error)
            }
        }
    }

    func receive() async throws -> [TaskResult] {
        let backlog = state.withLock { state -> [ByteBuffer] in
            defer { state.backlog = [] }
            return state.backlog
        }
        let entries: [ByteBuffer]
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
                entries = try await take(on: connection)
                state.withLock { $0.outageSince = nil }
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
        if quiet {
            await diagnose()
            // Workers leased on demand were refused for good (another build, a wrong token), and none is
            // live: no result can come, so the job fails now with the reason instead of waiting for ever.
            if let refusal = LeaseLauncher.refusal(client: client, build: keys.buildID),
                let counts = try? await LeaseLauncher.backlogAndLiveWorkers(keys: keys, client: client), counts.live == 0
            {
                throw ConfigurationError(description: "no worker of build \(keys.buildID) can be leased for job \(jobID): \(refusal)")
            }
        }
        return results
    }

    /// The next results (waiting up to a second for the first): read back from `received` after a lost
    /// connection; else moved there (`BLMOVE`, then `LMOVE`s, atomically one by one) when results are kept,
    /// so a reply lost with its connection is read back and a driver that reattaches finds them; else popped.
    private func take(on connection: RESPConnection) async throws -> [ByteBuffer] {
        guard keepsResults else {
            let first = try await connection.send(RESPCommand("BLPOP", resultsKey, 1))
            guard let pair = first.array, pair.count == 2, let firstBytes = pair[1].buffer else { return [] }
            let more = try await connection.send(RESPCommand("LPOP", resultsKey, 1000))
            return [firstBytes] + (more.array ?? []).compactMap(\.buffer)
        }
        var entries: [ByteBuffer] = []
        if let from = state.withLock({ $0.catchUp ? $0.taken : nil }) {
            entries = (try await connection.send(RESPCommand("LRANGE", receivedKey, from, -1)).array ?? []).compactMap(\.buffer)
            state.withLock { $0.catchUp = false }
        } else if let first = try await connection.send(RESPCommand("BLMOVE", resultsKey, receivedKey, "LEFT", "RIGHT", 1)).buffer {
            let counted = try await connection.pipeline([
                RESPCommand("LLEN", resultsKey), RESPCommand("PEXPIRE", receivedKey, 24 * 3600 * 1000),
            ])
            let waiting = min(999, counted[0].int ?? 0)
            let more = waiting > 0
                ? try await connection.pipeline(
                    Array(repeating: RESPCommand("LMOVE", resultsKey, receivedKey, "LEFT", "RIGHT"), count: waiting))
                : []
            entries = [first] + more.compactMap(\.buffer)
        }
        state.withLock { $0.taken += entries.count }
        return entries
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
        var commands = record.commands(statistics, submitted: submitted)
        if let owner { commands.append(RESPCommand("SET", owner.key, owner.token, "XX", "PX", Int(Self.ownerLease.wholeMilliseconds))) }
        _ = try? await client.pipeline(commands)
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
            RESPCommand("DEL", record.key),
        ] + (owner.map { [RESPCommand("DEL", $0.key)] } ?? []))
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

    let jobID: String

    init(registry: FunctionRegistry, width: Int, spill: SpillSettings? = nil, jobID: String = TaskDispatcher.newJobID()) {
        self.jobID = jobID
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
            let started = StoreClock.now()
            let ran = await WorkerLoop.run(envelope, registry: registry, stuckGrace: .zero, spill: spill)
            var result = TaskResult(
                jobID: envelope.jobID, index: envelope.index, attempt: envelope.attempt, crashes: envelope.crashes,
                workerID: "inprocess",
                durationMicroseconds: ran.microseconds, outcome: ran.outcome)
            result.shared = ran.shared
            result.startedMicroseconds = UInt64(max(0, started))
            continuation.yield(result)
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
