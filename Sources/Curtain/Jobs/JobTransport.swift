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
}

/// Through the store: envelopes are `RPUSH`ed to the build's queue (pipelined, in chunks), results read with
/// `BLPOP` plus a bulk `LPOP` from the job's result list on a connection of the job's own. The path of the
/// `processes` backend and of any shared store.
final class StoreTransport: JobTransport {
    let client: RESPClient
    let keys: StoreKeys
    let jobID: String
    private let connection: RESPConnection
    private let resultsKey: String
    /// Envelopes per `RPUSH`.
    private let pushChunk = 256
    /// Signs envelopes and checks results when the cloud has a secret.
    private let sealer: Sealer?

    init(client: RESPClient, buildID: String, jobID: String, sealer: Sealer? = nil) async throws {
        self.sealer = sealer
        self.client = client
        self.keys = StoreKeys(buildID: buildID)
        self.jobID = jobID
        self.resultsKey = StoreKeys.results(job: jobID)
        self.connection = try await client.leaseDedicatedConnection()
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
        let replies = try await client.pipeline(commands)
        if let message = replies.first(where: { $0.errorMessage != nil })?.errorMessage {
            throw RESPError.server(message)
        }
    }

    func receive() async throws -> [TaskResult] {
        let first = try await connection.send(RESPCommand("BLPOP", resultsKey, 1))
        guard let pair = first.array, pair.count == 2, let firstBytes = pair[1].buffer else { return [] }
        var entries = [firstBytes]
        let more = try await connection.send(RESPCommand("LPOP", resultsKey, 1000))
        entries += (more.array ?? []).compactMap(\.buffer)
        var results: [TaskResult] = []
        for bytes in entries {
            // A result that is malformed, unsigned or forged is dropped: the task's real answer is awaited.
            do {
                results.append(try TaskResult(decoding: try Sealer.open(bytes, with: sealer)))
            } catch {
                Self.logger.warning("dropped a result that is not to be trusted", metadata: ["job": "\(jobID)", "reason": "\(error)"])
            }
        }
        return results
    }

    private static let logger = Logger(label: "curtain.jobs")

    /// Marks the job over (workers skip whatever of it is still queued) and drops its results.
    func finish() async {
        if Task.isCancelled {
            // A cancelled BLPOP may have left the connection mid-reply: do not reuse it.
            await connection.close()
        } else {
            await client.returnDedicatedConnection(connection)
        }
        _ = try? await client.pipeline([
            RESPCommand("SET", StoreKeys.cancelled(job: jobID), "1", "EX", 3600),
            RESPCommand("DEL", resultsKey),
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
