import CurtainRESP
import NIOCore

/// Reply encoding straight into the output buffer, choosing RESP2 or RESP3 forms.
///
/// Only aggregate headers, nulls and doubles differ between the protocol versions; everything else is the
/// same bytes, so these helpers take `resp3` only where it matters.
extension ByteBuffer {
    /// `+OK\r\n`.
    @inline(__always)
    mutating func writeOK() {
        writeStaticString("+OK\r\n")
    }

    /// A simple string reply.
    @inline(__always)
    mutating func writeSimpleString(_ text: StaticString) {
        writeInteger(UInt8(ascii: "+"))
        writeStaticString(text)
        writeCRLF()
    }

    /// An error reply; `message` starts with its code (`ERR …`, `WRONGTYPE …`). CR and LF are replaced by
    /// spaces so the reply stays one line.
    mutating func writeErrorReply(_ message: String) {
        writeInteger(UInt8(ascii: "-"))
        for byte in message.utf8 {
            writeInteger(byte == 0x0D || byte == 0x0A ? UInt8(ascii: " ") : byte)
        }
        writeCRLF()
    }

    /// An integer reply.
    @inline(__always)
    mutating func writeIntegerReply(_ value: Int) {
        writeRESPInteger(Int64(value))
    }

    /// A bulk string reply holding `bytes`.
    @inline(__always)
    mutating func writeBulk(_ bytes: StoreBytes) {
        bytes.withUnsafeBytes { raw in
            writeRESPHeader(UInt8(ascii: "$"), count: raw.count)
            writeBytes(raw)
        }
        writeCRLF()
    }

    /// A bulk string reply holding `bytes`.
    @inline(__always)
    mutating func writeBulk(_ bytes: UnsafeRawBufferPointer) {
        writeRESPHeader(UInt8(ascii: "$"), count: bytes.count)
        writeBytes(bytes)
        writeCRLF()
    }

    /// A bulk string reply holding the UTF-8 of `text`.
    mutating func writeBulk(_ text: String) {
        writeRESPBulkString(text)
    }

    /// The null bulk string: `$-1` in RESP2, `_` in RESP3.
    @inline(__always)
    mutating func writeNullBulk(resp3: Bool) {
        if resp3 { writeStaticString("_\r\n") } else { writeStaticString("$-1\r\n") }
    }

    /// The null array: `*-1` in RESP2, `_` in RESP3.
    @inline(__always)
    mutating func writeNullArray(resp3: Bool) {
        if resp3 { writeStaticString("_\r\n") } else { writeStaticString("*-1\r\n") }
    }

    /// An array header.
    @inline(__always)
    mutating func writeArrayHeader(_ count: Int) {
        writeRESPHeader(UInt8(ascii: "*"), count: count)
    }

    /// A map header for `count` pairs: `%count` in RESP3, `*2count` in RESP2.
    @inline(__always)
    mutating func writeMapHeader(_ count: Int, resp3: Bool) {
        if resp3 {
            writeRESPHeader(UInt8(ascii: "%"), count: count)
        } else {
            writeRESPHeader(UInt8(ascii: "*"), count: count * 2)
        }
    }

    /// A set header: `~count` in RESP3, `*count` in RESP2.
    @inline(__always)
    mutating func writeSetHeader(_ count: Int, resp3: Bool) {
        writeRESPHeader(resp3 ? UInt8(ascii: "~") : UInt8(ascii: "*"), count: count)
    }

    /// A push header (pub/sub messages): `>count` in RESP3, `*count` in RESP2.
    @inline(__always)
    mutating func writePushHeader(_ count: Int, resp3: Bool) {
        writeRESPHeader(resp3 ? UInt8(ascii: ">") : UInt8(ascii: "*"), count: count)
    }

    /// A verbatim text reply (`=` in RESP3, a bulk string in RESP2), as `INFO` and `CLIENT INFO` send.
    mutating func writeVerbatimText(_ text: String, resp3: Bool) {
        if resp3 {
            writeRESPHeader(UInt8(ascii: "="), count: text.utf8.count + 4)
            writeStaticString("txt:")
            writeString(text)
            writeCRLF()
        } else {
            writeRESPBulkString(text)
        }
    }
}
