/// A small, fast, deterministic pseudo-random generator (SplitMix64), so every fuzz input can be regenerated
/// from the run's seed and its index. Shared by the fuzz tool and the seeded tests.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    /// A generator starting from `seed`.
    public init(seed: UInt64) {
        self.state = seed
    }

    /// The generator for input `index` of a run seeded with `seed`: inputs are independent of one another, so
    /// `--index` can replay any one of them.
    public init(seed: UInt64, index: Int) {
        var mixer = SplitMix64(seed: seed ^ 0x5EED_F022_0000_0000)
        for _ in 0..<2 { _ = mixer.next() }
        self.state = mixer.next() &+ UInt64(truncatingIfNeeded: index) &* 0xD1B5_4A32_D192_ED03
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<bound` (`bound` > 0).
    public mutating func below(_ bound: Int) -> Int {
        Int(next() % UInt64(bound))
    }

    /// `true` with probability `1/n`.
    public mutating func oneIn(_ n: Int) -> Bool {
        below(n) == 0
    }

    /// A random element of `elements` (non-empty).
    public mutating func pick<T>(_ elements: [T]) -> T {
        elements[below(elements.count)]
    }
}
