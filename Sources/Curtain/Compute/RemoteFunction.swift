/// A unit of remote work: a closure written as a value.
///
/// Swift cannot send closures to another process, so a remote function is a `Codable` struct whose stored
/// properties are what the closure would have captured, called like a function on one `Codable` input:
///
/// ```swift
/// struct CountHits: RemoteFunction {
///     var samples: Int                                  // a capture
///     func callAsFunction(_ seed: UInt64) async throws -> Int {
///         var rng = SplitMix(seed); var hits = 0
///         for _ in 0..<samples { if rng.unitDisk() { hits += 1 } }
///         return hits
///     }
/// }
/// ```
///
/// Workers only run functions listed in the ``FunctionRegistry`` given at start-up; a function is found by
/// its ``name``, never by handing a string to the runtime's type lookup.
public protocol RemoteFunction: Codable, Sendable {
    /// What one call receives.
    associatedtype Input: Codable & Sendable
    /// What one call returns.
    associatedtype Output: Codable & Sendable

    /// The stable, readable name used on the wire and in errors, logs and statistics.
    ///
    /// Defaults to the type's name (`CountHits`). Override it when two modules define types with the same
    /// name, or to keep the wire name stable across a rename. Names are ASCII letters, digits, `.`, `_`
    /// and `-`, at most 200 characters.
    static var name: String { get }

    /// Runs the function on one input.
    func callAsFunction(_ input: Input) async throws -> Output
}

extension RemoteFunction {
    /// The type's own name, for example `CountHits`: what `String(describing:)` gives for the type,
    /// asked of the runtime directly (`String(describing:)` first looks for conformances of the metatype,
    /// a scan of every conformance in the program that a fresh worker pays once per registered type).
    public static var name: String { _typeName(Self.self, qualified: false) }
}
