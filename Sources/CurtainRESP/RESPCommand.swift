public import NIOCore

/// A value that can be sent as one argument of a Redis command (a bulk string on the wire).
public protocol RESPArgument: Sendable {
    /// Appends this argument to `buffer` as a RESP bulk string.
    func writeRESPArgument(into buffer: inout ByteBuffer)
}

extension String: RESPArgument {
    /// Writes the UTF-8 bytes as a bulk string.
    @inlinable
    public func writeRESPArgument(into buffer: inout ByteBuffer) { buffer.writeRESPBulkString(self) }
}

extension Substring: RESPArgument {
    /// Writes the UTF-8 bytes as a bulk string.
    public func writeRESPArgument(into buffer: inout ByteBuffer) { buffer.writeRESPBulkString(String(self)) }
}

extension ByteBuffer: RESPArgument {
    /// Writes the readable bytes as a bulk string.
    @inlinable
    public func writeRESPArgument(into buffer: inout ByteBuffer) { buffer.writeRESPBulkString(self) }
}

extension Array: RESPArgument where Element == UInt8 {
    /// Writes the bytes as a bulk string.
    @inlinable
    public func writeRESPArgument(into buffer: inout ByteBuffer) { buffer.writeRESPBulkString(bytes: self) }
}

extension Int: RESPArgument {
    /// Writes the decimal text as a bulk string, as Redis expects numbers.
    @inlinable
    public func writeRESPArgument(into buffer: inout ByteBuffer) { buffer.writeRESPBulkDecimal(Int64(self)) }
}

extension Int64: RESPArgument {
    /// Writes the decimal text as a bulk string.
    public func writeRESPArgument(into buffer: inout ByteBuffer) { buffer.writeRESPBulkDecimal(self) }
}

extension UInt64: RESPArgument {
    /// Writes the decimal text as a bulk string.
    public func writeRESPArgument(into buffer: inout ByteBuffer) { buffer.writeRESPBulkString(String(self)) }
}

extension Double: RESPArgument {
    /// Writes the shortest round-tripping decimal text (`inf` / `-inf` for infinities) as a bulk string.
    public func writeRESPArgument(into buffer: inout ByteBuffer) {
        if isInfinite {
            buffer.writeRESPBulkString(self < 0 ? "-inf" : "inf")
        } else {
            buffer.writeRESPBulkString(String(self))
        }
    }
}

/// One encoded Redis command, ready to be written to a connection.
///
/// Encoding happens once, when the command is built, so a command can be sent many times and a pipeline of
/// commands is just concatenated bytes.
public struct RESPCommand: Sendable, CustomStringConvertible {
    /// The command name, upper-cased (`GET`, `BLPOP`, …): used for errors, logging and to route blocking commands.
    public let name: String
    /// The wire bytes: an array of bulk strings.
    public let encoded: ByteBuffer
    /// Whether the command can block the connection (BLPOP, BLMOVE, …) and so needs a connection of its own.
    public let isBlocking: Bool

    /// Builds a command from its name and arguments.
    public init(_ name: String, _ arguments: any RESPArgument...) {
        self.init(name, arguments: arguments)
    }

    /// Builds a command from its name and an argument array.
    public init(_ name: String, arguments: [any RESPArgument]) {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(16 + name.utf8.count + arguments.count * 16)
        buffer.writeRESPHeader(UInt8(ascii: "*"), count: arguments.count + 1)
        buffer.writeRESPBulkString(name)
        for argument in arguments {
            argument.writeRESPArgument(into: &buffer)
        }
        let upper = name.uppercased()
        self.name = upper
        self.encoded = buffer
        self.isBlocking = RESPCommand.blockingCommands.contains(upper)
    }

    /// Builds a command from already-split string words (`["SET", "k", "v"]`), as a CLI would.
    public init(words: [String]) {
        precondition(!words.isEmpty, "a command needs at least its name")
        self.init(words[0], arguments: Array(words.dropFirst()))
    }

    /// Commands that may block their connection until data arrives.
    public static let blockingCommands: Set<String> = [
        "BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP", "WAIT", "WAITAOF",
    ]

    /// The command name (arguments are left out: they may hold secrets).
    public var description: String { name }
}
