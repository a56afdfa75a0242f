public import Curtain

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `x² + offset`: the plainest remote function, with one capture.
public struct Square: RemoteFunction {
    /// Added to every square (a capture).
    public var offset: Int
    /// Creates the function.
    public init(offset: Int) { self.offset = offset }
    /// `x * x + offset`.
    public func callAsFunction(_ x: Int) async throws -> Int { x * x + offset }
}

/// Throws for every input.
public struct AlwaysThrows: RemoteFunction {
    /// The error it throws.
    public struct Refused: Error, CustomStringConvertible {
        /// The refused input.
        public var value: String
        /// `refused <value>`.
        public var description: String { "refused \(value)" }
    }
    /// Creates the function.
    public init() {}
    /// Always throws ``Refused``.
    public func callAsFunction(_ input: String) async throws -> Int { throw Refused(value: input) }
}

/// Reports the process it ran in, to prove tasks left the driver.
public struct WhereAmI: RemoteFunction {
    /// Creates the function.
    public init() {}
    /// The worker's process id.
    public func callAsFunction(_ input: Int) async throws -> Int32 { getpid() }
}

/// Every function the fixture worker registers.
public let allTestFunctions: [any RemoteFunction.Type] = [Square.self, AlwaysThrows.self, WhereAmI.self]
