@testable import CurtainRESP
import NIOCore
import CurtainTestSupport
import Testing

/// Builds random valid values, their encodings, and hostile variations of them.
struct FrameGenerator {
    var rng: SplitMix64

    private static let tokens: [[UInt8]] = [
        "\r\n", "\r", "\n", "-1", "0", "?", "*1\r\n", "%1\r\n", "|1\r\n", "$99999999999\r\n", "*2147483648\r\n",
        ":9223372036854775808\r\n", "$-2\r\n", "inf", "nan", "txt:", "_\r\n", "#t\r\n", ",1.5e300\r\n", "(-",
    ].map { Array($0.utf8) }
    private static let typeBytes: [UInt8] = Array("+-:$*_,#(!=%~>|".utf8)

    mutating func text(maxLength: Int, alphabet: [UInt8]) -> [UInt8] {
        (0..<rng.below(maxLength + 1)).map { _ in alphabet[rng.below(alphabet.count)] }
    }

    /// A random value that is valid to encode (no CR/LF in lines, digits in big numbers, …).
    mutating func value(depth: Int = 0) -> RESPValue {
        let line = Array("abcXYZ 019:-_é".utf8)
        let kind = rng.below(depth >= 4 ? 11 : 16)
        switch kind {
        case 0: return .simpleString(ByteBuffer(bytes: text(maxLength: 12, alphabet: line)))
        case 1: return .error(ByteBuffer(bytes: Array("ERR ".utf8) + text(maxLength: 12, alphabet: line)))
        case 2:
            let n = Int64(bitPattern: rng.next()) >> Int64(rng.below(64))
            return .integer(n)
        case 3: return .bulkString(rng.oneIn(8) ? nil : ByteBuffer(bytes: (0..<rng.below(40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }))
        case 4: return .null
        case 5:
            switch rng.below(6) {
            case 0: return .double(.infinity)
            case 1: return .double(-.infinity)
            case 2: return .double(.nan)
            case 3:
                let d = Double(bitPattern: rng.next())
                return .double(d.isFinite ? d : 1.5e300)
            default: return .double(Double(Int64(bitPattern: rng.next()) >> 40) / 1024)
            }
        case 6: return .boolean(rng.oneIn(2))
        case 7: return .bigNumber(ByteBuffer(bytes: (rng.oneIn(3) ? [UInt8(ascii: "-")] : []) + [UInt8(ascii: "1")] + text(maxLength: 40, alphabet: Array("0123456789".utf8))))
        case 8: return .bulkError(ByteBuffer(bytes: Array("ERR\r\n".utf8) + text(maxLength: 10, alphabet: line)))
        case 9: return .verbatimString(ByteBuffer(bytes: Array("txt:".utf8) + text(maxLength: 20, alphabet: line + [13, 10])))
        case 10: return .array(rng.oneIn(10) ? nil : [])
        case 11: return .array(children(depth))
        case 12: return .set(children(depth))
        case 13: return .push(children(depth))
        case 14:
            let count = rng.below(4)
            return .map((0..<count).map { _ in RESPMapEntry(key: value(depth: depth + 1), value: value(depth: depth + 1)) })
        default: return .array([.bulk("SET"), .bulk("key"), value(depth: depth + 1)])
        }
    }

    private mutating func children(_ depth: Int) -> [RESPValue] {
        (0..<rng.below(5)).map { _ in value(depth: depth + 1) }
    }

    /// The encoding of a few random values, back to back.
    mutating func validFrames() -> [UInt8] {
        var buffer = ByteBuffer()
        for _ in 0..<(1 + rng.below(3)) { buffer.writeRESPValue(value()) }
        return Array(buffer.readableBytesView)
    }

    /// Random bytes, biased towards the characters that matter to RESP.
    mutating func randomBytes() -> [UInt8] {
        let alphabet = Self.typeBytes + Array("\r\n\r\n0123456789-?".utf8)
        return (0..<rng.below(64)).map { _ in
            rng.oneIn(3) ? UInt8(truncatingIfNeeded: rng.next()) : alphabet[rng.below(alphabet.count)]
        }
    }

    /// `bytes` damaged in one to four random ways.
    mutating func mutate(_ input: [UInt8], other: [UInt8]) -> [UInt8] {
        var bytes = input
        for _ in 0..<(1 + rng.below(4)) {
            switch rng.below(8) {
            case 0 where !bytes.isEmpty:  // bit flip
                bytes[rng.below(bytes.count)] ^= UInt8(1) << UInt8(rng.below(8))
            case 1 where !bytes.isEmpty:  // truncate
                bytes.removeLast(rng.below(bytes.count) + 1)
            case 2 where !bytes.isEmpty:  // duplicate a range
                let a = rng.below(bytes.count)
                let b = a + rng.below(bytes.count - a) + 1
                bytes.insert(contentsOf: bytes[a..<b], at: rng.below(bytes.count + 1))
            case 3:  // splice with another input
                let cut = rng.below(bytes.count + 1)
                let otherCut = rng.below(other.count + 1)
                bytes = Array(bytes[..<cut]) + Array(other[otherCut...])
            case 4:  // insert a token that matters
                bytes.insert(contentsOf: Self.tokens[rng.below(Self.tokens.count)], at: rng.below(bytes.count + 1))
            case 5 where !bytes.isEmpty:  // replace a byte with a type byte
                bytes[rng.below(bytes.count)] = Self.typeBytes[rng.below(Self.typeBytes.count)]
            case 6 where !bytes.isEmpty:  // delete a range
                let a = rng.below(bytes.count)
                bytes.removeSubrange(a..<(a + rng.below(min(8, bytes.count - a)) + 1))
            default:  // deep nesting
                bytes = Array(String(repeating: ["*1\r\n", "%1\r\n", "~1\r\n", "|0\r\n"][rng.below(4)], count: rng.below(400)).utf8) + bytes
            }
        }
        return bytes
    }
}

/// How a whole input ended.
enum Termination: Equatable {
    case incomplete
    case error
}

/// Parses `bytes` front to back (in two chunks split at `split`), checking the parser's invariants.
func checkInvariants(_ bytes: [UInt8], split: Int) -> (values: [RESPValue], end: Termination, consumed: Int) {
    func run(chunks: [ArraySlice<UInt8>]) -> (values: [RESPValue], end: Termination, consumed: Int) {
        var parser = RESPParser()
        var buffer = ByteBuffer()
        var values: [RESPValue] = []
        var consumed = 0
        for chunk in chunks {
            buffer.writeBytes(chunk)
            while true {
                let before = buffer.readerIndex
                do {
                    guard let value = try parser.parse(&buffer) else {
                        #expect(buffer.readerIndex == before, "nil must consume nothing")
                        break
                    }
                    #expect(buffer.readerIndex > before, "a value must consume bytes")
                    consumed += buffer.readerIndex - before
                    values.append(value)
                } catch {
                    // An error on a prefix must also be an error on the whole input (checked by the caller).
                    #expect(buffer.readerIndex == before, "an error must consume nothing")
                    return (values, .error, consumed)
                }
            }
        }
        return (values, .incomplete, consumed)
    }
    let whole = run(chunks: [bytes[...]])
    let split = run(chunks: [bytes[..<split], bytes[split...]])
    #expect(whole.values == split.values, "the same bytes must parse alike however they arrive")
    #expect(whole.end == split.end)
    #expect(whole.consumed == split.consumed)
    // What was parsed re-encodes to bytes that parse back to the same value.
    for value in whole.values {
        let encoded = encode(value)
        var buffer = ByteBuffer(bytes: encoded)
        var parser = RESPParser()
        #expect((try? parser.parse(&buffer)) == value, "re-encoded \(value) must parse back")
        #expect(buffer.readableBytes == 0)
    }
    return whole
}

@Suite("RESPParser: seeded fuzz")
struct RESPParserFuzzTests {
    @Test func validValuesRoundTripExactly() throws {
        var generator = FrameGenerator(rng: SplitMix64(seed: 0xC0FFEE))
        for _ in 0..<2_000 {
            let value = generator.value()
            let encoded = encode(value)
            let (values, ends, consumed) = try parseAll(encoded)
            #expect(values == [value])
            #expect(ends == [encoded.count])
            #expect(consumed == encoded.count)
        }
    }

    @Test func randomAndMutatedInputNeverCrash() {
        var generator = FrameGenerator(rng: SplitMix64(seed: 42))
        var counts = (values: 0, incomplete: 0, errors: 0)
        var previous = generator.validFrames()
        for i in 0..<4_000 {
            let input: [UInt8]
            switch i % 4 {
            case 0: input = generator.randomBytes()
            case 1: input = generator.validFrames()
            default:
                let frames = generator.validFrames()
                input = generator.mutate(frames, other: previous)
                previous = frames
            }
            let split = generator.rng.below(input.count + 1)
            let outcome = checkInvariants(input, split: split)
            counts.values += outcome.values.count
            if outcome.end == .error { counts.errors += 1 } else { counts.incomplete += 1 }
            if i % 4 == 1 {
                // Unmutated frames parse completely.
                #expect(outcome.end == .incomplete && outcome.consumed == input.count)
            }
        }
        // The generator reaches all three outcomes in quantity.
        #expect(counts.values > 1_000)
        #expect(counts.errors > 500)
        #expect(counts.incomplete > 500)
    }
}
