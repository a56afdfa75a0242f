import Distributed
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
        // Integers and booleans directly: the same bytes JSONEncoder writes, without its setup cost (which
        // dominates for a small value on a lock's or a task's critical path).
        switch value {
        case let integer as Int: return Array(String(integer).utf8)
        case let integer as Int64: return Array(String(integer).utf8)
        case let integer as UInt64: return Array(String(integer).utf8)
        case let integer as Int32: return Array(String(integer).utf8)
        case let flag as Bool: return Array((flag ? "true" : "false").utf8)
        default: break
        }
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

    /// Decodes `bytes` as `T`. Actor references among them resolve through `actorSystem`, by default the
    /// system of the current context (``CurtainActorSystem``: a worker's, or the last cloud's to start).
    static func decode<T: Decodable>(
        _ type: T.Type, from bytes: [UInt8], actorSystem: CurtainActorSystem? = CurtainActorSystem.current
    ) throws -> T {
        if T.self == Int.self || T.self == Int64.self || T.self == UInt64.self || T.self == Int32.self || T.self == Bool.self,
            let value = decodeScalar(T.self, from: bytes)
        {
            return value
        }
        let decoder = JSONDecoder()
        if let actorSystem { decoder.userInfo[.actorSystemKey] = actorSystem }
        return try decoder.decode(T.self, from: Data(bytes))
    }

    /// Plain JSON integers and booleans; `nil` for anything else (which JSONDecoder then judges).
    private static func decodeScalar<T>(_ type: T.Type, from bytes: [UInt8]) -> T? {
        let text = String(decoding: bytes, as: UTF8.self)
        switch T.self {
        case is Int.Type: return Int(text) as? T
        case is Int64.Type: return Int64(text) as? T
        case is UInt64.Type: return UInt64(text) as? T
        case is Int32.Type: return Int32(text) as? T
        case is Bool.Type: return (text == "true" ? true : text == "false" ? false : nil) as? T
        default: return nil
        }
    }
}
