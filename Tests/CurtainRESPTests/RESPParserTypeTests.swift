@testable import CurtainRESP
import NIOCore
import Testing

/// One wire frame, the value it must parse to, and whether re-encoding that value gives the same bytes.
struct TypeCase: CustomTestStringConvertible, Sendable {
    var wire: String
    var value: RESPValue
    /// `false` when the encoder writes a different (equivalent) spelling, e.g. `1.5e+300` for `1.5e300`.
    var canonical: Bool = true

    var testDescription: String { wire.debugDescription }
}

private let binaryPayload: [UInt8] = Array(0...255) + Array("\r\n$3\r\n*1\r\n".utf8) + [13, 10, 13, 10]

private let typeCases: [TypeCase] = [
    // RESP2
    TypeCase(wire: "+OK\r\n", value: .ok),
    TypeCase(wire: "+\r\n", value: .simpleString(ByteBuffer())),
    TypeCase(wire: "+hello world\r\n", value: .simple("hello world")),
    TypeCase(wire: "-ERR unknown command\r\n", value: .error(ByteBuffer(string: "ERR unknown command"))),
    TypeCase(wire: "-WRONGTYPE Operation against a key\r\n", value: .error(ByteBuffer(string: "WRONGTYPE Operation against a key"))),
    TypeCase(wire: ":0\r\n", value: .integer(0)),
    TypeCase(wire: ":42\r\n", value: .integer(42)),
    TypeCase(wire: ":-42\r\n", value: .integer(-42)),
    TypeCase(wire: ":9223372036854775807\r\n", value: .integer(.max)),
    TypeCase(wire: ":-9223372036854775808\r\n", value: .integer(.min)),
    TypeCase(wire: ":+7\r\n", value: .integer(7), canonical: false),
    TypeCase(wire: "$5\r\nhello\r\n", value: .bulk("hello")),
    TypeCase(wire: "$0\r\n\r\n", value: .bulk("")),
    TypeCase(wire: "$-1\r\n", value: .bulkString(nil)),
    TypeCase(wire: "$4\r\n\r\n\r\n\r\n", value: .bulk("\r\n\r\n")),
    TypeCase(wire: "$3\r\na\rb\r\n", value: .bulk("a\rb")),
    TypeCase(wire: "$3\r\na\nb\r\n", value: .bulk("a\nb")),
    TypeCase(wire: "*0\r\n", value: .array([])),
    TypeCase(wire: "*-1\r\n", value: .array(nil)),
    TypeCase(
        wire: "*3\r\n:1\r\n$3\r\nfoo\r\n*2\r\n+a\r\n$-1\r\n",
        value: .array([.integer(1), .bulk("foo"), .array([.simple("a"), .bulkString(nil)])])),
    TypeCase(wire: "*2\r\n*-1\r\n*0\r\n", value: .array([.array(nil), .array([])])),
    // RESP3
    TypeCase(wire: "_\r\n", value: .null),
    TypeCase(wire: ",1.5\r\n", value: .double(1.5)),
    TypeCase(wire: ",-0.25\r\n", value: .double(-0.25)),
    TypeCase(wire: ",10\r\n", value: .double(10), canonical: false),
    TypeCase(wire: ",inf\r\n", value: .double(.infinity)),
    TypeCase(wire: ",+inf\r\n", value: .double(.infinity), canonical: false),
    TypeCase(wire: ",-inf\r\n", value: .double(-.infinity)),
    TypeCase(wire: ",nan\r\n", value: .double(.nan)),
    TypeCase(wire: ",1.5e300\r\n", value: .double(1.5e300), canonical: false),
    TypeCase(wire: ",1.5e+300\r\n", value: .double(1.5e300)),
    TypeCase(wire: ",-2.5e-300\r\n", value: .double(-2.5e-300)),
    TypeCase(wire: "#t\r\n", value: .boolean(true)),
    TypeCase(wire: "#f\r\n", value: .boolean(false)),
    TypeCase(
        wire: "(3492890328409238509324850943850943825024385\r\n",
        value: .bigNumber(ByteBuffer(string: "3492890328409238509324850943850943825024385"))),
    TypeCase(wire: "(-12345678901234567890123\r\n", value: .bigNumber(ByteBuffer(string: "-12345678901234567890123"))),
    TypeCase(wire: "!21\r\nSYNTAX invalid syntax\r\n", value: .bulkError(ByteBuffer(string: "SYNTAX invalid syntax"))),
    TypeCase(wire: "!0\r\n\r\n", value: .bulkError(ByteBuffer())),
    TypeCase(wire: "=15\r\ntxt:Some string\r\n", value: .verbatimString(ByteBuffer(string: "txt:Some string"))),
    TypeCase(wire: "=4\r\nmkd:\r\n", value: .verbatimString(ByteBuffer(string: "mkd:"))),
    TypeCase(wire: "=8\r\ntxt:a\r\nb\r\n", value: .verbatimString(ByteBuffer(string: "txt:a\r\nb"))),
    TypeCase(
        wire: "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n",
        value: .map([
            RESPMapEntry(key: .simple("first"), value: .integer(1)),
            RESPMapEntry(key: .simple("second"), value: .integer(2)),
        ])),
    TypeCase(wire: "%0\r\n", value: .map([])),
    TypeCase(
        wire: "%2\r\n$1\r\nk\r\n:1\r\n$1\r\nk\r\n:2\r\n",
        value: .map([
            RESPMapEntry(key: .bulk("k"), value: .integer(1)),
            RESPMapEntry(key: .bulk("k"), value: .integer(2)),
        ])),
    TypeCase(
        wire: "~3\r\n+orange\r\n+apple\r\n#t\r\n",
        value: .set([.simple("orange"), .simple("apple"), .boolean(true)])),
    TypeCase(wire: "~0\r\n", value: .set([])),
    TypeCase(
        wire: ">3\r\n$7\r\nmessage\r\n$7\r\nchannel\r\n$5\r\nhello\r\n",
        value: .push([.bulk("message"), .bulk("channel"), .bulk("hello")])),
    TypeCase(
        wire: "*2\r\n%1\r\n~1\r\n_\r\n>1\r\n,2.5\r\n(1\r\n",
        value: .array([
            .map([RESPMapEntry(key: .set([.null]), value: .push([.double(2.5)]))]),
            .bigNumber(ByteBuffer(string: "1")),
        ])),
    // Attributes annotate the next value; the parser skips them and returns that value.
    TypeCase(
        wire: "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n",
        value: .array([.integer(2_039_123), .integer(9_543_892)]), canonical: false),
    TypeCase(wire: "|0\r\n:1\r\n", value: .integer(1), canonical: false),
    TypeCase(wire: "|1\r\n+a\r\n+b\r\n|1\r\n+c\r\n+d\r\n$-1\r\n", value: .bulkString(nil), canonical: false),
    TypeCase(
        wire: "*2\r\n|1\r\n+ttl\r\n:3600\r\n:1\r\n:2\r\n",
        value: .array([.integer(1), .integer(2)]), canonical: false),
]

