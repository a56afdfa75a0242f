@testable import Curtain
import Testing

@Suite("Content hashes: the names shared values are stored under")
struct ContentHashTests {
    private func fingerprint(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBytes { ContentHash.fingerprint($0) } }

    /// A seeded generator, so that a failure can be replayed.
    private struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test func theFingerprintIs32BytesAndDependsOnlyOnTheBytes() {
        var random = Generator(state: 1)
        let bytes = (0..<1_000).map { _ in UInt8.random(in: 0...255, using: &random) }
        let whole = fingerprint(bytes)
        #expect(whole.count == 32)
        #expect(fingerprint(bytes) == whole)
        // The same bytes at another alignment (a slice copied one byte in) give the same name.
        let shifted = [0] + bytes
        let again = shifted.withUnsafeBytes { ContentHash.fingerprint(UnsafeRawBufferPointer(rebasing: $0[1...])) }
        #expect(again == whole)
    }

    @Test func everyPrefixAndEveryLengthGetsItsOwnName() {
        // Lengths 0 to 300 of one buffer, and the same lengths of zeros: a padded tail must not be taken for
        // zeros that are really there, nor a shorter buffer for a longer one.
        var random = Generator(state: 2)
        let bytes = (0..<300).map { _ in UInt8.random(in: 0...255, using: &random) }
        var seen = Set<[UInt8]>()
        for length in 0...300 {
            #expect(seen.insert(fingerprint(Array(bytes.prefix(length)))).inserted, "prefix of \(length) bytes")
            if length > 0 { #expect(seen.insert(fingerprint([UInt8](repeating: 0, count: length))).inserted, "\(length) zeros") }
        }
    }

    @Test func flippingAnyBitChangesAboutHalfOfTheOutput() {
        var random = Generator(state: 3)
        for length in [1, 7, 8, 63, 64, 65, 200] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let original = fingerprint(bytes)
            var changedBits = 0
            var flips = 0
            for bit in 0..<(length * 8) {
                var flipped = bytes
                flipped[bit / 8] ^= 1 << UInt8(bit % 8)
                let other = fingerprint(flipped)
                #expect(other != original, "flipping bit \(bit) of \(length) bytes left the name unchanged")
                changedBits += zip(original, other).reduce(0) { $0 + ($1.0 ^ $1.1).nonzeroBitCount }
                flips += 1
            }
            // Avalanche: on average close to 128 of the 256 output bits change.
            let average = Double(changedBits) / Double(flips)
            #expect(average > 110 && average < 146, "\(length) bytes: \(average) bits changed on average")
        }
    }

    @Test func noCollisionsAmongManyRandomAndStructuredInputs() {
        var random = Generator(state: 4)
        var inputs = Set<[UInt8]>()
        for _ in 0..<50_000 {
            let length = Int.random(in: 0...130, using: &random)
            inputs.insert((0..<length).map { _ in UInt8.random(in: 0...255, using: &random) })
        }
        // Counters as 8-byte words in a 64-byte stripe: inputs that differ in few bits.
        for n in 0..<50_000 {
            var words = [UInt64](repeating: 0, count: 8)
            words[n % 8] = UInt64(n)
            inputs.insert(words.withUnsafeBytes { Array($0) })
        }
        // Two non-zero words anywhere in 320 bytes of zeros: every lane and every word position.
        for i in 0..<40 {
            for j in 0..<64 {
                for value in [UInt64(1), 0xff, 1 << 63] {
                    var words = [UInt64](repeating: 0, count: 40)
                    words[i] ^= value
                    words[(i + j) % 40] ^= UInt64(j) &* 0x1_0000_0001
                    inputs.insert(words.withUnsafeBytes { Array($0) })
                }
            }
        }
        let names = Set(inputs.map(fingerprint))
        #expect(inputs.count > 106_000)
        #expect(names.count == inputs.count)
    }

    @Test func theNameIsSHA256ExactlyWhenSigningIsOn() {
        let abc = Array("abc".utf8)
        let sha256abc: [UInt8] = [
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
            0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
        ]
        if CloudConfiguration.supportsSigning {
            #expect(ContentHash.of(abc) == sha256abc)
        } else {
            #expect(ContentHash.of(abc) == fingerprint(abc))
        }
    }
}
