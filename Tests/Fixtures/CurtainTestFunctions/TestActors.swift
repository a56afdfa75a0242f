public import Curtain
public import Distributed
import Foundation

/// A point, to pass a struct through a distributed call.
public struct Point: Codable, Sendable, Hashable {
    /// Coordinates.
    public var x: Double, y: Double
    /// Creates a point.
    public init(x: Double, y: Double) {
        self.x = x
        self.y = y
    }
}

/// A test actor: a running total, and methods with assorted argument and result types.
public distributed actor Tally: SpawnableActor {
    /// The error `fail` throws.
    public enum Refusal: Error, CustomStringConvertible {
        case refused(String)
        public var description: String {
            switch self { case .refused(let why): "refused: \(why)" }
        }
    }

    var total = 0
    var notes: [String] = []

    /// Creates a tally at 0.
    public init(actorSystem: CurtainActorSystem) {
        self.actorSystem = actorSystem
    }

    /// Adds `n` and returns the new total.
    public distributed func add(_ n: Int) -> Int {
        total += n
        return total
    }

    /// The total.
    public distributed func current() -> Int { total }

    /// Sets the total to 0 (a method without result).
    public distributed func reset() { total = 0 }

    /// Several argument types in one call.
    public distributed func describe(label: String, values: [Double], point: Point?, flag: Bool, id: UInt64) -> String {
        let sum = values.reduce(0, +)
        let where_ = point.map { "(\($0.x),\($0.y))" } ?? "nowhere"
        notes.append(label)
        return "\(label):\(sum):\(where_):\(flag):\(id)"
    }

    /// Returns the notes recorded by `describe`, a collection result.
    public distributed func recorded() -> [String] { notes }

    /// Always throws.
    public distributed func fail(_ why: String) throws -> Int { throw Refusal.refused(why) }

    /// The process hosting this actor.
    public distributed func processID() -> Int32 { ProcessInfo.processInfo.processIdentifier }

    /// Sleeps, then adds.
    public distributed func slowAdd(_ n: Int, milliseconds: Int) async throws -> Int {
        try await Task.sleep(for: .milliseconds(milliseconds))
        total += n
        return total
    }

    /// Calls `other.add(n)` `times` times (an actor received as an argument, called from here).
    public distributed func feed(_ other: Tally, _ n: Int, times: Int) async throws -> Int {
        var last = 0
        for _ in 0..<times { last = try await other.add(n) }
        return last
    }

    /// Returns itself (an actor as a result).
    public distributed func this() -> Tally { self }
}

/// A remote function whose captures hold an actor reference: it adds its input to the tally.
public struct FeedTally: RemoteFunction {
    /// The tally fed.
    public var tally: Tally
    /// Creates the function.
    public init(tally: Tally) { self.tally = tally }
    /// Adds `n`, returns the total seen.
    public func callAsFunction(_ n: Int) async throws -> Int { try await tally.add(n) }
}

/// The actor types the fixture worker can spawn.
public let allTestActors: [any SpawnableActor.Type] = [Tally.self]

/// Returns the lines a partition owns (for the partitioning tests).
public struct PartitionLines: RemoteFunction {
    /// Creates the function.
    public init() {}
    /// The partition's lines, in order.
    public func callAsFunction(_ partition: ObjectPartition) async throws -> [String] {
        var lines: [String] = []
        for try await line in partition.lines { lines.append(line) }
        return lines
    }
}

/// Echoes its input reversed, with its captured ballast's length, and counts the spilled objects it can
/// see while it runs (for the spill tests).
public struct SpillProbe: RemoteFunction {
    /// Where spilled payloads go.
    public var storage: Storage
    /// Captures of any size.
    public var ballast: String
    /// Creates the function.
    public init(storage: Storage, ballast: String) {
        self.storage = storage
        self.ballast = ballast
    }
    /// `[reversed input, ballast length, spilled objects seen]`.
    public func callAsFunction(_ input: String) async throws -> [String] {
        let seen = try await storage.objects(prefix: "curtain-spill/").count
        return [String(input.reversed()), String(ballast.count), String(seen)]
    }
}
