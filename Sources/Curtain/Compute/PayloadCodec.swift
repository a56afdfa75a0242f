import Distributed
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Encodes and decodes the values that cross a process boundary.
///
/// Task and actor payloads (captures, inputs, outputs, arguments, replies) use ``encodePayload(_:settings:)``
/// and ``decodePayload(_:from:shared:actorSystem:)``: the binary format of ``PayloadEncoder`` by default,
/// JSON when `CURTAIN_PAYLOAD_FORMAT=json` (for debugging). Decoding tells the two apart by their first
/// byte, so either side may switch.
///
/// Shared memory, failure records and dead letters use ``encode(_:)``/``decode(_:from:actorSystem:)``:
/// JSON (readable in the store, and deterministic for dictionary keys), with numeric arrays as raw bytes.
enum PayloadCodec {
    /// How task payloads are written.
    struct Settings: Sendable {
        var format: PayloadFormat = PayloadCodec.defaultFormat
        /// Values above this many bytes are shared by reference (binary format only); `nil` never.
        var shareAbove: Int?
        /// Shared values above `above` bytes go to the object store at `url`.
        var objectStore: (above: Int, url: String)?
        /// Whether the root value itself may be shared (captures and inputs: yes; outputs: no).
        var shareRoot = false
    }

    /// `CURTAIN_PAYLOAD_FORMAT` (`binary`, the default, or `json`).
    static let defaultFormat: PayloadFormat = {
        guard let text = ProcessInfo.processInfo.environment["CURTAIN_PAYLOAD_FORMAT"], !text.isEmpty else { return .binary }
        guard let format = PayloadFormat(rawValue: text.lowercased()) else {
            StandardError.write("curtain: CURTAIN_PAYLOAD_FORMAT='\(text)' is neither 'binary' nor 'json'; using binary\n")
            return .binary
        }
        return format
    }()

    /// Encodes a task or actor payload.
    static func encodePayload<T: Encodable>(_ value: T, settings: Settings = Settings()) throws -> EncodedPayload {
        if settings.format == .binary {
            var encoder = PayloadEncoder()
            encoder.shareAbove = settings.shareAbove
            encoder.objectStore = settings.objectStore
            do {
                let (bytes, shared) = try encoder.encodeSharing(value, hoistRoot: settings.shareRoot)
                return EncodedPayload(bytes: bytes, shared: shared.map { (ref: $0.0, bytes: $0.1) })
            } catch is PayloadOrderError {
                // Containers written out of order: JSON holds that.
            }
        }
        return EncodedPayload(bytes: try encode(value))
    }

    /// Decodes a task or actor payload, binary or JSON.
    static func decodePayload<T: Decodable>(
        _ type: T.Type, from bytes: UnsafeRawBufferPointer, shared: (any SharedValueSource)? = nil,
        actorSystem: CurtainActorSystem? = CurtainActorSystem.current
    ) throws -> T {
        guard PayloadWire.isBinary(bytes) else { return try decode(type, from: Array(bytes), actorSystem: actorSystem) }
        var decoder = PayloadDecoder()
        if let actorSystem { decoder.userInfo[.actorSystemKey] = actorSystem }
        return try decoder.decode(type, from: bytes, shared: shared)
    }

    /// Decodes a task or actor payload, binary or JSON.
    static func decodePayload<T: Decodable>(
        _ type: T.Type, from bytes: [UInt8], shared: (any SharedValueSource)? = nil,
        actorSystem: CurtainActorSystem? = CurtainActorSystem.current
    ) throws -> T {
        try bytes.withUnsafeBytes { try decodePayload(type, from: $0, shared: shared, actorSystem: actorSystem) }
    }


    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        // Integers and booleans directly: the same bytes JSONEncoder writes, without its setup cost (which
        // dominates for a small value on a lock's or a task's critical path).
        switch value {
        case let integer as Int: return Array(String(integer).utf8)
        case let integer as Int64: return Array(String(integer).utf8)
        case let integer as UInt64: return Array(String(integer).utf8)
        case let integer as Int32: return Array(String(integer).utf8)
        case let flag as Bool: return Array((flag ? "true" : "false").utf8)
        // Numeric arrays as raw little-endian bytes after a marker no JSON text starts with: JSON's number
        // formatting and parsing cost about 0.3 µs per element, a parameter server's whole call budget.
        case let doubles as [Double]: return raw(doubles, kind: UInt8(ascii: "d"))
        case let floats as [Float]: return raw(floats, kind: UInt8(ascii: "f"))
        case let integers as [Int]: return raw(integers.map { Int64($0) }, kind: UInt8(ascii: "i"))
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
        #if _endian(big)
        #error("raw numeric arrays assume a little-endian host")
        #endif
        if T.self == Int.self || T.self == Int64.self || T.self == UInt64.self || T.self == Int32.self || T.self == Bool.self,
            let value = decodeScalar(T.self, from: bytes)
        {
            return value
        }
        if bytes.first == rawMarker {
            if T.self == [Double].self, let value = unraw(bytes, as: Double.self, kind: UInt8(ascii: "d")) { return value as! T }
            if T.self == [Float].self, let value = unraw(bytes, as: Float.self, kind: UInt8(ascii: "f")) { return value as! T }
            if T.self == [Int].self, let value = unraw(bytes, as: Int64.self, kind: UInt8(ascii: "i")) { return value.map { Int($0) } as! T }
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: [], debugDescription: "raw numeric array bytes (kind \(bytes.count > 1 ? bytes[1] : 0), \(bytes.count) bytes) cannot be read as \(T.self)"))
        }
        let decoder = JSONDecoder()
        if let actorSystem { decoder.userInfo[.actorSystemKey] = actorSystem }
        return try decoder.decode(T.self, from: Data(bytes))
    }

    /// The first byte of a raw numeric array (never the first byte of JSON text, which is UTF-8).
    static let rawMarker: UInt8 = 0xFF

    /// `[marker, kind]` and the elements' little-endian bytes.
    private static func raw<Element: FixedWidthInteger>(_ values: [Element], kind: UInt8) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 2 + values.count * MemoryLayout<Element>.size)
        bytes[0] = rawMarker
        bytes[1] = kind
        bytes.withUnsafeMutableBytes { out in
            for (i, v) in values.enumerated() { out.storeBytes(of: v.littleEndian, toByteOffset: 2 + i * MemoryLayout<Element>.size, as: Element.self) }
        }
        return bytes
    }

    private static func raw<Element: BinaryFloatingPoint>(_ values: [Element], kind: UInt8) -> [UInt8] where Element.RawSignificand: FixedWidthInteger {
        var bytes = [UInt8](repeating: 0, count: 2 + values.count * MemoryLayout<Element>.size)
        bytes[0] = rawMarker
        bytes[1] = kind
        bytes.withUnsafeMutableBytes { out in
            values.withUnsafeBytes { source in
                // Little-endian hosts (x86-64, arm64): the in-memory bytes are the wire bytes.
                out.baseAddress!.advanced(by: 2).copyMemory(from: source.baseAddress!, byteCount: source.count)
            }
        }
        return bytes
    }

    private static func unraw<Element>(_ bytes: [UInt8], as _: Element.Type, kind: UInt8) -> [Element]? {
        let size = MemoryLayout<Element>.size
        guard bytes.count >= 2, bytes[1] == kind, (bytes.count - 2) % size == 0 else { return nil }
        let count = (bytes.count - 2) / size
        return [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: source[2...]))
            }
            initialized = count
        }
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
