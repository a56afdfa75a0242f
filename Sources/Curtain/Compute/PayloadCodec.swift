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

    /// Encodes every input of a job up front, so one that cannot be encoded is reported (with its index)
    /// before anything is dispatched.
    static func encodeInputs<F: RemoteFunction, Inputs: Sequence>(_ inputs: Inputs, for _: F.Type) throws -> [[UInt8]]
    where Inputs.Element == F.Input {
        var encoded: [[UInt8]] = []
        encoded.reserveCapacity(inputs.underestimatedCount)
        for (index, input) in inputs.enumerated() {
            do {
                encoded.append(try encode(input))
            } catch {
                throw InputEncodingError(function: F.name, index: index, message: "\(error)")
            }
        }
        return encoded
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(bytes))
    }
}
