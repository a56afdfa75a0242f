public import Curtain
import Foundation

// What `@Remote` expands to (the macro's tests pin the expansion), written out by hand so that the core
// tests and the fixture worker need not build swift-syntax.

/// Where a call ran, and its answer.
public struct Placed: Codable, Sendable, Hashable {
    /// The process that ran it.
    public var pid: Int32
    /// `x * x`.
    public var square: Int
    /// Creates a record.
    public init(pid: Int32, square: Int) {
        self.pid = pid
        self.square = square
    }
}

/// A plain function the tests call through its twin.
public func placedSquare(_ x: Int) -> Placed { Placed(pid: getpid(), square: x * x) }

/// The twin `@Remote` would generate for ``placedSquare(_:)`` (as `$placedSquare`: only a macro may declare a `$` name).
public func remotePlacedSquare(_ x: Int) async -> Placed {
    await Curtain.RemoteCall.value(__curtain_placedSquare(), __curtain_placedSquare.Input(x: x)) {
        placedSquare(x)
    }
}

/// ``placedSquare(_:)`` as a value, as `@Remote` would generate it.
public struct __curtain_placedSquare: Curtain.RemoteFunction {
    /// The arguments of one call.
    public struct Input: Codable, Sendable {
        /// The argument.
        public var x: Int
        /// Creates the arguments.
        public init(x: Int) { self.x = x }
    }
    /// Creates the function.
    public init() {}
    /// `CurtainTestFunctions.placedSquare`.
    public static var name: String { Curtain.RemoteCall.name(of: Self.self) }
    /// Runs ``placedSquare(_:)``.
    public func callAsFunction(_ input: Input) async throws -> Placed { placedSquare(input.x) }
    @section("curtain_remote") @used static let record: Curtain.RemoteRecord = (0x4355_5254, {
        $0.initializeMemory(as: Any.Type.self, repeating: __curtain_placedSquare.self, count: 1)
    })
}

/// Why ``halveEven(_:)`` refused.
public struct OddInput: Error, Sendable, CustomStringConvertible {
    /// The input.
    public var value: Int
    /// A readable reason.
    public var description: String { "\(value) is odd" }
}

/// A plain throwing function the tests call through its twin.
public func halveEven(_ x: Int) throws -> Int {
    guard x % 2 == 0 else { throw OddInput(value: x) }
    return x / 2
}

/// The twin `@Remote` would generate for ``halveEven(_:)``.
public func remoteHalveEven(_ x: Int) async throws -> Int {
    try await Curtain.RemoteCall.result(__curtain_halveEven(), __curtain_halveEven.Input(x: x)) {
        try halveEven(x)
    }
}

/// ``halveEven(_:)`` as a value, as `@Remote` would generate it.
public struct __curtain_halveEven: Curtain.RemoteFunction {
    /// The arguments of one call.
    public struct Input: Codable, Sendable {
        /// The argument.
        public var x: Int
        /// Creates the arguments.
        public init(x: Int) { self.x = x }
    }
    /// Creates the function.
    public init() {}
    /// `CurtainTestFunctions.halveEven`.
    public static var name: String { Curtain.RemoteCall.name(of: Self.self) }
    /// Runs ``halveEven(_:)``.
    public func callAsFunction(_ input: Input) async throws -> Int { try halveEven(input.x) }
    @section("curtain_remote") @used static let record: Curtain.RemoteRecord = (0x4355_5254, {
        $0.initializeMemory(as: Any.Type.self, repeating: __curtain_halveEven.self, count: 1)
    })
}

/// The record `@Remote` places for ``Tally`` (`@Remote public distributed actor Tally`).
@section("curtain_remote") @used let __curtain_Tally: Curtain.RemoteRecord = (0x4355_5254, {
    $0.initializeMemory(as: Any.Type.self, repeating: Tally.self, count: 1)
})
