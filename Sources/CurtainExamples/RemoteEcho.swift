public import Curtain

// `@Remote func echo(_ x: Int) -> Int`, expanded by hand (the expansion the macro's tests pin), so that
// curtain-bench measures `@Remote` calls without building swift-syntax in release.

/// Returns its input: the no-op task, as a plain function.
public func echo(_ x: Int) -> Int { x }

/// What `$echo` expands to: `echo` on the ambient cloud's workers, locally outside any cloud.
public func remoteEcho(_ x: Int) async -> Int {
    await Curtain.RemoteCall.value(__curtain_echo(), __curtain_echo.Input(x: x)) {
        echo(x)
    }
}

/// ``echo(_:)`` as a value, as `@Remote` generates it.
public struct __curtain_echo: Curtain.RemoteFunction {
    /// The arguments of one call.
    public struct Input: Codable, Sendable {
        /// The argument.
        public var x: Int
        /// Creates the arguments.
        public init(x: Int) { self.x = x }
    }
    /// Creates the function.
    public init() {}
    /// `CurtainExamples.echo`.
    public static var name: String { Curtain.RemoteCall.name(of: Self.self) }
    /// Runs ``echo(_:)``.
    public func callAsFunction(_ input: Input) async throws -> Int { echo(input.x) }
    @section("curtain_remote") @used static let record: Curtain.RemoteRecord = (0x4355_5254, {
        $0.initializeMemory(as: Any.Type.self, repeating: __curtain_echo.self, count: 1)
    })
}