@Suite("RESPParser: every RESP2 and RESP3 type")
struct RESPParserTypeTests {
    @Test(arguments: typeCases)
    func parsesAndRoundTrips(_ c: TypeCase) throws {
        let parsed = try #require(try parseWhole(c.wire))
        #expect(parsed == c.value)
        // Re-encoding gives bytes that parse back to the same value…
        let encoded = encode(parsed)
        let (values, _, consumed) = try parseAll(encoded)
        #expect(values == [c.value])
        #expect(consumed == encoded.count)
        // …and, for canonical spellings, exactly the bytes that were received.
        if c.canonical {
            #expect(String(decoding: encoded, as: UTF8.self) == c.wire)
        }
    }

    @Test func binaryBulkStringRoundTrips() throws {
        let value = RESPValue.bulk(bytes: binaryPayload)
        let encoded = encode(value)
        #expect(encoded == Array("$\(binaryPayload.count)\r\n".utf8) + binaryPayload + [13, 10])
        let (values, ends, _) = try parseAll(encoded)
        #expect(values == [value])
        #expect(ends == [encoded.count])
        #expect(values.first?.bytes == binaryPayload)
    }

    @Test func binaryPayloadsInEveryBinarySafeType() throws {
        let payload = ByteBuffer(bytes: binaryPayload)
        let verbatim = ByteBuffer(bytes: Array("bin:".utf8) + binaryPayload)
        let values: [RESPValue] = [
            .bulkString(payload), .bulkError(payload), .verbatimString(verbatim),
            .array([.bulkString(payload), .map([RESPMapEntry(key: .bulkString(payload), value: .bulkString(payload))])]),
        ]
        for value in values {
            let (parsed, _, consumed) = try parseAll(encode(value))
            #expect(parsed == [value])
            #expect(consumed == encode(value).count)
        }
    }

    @Test func nanEqualsNanAndHashesAlike() {
        #expect(RESPValue.double(.nan) == .double(-.nan))
        #expect(Set([RESPValue.double(.nan), .double(.nan)]).count == 1)
        #expect(RESPValue.double(0) == .double(-0.0))
    }

    @Test func encodesEveryTypeAsExpected() {
        #expect(encode(.double(1.5e300)) == Array(",1.5e+300\r\n".utf8))
        #expect(encode(.double(.nan)) == Array(",nan\r\n".utf8))
        #expect(encode(.double(-.infinity)) == Array(",-inf\r\n".utf8))
        #expect(encode(.bulkString(nil)) == Array("$-1\r\n".utf8))
        #expect(encode(.array(nil)) == Array("*-1\r\n".utf8))
        #expect(encode(.null) == Array("_\r\n".utf8))
        #expect(encode(.boolean(false)) == Array("#f\r\n".utf8))
        var buffer = ByteBuffer()
        let written = buffer.writeRESPValue(.array([.bulk("ab"), .integer(-1)]))
        #expect(written == buffer.readableBytes)
        #expect(String(buffer: buffer) == "*2\r\n$2\r\nab\r\n:-1\r\n")
    }

    @Test func typedAccessors() throws {
        #expect(RESPValue.bulk("12").int == 12)
        #expect(RESPValue.integer(3).double == 3)
        #expect(try parseWhole("=15\r\ntxt:Some string\r\n")?.string == "Some string")
        #expect(RESPValue.bulkString(nil).isNull && RESPValue.array(nil).isNull && RESPValue.null.isNull)
        let map = try #require(try parseWhole("%1\r\n+k\r\n:1\r\n"))
        #expect(map.array == [.simple("k"), .integer(1)])
        #expect(try parseWhole("!3\r\nERR\r\n")?.errorMessage == "ERR")
    }
}
