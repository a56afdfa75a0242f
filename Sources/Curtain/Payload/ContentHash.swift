#if Signing
import Crypto
#endif

/// The 32-byte name a shared value is stored under (``SharedRef``), computed from its encoded bytes.
///
/// With the `Signing` trait it is SHA-256: a signed cluster's workers check a fetched value against it, so
/// the name must bind the bytes against someone who can write to the store. Without the trait no process can
/// have a secret, anyone who can write to the store can already push tasks, and the name only has to tell
/// different values apart by accident: it is ``fingerprint(_:)``, a fast non-cryptographic hash, so that the
/// default build needs no cryptography package. Driver and workers run the same binary (the build id is part
/// of every queue name), so both sides always compute the same kind of name.
enum ContentHash {
    /// The name of `bytes`.
    static func of(_ bytes: [UInt8]) -> [UInt8] {
        #if Signing
        Array(SHA256.hash(data: bytes))
        #else
        bytes.withUnsafeBytes { fingerprint($0) }
        #endif
    }

    // Odd 64-bit constants with well-spread bits (from the wyhash family of hashes).
    private static let k0: UInt64 = 0xa076_1d64_78bd_642f
    private static let k1: UInt64 = 0xe703_7ed1_a0b4_28db
    private static let k2: UInt64 = 0x8ebc_6af0_9c88_c6e3
    private static let k3: UInt64 = 0x5899_65cc_7537_4cc3

    /// The 128-bit product of `a` and `b` folded to 64 bits.
    @inline(__always)
    private static func fold(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return product.high ^ product.low
    }

    /// A 256-bit non-cryptographic hash of `bytes`: four lanes, each folding two 64-bit words of every 64-byte
    /// stripe into its state with one 64×64→128-bit multiply, then a finish that makes every output word depend
    /// on every lane and on the length. Distinct inputs collide by accident with probability about 2⁻⁶⁴ per pair;
    /// it is not meant to resist someone choosing inputs to collide (the `Signing` trait's SHA-256 is).
    static func fingerprint(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        let count = bytes.count
        // Each lane starts from another lane's constant: a lane that started from the constant it mixes in
        // would cancel it, and a stripe of zeros would zero the product, erasing the lane's other word.
        var s0 = k1 ^ UInt64(truncatingIfNeeded: count)
        var s1 = k2
        var s2 = k3
        var s3 = k0
        @inline(__always) func word(_ offset: Int) -> UInt64 {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        @inline(__always) func mix(_ w: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) {
            s0 = fold(w.0 ^ k0 ^ s0, w.1 ^ k1)
            s1 = fold(w.2 ^ k1 ^ s1, w.3 ^ k2)
            s2 = fold(w.4 ^ k2 ^ s2, w.5 ^ k3)
            s3 = fold(w.6 ^ k3 ^ s3, w.7 ^ k0)
        }
        var offset = 0
        while count - offset >= 64 {
            mix((word(offset), word(offset + 8), word(offset + 16), word(offset + 24),
                 word(offset + 32), word(offset + 40), word(offset + 48), word(offset + 56)))
            offset += 64
        }
        // The tail (0 to 63 bytes), zero-padded to a stripe; the length in s0 tells "ab" from "ab\0".
        if offset < count || count == 0 {
            var tail: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &tail) { padded in
                padded.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            }
            mix((UInt64(littleEndian: tail.0), UInt64(littleEndian: tail.1), UInt64(littleEndian: tail.2),
                 UInt64(littleEndian: tail.3), UInt64(littleEndian: tail.4), UInt64(littleEndian: tail.5),
                 UInt64(littleEndian: tail.6), UInt64(littleEndian: tail.7)))
        }
        let length = UInt64(truncatingIfNeeded: count)
        let all = fold(s0 ^ k0, s1 ^ k1) ^ fold(s2 ^ k2, s3 ^ k3 ^ length)
        let out = (
            fold(all ^ k0, s0 ^ k1).littleEndian, fold(all ^ k2, s1 ^ k3).littleEndian,
            fold(all ^ k1, s2 ^ k0).littleEndian, fold(all ^ k3, s3 ^ k2).littleEndian
        )
        return withUnsafeBytes(of: out) { Array($0) }
    }
}
