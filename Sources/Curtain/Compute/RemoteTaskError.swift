/// A task failed on the side that ran it: the function threw, or the task could not be run there.
///
/// Its description names the function, the task's index and (abbreviated) input, and the remote error's
/// type and message, for example:
/// `Fails task #3 (input "x") threw Demo.Fails.Refused: refused x`.
public struct RemoteTaskError: Error, Sendable, CustomStringConvertible {
    /// The registered name of the function.
    public var function: String
    /// The task's index in its job (the input's position for `map`).
    public var index: UInt64
    /// The task's encoded input, abbreviated for display.
    public var input: String
    /// What happened remotely.
    public var failure: RemoteFailure

    /// Creates an error.
    public init(function: String, index: UInt64, input: String, failure: RemoteFailure) {
        self.function = function
        self.index = index
        self.input = input
        self.failure = failure
    }

    /// One line naming the function, task, input and the remote error.
    public var description: String {
        let what: String
        switch failure.kind {
        case .thrown: what = "threw \(failure.errorType)"
        case .decoding: what = "could not be decoded by the worker (\(failure.errorType))"
        case .encoding: what = "produced an output that could not be encoded (\(failure.errorType))"
        case .unknownFunction: what = "was refused: unknown function"
        case .badEnvelope: what = "was refused: malformed envelope"
        case .crashed: what = "crashed its worker on every attempt"
        case .timedOut: what = "timed out"
        case .missingSharedValue: what = "could not fetch a value it shares by hash, however often it was put back"
        }
        return "\(function) task #\(index) (input \(input)) \(what): \(failure.message)"
    }
}
