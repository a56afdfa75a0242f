import CurtainRESP
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal blocking socket client for end-to-end tests: sends raw bytes, reads RESP replies.
///
/// Every receive has a generous timeout so a missing reply fails the test instead of hanging it.
final class RawClient {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let fd: Int32
    private var buffer = ByteBuffer()
    private var parser = RESPParser()
    private(set) var isClosedByPeer = false

    /// Connects to `127.0.0.1:port`.
    init(port: Int, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw Failure(description: "connect to port \(port) failed: errno \(errno)")
        }
        try setTimeout(timeoutSeconds)
    }

    /// Connects to a Unix domain socket.
    init(unixPath: String, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(unixPath.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() where i < raw.count - 1 { raw[i] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw Failure(description: "connect to \(unixPath) failed: errno \(errno)")
        }
        try setTimeout(timeoutSeconds)
    }

    private func setTimeout(_ seconds: Int) throws {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
            throw Failure(description: "setsockopt failed")
        }
    }

    deinit {
        close(fd)
    }

    /// Sends raw bytes.
    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { raw in
                #if canImport(Glibc)
                Glibc.send(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
                #else
                Darwin.send(fd, raw.baseAddress, raw.count, 0)
                #endif
            }
            guard written > 0 else { throw Failure(description: "send failed: errno \(errno)") }
            offset += written
        }
    }

    /// Sends raw text.
    func send(_ text: String) throws {
        try send(Array(text.utf8))
    }

    /// Sends a command as a RESP array of bulk strings.
    func command(_ parts: String...) throws {
        var text = "*\(parts.count)\r\n"
        for part in parts { text += "$\(part.utf8.count)\r\n\(part)\r\n" }
        try send(text)
    }

    /// Sends a command and reads its reply.
    func call(_ parts: String...) throws -> RESPValue {
        var text = "*\(parts.count)\r\n"
        for part in parts { text += "$\(part.utf8.count)\r\n\(part)\r\n" }
        try send(text)
        return try reply()
    }

    /// Reads one reply (waiting up to the timeout).
    func reply() throws -> RESPValue {
        while true {
            if let value = try parser.parse(&buffer) { return value }
            guard try receive() else { throw Failure(description: "connection closed before a full reply") }
        }
    }

    /// Reads everything until the peer closes the connection; returns the bytes.
    func readUntilClosed() throws -> [UInt8] {
        while try receive() {}
        return Array(buffer.readableBytesView)
    }

    /// Receives once; returns `false` on EOF, throws on timeout.
    private func receive() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count == 0 {
            isClosedByPeer = true
            return false
        }
        if count < 0 {
            if errno == ECONNRESET {
                isClosedByPeer = true
                return false
            }
            throw Failure(description: "receive timed out or failed: errno \(errno)")
        }
        buffer.writeBytes(chunk[0..<count])
        return true
    }
}

extension RESPValue {
    /// Shorthand for a bulk-string reply.
    static func text(_ string: String) -> RESPValue { .bulkString(ByteBuffer(string: string)) }
}
