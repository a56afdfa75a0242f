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
/// Created by ``Cloud/withTaskGroup(of:options:body:)``, which ends the group's job when the body returns or
/// throws: tasks not yet run never run. A task that fails for good (after its ``JobOptions/retries``)
/// makes iteration throw its ``RemoteTaskError``. Use the group from one task at a time, as the body does.
public final class RemoteTaskGroup<F: RemoteFunction>: AsyncSequence {
    /// The outputs, in completion order.
    public typealias Element = F.Output

    private var job: Job<F>
    private var added: UInt64 = 0
    /// Ended tasks not yet handed out, latest first.
    private var ready: [Result<F.Output, RemoteTaskError>] = []

    init(job: Job<F>) {
        self.job = job
    }

    /// Sends one task to run `function` on `input`.
    ///
    /// - Throws: ``InputEncodingError`` if the function or input cannot be encoded (nothing is sent).
    public func addTask(_ function: F, _ input: F.Input) async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let captures = try Job<F>.encode(function: function, context: job.context)
        let encoded = try Job<F>.encode(input, index: Int(added), context: job.context)
        TaskRecorder.shared.driverTime(job: job.jobID, encode: clock.now - start)
        try await job.submit([(added, encoded)], captures: captures)
        added += 1
        job.progress?.total.store(Int(added), ordering: .relaxed)
    }

    /// The next output to complete, or `nil` once every added task has answered.
    ///
    /// - Throws: the ``RemoteTaskError`` of a task that failed for good (iteration may go on after it:
    ///   the other tasks still answer); `CancellationError`.
    public func next() async throws -> F.Output? {
        while ready.isEmpty {
            guard job.outstanding > 0 else { return nil }
            ready = try await job.receive().map(\.outcome).reversed()
        }
        return try ready.removeLast().get()
    }

    /// Ends the group's job: queued tasks are skipped, late results dropped, the summary reported.
    func finish() async {
        await job.finish()
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
