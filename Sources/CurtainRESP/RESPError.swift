/// Everything that can go wrong when talking to a RESP server.
///
/// The cases tell apart what a caller reacts to differently: the server refused a command (``server(_:)``:
/// the connection is fine), the connection went away (``connectionClosed(_:)``: the command may or may not
/// have run), a reply did not come in time (``timeout(_:)``), or the peer broke the protocol
/// (``protocolViolation(_:)``: the connection was closed).
public enum RESPError: Error, Sendable, Hashable {
    /// The server answered with an error reply; the payload is Redis' message, code first
    /// (`"WRONGTYPE Operation against a key holding the wrong kind of value"`).
    case server(String)
    /// The connection closed (or could not be opened) before the reply arrived; the string says why.
    case connectionClosed(String)
    /// The reply did not arrive within the command's timeout; the string names the command.
    case timeout(String)
    /// The peer sent bytes that are not valid RESP; the connection was closed.
    case protocolViolation(String)
    /// The configuration or URL is unusable; the string says what is wrong.
    case invalidConfiguration(String)
    /// The client was shut down; no further commands are accepted.
    case clientClosed

    /// Whether the same command may succeed on a new connection a little later: the connection closed or
    /// could not be opened, a reply did not come in time, the peer broke the protocol, or the server is
    /// still loading its data after a restart (`LOADING`), cannot serve yet (`MASTERDOWN`, `TRYAGAIN`), or is
    /// out of memory for now (`OOM`).
    public var isTransient: Bool {
        switch self {
        case .connectionClosed, .timeout, .protocolViolation: return true
        case .server: return ["LOADING", "MASTERDOWN", "TRYAGAIN", "OOM"].contains(serverCode ?? "")
        case .invalidConfiguration, .clientClosed: return false
        }
    }

    /// The error code of a ``server(_:)`` error: its first word (`ERR`, `WRONGTYPE`, `NOAUTH`, …).
    public var serverCode: String? {
        guard case .server(let message) = self else { return nil }
        return message.split(separator: " ", maxSplits: 1).first.map(String.init)
    }
}

extension RESPError: CustomStringConvertible {
    /// A one-line explanation naming what failed.
    public var description: String {
        switch self {
        case .server(let message): return "server error: \(message)"
        case .connectionClosed(let why): return "connection closed: \(why)"
        case .timeout(let what): return "timed out waiting for the reply to \(what)"
        case .protocolViolation(let why): return "protocol violation: \(why)"
        case .invalidConfiguration(let why): return "invalid configuration: \(why)"
        case .clientClosed: return "the client was shut down"
        }
    }
}
