import CurtainTestSupport
import CurtainRESP
import NIOCore

/// Builds random valid RESP values, their encodings, and hostile variations of them.
struct FrameGenerator {
    var rng: SplitMix64

    /// Byte strings that matter to a RESP decoder, inserted by ``mutate(_:other:)``.
    static let tokens: [[UInt8]] = [
        "\r\n", "\r", "\n", "-1", "0", "?", "*1\r\n", "%1\r\n", "|1\r\n", "$99999999999\r\n", "*2147483648\r\n",
        ":9223372036854775808\r\n", "$-2\r\n", "inf", "nan", "txt:", "_\r\n", "#t\r\n", ",1.5e300\r\n", "(-",
        "\0", "$0\r\n\r\n", "*-1\r\n", "$-1\r\n", "+OK\r\n", "-ERR x\r\n", ":1\r\n", "\"", "'", "\\x00", " ",
        "*3\r\n$3\r\nSET\r\n", "9999999999999999999999",
    ].map { Array($0.utf8) }
    /// Every RESP2/RESP3 type byte.
    static let typeBytes: [UInt8] = Array("+-:$*_,#(!=%~>|".utf8)

    init(rng: SplitMix64) {
        self.rng = rng
    }

    mutating func text(maxLength: Int, alphabet: [UInt8]) -> [UInt8] {
        (0..<rng.below(maxLength + 1)).map { _ in rng.pick(alphabet) }
    }

    mutating func binary(maxLength: Int) -> [UInt8] {
        (0..<rng.below(maxLength + 1)).map { _ in
            rng.oneIn(4) ? rng.pick([13, 10, 0, 36, 42]) : UInt8(truncatingIfNeeded: rng.next())
        }
    }

    /// A random value that is valid to encode (no CR or LF in lines, digits in big numbers, …).
    ///
    /// - Parameter allowPush: whether `>` pushes may appear at the top level.
    mutating func value(depth: Int = 0, allowPush: Bool = true) -> RESPValue {
        let line = Array("abcXYZ 019:-_\u{e9}".utf8)
        let kind = rng.below(depth >= 4 ? 11 : 16)
        switch kind {
        case 0: return .simpleString(ByteBuffer(bytes: text(maxLength: 12, alphabet: line)))
        case 1: return .error(ByteBuffer(bytes: Array("ERR ".utf8) + text(maxLength: 12, alphabet: line)))
        case 2: return .integer(Int64(bitPattern: rng.next()) >> Int64(rng.below(64)))
        case 3: return .bulkString(rng.oneIn(8) ? nil : ByteBuffer(bytes: binary(maxLength: 40)))
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
        case 7:
            let sign: [UInt8] = rng.oneIn(3) ? [UInt8(ascii: "-")] : []
            return .bigNumber(ByteBuffer(bytes: sign + [UInt8(ascii: "1")] + text(maxLength: 40, alphabet: Array("0123456789".utf8))))
        case 8: return .bulkError(ByteBuffer(bytes: Array("ERR ".utf8) + binary(maxLength: 10)))
        case 9: return .verbatimString(ByteBuffer(bytes: Array("txt:".utf8) + binary(maxLength: 20)))
        case 10: return .array(rng.oneIn(10) ? nil : [])
        case 11: return .array(children(depth))
        case 12: return .set(children(depth))
        case 13: return allowPush || depth > 0 ? .push(children(depth)) : .set(children(depth))
        case 14:
            return .map((0..<rng.below(4)).map { _ in RESPMapEntry(key: value(depth: depth + 1), value: value(depth: depth + 1)) })
        default: return .array([.bulk("SET"), .bulk("key"), value(depth: depth + 1)])
        }
    }

    private mutating func children(_ depth: Int) -> [RESPValue] {
        (0..<rng.below(5)).map { _ in value(depth: depth + 1) }
    }

    /// A few random values and their encoding, back to back.
    mutating func validFrames(allowPush: Bool = true) -> (values: [RESPValue], bytes: [UInt8]) {
        var buffer = ByteBuffer()
        var values: [RESPValue] = []
        for _ in 0..<(1 + rng.below(3)) {
            let v = value(allowPush: allowPush)
            values.append(v)
            buffer.writeRESPValue(v)
        }
        return (values, Array(buffer.readableBytesView))
    }

    /// Random bytes, biased towards the characters that matter to RESP.
    mutating func randomBytes(maxLength: Int = 128) -> [UInt8] {
        let alphabet = Self.typeBytes + Array("\r\n\r\n0123456789-?".utf8)
        return (0..<rng.below(maxLength + 1)).map { _ in
            rng.oneIn(3) ? UInt8(truncatingIfNeeded: rng.next()) : rng.pick(alphabet)
        }
    }

