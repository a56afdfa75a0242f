#if canImport(Glibc)
import CurtainTestSupport
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurtainRESP
import NIOCore

/// A broken decoder invariant, with the input that broke it.
struct InvariantViolation: Error, CustomStringConvertible {
    var what: String
    var input: [UInt8]

    var description: String { "invariant violated: \(what)\ninput (\(input.count) bytes): \(escaped(input))" }
}

/// The printable form of `bytes`, as a Swift string literal would spell it.
func escaped(_ bytes: [UInt8], limit: Int = 512) -> String {
    var out = "\""
    for b in bytes.prefix(limit) {
        switch b {
        case 13: out += "\\r"
        case 10: out += "\\n"
        case 0x22: out += "\\\""
        case 0x5C: out += "\\\\"
        case 0x20...0x7E: out.unicodeScalars.append(Unicode.Scalar(b))
        default: out += "\\x" + (b < 16 ? "0" : "") + String(b, radix: 16)
        }
    }
    return out + "\"" + (bytes.count > limit ? "… (+\(bytes.count - limit) bytes)" : "")
}

/// What decoding one input produced.
struct DecodeOutcome: Equatable {
    /// The values decoded, in order.
    var values: [RESPValue]
    /// Whether decoding stopped on a protocol error (else it ran out of bytes).
    var failed: Bool
    /// Bytes consumed by the decoded values.
    var consumed: Int
}

/// Checks the decoder's invariants on arbitrary bytes.
///
/// For every input: each `parse` returns a value (consuming bytes), returns `nil` (consuming nothing) or
/// throws ``RESPProtocolError`` (consuming nothing); the same bytes decode alike whether they arrive at once,
/// in two chunks or byte by byte; every decoded value re-encodes to bytes that decode to an equal value.
enum DecoderChecker {
    static func decode(_ chunks: [ArraySlice<UInt8>], input: [UInt8]) throws(InvariantViolation) -> DecodeOutcome {
        var parser = RESPParser()
        var buffer = ByteBuffer()
        var outcome = DecodeOutcome(values: [], failed: false, consumed: 0)
        for chunk in chunks {
            buffer.writeBytes(chunk)
            while true {
                let before = buffer.readerIndex
                do {
                    guard let value = try parser.parse(&buffer) else {
                        guard buffer.readerIndex == before else {
                            throw InvariantViolation(what: "parse returned nil but consumed bytes", input: input)
                        }
                        break
                    }
                    guard buffer.readerIndex > before else {
                        throw InvariantViolation(what: "parse returned \(value) without consuming bytes", input: input)
                    }
                    outcome.consumed += buffer.readerIndex - before
                    outcome.values.append(value)
                } catch let error as RESPProtocolError {
                    guard buffer.readerIndex == before else {
                        throw InvariantViolation(what: "parse threw \(error) but consumed bytes", input: input)
                    }
                    outcome.failed = true
                    return outcome
                } catch let error as InvariantViolation {
                    throw error
                } catch {
                    throw InvariantViolation(what: "unexpected error \(error)", input: input)
                }
                // Keep the reader index small, as a connection handler does between reads.
                if buffer.readerIndex > 4096 { buffer.discardReadBytes() }
            }
        }
        return outcome
    }

