@testable import CurtainRESP
import NIOCore
import CurtainTestSupport
import Testing

@Suite("RESP encoding helpers and RESPCommand")
struct RESPEncodingTests {
    @Test(arguments: [
        (Int64(0), "0"), (9, "9"), (10, "10"), (-1, "-1"), (-10, "-10"), (99, "99"), (100, "100"),
        (1_234_567_890, "1234567890"), (Int64.max, "9223372036854775807"), (Int64.min, "-9223372036854775808"),
    ])
    func writeDecimal(_ n: Int64, _ text: String) {
        var buffer = ByteBuffer()
        buffer.writeDecimal(n)
        #expect(String(buffer: buffer) == text)
        #expect(String(buffer: buffer) == String(n))
    }

    @Test func writeDecimalAgreesWithStringForManyValues() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<10_000 {
            let n = Int64(bitPattern: rng.next()) >> Int64(rng.below(64))
            var buffer = ByteBuffer()
            buffer.writeDecimal(n)
            #expect(String(buffer: buffer) == String(n))
        }
    }

    @Test(arguments: [Int64(0), 9, 10, -1, -9, -10, 42, 1_000_000, Int64.max, Int64.min])
    func writeRESPBulkDecimal(_ n: Int64) throws {
        var buffer = ByteBuffer()
        buffer.writeRESPBulkDecimal(n)
        let text = String(n)
        #expect(String(buffer: buffer) == "$\(text.utf8.count)\r\n\(text)\r\n")
        var parser = RESPParser()
        #expect(try parser.parse(&buffer) == .bulk(text))
    }

    @Test func headersAndIntegers() {
        var buffer = ByteBuffer()
        buffer.writeRESPHeader(UInt8(ascii: "*"), count: 3)
        buffer.writeRESPInteger(-5)
        buffer.writeCRLF()
        buffer.writeRESPBulkString("héllo")
        buffer.writeRESPBulkString(bytes: [0, 13, 10])
        buffer.writeRESPBulkString(ByteBuffer(string: "bb"))
        #expect(String(buffer: buffer) == "*3\r\n:-5\r\n\r\n$6\r\nhéllo\r\n$3\r\n\0\r\n\r\n$2\r\nbb\r\n")
    }

    @Test func commandEncodesEveryArgumentKindAsBulkStrings() throws {
        let binary: [UInt8] = [0, 13, 10, 255]
        let command = RESPCommand(
            "set", "key", 42, Int64(-7), UInt64.max, 1.5, Double.infinity, -Double.infinity, binary,
            ByteBuffer(string: "buf"), Substring("sub"))
        #expect(command.name == "SET")
        #expect(!command.isBlocking)
        var encoded = command.encoded
        let expected: [UInt8] =
            Array("*11\r\n$3\r\nset\r\n$3\r\nkey\r\n$2\r\n42\r\n$2\r\n-7\r\n$20\r\n18446744073709551615\r\n".utf8)
            + Array("$3\r\n1.5\r\n$3\r\ninf\r\n$4\r\n-inf\r\n$4\r\n".utf8) + binary
            + Array("\r\n$3\r\nbuf\r\n$3\r\nsub\r\n".utf8)
        #expect(Array(encoded.readableBytesView) == expected)
        var parser = RESPParser()
        let value = try #require(try parser.parse(&encoded))
        #expect(value.array?.count == 11)
        #expect(value.array?[8] == .bulk(bytes: binary))
        #expect(encoded.readableBytes == 0)
    }

    @Test func doublesUseShortestRoundTrippingText() {
        for (d, text) in [(0.1, "0.1"), (1.0, "1.0"), (1e300, "1e+300"), (-2.5, "-2.5")] {
            let command = RESPCommand("X", d)
            #expect(String(buffer: command.encoded) == "*2\r\n$1\r\nX\r\n$\(text.utf8.count)\r\n\(text)\r\n")
        }
    }

    @Test func blockingCommands() {
        #expect(RESPCommand("BLPOP", "q", 0).isBlocking)
        #expect(RESPCommand("blpop", "q", 0).isBlocking)
        #expect(RESPCommand("BRPOP", "q", 1.5).isBlocking)
        #expect(RESPCommand("BLMOVE", "a", "b", "LEFT", "RIGHT", 0).isBlocking)
        #expect(RESPCommand("BZPOPMIN", "z", 0).isBlocking)
        #expect(RESPCommand("WAIT", 1, 0).isBlocking)
        #expect(!RESPCommand("LPOP", "q").isBlocking)
        #expect(!RESPCommand("GET", "k").isBlocking)
        #expect(RESPCommand("BLPOP", "q", 0).description == "BLPOP")
    }

    @Test func commandFromWords() {
        let command = RESPCommand(words: ["hset", "h", "f", "v"])
        #expect(command.name == "HSET")
        #expect(String(buffer: command.encoded) == "*4\r\n$4\r\nhset\r\n$1\r\nh\r\n$1\r\nf\r\n$1\r\nv\r\n")
        #expect(String(buffer: RESPCommand("PING").encoded) == "*1\r\n$4\r\nPING\r\n")
        #expect(String(buffer: RESPCommand("SET", arguments: ["k", ""]).encoded) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n")
    }
}