    /// `input` damaged in one to four random ways: bit flips, truncation, duplication, splicing with `other`,
    /// inserted tokens, replaced type bytes, deleted ranges, deep nesting in front.
    mutating func mutate(_ input: [UInt8], other: [UInt8]) -> [UInt8] {
        var bytes = input
        for _ in 0..<(1 + rng.below(4)) {
            switch rng.below(9) {
            case 0 where !bytes.isEmpty:
                bytes[rng.below(bytes.count)] ^= UInt8(1) << UInt8(rng.below(8))
            case 1 where !bytes.isEmpty:
                bytes.removeLast(rng.below(bytes.count) + 1)
            case 2 where !bytes.isEmpty:
                let a = rng.below(bytes.count)
                let b = a + rng.below(min(64, bytes.count - a)) + 1
                bytes.insert(contentsOf: bytes[a..<b], at: rng.below(bytes.count + 1))
            case 3:
                let cut = rng.below(bytes.count + 1)
                let otherCut = rng.below(other.count + 1)
                bytes = Array(bytes[..<cut]) + Array(other[otherCut...])
            case 4:
                bytes.insert(contentsOf: rng.pick(Self.tokens), at: rng.below(bytes.count + 1))
            case 5 where !bytes.isEmpty:
                bytes[rng.below(bytes.count)] = rng.pick(Self.typeBytes)
            case 6 where !bytes.isEmpty:
                let a = rng.below(bytes.count)
                bytes.removeSubrange(a..<(a + rng.below(min(8, bytes.count - a)) + 1))
            case 7 where !bytes.isEmpty:
                bytes[rng.below(bytes.count)] = UInt8(truncatingIfNeeded: rng.next())
            default:
                let header = rng.pick(["*1\r\n", "%1\r\n", "~1\r\n", ">1\r\n", "|0\r\n", "*2\r\n:1\r\n"])
                bytes = Array(String(repeating: header, count: rng.below(400)).utf8) + bytes
            }
        }
        return bytes
    }

    /// Hand-made hostile input: huge declared lengths, deep nesting, overlong lines, bad types.
    ///
    /// - Parameter maxAttributeChain: the longest chain of `|0` attributes to generate.
    mutating func hostile(maxAttributeChain: Int) -> [UInt8] {
        switch rng.below(14) {
        case 0: return Array("$\(rng.pick(["99999999999", "536870913", "9223372036854775807", "-2", "-9223372036854775808"]))\r\n".utf8)
        case 1: return Array("\(rng.pick(["*", "~", ">", "%", "|"]))\(rng.pick(["2147483648", "268435457", "9223372036854775807", "-5"]))\r\n".utf8)
        case 2: return Array(String(repeating: rng.pick(["*1\r\n", "%1\r\n", "~1\r\n"]), count: 200 + rng.below(2000)).utf8)
        case 3: return Array((String(repeating: "*1\r\n", count: 1000) + ":1\r\n").utf8)
        case 4: return Array((String(repeating: "*1\r\n", count: 200 + rng.below(57)) + ":1\r\n").utf8)
        case 5:
            let length = 65_530 + rng.below(20)
            return [rng.pick(Array("+-:(,".utf8))] + [UInt8](repeating: UInt8(ascii: "7"), count: length) + (rng.oneIn(2) ? [13, 10] : [])
        case 6: return Array("\(rng.pick(["$", "*", "%", "!", "=", "~", ">", "|"]))?\r\n".utf8) + randomBytes(maxLength: 16)
        case 7: return [rng.pick(Array("@^&;.ABCxyz\0\u{7f}".utf8))] + randomBytes(maxLength: 16)
        case 8: return Array(":\(rng.pick(["9223372036854775808", "-9223372036854775809", "99999999999999999999999", "1-1", "", "+"]))\r\n".utf8)
        case 9:
            // A valid frame cut short at a random point.
            let frame = validFrames().bytes
            return Array(frame[..<rng.below(frame.count)])
        case 10: return Array((String(repeating: "|0\r\n", count: rng.below(maxAttributeChain + 1)) + ":1\r\n").utf8)
        case 11: return Array((String(repeating: "|1\r\n+a\r\n+b\r\n", count: rng.below(min(maxAttributeChain, 256) + 1)) + "_\r\n").utf8)
        case 12: return Array("*2\r\n$3\r\nGET\r\n$\(rng.below(5))\r\nkey\r\n".utf8)
        default: return Array("\(rng.pick(["+OK\r", "+OK\n", "$3\r\nabc\n", ":1\r\r\n", "_x\r\n", "#x\r\n", ",1e999\r\n", "=3\r\ntxt\r\n"]))".utf8)
        }
    }
}
