@testable import Curtain
import Foundation
import Testing

@Suite("Payloads: JSON, with raw bytes for numeric arrays")
struct PayloadCodecTests {
    @Test func numericArraysTravelAsRawBytesAndRoundTrip() throws {
        let doubles: [Double] = [0, -1.5, .pi, .infinity, -0.0, 1e-300]
        let encoded = try PayloadCodec.encode(doubles)
        #expect(encoded.count == 2 + 8 * doubles.count)
        #expect(encoded.first == PayloadCodec.rawMarker)
        let back = try PayloadCodec.decode([Double].self, from: encoded)
        #expect(back.map(\.bitPattern) == doubles.map(\.bitPattern))
        let floats: [Float] = [1, 2.5, -3]
        #expect(try PayloadCodec.decode([Float].self, from: PayloadCodec.encode(floats)) == floats)
        let integers = [Int.min, -1, 0, 7, Int.max]
        #expect(try PayloadCodec.decode([Int].self, from: PayloadCodec.encode(integers)) == integers)
        #expect(try PayloadCodec.decode([Double].self, from: PayloadCodec.encode([Double]())) == [])
    }

    @Test func jsonArraysStillDecodeAndMismatchesAreErrors() throws {
        // Values written as JSON (by earlier versions, or nested in structs) still decode.
        #expect(try PayloadCodec.decode([Double].self, from: Array("[1.5,2]".utf8)) == [1.5, 2])
        struct Wrapped: Codable, Equatable { var values: [Double] }
        let wrapped = Wrapped(values: [1, 2])
        #expect(try PayloadCodec.decode(Wrapped.self, from: PayloadCodec.encode(wrapped)) == wrapped)
        // Raw doubles read as another type, or cut short, are errors, never garbage.
        let raw = try PayloadCodec.encode([1.0, 2.0])
        #expect(throws: DecodingError.self) { try PayloadCodec.decode([Int].self, from: raw) }
        #expect(throws: DecodingError.self) { try PayloadCodec.decode(String.self, from: raw) }
        #expect(throws: DecodingError.self) { try PayloadCodec.decode([Double].self, from: Array(raw.dropLast())) }
    }
}