    /// Runs every check on `input`; `split` picks the two-chunk boundary, `byteByByte` adds the slowest check.
    @discardableResult
    static func check(_ input: [UInt8], split: Int, byteByByte: Bool) throws(InvariantViolation) -> DecodeOutcome {
        let whole = try decode([input[...]], input: input)
        let cut = min(max(0, split), input.count)
        let twoChunks = try decode([input[..<cut], input[cut...]], input: input)
        guard twoChunks == whole else {
            throw InvariantViolation(
                what: "split at \(cut) decodes differently: \(twoChunks) vs whole \(whole)", input: input)
        }
        if byteByByte {
            let bytes = try decode(input.indices.map { input[$0..<($0 + 1)] }, input: input)
            guard bytes == whole else {
                throw InvariantViolation(what: "byte-by-byte decodes differently: \(bytes) vs whole \(whole)", input: input)
            }
        }
        for value in whole.values {
            var encoded = ByteBuffer()
            encoded.writeRESPValue(value)
            let length = encoded.readableBytes
            var parser = RESPParser()
            let again: RESPValue?
            do {
                again = try parser.parse(&encoded)
            } catch {
                throw InvariantViolation(what: "re-encoded \(value) does not decode: \(error)", input: input)
            }
            guard again == value, encoded.readableBytes == 0, length > 0 else {
                throw InvariantViolation(
                    what: "re-encoded \(value) decodes to \(String(describing: again)) leaving \(encoded.readableBytes) bytes",
                    input: input)
            }
        }
        return whole
    }

    /// Checks that `bytes`, the encoding of `values`, decodes to exactly `values` and nothing else.
    static func checkExact(_ values: [RESPValue], bytes: [UInt8], split: Int) throws(InvariantViolation) {
        let outcome = try check(bytes, split: split, byteByByte: false)
        guard outcome.values == values, !outcome.failed, outcome.consumed == bytes.count else {
            throw InvariantViolation(what: "valid frames of \(values) decoded as \(outcome)", input: bytes)
        }
    }
}

/// The seeded decoder fuzz: `count` generated inputs, each checked by ``DecoderChecker``.
struct DecoderFuzz {
    var seed: UInt64
    var count: Int
    var start: Int = 0
    /// The longest chain of `|0` attributes generated (a chain deep enough to overflow the stack is a bug).
    var maxAttributeChain: Int = 50_000
    var verbose = false

    /// Tallies of a run.
    struct Counts {
        var inputs = 0
        var values = 0
        var incomplete = 0
        var errors = 0
        var exact = 0
        var bytes = 0
    }

    /// Generates input `index`: the category it belongs to, its bytes, and its values when it is unmutated.
    func input(_ index: Int) -> (kind: String, bytes: [UInt8], values: [RESPValue]?, split: Int) {
        var generator = FrameGenerator(rng: SplitMix64(seed: seed, index: index))
        let kind = generator.rng.below(100)
        let result: (String, [UInt8], [RESPValue]?)
        switch kind {
        case 0..<20:
            result = ("random", generator.randomBytes(), nil)
        case 20..<40:
            let frames = generator.validFrames()
            result = ("valid", frames.bytes, frames.values)
        case 40..<88:
            let frames = generator.validFrames()
            let other = generator.rng.oneIn(2) ? generator.validFrames().bytes : generator.hostile(maxAttributeChain: 16)
            result = ("mutated", generator.mutate(frames.bytes, other: other), nil)
        default:
            result = ("hostile", generator.hostile(maxAttributeChain: maxAttributeChain), nil)
        }
        let split = generator.rng.below(result.1.count + 1)
        return (result.0, result.1, result.2, split)
    }

    func run() throws(InvariantViolation) -> Counts {
        var counts = Counts()
        for index in start..<(start + count) {
            CrashReporter.current = index
            let (kind, bytes, values, split) = input(index)
            if verbose {
                print("#\(index) \(kind): \(escaped(bytes, limit: 200))")
                fflush(nil)  // Shown even if checking the input crashes.
            }
            counts.inputs += 1
            counts.bytes += bytes.count
            if let values {
                try DecoderChecker.checkExact(values, bytes: bytes, split: split)
                counts.exact += 1
                counts.values += values.count
                continue
            }
            let outcome = try DecoderChecker.check(bytes, split: split, byteByByte: bytes.count <= 96 && index % 8 == 0)
            counts.values += outcome.values.count
            if outcome.failed { counts.errors += 1 } else { counts.incomplete += 1 }
        }
        CrashReporter.current = -1
        return counts
    }
}
