import CurtainRESP
import NIOCore

/// A dynamic set of remote tasks of one function type, shaped like Swift's `TaskGroup`: add tasks one by
/// one, read their outputs in completion order.
///
/// ```swift
/// let total = try await cloud.withTaskGroup(of: CountHits.self) { group in
///     for seed in 0..<64 { try await group.addTask(CountHits(samples: 1_000_000), seed) }
///     var sum = 0
///     for try await hits in group { sum += hits }
///     return sum
/// }
/// ```
///
/// Created by ``Cloud/withTaskGroup(of:body:)``, which ends the group's job when the body returns or
/// throws: tasks not yet run never run. A failed task makes iteration throw its ``RemoteTaskError``.
public final class RemoteTaskGroup<F: RemoteFunction>: AsyncSequence {
    /// The outputs, in completion order.
    public typealias Element = F.Output

    enum Engine {
        case store(client: RESPClient, keys: StoreKeys, jobID: String, connection: RESPConnection)
        case local(registry: FunctionRegistry, stream: AsyncStream<(Int, Result<[UInt8], RemoteFailure>)>,
                   continuation: AsyncStream<(Int, Result<[UInt8], RemoteFailure>)>.Continuation)
    }

    private let engine: Engine
    private var inputs: [[UInt8]] = []
    private var done: [Bool] = []
    private var outstanding = 0
    private var buffered: [ByteBuffer] = []
    private var localTasks: [Task<Void, Never>] = []
    private var localIterator: AsyncStream<(Int, Result<[UInt8], RemoteFailure>)>.Iterator?

    init(engine: Engine) {
        self.engine = engine
        if case .local(_, let stream, _) = engine { localIterator = stream.makeAsyncIterator() }
    }

    /// Sends one task to run `function` on `input`.
    ///
    /// - Throws: ``InputEncodingError`` if the function or input cannot be encoded (nothing is sent).
    public func addTask(_ function: F, _ input: F.Input) async throws {
        let captures = try PayloadCodec.encode(function)
        let encoded = try PayloadCodec.encodeInputs(CollectionOfOne(input), for: F.self)[0]
        let index = inputs.count
        inputs.append(encoded)
        done.append(false)
        outstanding += 1
        switch engine {
        case .store(let client, let keys, let jobID, _):
            let envelope = TaskEnvelope(
                buildID: keys.buildID, jobID: jobID, index: UInt64(index), function: F.name, functionPayload: captures,
                input: encoded)
            _ = try await client.send(RESPCommand("RPUSH", keys.queue, try envelope.encoded()))
        case .local(let registry, _, let continuation):
            localTasks.append(Task {
                continuation.yield((index, await registry.run(F.name, function: captures, input: encoded)))
            })
        }
    }

    /// The next output to complete, or `nil` once every added task has answered.
    public func next() async throws -> F.Output? {
        while outstanding > 0 {
            let (index, outcome): (Int, Result<[UInt8], RemoteFailure>)
            switch engine {
            case .store(_, _, let jobID, let connection):
                if buffered.isEmpty {
                    let reply = try await connection.send(RESPCommand("BLPOP", StoreKeys.results(job: jobID), 1))
                    guard let bytes = reply.array?.last?.buffer else {
                        try Task.checkCancellation()
                        continue
                    }
                    buffered.append(bytes)
                }
                let result = try TaskResult(decoding: buffered.removeFirst())
                guard result.jobID == jobID else { continue }
                (index, outcome) = (Int(result.index), result.outcome)
            case .local:
                guard let item = await localIterator?.next() else { return nil }
                (index, outcome) = item
            }
            // The first result per task wins; duplicates from re-run tasks are dropped.
            guard index < done.count, !done[index] else { continue }
            done[index] = true
            outstanding -= 1
            switch outcome {
            case .success(let bytes):
                return try PayloadCodec.decode(F.Output.self, from: bytes)
            case .failure(let failure):
                throw RemoteTaskError(function: F.name, index: UInt64(index), input: Abbreviation.bytes(inputs[index]), failure: failure)
            }
        }
        return nil
    }

    /// Ends the group's job: queued tasks are skipped by workers, local tasks are cancelled.
    func finish() async {
        switch engine {
        case .store(let client, _, let jobID, let connection):
            await connection.close()
            _ = try? await client.pipeline([
                RESPCommand("SET", StoreKeys.cancelled(job: jobID), "1", "EX", 3600),
                RESPCommand("DEL", StoreKeys.results(job: jobID)),
            ])
        case .local(_, _, let continuation):
            localTasks.forEach { $0.cancel() }
            continuation.finish()
        }
    }

    /// The group is its own iterator.
    public func makeAsyncIterator() -> Iterator { Iterator(group: self) }

    /// Iterates a ``RemoteTaskGroup``'s outputs in completion order.
    public struct Iterator: AsyncIteratorProtocol {
        let group: RemoteTaskGroup<F>
        /// The next output, or `nil` when every added task has answered.
        public mutating func next() async throws -> F.Output? { try await group.next() }
    }
}
