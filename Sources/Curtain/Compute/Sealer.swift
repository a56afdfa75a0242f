#if Signing
import Crypto
#endif
import NIOCore
import Synchronization

/// Why a queue entry or result was refused.
struct SealError: Error, Sendable, CustomStringConvertible {
    var description: String
}

/// Signs and checks what crosses the store when `CURTAIN_SECRET` is set: task envelopes and results
/// become `CSG1` · HMAC-SHA256(secret, payload) (32 bytes) · payload. A worker with a secret runs nothing
/// unsigned or forged (it is logged, counted and dropped), and a driver with one accepts no such result:
/// someone who can reach the store but lacks the secret cannot make workers run anything.
struct Sealer: Sendable {
    /// The secret's bytes (`SymmetricKey` is not `Sendable`; one is made per use).
    private let secret: [UInt8]

    #if Signing
    private var key: SymmetricKey { SymmetricKey(data: secret) }
    #endif

    static let magic: [UInt8] = [UInt8(ascii: "C"), UInt8(ascii: "S"), UInt8(ascii: "G"), 1]

    /// Entries refused by this process, for statistics and tests.
    static let refused = Atomic<Int>(0)

    init(secret: String) {
        self.secret = Array(secret.utf8)
    }

    /// HMAC-SHA256 of `bytes` under the secret. A build without the `Signing` trait never gets here: a
    /// configuration with a secret is refused before any cloud or worker starts (``CloudConfiguration``).
    private func mac(_ bytes: ByteBufferView) -> [UInt8] {
        #if Signing
        Array(HMAC<SHA256>.authenticationCode(for: Array(bytes), using: key))
        #else
        preconditionFailure("CURTAIN_SECRET needs the Signing trait (the configuration check should have refused it)")
        #endif
    }

    /// Whether `mac` is the HMAC of `bytes` (compared in constant time by swift-crypto).
    private func isValid(mac: ByteBufferView, of bytes: ByteBufferView) -> Bool {
        #if Signing
        HMAC<SHA256>.isValidAuthenticationCode(Array(mac), authenticating: Array(bytes), using: key)
        #else
        preconditionFailure("CURTAIN_SECRET needs the Signing trait (the configuration check should have refused it)")
        #endif
    }

    /// `magic · mac · payload`.
    func seal(_ payload: ByteBuffer) -> ByteBuffer {
        let mac = mac(payload.readableBytesView)
        var sealed = ByteBuffer()
        sealed.reserveCapacity(4 + 32 + payload.readableBytes)
        sealed.writeBytes(Self.magic)
        sealed.writeBytes(mac)
        sealed.writeImmutableBuffer(payload)
        return sealed
    }

    /// The payload of a sealed entry whose MAC is right.
    ///
    /// - Throws: ``SealError`` for an unsigned entry or a wrong MAC.
    func open(_ entry: ByteBuffer) throws(SealError) -> ByteBuffer {
        guard entry.readableBytes >= 36, entry.getBytes(at: entry.readerIndex, length: 4) == Self.magic else {
            Self.refused.add(1, ordering: .relaxed)
            throw SealError(description: "unsigned (this process has CURTAIN_SECRET set and accepts only signed entries)")
        }
        let mac = entry.getSlice(at: entry.readerIndex + 4, length: 32)!
        let payload = entry.getSlice(at: entry.readerIndex + 36, length: entry.readableBytes - 36)!
        guard isValid(mac: mac.readableBytesView, of: payload.readableBytesView) else {
            Self.refused.add(1, ordering: .relaxed)
            throw SealError(description: "forged or signed with another secret (its HMAC does not match)")
        }
        return payload
    }

    /// Seals with `sealer` if there is one.
    static func seal(_ payload: ByteBuffer, with sealer: Sealer?) -> ByteBuffer {
        sealer?.seal(payload) ?? payload
    }

    /// Opens with `sealer` if there is one; without, drops a seal unchecked (a process without the secret
    /// has nothing to protect, and can still read what a signing driver sent).
    static func open(_ entry: ByteBuffer, with sealer: Sealer?) throws(SealError) -> ByteBuffer {
        if let sealer { return try sealer.open(entry) }
        guard entry.readableBytes >= 36, entry.getBytes(at: entry.readerIndex, length: 4) == magic else { return entry }
        return entry.getSlice(at: entry.readerIndex + 36, length: entry.readableBytes - 36)!
    }
}
