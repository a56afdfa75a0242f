#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Encodes and decodes the values that cross a process boundary: functions (their captures), inputs and
/// outputs.
///
/// JSON for now: readable in the store and in dead-letter records, and measured before anything faster is
/// chosen (a compact binary form replaces it on the hot path if JSON proves to be the bottleneck).
enum PayloadCodec {
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(bytes))
    }
}
