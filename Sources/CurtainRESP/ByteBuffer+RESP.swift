public import NIOCore

extension ByteBuffer {
    /// Writes `value` in its RESP wire form (RESP3 types are written as RESP3; callers speaking RESP2 to a
    /// peer must only pass RESP2 types).
    ///
    /// - Returns: the number of bytes written.
    @discardableResult
    public mutating func writeRESPValue(_ value: RESPValue) -> Int {
        let start = writerIndex
        switch value {
        case .simpleString(let b):
            writeInteger(UInt8(ascii: "+"))
            writeImmutableBuffer(b)
            writeCRLF()
        case .error(let b):
            writeInteger(UInt8(ascii: "-"))
            writeImmutableBuffer(b)
            writeCRLF()
        case .integer(let i):
            writeRESPInteger(i)
        case .bulkString(nil):
            writeStaticString("$-1\r\n")
        case .bulkString(.some(let b)):
            writeRESPBulkString(b)
        case .array(nil):
            writeStaticString("*-1\r\n")
        case .array(.some(let elements)):
            writeRESPHeader(UInt8(ascii: "*"), count: elements.count)
            for e in elements { writeRESPValue(e) }
        case .null:
            writeStaticString("_\r\n")
        case .double(let d):
            writeInteger(UInt8(ascii: ","))
            if d.isNaN {
                writeStaticString("nan")
            } else if d.isInfinite {
                writeStaticString(d < 0 ? "-inf" : "inf")
            } else {
                writeString(String(d))
            }
            writeCRLF()
        case .boolean(let b):
            writeStaticString(b ? "#t\r\n" : "#f\r\n")
        case .bigNumber(let b):
            writeInteger(UInt8(ascii: "("))
            writeImmutableBuffer(b)
            writeCRLF()
        case .bulkError(let b):
            writeRESPHeader(UInt8(ascii: "!"), count: b.readableBytes)
            writeImmutableBuffer(b)
            writeCRLF()
        case .verbatimString(let b):
            writeRESPHeader(UInt8(ascii: "="), count: b.readableBytes)
            writeImmutableBuffer(b)
            writeCRLF()
        case .map(let entries):
            writeRESPHeader(UInt8(ascii: "%"), count: entries.count)
            for e in entries {
                writeRESPValue(e.key)
                writeRESPValue(e.value)
            }
        case .set(let elements):
            writeRESPHeader(UInt8(ascii: "~"), count: elements.count)
            for e in elements { writeRESPValue(e) }
        case .push(let elements):
            writeRESPHeader(UInt8(ascii: ">"), count: elements.count)
            for e in elements { writeRESPValue(e) }
        }
        return writerIndex - start
    }

    /// Writes `\r\n`.
    @inlinable
    public mutating func writeCRLF() {
        writeInteger(UInt16(0x0D0A), endianness: .big)
    }

    /// Writes `n` as ASCII decimal digits, without allocating.
    @inlinable
    public mutating func writeDecimal(_ n: Int64) {
        if n >= 0 && n < 10 {
            writeInteger(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: n))
            return
        }
        // Up to 20 characters (sign + 19 digits); magnitude as UInt64 handles Int64.min.
        var magnitude = n.magnitude
        var digits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { raw in
            var i = 31
            repeat {
                raw[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
                i -= 1
                count += 1
            } while magnitude > 0
            if n < 0 {
                raw[i] = UInt8(ascii: "-")
                count += 1
            }
            writeBytes(UnsafeRawBufferPointer(rebasing: raw[(32 - count)...]))
        }
    }

    /// Writes a RESP type byte followed by a decimal count and CRLF (`*3\r\n`, `$5\r\n`, …).
    @inlinable
    public mutating func writeRESPHeader(_ type: UInt8, count: Int) {
        writeInteger(type)
        writeDecimal(Int64(count))
        writeCRLF()
    }

    /// Writes `:n\r\n`.
    @inlinable
    public mutating func writeRESPInteger(_ n: Int64) {
        writeInteger(UInt8(ascii: ":"))
        writeDecimal(n)
        writeCRLF()
    }

    /// Writes a bulk string holding the readable bytes of `payload`.
    @inlinable
    public mutating func writeRESPBulkString(_ payload: ByteBuffer) {
        writeRESPHeader(UInt8(ascii: "$"), count: payload.readableBytes)
        writeImmutableBuffer(payload)
        writeCRLF()
    }

    /// Writes `n`'s decimal text as a bulk string (`$2\r\n42\r\n`), without allocating.
    @inlinable
    public mutating func writeRESPBulkDecimal(_ n: Int64) {
        var magnitude = n.magnitude
        var length = n < 0 ? 2 : 1
        while magnitude >= 10 {
            magnitude /= 10
            length += 1
        }
        writeRESPHeader(UInt8(ascii: "$"), count: length)
        writeDecimal(n)
        writeCRLF()
    }

    /// Writes a bulk string holding `bytes`.
    @inlinable
    public mutating func writeRESPBulkString<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        writeRESPHeader(UInt8(ascii: "$"), count: bytes.count)
        writeBytes(bytes)
        writeCRLF()
    }

    /// Writes a bulk string holding the UTF-8 bytes of `string`.
    @inlinable
    public mutating func writeRESPBulkString(_ string: String) {
        writeRESPHeader(UInt8(ascii: "$"), count: string.utf8.count)
        writeString(string)
        writeCRLF()
    }
}
