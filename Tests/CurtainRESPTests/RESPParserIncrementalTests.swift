@testable import CurtainRESP
import NIOCore
import Testing

/// Several pipelined frames of every type, including binary payloads and attributes.
private let pipelinedFrames: [String] = [
    "+OK\r\n",
    "$10\r\n\r\n\r\n\r\n\r\n\r\n\r\n",
    ":-9223372036854775808\r\n",
    "*3\r\n$3\r\nSET\r\n$-1\r\n*-1\r\n",
    "$0\r\n\r\n",
    "%1\r\n=15\r\ntxt:Some string\r\n~2\r\n_\r\n#t\r\n",
    "|1\r\n+ttl\r\n:3600\r\n,-1.5e-7\r\n",
    ">2\r\n$7\r\nmessage\r\n!5\r\nERR x\r\n",
    "(123456789012345678901234567890\r\n",
    "-ERR done\r\n",
]

@Suite("RESPParser: incremental input")
struct RESPParserIncrementalTests {
    let stream: [UInt8] = Array(pipelinedFrames.joined().utf8)
    /// Where each frame ends in ``stream``.
    let frameEnds: [Int] = {
        var ends: [Int] = []
        var total = 0
        for frame in pipelinedFrames {
            total += frame.utf8.count
            ends.append(total)
        }
        return ends
    }()
    var expected: [RESPValue] {
        pipelinedFrames.map { try! parseWhole($0)! }
    }

    @Test func wholeStreamParsesInOrderAndStopsAtEachFrameEnd() throws {
        let (values, ends, consumed) = try parseAll(stream)
        #expect(values == expected)
        #expect(ends == frameEnds)
        #expect(consumed == stream.count)
    }

    @Test func byteByByte() throws {
        var buffer = ByteBuffer()
        var parser = RESPParser()
        var values: [RESPValue] = []
        for (i, byte) in stream.enumerated() {
            buffer.writeInteger(byte)
            while true {
                let before = buffer.readerIndex
                guard let value = try parser.parse(&buffer) else {
                    #expect(buffer.readerIndex == before, "nil must consume nothing (after byte \(i))")
                    break
                }
                values.append(value)
                // A value appears exactly when the last byte of its frame arrives, and no byte later is read.
                #expect(buffer.readerIndex == frameEnds[values.count - 1])
                #expect(i + 1 == frameEnds[values.count - 1])
            }
        }
        #expect(values == expected)
        #expect(buffer.readableBytes == 0)
    }

    @Test func everySplitIntoTwoChunks() throws {
        for split in 0...stream.count {
            var buffer = ByteBuffer(bytes: stream[..<split])
            var parser = RESPParser()
            var values: [RESPValue] = []
            func drain() throws {
                while true {
                    let before = buffer.readerIndex
                    guard let value = try parser.parse(&buffer) else {
                        #expect(buffer.readerIndex == before)
                        return
                    }
                    values.append(value)
                    #expect(buffer.readerIndex == frameEnds[values.count - 1], "split at \(split)")
                }
            }
            try drain()
            // Before the second chunk, exactly the frames wholly inside the first one were returned.
            #expect(values.count == frameEnds.filter { $0 <= split }.count, "split at \(split)")
            buffer.writeBytes(stream[split...])
            try drain()
            #expect(values == expected, "split at \(split)")
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test func everySplitIntoThreeChunksWithCompaction() throws {
        // Like a channel handler: leftover bytes are kept, read bytes discarded between reads.
        let n = stream.count
        for a in stride(from: 0, through: n, by: 3) {
            for b in stride(from: a, through: n, by: 7) {
                var parser = RESPParser()
                var values: [RESPValue] = []
                var buffer = ByteBuffer()
                for chunk in [stream[..<a], stream[a..<b], stream[b...]] {
                    buffer.writeBytes(chunk)
                    while let value = try parser.parse(&buffer) { values.append(value) }
                    buffer.discardReadBytes()
                }
                #expect(values == expected, "splits at \(a), \(b)")
                #expect(buffer.readableBytes == 0)
            }
        }
    }

    @Test func everyStrictPrefixOfOneFrameIsIncomplete() throws {
        for frame in pipelinedFrames {
            let bytes = Array(frame.utf8)
            for length in 0..<bytes.count {
                var buffer = ByteBuffer(bytes: bytes[..<length])
                var parser = RESPParser()
                #expect(try parser.parse(&buffer) == nil, "\(frame.debugDescription) cut at \(length)")
                #expect(buffer.readerIndex == 0)
            }
        }
    }

    @Test func largeBulkArrivingInPiecesUsesTheHintAndStillCompletes() throws {
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: 100_000)
        let frame = Array("$100000\r\n".utf8) + payload + Array("\r\n:7\r\n".utf8)
        var parser = RESPParser()
        var buffer = ByteBuffer()
        var values: [RESPValue] = []
        var offset = 0
        while offset < frame.count {
            let end = min(frame.count, offset + 4093)
            buffer.writeBytes(frame[offset..<end])
            offset = end
            while let value = try parser.parse(&buffer) { values.append(value) }
        }
        #expect(values == [.bulk(bytes: payload), .integer(7)])
    }

    @Test func readerIndexNotAtZero() throws {
        // The parser works on the readable bytes only, wherever the reader index is.
        var buffer = ByteBuffer(string: "garbage")
        buffer.moveReaderIndex(forwardBy: 7)
        buffer.writeString("*1\r\n$2\r\nhi\r\n")
        var parser = RESPParser()
        #expect(try parser.parse(&buffer) == .array([.bulk("hi")]))
        #expect(buffer.readerIndex == buffer.writerIndex)
    }
}
