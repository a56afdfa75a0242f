import NIOCore
import CurtainRESP
#if TLS
import NIOSSL
#endif

/// TLS on direct actor connections, keyed by the host's token.
///
/// A host already hands each caller a secret through the store: the 128-bit token its hello must carry,
/// which only processes that can read the store learn. TLS 1.2 with that token as a pre-shared key
/// (`ECDHE-PSK-CHACHA20-POLY1305`: an ephemeral key exchange, so recorded traffic stays sealed even if a
/// token leaks later) encrypts the connection and proves each side to the other, with no certificate
/// to issue, distribute or renew per worker. A caller that holds an old token fails the handshake and
/// nothing of the call is sent.
enum DirectTLS {
    /// Whether this build can encrypt direct connections (it has Curtain's `TLS` package trait).
    static var available: Bool { RESPConfiguration.supportsTLS }

    /// What a build without the `TLS` trait says when it is asked to encrypt direct connections.
    static var traitMissing: String {
        RESPConfiguration.traitOff("TLS", keeping: "swift-nio-ssl", name: "TLS")
    }

    /// The one cipher suite offered and accepted.
    static let cipherSuite = "ECDHE-PSK-CHACHA20-POLY1305"

    #if TLS
    /// The TLS server context of a host whose token is `token`.
    static func serverContext(token: String) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makePreSharedKeyConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.maximumTLSVersion = .tlsv12
        configuration.cipherSuites = cipherSuite
        configuration.pskHint = "curtain"
        let key = Array(token.utf8)
        configuration.pskServerProvider = { _ in
            var secret = NIOSSLSecureBytes()
            secret.append(key)
            return PSKServerIdentityResponse(key: secret)
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// The TLS client context of a caller connecting to a host whose token is `token`.
    static func clientContext(token: String) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.maximumTLSVersion = .tlsv12
        configuration.cipherSuites = cipherSuite
        // The pre-shared key authenticates the host; there is no certificate to verify.
        configuration.certificateVerification = .none
        let key = Array(token.utf8)
        // The identity travels in clear and the host does not use it: a constant says nothing about the caller.
        configuration.pskClientProvider = { _ in
            var secret = NIOSSLSecureBytes()
            secret.append(key)
            return PSKClientIdentityResponse(key: secret, identity: "curtain")
        }
        return try NIOSSLContext(configuration: configuration)
    }
    #endif

    /// Adds the server side of TLS to an accepted connection's pipeline, first (before the frame decoder).
    static func addServer(_ context: DirectTLSContext?, to pipeline: ChannelPipeline.SynchronousOperations) throws {
        #if TLS
        if let context { try pipeline.addHandler(NIOSSLServerHandler(context: context.value)) }
        #endif
    }

    /// Whether `error` is the far end closing the connection during the TLS handshake (what a process
    /// killed mid-exit does): the same as a plain connection closed before the hello is answered.
    static func isClosedDuringHandshake(_ error: any Error) -> Bool {
        #if TLS
        if case .handshakeFailed(.sslError(let errors))? = error as? NIOSSLError {
            return errors.contains(.eofDuringHandshake)
        }
        #endif
        return false
    }

    /// Adds the client side of TLS to a new connection's pipeline, first; keyed by the host's `token`.
    static func addClient(token: String, to pipeline: ChannelPipeline.SynchronousOperations) throws {
        #if TLS
        try pipeline.addHandler(try NIOSSLClientHandler(context: clientContext(token: token), serverHostname: nil))
        #else
        throw DirectConnectError(description: "the host encrypts its direct connections, and " + traitMissing)
        #endif
    }
}

/// A host's TLS server context (opaque without the `TLS` trait, where none is ever made).
struct DirectTLSContext: Sendable {
    #if TLS
    let value: NIOSSLContext

    /// The context of a host whose token is `token`.
    init(token: String) throws {
        value = try DirectTLS.serverContext(token: token)
    }
    #else
    init(token: String) throws {
        throw ConfigurationError(description: "direct actor connections cannot be encrypted: " + DirectTLS.traitMissing)
    }
    #endif
}
