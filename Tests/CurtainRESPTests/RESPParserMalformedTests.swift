@testable import CurtainRESP
import NIOCore
import Testing

/// Input that can never become a valid frame, and a fragment the error's reason must contain.
struct MalformedCase: CustomTestStringConvertible, Sendable {
    var input: String
    var reason: String

    init(_ input: String, _ reason: String) {
        self.input = input
        self.reason = reason
    }

    var testDescription: String { input.count > 60 ? String(input.prefix(60).debugDescription) + "…" : input.debugDescription }
}

private let malformedCases: [MalformedCase] = [
    // Unknown type bytes.
    MalformedCase("?\r\n", "unknown type byte 0x3f"),
    MalformedCase("\0", "unknown type byte 0x0"),
    MalformedCase("GET key\r\n", "unknown type byte 0x47"),
    MalformedCase("\r\n", "unknown type byte 0xd"),
    MalformedCase("*2\r\n:1\r\n@x\r\n", "unknown type byte 0x40"),
    // Integers.
    MalformedCase(":\r\n", "empty integer"),
    MalformedCase(":-\r\n", "empty integer"),
    MalformedCase(":12a\r\n", "invalid digit"),
    MalformedCase(": 1\r\n", "invalid digit"),
    MalformedCase(":1.5\r\n", "invalid digit"),
    MalformedCase(":--1\r\n", "invalid digit"),
    MalformedCase(":9223372036854775808\r\n", "overflows 64 bits"),
    MalformedCase(":-9223372036854775809\r\n", "overflows 64 bits"),
    MalformedCase(":99999999999999999999999\r\n", "overflows 64 bits"),
    MalformedCase("$99999999999999999999\r\n", "overflows 64 bits"),
    MalformedCase("$x\r\n", "invalid digit"),
    MalformedCase("*\r\n", "empty integer"),
    // Lengths.
    MalformedCase("$-2\r\n", "negative bulk length -2"),
    MalformedCase("*-5\r\n", "negative aggregate length -5"),
    MalformedCase("%-2\r\n", "negative map length -2"),
    MalformedCase("$-9223372036854775808\r\n", "negative bulk length"),
    MalformedCase("!-1\r\n", "null is only valid for bulk strings"),
    MalformedCase("=-1\r\n", "null is only valid for bulk strings"),
    MalformedCase("~-1\r\n", "null is only valid for arrays"),
    MalformedCase(">-1\r\n", "null is only valid for arrays"),
    MalformedCase("%-1\r\n", "null is not valid for maps"),
    MalformedCase("|-1\r\n", "null is not valid for maps"),
    // Huge declared lengths are refused from the header alone, before any payload arrives.
    MalformedCase("$99999999999\r\n", "bulk length 99999999999 exceeds the limit of 536870912"),
    MalformedCase("$536870913\r\n", "exceeds the limit"),
    MalformedCase("!9223372036854775807\r\n", "exceeds the limit"),
    MalformedCase("*2147483648\r\n", "aggregate length 2147483648 exceeds the limit"),
    MalformedCase("~9223372036854775807\r\n", "aggregate length 9223372036854775807 exceeds"),
    MalformedCase(">268435457\r\n", "exceeds the limit"),
    MalformedCase("%2147483648\r\n", "map length 2147483648 exceeds the limit"),
    MalformedCase("*1\r\n*1\r\n$1000000000\r\n", "exceeds the limit"),
    // Line endings.
    MalformedCase("+OK\rX", "CR not followed by LF"),
    MalformedCase("+OK\r\r\n", "CR not followed by LF"),
    MalformedCase(":1\r1\r\n", "CR not followed by LF"),
    MalformedCase("+OK\n", "bare LF"),
    MalformedCase("$3\n", "bare LF"),
    MalformedCase("*1\r\n-ERR\n", "bare LF"),
    MalformedCase("$3\r\nabcXY", "bulk payload not terminated by CRLF"),
    MalformedCase("$3\r\nabcd\r\n", "bulk payload not terminated by CRLF"),
    MalformedCase("$3\r\nab\r\n\r\n", "bulk payload not terminated by CRLF"),
    MalformedCase("$0\r\n\n\r", "bulk payload not terminated by CRLF"),
    // RESP3 scalars.
    MalformedCase("_x\r\n", "null with a payload"),
    MalformedCase("#x\r\n", "boolean must be t or f"),
    MalformedCase("#tt\r\n", "boolean must be t or f"),
    MalformedCase("#\r\n", "boolean must be t or f"),
    MalformedCase(",abc\r\n", "invalid double"),
    MalformedCase(",\r\n", "invalid double"),
    MalformedCase(",1e999\r\n", "invalid double"),
    MalformedCase(",infinity\r\n", "invalid double"),
    MalformedCase(",1.5 \r\n", "invalid double"),
    MalformedCase("(\r\n", "empty big number"),
    MalformedCase("(12a\r\n", "invalid big number"),
    MalformedCase("(1-2\r\n", "invalid big number"),
    MalformedCase("=3\r\ntxt\r\n", "verbatim string without a format prefix"),
    MalformedCase("=5\r\ntxtab\r\n", "verbatim string without a format prefix"),
    MalformedCase("=0\r\n\r\n", "verbatim string without a format prefix"),
    // Streamed (chunked) RESP3 types are not supported.
    MalformedCase("$?\r\n;4\r\nHell\r\n;0\r\n", "streamed strings are not supported"),
    MalformedCase("!?\r\n", "streamed strings are not supported"),
    MalformedCase("*?\r\n:1\r\n.\r\n", "streamed aggregates are not supported"),
    MalformedCase("~?\r\n", "streamed aggregates are not supported"),
    MalformedCase("%?\r\n", "streamed aggregates are not supported"),
    MalformedCase("|?\r\n", "streamed aggregates are not supported"),
    MalformedCase("$?", "streamed strings are not supported"),
    // Nesting.
    MalformedCase(String(repeating: "*1\r\n", count: 1000), "aggregates nested deeper than 256"),
    MalformedCase(String(repeating: "%1\r\n", count: 1000), "aggregates nested deeper than 256"),
    MalformedCase(String(repeating: "~1\r\n>1\r\n", count: 200) + ":1\r\n", "aggregates nested deeper than 256"),
    MalformedCase(String(repeating: "*1\r\n", count: 257) + ":1\r\n", "aggregates nested deeper than 256"),
]

