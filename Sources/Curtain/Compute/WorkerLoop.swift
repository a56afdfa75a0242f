public import CurtainRESP
public import Logging
import NIOCore

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
    let logger: Logger

    /// Creates a worker loop for executables of `buildID`.
    public init(
        client: RESPClient, registry: FunctionRegistry, buildID: String, workerID: String, batchSize: Int = 64,
        logger: Logger = Logger(label: "curtain.worker")
    ) {
        self.client = client
        self.registry = registry
        self.keys = StoreKeys(buildID: buildID)
        self.workerID = workerID
        self.batchSize = max(1, batchSize)
        self.logger = logger
    }

    /// Runs until the calling task is cancelled.
    ///
    /// The batch size adapts to task length: it starts at 1 and doubles (up to `batchSize`) while a batch
    /// runs in under 2 ms, and drops back to 1 when a batch takes more than 20 ms, so short tasks share round
    /// trips while long ones stay spread over all workers instead of piling up on the first one to ask.
    public func run() async throws {
        let clock = ContinuousClock()
        var batch = 1
        try await client.withDedicatedConnection { connection in
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
                envelopes.append((raw, try TaskEnvelope(decoding: raw)))
            } catch {
                logger.warning("rejected a malformed task envelope", metadata: ["reason": "\(error)", "worker": "\(workerID)"])
                envelopes.append((raw, nil))
            }
        }
        // Skip the tasks of jobs that were cancelled or are over.
        let jobs = Array(Set(envelopes.compactMap { $0.envelope?.jobID }))
        let flags = try await connection.pipeline(jobs.map { RESPCommand("EXISTS", StoreKeys.cancelled(job: $0)) })
        let cancelled = Set(zip(jobs, flags).filter { $0.1.int == 1 }.map(\.0))

        var replies: [RESPCommand] = []
        var resultKeys = Set<String>()
        for (raw, envelope) in envelopes {
            defer { replies.append(RESPCommand("LREM", inflight, 1, raw)) }
            guard let envelope, !cancelled.contains(envelope.jobID) else { continue }
            let outcome: Result<[UInt8], RemoteFailure>
            if envelope.buildID != keys.buildID {
                // Checked before running: code from another build must never run here.
                outcome = .failure(RemoteFailure(
                    kind: .badEnvelope, errorType: "Curtain.WorkerLoop",
                    message: "task of build \(envelope.buildID) reached a worker of build \(keys.buildID)"))
            } else {
                outcome = await registry.run(envelope.function, function: envelope.functionPayload, input: envelope.input)
            }
            if case .failure(let failure) = outcome, failure.kind == .unknownFunction {
                logger.warning("rejected a task for an unknown function", metadata: ["function": "\(envelope.function)"])
            }
            let result = TaskResult(
                jobID: envelope.jobID, index: envelope.index, attempt: envelope.attempt, workerID: workerID,
                outcome: outcome)
            let resultsKey = StoreKeys.results(job: envelope.jobID)
            replies.append(RESPCommand("RPUSH", resultsKey, try result.encoded()))
            resultKeys.insert(resultsKey)
        }
        // A job whose driver vanished must not leave its results behind forever: one expiry per job per batch.
        for key in resultKeys { replies.append(RESPCommand("PEXPIRE", key, 24 * 3600 * 1000)) }
        let answers = try await connection.pipeline(replies)
        if let error = answers.first(where: { $0.errorMessage != nil })?.errorMessage {
            throw RESPError.server(error)
        }
        return taken.count
    }
}
