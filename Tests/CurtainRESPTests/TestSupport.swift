@testable import CurtainRESP
import CurtainTestSupport
import NIOCore

/// The bytes of `string` as a buffer.
func wire(_ string: String) -> ByteBuffer {
    ByteBuffer(string: string)
}

/// The readable bytes of `value`'s RESP encoding.
func encode(_ value: RESPValue) -> [UInt8] {
    var buffer = ByteBuffer()
    buffer.writeRESPValue(value)
    return Array(buffer.readableBytesView)
}

/// Parses every complete value at the front of `bytes` with one parser, as a connection would.
///
/// Returns the values, the offset each one ended at, and the unconsumed remainder's start.
func parseAll(
    _ bytes: [UInt8], limits: RESPParser.Limits = .default
) throws(RESPProtocolError) -> (values: [RESPValue], ends: [Int], consumed: Int) {
    var buffer = ByteBuffer(bytes: bytes)
    var parser = RESPParser(limits: limits)
    var values: [RESPValue] = []
    var ends: [Int] = []
    while let value = try parser.parse(&buffer) {
        values.append(value)
        ends.append(buffer.readerIndex)
    }
    return (values, ends, buffer.readerIndex)
}

/// Parses `text`, which must hold exactly one complete frame, and returns its value.
func parseWhole(_ text: String, limits: RESPParser.Limits = .default) throws -> RESPValue? {
    var buffer = wire(text)
    var parser = RESPParser(limits: limits)
    let value = try parser.parse(&buffer)
    if value != nil, buffer.readableBytes != 0 {
        throw RESPProtocolError("test helper: \(buffer.readableBytes) bytes left after one frame")
    }
    return value
}

/// Parses `bytes` expecting a protocol error, and returns it (or `nil` if none was thrown).
///
/// The buffer must be left untouched by the failed parse.
func protocolError(_ bytes: [UInt8], limits: RESPParser.Limits = .default) -> RESPProtocolError? {
    var buffer = ByteBuffer(bytes: bytes)
    var parser = RESPParser(limits: limits)
    do {
        while try parser.parse(&buffer) != nil {}
        return nil
    } catch {
        return error
    }
}

/// `protocolError(_:limits:)` for text input.
func protocolError(_ text: String, limits: RESPParser.Limits = .default) -> RESPProtocolError? {
    protocolError(Array(text.utf8), limits: limits)
}

/// The nesting depth of `value` (a scalar is 0, an empty aggregate 1).
func depth(of value: RESPValue) -> Int {
    switch value {
    case .array(.some(let elements)), .set(let elements), .push(let elements):
        return 1 + (elements.map(depth(of:)).max() ?? 0)
    case .map(let entries):
        return 1 + (entries.map { max(depth(of: $0.key), depth(of: $0.value)) }.max() ?? 0)
    default:
        return 0
    }
}
