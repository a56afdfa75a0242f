/// An error reply a command produces; written as `-<message>` and the command has no other effect.
enum CommandError: Error {
    /// `WRONGTYPE Operation against a key holding the wrong kind of value`.
    case wrongType
    /// `ERR value is not an integer or out of range`.
    case notInteger
    /// `ERR value is not a valid float`.
    case notFloat
    /// `ERR syntax error`.
    case syntax
    /// `ERR no such key`.
    case noSuchKey
    /// `ERR index out of range`.
    case indexOutOfRange
    /// `ERR value is out of range, must be positive`.
    case notPositive
    /// `ERR increment or decrement would overflow`.
    case overflow
    /// Any other message, including its code (`"ERR …"`, `"NOAUTH …"`).
    case message(String)

    /// The reply text (without the leading `-`).
    var message: String {
        switch self {
        case .wrongType: return "WRONGTYPE Operation against a key holding the wrong kind of value"
        case .notInteger: return "ERR value is not an integer or out of range"
        case .notFloat: return "ERR value is not a valid float"
        case .syntax: return "ERR syntax error"
        case .noSuchKey: return "ERR no such key"
        case .indexOutOfRange: return "ERR index out of range"
        case .notPositive: return "ERR value is out of range, must be positive"
        case .overflow: return "ERR increment or decrement would overflow"
        case .message(let text): return text
        }
    }

    /// `ERR invalid expire time in '<command>' command`.
    static func invalidExpireTime(_ command: String) -> CommandError {
        .message("ERR invalid expire time in '\(command)' command")
    }

    /// `ERR unknown subcommand '<sub>'. Try <COMMAND> HELP.`.
    static func unknownSubcommand(_ subcommand: String, of command: String) -> CommandError {
        .message("ERR unknown subcommand '\(subcommand.prefix(128))'. Try \(command.uppercased()) HELP.")
    }
}