@Suite("RESPParser: malformed input")
struct RESPParserMalformedTests {
    @Test(arguments: malformedCases)
    func throwsProtocolErrorWithoutConsuming(_ c: MalformedCase) throws {
        var buffer = wire(c.input)
        var parser = RESPParser()
        let error = try #require(throws: RESPProtocolError.self) { try parser.parse(&buffer) }
        #expect(error.reason.contains(c.reason), "reason was: \(error.reason)")
        #expect(error.offset >= 0 && error.offset <= c.input.utf8.count)
        #expect(error.description.hasPrefix("RESP protocol error at byte "))
        #expect(buffer.readerIndex == 0, "a failed parse must not consume bytes")
    }

    @Test func errorAfterValidFramesLeavesThemConsumed() throws {
        var buffer = wire(":1\r\n+OK\r\n?\r\n")
        var parser = RESPParser()
        #expect(try parser.parse(&buffer) == .integer(1))
        #expect(try parser.parse(&buffer) == .ok)
        #expect(throws: RESPProtocolError.self) { try parser.parse(&buffer) }
        #expect(buffer.readerIndex == 9)
    }

    @Test func hugeDeclaredLengthsAreRejectedOnTheHeaderAlone() throws {
        // These would allocate gigabytes if the length were trusted; they fail before any payload arrives.
        for header in ["$99999999999\r\n", "*2147483648\r\n", "%1073741824\r\n", ">9999999999\r\n"] {
            #expect(protocolError(header) != nil, "\(header.debugDescription)")
        }
        // Just under the limits, the same headers are merely incomplete.
        var buffer = wire("$536870912\r\nabc")
        var parser = RESPParser()
        #expect(try parser.parse(&buffer) == nil)
        buffer = wire("*268435456\r\n:1\r\n")
        #expect(try parser.parse(&buffer) == nil)
    }

