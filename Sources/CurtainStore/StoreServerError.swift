/// A failure to start a ``StoreServer``.
public struct StoreServerError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, naming the address involved.
    public var message: String

    /// Creates an error with a message.
    public init(_ message: String) {
        self.message = message
    }

    /// The listener could not bind `address` (port in use, bad path, permission denied, …).
    static func bindFailed(address: String, underlying: any Error) -> StoreServerError {
        StoreServerError("embedded store could not listen on \(address): \(underlying)")
    }

    /// The configuration cannot work (for example no listener at all, or zero databases).
    static func invalidConfiguration(_ reason: String) -> StoreServerError {
        StoreServerError("invalid embedded store configuration: \(reason)")
    }

    /// A human-readable description of the failure.
    public var description: String { message }
}
