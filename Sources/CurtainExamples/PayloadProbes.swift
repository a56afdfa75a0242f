public import Curtain

/// A task returning 8 KB: 4,096 `UInt16`s derived from its input (the payload benchmark's output probe).
public struct EightKilobytes: RemoteFunction {
    /// Creates the function.
    public init() {}

    /// 4,096 values: `input &+ i` for each position `i`.
    public func callAsFunction(_ input: Int) async throws -> [UInt16] {
        Self.values(input)
    }

    /// The output for `input`, computed locally (to check what came back).
    public static func values(_ input: Int) -> [UInt16] {
        let base = UInt16(truncatingIfNeeded: input)
        return (0..<4096).map { base &+ UInt16($0) }
    }
}

/// A task reading one element of a large captured array (the payload benchmark's capture probe: every
/// task captures the same values).
public struct ReadCaptured: RemoteFunction {
    /// The captured values.
    public var values: [Double]

    /// Creates the function.
    public init(values: [Double]) { self.values = values }

    /// The sum of the element at `input` (wrapped to the array) and the array's length.
    public func callAsFunction(_ input: Int) async throws -> Double {
        values.isEmpty ? 0 : values[input % values.count] + Double(values.count)
    }
}

/// A small struct of mixed fields (the payload benchmark's encoding probe).
public struct SmallRecord: Codable, Sendable, Equatable {
    /// An identifier.
    public var id: Int
    /// A score.
    public var score: Double
    /// A short name.
    public var name: String
    /// A flag.
    public var active: Bool
    /// A count.
    public var count: Int32

    /// Creates a record.
    public init(id: Int, score: Double, name: String, active: Bool, count: Int32) {
        self.id = id
        self.score = score
        self.name = name
        self.active = active
        self.count = count
    }

    /// `n` records with varied fields.
    public static func sample(_ n: Int) -> [SmallRecord] {
        (0..<n).map { i in
            SmallRecord(id: i, score: Double(i) * 0.37, name: "item-\(i % 977)", active: i % 3 == 0, count: Int32(i % 1000))
        }
    }
}

/// A task summing one partition it receives as input (the placement benchmark's probe: a partition above
/// the share size is shared by hash, so a worker that has it cached receives only its hash).
public struct SumPartition: RemoteFunction {
    /// Creates the function.
    public init() {}

    /// The sum of the partition's values.
    public func callAsFunction(_ partition: [Double]) async throws -> Double {
        partition.reduce(0, +)
    }
}