    @Test func customLimits() throws {
        let limits = RESPParser.Limits(maxBulkLength: 4, maxAggregateLength: 2, maxDepth: 1, maxLineLength: 8)
        #expect(try parseWhole("$4\r\nabcd\r\n", limits: limits) == .bulk("abcd"))
        #expect(protocolError("$5\r\n", limits: limits)?.reason.contains("bulk length 5 exceeds the limit of 4") == true)
        #expect(try parseWhole("*2\r\n:1\r\n:2\r\n", limits: limits) == .array([.integer(1), .integer(2)]))
        #expect(protocolError("*3\r\n", limits: limits)?.reason.contains("exceeds the limit of 2") == true)
        #expect(protocolError("%2\r\n", limits: limits)?.reason.contains("map length 2 exceeds the limit of 1") == true)
        #expect(try parseWhole("*1\r\n*0\r\n", limits: limits) == .array([.array([])]))
        #expect(protocolError("*1\r\n*1\r\n*0\r\n", limits: limits)?.reason.contains("nested deeper than 1") == true)
        #expect(try parseWhole("+12345678\r\n", limits: limits) == .simple("12345678"))
    }

    @Test func lineLongerThanTheLimitIsRejectedEvenBeforeItsEnd() throws {
        let limits = RESPParser.Limits(maxLineLength: 16)
        let long = "+" + String(repeating: "a", count: 100)
        #expect(protocolError(long, limits: limits)?.reason == "line longer than 16 bytes")
        #expect(protocolError(long + "\r\n", limits: limits)?.reason == "line longer than 16 bytes")
        #expect(protocolError(":" + String(repeating: "1", count: 40), limits: limits)?.reason == "line longer than 16 bytes")
        // The default limit is 64 KiB.
        let huge = "-" + String(repeating: "E", count: 70_000)
        #expect(protocolError(huge)?.reason == "line longer than 65536 bytes")
        // A line of exactly the limit is fine.
        #expect(try parseWhole("+" + String(repeating: "a", count: 16) + "\r\n", limits: limits) != nil)
        #expect(try parseWhole("+" + String(repeating: "a", count: 65_536) + "\r\n") != nil)
    }

    @Test func lineOneByteOverTheLimitIsRejected() throws {
        // Known off-by-one in Cursor.lineEnd(): the scan limit admits a line of maxLineLength + 1 bytes.
        let limits = RESPParser.Limits(maxLineLength: 16)
        #expect(protocolError("+" + String(repeating: "a", count: 17) + "\r\n", limits: limits) != nil)
    }

    @Test func nesting200DeepParses() throws {
        for type in ["*", "~", ">"] {
            let text = String(repeating: "\(type)1\r\n", count: 200) + ":1\r\n"
            let value = try #require(try parseWhole(text))
            #expect(depth(of: value) == 200)
        }
        let maximal = String(repeating: "*1\r\n", count: 256) + "_\r\n"
        #expect(try parseWhole(maximal).map(depth(of:)) == 256)
    }

    @Test func deepNestingIsRejectedBeforeItIsComplete() throws {
        // 1000 levels of headers and no leaf yet: refused at once, not held as "incomplete".
        let error = try #require(protocolError(String(repeating: "*1\r\n", count: 1000)))
        #expect(error.reason == "aggregates nested deeper than 256")
        // A million levels does not overflow the stack either.
        #expect(protocolError(String(repeating: "*1\r\n", count: 1_000_000)) != nil)
    }

    @Test func chainsOfAttributesCountTowardsTheDepthLimit() throws {
        // Known bug: `|` recurses into `value(depth: depth)` without incrementing the depth, so a long chain of
        // attributes (`|0\r\n` repeated ~30k times, 120 KB) overflows the stack. 300 links do not crash yet.
        let chain = String(repeating: "|0\r\n", count: 300) + ":1\r\n"
        #expect(protocolError(chain)?.reason == "aggregates nested deeper than 256")
    }

    @Test func bigNumberNeedsADigit() throws {
        #expect(protocolError("(-\r\n") != nil)
        #expect(protocolError("(+\r\n") != nil)
    }

    @Test func incompleteInputIsNotAnError() throws {
        for partial in ["$", "$1", "$1\r", "$1\r\n", "$1\r\na", "$1\r\na\r", "*2\r\n:1\r\n", "%1\r\n+k\r\n", "|1\r\n+a\r\n+b\r\n", ",1.", "#", "_\r", "=15\r\ntxt:"] {
            var buffer = wire(partial)
            var parser = RESPParser()
            #expect(try parser.parse(&buffer) == nil, "\(partial.debugDescription)")
            #expect(buffer.readerIndex == 0)
        }
    }
}
