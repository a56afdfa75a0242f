import NIOCore
import CurtainTestSupport
import Testing

@testable import CurtainStore

@Suite("CommandDecoder")
struct CommandDecoderTests {
    /// Decodes every request in `bytes` fed at once.
    private func decodeAll(_ bytes: [UInt8], authenticated: Bool = true) throws -> [[String]] {
        var decoder = CommandDecoder()
        var buffer = ByteBuffer(bytes: bytes)
        var requests: [[String]] = []
        while let arguments = try decoder.next(&buffer, authenticated: authenticated) {
            requests.append((0..<arguments.count).map { arguments.string($0) })
        }
        return requests
    }

    private func decodeAll(_ text: String, authenticated: Bool = true) throws -> [[String]] {
        try decodeAll(Array(text.utf8), authenticated: authenticated)
    }

    /// The protocol error `bytes` produce.
    private func protocolError(_ text: String, authenticated: Bool = true) -> String? {
        do {
            _ = try decodeAll(text, authenticated: authenticated)
            return nil
        } catch {
            return (error as? CommandProtocolError)?.reason
        }
    }

    @Test func decodesArrayOfBulkStrings() throws {
        #expect(try decodeAll("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n") == [["SET", "key", "value"]])
    }

    @Test func bulkStringsAreBinarySafe() throws {
        var decoder = CommandDecoder()
        var buffer = ByteBuffer(bytes: Array("*2\r\n$3\r\nGET\r\n$4\r\n".utf8) + [0, 13, 10, 255] + Array("\r\n".utf8))
        let arguments = try #require(try decoder.next(&buffer, authenticated: true))
        #expect(arguments.count == 2)
        #expect(arguments.bytes(1).array == [0, 13, 10, 255])
        #expect(buffer.readableBytes == 0)
    }

    @Test func emptyBulkAndEmptyArray() throws {
        #expect(try decodeAll("*0\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n*-1\r\n") == [["ECHO", ""]])
    }

    @Test func decodesInlineCommands() throws {
        #expect(try decodeAll("PING\r\n") == [["PING"]])
        #expect(try decodeAll("SET  a   b\n") == [["SET", "a", "b"]])
        #expect(try decodeAll("\r\n   \r\nGET a\r\n") == [["GET", "a"]])
    }

    @Test func inlineQuotingFollowsRedis() throws {
        #expect(try decodeAll("SET \"a b\" 'c d'\r\n") == [["SET", "a b", "c d"]])
        #expect(try decodeAll("ECHO \"x\\ny\\x41\"\r\n") == [["ECHO", "x\nyA"]])
        #expect(try decodeAll("ECHO 'it\\'s'\r\n") == [["ECHO", "it's"]])
        #expect(try decodeAll("ECHO \"\"\r\n") == [["ECHO", ""]])
        #expect(protocolError("ECHO \"abc\r\n") == "unbalanced quotes in request")
        #expect(protocolError("ECHO \"abc\"def\r\n") == "unbalanced quotes in request")
    }

    @Test func pipelinedRequestsDecodeInOrder() throws {
        let text = "*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        #expect(try decodeAll(text) == [["PING"], ["ECHO", "hi"], ["GET", "k"]])
    }

    @Test func partialFramesSplitAtEveryByte() throws {
        let text = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$10\r\n0123456789\r\nINLINE  cmd\r\n*1\r\n$4\r\nPING\r\n"
        let bytes = Array(text.utf8)
        let expected: [[String]] = [["SET", "key", "0123456789"], ["INLINE", "cmd"], ["PING"]]
        for split in 0...bytes.count {
            var decoder = CommandDecoder()
            var buffer = ByteBuffer()
            var requests: [[String]] = []
            for chunk in [bytes[0..<split], bytes[split...]] {
                buffer.writeBytes(chunk)
                while let arguments = try decoder.next(&buffer, authenticated: true) {
                    requests.append((0..<arguments.count).map { arguments.string($0) })
                }
            }
            #expect(requests == expected, "split at \(split)")
        }
    }

    @Test func byteAtATime() throws {
        let text = "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n"
        var decoder = CommandDecoder()
        var buffer = ByteBuffer()
        var requests: [[String]] = []
        for byte in text.utf8 {
            buffer.writeInteger(byte)
            if let arguments = try decoder.next(&buffer, authenticated: true) {
                requests.append((0..<arguments.count).map { arguments.string($0) })
            }
        }
        #expect(requests == [["ECHO", "hello"]])
    }

    @Test func malformedFramesAreProtocolErrors() {
        #expect(protocolError("*x\r\n") == "invalid multibulk length")
        #expect(protocolError("*2\r\n+OK\r\n") == "expected '$', got '+'")
        #expect(protocolError("*1\r\n$-5\r\n") == "invalid bulk length")
        #expect(protocolError("*1\r\n$abc\r\n") == "invalid bulk length")
        #expect(protocolError("*1\r\n$3\r\nabcXY") == "expected CRLF after bulk argument")
        #expect(protocolError("*99999999999\r\n") == "invalid multibulk length")
    }

    @Test func hugeDeclaredLengthsAreRejectedWithoutAllocating() {
        #expect(protocolError("*1\r\n$9999999999999\r\n") == "invalid bulk length")
        #expect(protocolError("*1\r\n$536870913\r\n") == "invalid bulk length")
        #expect(protocolError("*2147483648\r\n") == "invalid multibulk length")
        // Legal declared sizes are only waited for, not reserved.
        #expect(protocolError("*1000000\r\n$536870912\r\n") == nil)
    }

    @Test func unauthenticatedLimitsAreSmall() {
        #expect(protocolError("*11\r\n", authenticated: false) == "unauthenticated multibulk length")
        #expect(protocolError("*1\r\n$16385\r\n", authenticated: false) == "unauthenticated bulk length")
        #expect(protocolError("*11\r\n", authenticated: true) == nil)
    }

    @Test func overlongLinesAreRejected() {
        let long = String(repeating: "a", count: 70 * 1024)
        #expect(protocolError(long) == "too big inline request")
        #expect(protocolError("*" + String(repeating: "1", count: 70 * 1024)) == "too big mbulk count string")
        #expect(protocolError("*1\r\n$" + String(repeating: "1", count: 70 * 1024)) == "too big bulk count string")
    }

    @Test func deepNestingIsRejected() {
        let nested = String(repeating: "*1\r\n", count: 1000) + "$4\r\nPING\r\n"
        #expect(protocolError(nested) == "expected '$', got '*'")
    }

    @Test func randomBytesNeverCrash() {
        var generator = SplitMix64(seed: 0x5EED)
        var outcomes = (requests: 0, errors: 0)
        for _ in 0..<2000 {
            let length = Int.random(in: 0..<64, using: &generator)
            let alphabet: [UInt8] = Array("*$\r\n0123456789-+ \"'\\xab".utf8) + [0, 255]
            let bytes = (0..<length).map { _ in
                Bool.random(using: &generator)
                    ? alphabet.randomElement(using: &generator)!
                    : UInt8.random(in: 0...255, using: &generator)
            }
            var decoder = CommandDecoder()
            var buffer = ByteBuffer(bytes: bytes)
            do {
                while let arguments = try decoder.next(&buffer, authenticated: true) {
                    #expect(arguments.count > 0)
                    outcomes.requests += 1
                }
            } catch {
                outcomes.errors += 1
            }
        }
        // Both paths were exercised.
        #expect(outcomes.requests > 0)
        #expect(outcomes.errors > 0)
    }
}

