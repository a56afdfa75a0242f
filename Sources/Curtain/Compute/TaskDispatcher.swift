public import CurtainRESP
import NIOCore

/// Why an input could not be sent: it failed to encode. Reported before any task of the job is dispatched.
public struct InputEncodingError: Error, Sendable, CustomStringConvertible {
    /// The function the input was for.
    public var function: String
    /// The input's index.
    public var index: Int
    /// The encoder's message.
    public var message: String

    /// One line naming the function, the index and the encoder's complaint.
    public var description: String { "input #\(index) for \(function) cannot be encoded: \(message)" }
}

/// The driver's side of dispatch: turns a function and its inputs into envelopes on the store's queue and
/// gathers the results, the first result for each task winning.
///
/// This is the path every multi-process backend uses (embedded store or Redis alike).
public struct TaskDispatcher: Sendable {
    let client: RESPClient
    let keys: StoreKeys
    /// Envelopes per `RPUSH`.
    let pushChunk = 256

    /// Creates a dispatcher for executables of `buildID`.
    public init(client: RESPClient, buildID: String) {
        self.client = client
        self.keys = StoreKeys(buildID: buildID)
    }

    /// Runs `function` on every input on the workers and returns the outputs in input order.
    ///
    /// - Throws: ``InputEncodingError`` before dispatching anything if an input cannot be encoded;
    ///   ``RemoteTaskError`` for the first task that fails (the job's other tasks are then skipped);
    ///   `CancellationError` when the calling task is cancelled (queued tasks of the job never run).
    public func map<F: RemoteFunction, Inputs: Sequence>(_ function: F, over inputs: Inputs) async throws -> [F.Output]
    where Inputs.Element == F.Input {
        let jobID = Self.newJobID()
        let captures = try PayloadCodec.encode(function)
        let encodedInputs = try PayloadCodec.encodeInputs(inputs, for: F.self)
        if encodedInputs.isEmpty { return [] }
        let resultsKey = StoreKeys.results(job: jobID)
        do {
            try await push(jobID: jobID, function: F.name, captures: captures, inputs: encodedInputs)
            let outputs = try await collect(F.self, jobID: jobID, inputs: encodedInputs)
            await finish(jobID: jobID, resultsKey: resultsKey)
            return outputs
        } catch {
            await finish(jobID: jobID, resultsKey: resultsKey)
            if Task.isCancelled { throw CancellationError() }
            throw error
        }
    }

    private func push(jobID: String, function: String, captures: [UInt8], inputs: [[UInt8]]) async throws {
        var start = 0
        var commands: [RESPCommand] = []
        while start < inputs.count {
            let end = min(start + pushChunk, inputs.count)
            var arguments: [any RESPArgument] = [keys.queue]
            for index in start..<end {
                let envelope = TaskEnvelope(
                    buildID: keys.buildID, jobID: jobID, index: UInt64(index), function: function,
                    functionPayload: captures, input: inputs[index])
                arguments.append(try envelope.encoded())
            }
            commands.append(RESPCommand("RPUSH", arguments: arguments))
            start = end
        }
        let replies = try await client.pipeline(commands)
        if let message = replies.first(where: { $0.errorMessage != nil })?.errorMessage {
            throw RESPError.server(message)
        }
    }

    private func collect<F: RemoteFunction>(_: F.Type, jobID: String, inputs: [[UInt8]]) async throws -> [F.Output] {
        let resultsKey = StoreKeys.results(job: jobID)
        var outputs = [F.Output?](repeating: nil, count: inputs.count)
        var remaining = inputs.count
        try await client.withDedicatedConnection { connection in
            while remaining > 0 {
                try Task.checkCancellation()
                let first = try await connection.send(RESPCommand("BLPOP", resultsKey, 1))
                guard let pair = first.array, pair.count == 2, let firstBytes = pair[1].buffer else { continue }
                var batch = [firstBytes]
                let more = try await connection.send(RESPCommand("LPOP", resultsKey, 1000))
                batch += (more.array ?? []).compactMap(\.buffer)
                for bytes in batch {
                    let result = try TaskResult(decoding: bytes)
                    let index = Int(result.index)
                    // Results of another job, or a duplicate of a task already answered: the first one wins.
                    guard result.jobID == jobID, index < outputs.count, outputs[index] == nil else { continue }
                    switch result.outcome {
                    case .success(let payload):
                        outputs[index] = try PayloadCodec.decode(F.Output.self, from: payload)
                        remaining -= 1
                    case .failure(let failure):
                        throw RemoteTaskError(
                            function: F.name, index: result.index, input: Abbreviation.bytes(inputs[index]),
                            failure: failure)
                    }
                }
            }
        }
        return outputs.map { $0! }
    }

    /// Marks the job over (workers skip whatever of it is still queued) and drops its results.
    private func finish(jobID: String, resultsKey: String) async {
        _ = try? await client.pipeline([
            RESPCommand("SET", StoreKeys.cancelled(job: jobID), "1", "EX", 3600),
            RESPCommand("DEL", resultsKey),
        ])
    }

    static func newJobID() -> String {
        var rng = SystemRandomNumberGenerator()
        let value = rng.next() as UInt64
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
