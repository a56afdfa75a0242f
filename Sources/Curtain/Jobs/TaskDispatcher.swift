public import CurtainRESP

/// Why an input (or the function value itself) could not be sent: it failed to encode.
///
/// For `map`, inputs are encoded a window at a time: a bad input in the first window (4096 inputs, or
/// ``JobOptions/window``) is reported before any task is dispatched; one found later ends the job like a
/// cancellation (its queued tasks never run).
public struct InputEncodingError: Error, Sendable, CustomStringConvertible {
    /// The function the input was for.
    public var function: String
    /// The input's index; -1 when the function value itself (its captures) could not be encoded.
    public var index: Int
    /// The encoder's message.
    public var message: String

    /// One line naming the function, the index and the encoder's complaint.
    public var description: String {
        index < 0 ? "\(function): \(message)" : "input #\(index) for \(function) cannot be encoded: \(message)"
    }
}

/// The driver's side of dispatch through a store: turns a function and its inputs into envelopes on the
/// build's queue and gathers the results, the first result for each task winning.
///
/// This is the path every multi-process backend uses (embedded store or Redis alike); ``Cloud`` wraps it.
public struct TaskDispatcher: Sendable {
    let client: RESPClient
    let buildID: String
    let workers: Int?

    /// Creates a dispatcher for executables of `buildID`; `workers` (if known) sizes the map window.
    public init(client: RESPClient, buildID: String, workers: Int? = nil) {
        self.client = client
        self.buildID = buildID
        self.workers = workers
    }

    /// Runs `function` on every input on the workers and returns the outputs in input order.
    ///
    /// Inputs are read and encoded as the job's window has room, so the sequence may be long (or lazy).
    ///
    /// - Throws: ``InputEncodingError`` for an input that cannot be encoded (before anything is dispatched
    ///   if it is in the first window); ``RemoteTaskError`` for the first task that fails for good (the
    ///   job's other tasks are then skipped); `CancellationError` when the calling task is cancelled (queued
    ///   tasks of the job never run); ``ConfigurationError`` for invalid `options`.
    public func map<F: RemoteFunction, Inputs: Sequence>(
        _ function: F, over inputs: Inputs, options: JobOptions = JobOptions()
    ) async throws -> [F.Output] where Inputs.Element == F.Input {
        try await map(function, over: inputs, options: options, context: context)
    }

    var context: JobContext {
        JobContext(buildID: buildID, backend: "store", workers: workers)
    }

    func map<F: RemoteFunction, Inputs: Sequence>(
        _ function: F, over inputs: Inputs, options: JobOptions, context: JobContext
    ) async throws -> [F.Output] where Inputs.Element == F.Input {
        try await MapRunner.map(function, over: inputs, context: context, options: options) { jobID in
            try await StoreTransport(client: client, buildID: buildID, jobID: jobID)
        }
    }

    static func newJobID() -> String {
        var rng = SystemRandomNumberGenerator()
        let value = rng.next() as UInt64
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
