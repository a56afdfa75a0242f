internal import Synchronization

/// What a `@Remote` function's `$`-twin calls: runs one call on the ambient cloud's workers, or locally when
/// there is no ambient cloud (or on a worker: a remote call made by remote code runs where it is).
///
/// Concurrent calls of one function are coalesced: each call waits in a queue that is sent as one job (one
/// pipelined push of many tasks), so a task group of 100,000 calls costs about what a `map` over them does.
/// Written for the macro's expansion; the twin is the API.
public enum RemoteCall {
    /// Runs a call of a function that cannot throw.
    ///
    /// Remote failures that survive their retries (the worker crashed on every attempt, the store is gone)
    /// cannot be thrown where the plain call could not throw: they end the program with the task's error on
    /// standard error, as a crash of the same function would have ended the plain program.
    public static func value<F: RemoteFunction>(
        _ function: F, _ input: F.Input, locally: () async -> F.Output
    ) async -> F.Output {
        guard let cloud = Cloud.ambient else { return await locally() }
        do {
            return try await cloud.callBatcher(for: function).call(input)
        } catch {
            StandardError.write("curtain: \(F.name) failed remotely and cannot throw: \(error)\n")
            fatalError("\(F.name) failed remotely and cannot throw: \(error)")
        }
    }

    /// Runs a call of a function that throws: its own errors come back as ``RemoteTaskError`` (naming the
    /// error's type and message), and so do remote failures that survive their retries.
    public static func result<F: RemoteFunction>(
        _ function: F, _ input: F.Input, locally: () async throws -> F.Output
    ) async throws -> F.Output {
        guard let cloud = Cloud.ambient else { return try await locally() }
        return try await cloud.callBatcher(for: function).call(input)
    }
}

extension RemoteCall {
    /// The name a `@Remote` function's value type goes by on the wire: the module-qualified path of the
    /// function (`MyApp.row`, `MyApp.Model.predict`), from its generated type's (`MyApp.__curtain_row`).
    public static func name(of type: Any.Type) -> String {
        String(reflecting: type).replacing("__curtain_", with: "")
    }
}

/// The output of a `@Remote` function that returns nothing (`Void` is not `Codable`).
public struct RemoteVoid: Codable, Sendable, Hashable {
    /// The only value.
    public init() {}
}

/// The call queues of one cloud, one per function type.
final class CallBatchers: Sendable {
    private let batchers = Mutex<[ObjectIdentifier: any Sendable]>([:])

    /// How many jobs the queue of `F` has sent (for tests).
    func jobs<F: RemoteFunction>(of function: F.Type) -> Int {
        (batchers.withLock { $0[ObjectIdentifier(F.self)] } as? CallBatcher<F>)?.jobs.load(ordering: .relaxed) ?? 0
    }

    func batcher<F: RemoteFunction>(for function: F, make: () -> CallBatcher<F>) -> CallBatcher<F> {
        batchers.withLock { all in
            if let existing = all[ObjectIdentifier(F.self)] as? CallBatcher<F> { return existing }
            let made = make()
            all[ObjectIdentifier(F.self)] = made
            return made
        }
    }
}

extension Cloud {
    /// How many jobs the queued `@Remote` calls of `F` have gone out in so far (for benchmarks and tests).
    @_spi(Testing) public func callBatchJobs<F: RemoteFunction>(of function: F.Type) -> Int {
        callBatchers.jobs(of: function)
    }

    func callBatcher<F: RemoteFunction>(for function: F) -> CallBatcher<F> {
        callBatchers.batcher(for: function) {
            CallBatcher(function: function) { [weak self] in
                guard let self else { throw CancellationError() }
                return try await self.makeJob(of: F.self, options: JobOptions(), quiet: true)
            }
        }
    }
}

/// Queues concurrent calls of one function and sends them as jobs of many tasks.
///
/// A call waits in the queue; the first call into an empty queue starts a flush task, which by the time it
/// runs finds every call the program's other tasks made meanwhile (a task group's children run before it).
/// Up to ``maxJobs`` jobs run at once, so a long task never holds back calls made after it.
final class CallBatcher<F: RemoteFunction>: Sendable {
    typealias Waiting = (input: F.Input, continuation: CheckedContinuation<F.Output, any Error>)

    private struct State {
        var queue: [Waiting] = []
        var running = 0
    }

    /// The most jobs of queued calls in flight at once.
    static var maxJobs: Int { 4 }

    private let function: F
    /// Jobs sent so far (each carries one batch of calls).
    let jobs = Atomic<Int>(0)
    private let makeJob: @Sendable () async throws -> Job<F>
    private let state = Mutex(State())

    init(function: F, makeJob: @escaping @Sendable () async throws -> Job<F>) {
        self.function = function
        self.makeJob = makeJob
    }

    /// Queues one call and waits for its output. A call, once queued, waits for its task to end even if the
    /// calling task is cancelled, as the plain call would have run to its end.
    func call(_ input: F.Input) async throws -> F.Output {
        try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { state -> Bool in
                state.queue.append((input, continuation))
                guard state.running < Self.maxJobs else { return false }
                state.running += 1
                return true
            }
            if start { Task { await self.drain() } }
        }
    }

    /// Sends queued calls as jobs until the queue is empty.
    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Waiting] in
                let batch = state.queue
                state.queue = []
                if batch.isEmpty { state.running -= 1 }
                return batch
            }
            if batch.isEmpty { return }
            await run(batch)
        }
    }

    /// Runs one batch as a job, resuming each call as its task ends.
    private func run(_ batch: [Waiting]) async {
        var waiting: [Int: CheckedContinuation<F.Output, any Error>] = [:]
        waiting.reserveCapacity(batch.count)
        func failAll(_ error: any Error) {
            for continuation in waiting.values { continuation.resume(throwing: error) }
            waiting = [:]
        }
        var job: Job<F>
        jobs.add(1, ordering: .relaxed)
        do {
            job = try await makeJob()
        } catch {
            for call in batch { call.continuation.resume(throwing: error) }
            return
        }
        var next = 0
        do {
            let context = job.context
            let captures = try Job<F>.encode(function: function, context: context)
            let window = max(4096, 256 * (context.workers ?? 1), batch.count)
            /// Encodes and submits up to `room` more calls; a call whose input cannot be encoded fails alone.
            func submit(room: Int) async throws {
                var tasks: [(index: UInt64, input: EncodedPayload)] = []
                while tasks.count < room, next < batch.count {
                    let call = batch[next]
                    do {
                        tasks.append((UInt64(next), try Job<F>.encode(call.input, index: next, context: context)))
                        waiting[next] = call.continuation
                    } catch {
                        call.continuation.resume(throwing: error)
                    }
                    next += 1
                }
                try await job.submit(tasks, captures: captures)
            }
            try await submit(room: window)
            while !waiting.isEmpty || next < batch.count {
                if job.outstanding > 0 {
                    let ended = await Job<F>.decode(try await job.receiveEncoded(), job: job.jobID)
                    for (index, outcome) in ended { waiting.removeValue(forKey: Int(index))?.resume(with: outcome.mapError { $0 }) }
                }
                let room = window - job.outstanding
                if next < batch.count && (room >= window / 4 || job.outstanding == 0) { try await submit(room: room) }
            }
        } catch {
            // Sent calls and those never encoded or sent fail alike.
            failAll(error)
            for call in batch[next...] { call.continuation.resume(throwing: error) }
        }
        await job.finish()
    }
}
