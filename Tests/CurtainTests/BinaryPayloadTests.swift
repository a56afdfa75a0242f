@testable import Curtain
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import Testing

/// A class hierarchy: `super.encode(to: container.superEncoder())`.
class Animal: Codable, @unchecked Sendable {
    var name: String
    init(name: String) { self.name = name }
}

final class Dog: Animal, @unchecked Sendable {
    var tricks: [String]
    init(name: String, tricks: [String]) {
        self.tricks = tricks
        super.init(name: name)
    }
    private enum CodingKeys: String, CodingKey { case tricks }
    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        tricks = try container.decode([String].self, forKey: .tricks)
        try super.init(from: container.superDecoder())
    }
    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(tricks, forKey: .tricks)
        try super.encode(to: container.superEncoder())
    }
}

/// Writes to a nested container after writing to its parent again (legal Codable, out of order here).
struct Interleaved: Codable, Equatable {
    var a: Int
    var b: Int
    private enum Keys: String, CodingKey { case inner, b }
    private enum InnerKeys: String, CodingKey { case a }
    init(a: Int, b: Int) {
        self.a = a
        self.b = b
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        var inner = container.nestedContainer(keyedBy: InnerKeys.self, forKey: .inner)
        try container.encode(b, forKey: .b)
        try inner.encode(a, forKey: .a)
    }
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        b = try container.decode(Int.self, forKey: .b)
        a = try container.nestedContainer(keyedBy: InnerKeys.self, forKey: .inner).decode(Int.self, forKey: .a)
    }
}

/// Decodes its keys in another order than it encodes them, and reads an absent one.
struct Reordered: Codable, Equatable {
    var first: String
    var second: [Int]
    var third: Double?
    private enum Keys: String, CodingKey { case first, second, third, absent }
    init(first: String, second: [Int], third: Double?) {
        self.first = first
        self.second = second
        self.third = third
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(first, forKey: .first)
        try container.encode(second, forKey: .second)
        try container.encodeIfPresent(third, forKey: .third)
    }
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        #expect(!container.contains(.absent))
        third = try container.decodeIfPresent(Double.self, forKey: .third)
        second = try container.decode([Int].self, forKey: .second)
        first = try container.decode(String.self, forKey: .first)
    }
}

/// Reads its keys out of order, around a nested container, twice, and at other widths than written (each
/// keyed container's read position is a hint kept in the reader; these must find every key all the same).
struct Layered: Codable, Equatable {
    var id: Int
    var x: Int32
    var flag: Bool
    var score: Double
    var small: Int8
    var tail: String
    private enum Keys: String, CodingKey { case id, inner, score, small, tail }
    private enum InnerKeys: String, CodingKey { case x, flag }
    init(id: Int, x: Int32, flag: Bool, score: Double, small: Int8, tail: String) {
        (self.id, self.x, self.flag, self.score, self.small, self.tail) = (id, x, flag, score, small, tail)
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(id, forKey: .id)
        var inner = container.nestedContainer(keyedBy: InnerKeys.self, forKey: .inner)
        try inner.encode(x, forKey: .x)
        try inner.encode(flag, forKey: .flag)
        try container.encode(score, forKey: .score)
        try container.encode(small, forKey: .small)
        try container.encode(tail, forKey: .tail)
    }
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        let inner = try container.nestedContainer(keyedBy: InnerKeys.self, forKey: .inner)
        flag = try inner.decode(Bool.self, forKey: .flag)
        score = try container.decode(Double.self, forKey: .score)
        x = try inner.decode(Int32.self, forKey: .x)
        #expect(try inner.decode(Int64.self, forKey: .x) == Int64(x))
        id = try container.decode(Int.self, forKey: .id)
        #expect(try container.decode(Int.self, forKey: .id) == id)
        // Written as an Int8, read wider; a Double read as a Float.
        small = Int8(try container.decode(Int.self, forKey: .small))
        #expect(try container.decode(Float.self, forKey: .score) == Float(score))
        tail = try container.decode(String.self, forKey: .tail)
    }
}

@Suite("Binary payloads: Curtain's own format")
struct BinaryPayloadTests {
    func roundTrip<T: Codable & Equatable>(_ value: T) throws -> T {
        let bytes = try PayloadEncoder().encode(value)
        #expect(bytes.first == PayloadWire.marker && bytes[1] == PayloadWire.version)
        let back = try PayloadDecoder().decode(T.self, from: bytes)
        // The same value JSON gives back.
        let json = try JSONDecoder().decode(T.self, from: JSONEncoder().encode(value))
        #expect(back == json)
        return back
    }

    @Test func valuesOfEveryShapeRoundTripLikeJSON() throws {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<200 {
            let record = PayloadFuzz.record(&rng)
            #expect(try roundTrip(record) == record)
        }
        #expect(try roundTrip([Int: String](uniqueKeysWithValues: [(1, "one"), (-7, "minus seven")])) == [1: "one", -7: "minus seven"])
        #expect(try roundTrip(Set(["a", "b"])) == ["a", "b"])
        #expect(try roundTrip([[1.5, 2], [], [3]]) == [[1.5, 2], [], [3]])
        #expect(try roundTrip(Optional(Optional(3))) == 3)
        #expect(try roundTrip([Int?.none, 4]) == [nil, 4])
        #expect(try roundTrip(Int8.min) == Int8.min)
        #expect(try roundTrip(UInt64.max) == UInt64.max)
        #expect(try roundTrip("") == "")
        #expect(try roundTrip(Date(timeIntervalSince1970: 1_700_000_000.25)) == Date(timeIntervalSince1970: 1_700_000_000.25))
        #expect(try roundTrip(Reordered(first: "x", second: [1, 2], third: nil)) == Reordered(first: "x", second: [1, 2], third: nil))
        #expect(try roundTrip(Reordered(first: "y", second: [], third: 0.5)) == Reordered(first: "y", second: [], third: 0.5))
        let dog = try PayloadDecoder().decode(Dog.self, from: PayloadEncoder().encode(Dog(name: "Rex", tricks: ["sit"])))
        #expect(dog.name == "Rex" && dog.tricks == ["sit"])
    }

    @Test func numericArraysAreRawBytes() throws {
        let doubles = (0..<1000).map { Double($0) * 0.1 }
        let bytes = try PayloadEncoder().encode(doubles)
        // Header, tag, element kind, a two-byte count, the elements, an empty trailer.
        #expect(bytes.count == 6 + 2 + 2 + 8 * 1000 + 2)
        #expect(try PayloadDecoder().decode([Double].self, from: bytes).map(\.bitPattern) == doubles.map(\.bitPattern))
        let small: [UInt16] = [0, 1, 65535]
        #expect(try PayloadDecoder().decode([UInt16].self, from: PayloadEncoder().encode(small)) == small)
        // Read as another element type: an error naming both, never reinterpreted bytes.
        #expect {
            try PayloadDecoder().decode([Float].self, from: bytes)
        } throws: { error in
            "\(error)".contains("not of Float") && "\(error)".contains("byte 7")
        }
    }

    @Test func arraysOfPackedVectorsAreRawBytesOfTheirScalars() throws {
        let points = (0..<1000).map { SIMD2(Double($0) * 0.5, -Double($0)) }
        let bytes = try PayloadEncoder().encode(points)
        // Header, tag, element kind, a two-byte count (2,000 Doubles), the elements, an empty trailer.
        #expect(bytes.count == 6 + 2 + 2 + 16 * 1000 + 2)
        #expect(try roundTrip(points) == points)
        #expect(try roundTrip([SIMD4<Float>(1, 2, 3, 4), SIMD4(-1, 0, 0.25, 8)]) == [SIMD4(1, 2, 3, 4), SIMD4(-1, 0, 0.25, 8)])
        #expect(try roundTrip([SIMD2<Int32>]()) == [])
        #expect(try roundTrip(Reordered(first: "v", second: [1], third: nil)) == Reordered(first: "v", second: [1], third: nil))
        // SIMD3 has a padding lane: the general path, still equal to JSON's round trip.
        #expect(try roundTrip([SIMD3<Double>(1, 2, 3)]) == [SIMD3(1, 2, 3)])
        // 2,000 Doubles are 1,000 SIMD2 but not SIMD4 (500) nor SIMD8 (an odd count is refused).
        let doubles = try PayloadEncoder().encode((0..<2001).map(Double.init))
        #expect {
            try PayloadDecoder().decode([SIMD2<Double>].self, from: doubles)
        } throws: { error in
            "\(error)".contains("do not make vectors of 2")
        }
        #expect(try PayloadDecoder().decode([SIMD4<Double>].self, from: bytes).count == 500)
    }

    @Test func arraysOfNumbersAreWrittenAtTheirExactSizeAtEveryLength() throws {
        // Around each length where the count's varint grows a byte, alone (written straight into the
        // result) and inside a struct (the writer's memory grown by doubling).
        struct Holder: Codable, Equatable {
            var bytes: [UInt8]
            var doubles: [Double]
        }
        for n in [0, 1, 15, 16, 127, 128, 129, 16383, 16384, 70000] {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let doubles = (0..<n).map { Double($0) * 0.25 }
            let varint = n < 128 ? 1 : n < 16384 ? 2 : 3
            let encodedBytes = try PayloadEncoder().encode(bytes)
            #expect(encodedBytes.count == 6 + 2 + varint + n + 2)
            #expect(try PayloadDecoder().decode([UInt8].self, from: encodedBytes) == bytes)
            let encodedDoubles = try PayloadEncoder().encode(doubles)
            #expect(encodedDoubles.count == 6 + 2 + varint + 8 * n + 2)
            #expect(try PayloadDecoder().decode([Double].self, from: encodedDoubles) == doubles)
            let holder = Holder(bytes: bytes, doubles: doubles)
            #expect(try roundTrip(holder) == holder)
        }
    }

    @Test func integersWidenAndNarrowOnlyWhenTheyFit() throws {
        #expect(try PayloadDecoder().decode(Int64.self, from: PayloadEncoder().encode(Int8(-5))) == -5)
        #expect(try PayloadDecoder().decode(UInt8.self, from: PayloadEncoder().encode(200)) == 200)
        #expect(throws: DecodingError.self) { try PayloadDecoder().decode(UInt8.self, from: PayloadEncoder().encode(-1)) }
        #expect(throws: DecodingError.self) { try PayloadDecoder().decode(String.self, from: PayloadEncoder().encode(1)) }
    }

    @Test func keyedScalarsAreFoundInAnyOrderAndAtAnyWidth() throws {
        var values: [Layered] = []
        for i in 0..<50 {
            let score = Double(i) / 4
            values.append(Layered(id: i * 1_000_003, x: Int32(i - 25), flag: i % 2 == 0, score: score, small: Int8(i), tail: i % 3 == 0 ? "té\(i)🙂" : "t\(i)"))
        }
        #expect(try roundTrip(values) == values)
        // A field of the wrong kind is a type mismatch naming the key, not a misread.
        struct Flag: Codable { var id: Bool }
        #expect {
            try PayloadDecoder().decode(Flag.self, from: PayloadEncoder().encode(["id": 3]))
        } throws: { error in
            guard case DecodingError.typeMismatch(_, let context) = error else { return false }
            return context.codingPath.map(\.stringValue) == ["id"]
        }
        // A scalar cut short inside its container (the container's length claims less than the value needs)
        // is an error, not a read past the container.
        var bytes = try PayloadEncoder().encode(["id": 7])
        let keyed = bytes.firstIndex(of: PayloadWire.Tag.keyed.rawValue)!
        bytes[keyed + 1] -= 1
        #expect(throws: DecodingError.self) { try PayloadDecoder().decode([String: Int].self, from: bytes) }
        // Text that is not UTF-8 is refused, in a keyed container and in an array.
        var text = try PayloadEncoder().encode(["id": "abc"])
        text[text.firstIndex(of: UInt8(ascii: "b"))!] = 0xFF
        #expect(throws: DecodingError.self) { try PayloadDecoder().decode([String: String].self, from: text) }
        struct Named: Codable { var id: String }
        #expect(throws: DecodingError.self) { try PayloadDecoder().decode(Named.self, from: text) }
        var list = try PayloadEncoder().encode(["abc"])
        list[list.firstIndex(of: UInt8(ascii: "b"))!] = 0xC0
        #expect(throws: DecodingError.self) { try PayloadDecoder().decode([String].self, from: list) }
        struct Wide: Codable { var id: Int }
        #expect(throws: DecodingError.self) { try PayloadDecoder().decode(Wide.self, from: bytes) }
    }

    @Test func containersWrittenOutOfOrderFallBackToJSON() throws {
        #expect(throws: PayloadOrderError.self) { try PayloadEncoder().encodeSharing(Interleaved(a: 1, b: 2)) }
        let encoded = try PayloadCodec.encodePayload(Interleaved(a: 1, b: 2))
        #expect(encoded.bytes.first == UInt8(ascii: "{"))
        #expect(try PayloadCodec.decodePayload(Interleaved.self, from: encoded.bytes) == Interleaved(a: 1, b: 2))
    }

    @Test func hostileBytesFailWithTheTypeAndOffset() throws {
        let valid = try PayloadEncoder().encode(FuzzLeaf(id: 1, weight: 2, label: "three", on: true))
        // Every truncation is an error naming the type (never a crash or a partial value).
        for cut in 0..<valid.count {
            #expect {
                try PayloadDecoder().decode(FuzzLeaf.self, from: Array(valid.prefix(cut)))
            } throws: { error in
                error is DecodingError && "\(error)".contains("byte")
            }
        }
        // A count of 2^60 doubles is refused before anything is allocated.
        var huge: [UInt8] = [PayloadWire.marker, 1, 0, 0, 0, 0, 0x11, 0x0C, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]
        huge.replaceSubrange(2..<6, with: [UInt8(huge.count), 0, 0, 0])
        huge += [0, 0]
        #expect {
            try PayloadDecoder().decode([Double].self, from: huge)
        } throws: { error in
            "\(error)".contains("Array<Double> at byte 6") && "\(error)".contains("run past the end")
        }
        // A later version is named as such.
        var later = valid
        later[1] = 9
        #expect { try PayloadDecoder().decode(FuzzLeaf.self, from: later) } throws: { "\($0)".contains("version 9") }
        // Nesting deeper than the limit is an error, not a stack overflow.
        var tree = FuzzTree.leaf(1)
        for _ in 0..<600 { tree = .node([tree]) }
        let deep = try PayloadEncoder().encode(tree)
        #expect { try PayloadDecoder().decode(FuzzTree.self, from: deep) } throws: { "\($0)".contains("nested deeper than 512") }
    }

    @Test func seededFuzzNeverCrashesAndValidPayloadsRoundTrip() async throws {
        // In chunks, yielding between them: a few seconds of synchronous work must not hold a thread of the
        // shared pool that other tests' drivers need (a starved driver notices a cancellation late).
        var counts = PayloadFuzz.Counts()
        for chunk in 0..<40 {
            let part = try PayloadFuzz.run(count: 500, start: chunk * 500, generator: { SplitMix64(seed: 99, index: $0) })
            counts.roundTrips += part.roundTrips
            counts.rejected += part.rejected
            counts.decoded += part.decoded
            await Task.yield()
        }
        #expect(counts.roundTrips == 5_000)
        #expect(counts.rejected > 5_000)
        #expect(counts.decoded > counts.roundTrips)
    }

    @Test func largeValuesAreSharedByHashAndStoredOnce() throws {
        struct Model: Codable, Equatable {
            var points: [Double]
            var centroids: [Double]
            var labels: [String]
        }
        let points = (0..<100_000).map(Double.init)
        let labels = (0..<20_000).map { "label \($0)" }
        var encoder = PayloadEncoder()
        encoder.shareAbove = 64 * 1024
        let first = try encoder.encodeSharing(Model(points: points, centroids: [1, 2], labels: labels))
        let second = try encoder.encodeSharing(Model(points: points, centroids: [3, 4], labels: labels))
        // The point set and the labels (a composite) are shared; the small centroids travel inline.
        #expect(first.shared.count == 2)
        #expect(first.bytes.count < 1024)
        #expect(first.shared.map(\.0.hash) == second.shared.map(\.0.hash))
        #expect(first.bytes != second.bytes)
        // Decoding resolves them through a source; without one the error says what is missing.
        #expect { try PayloadDecoder().decode(Model.self, from: first.bytes) } throws: { "\($0)".contains("shares a value by reference") }
        let cache = SharedValueCache(limit: 1 << 30)
        let source = try TaskSharedValues.preloaded(first.shared.map { (ref: $0.0, bytes: $0.1) }, cache: cache)
        let back = try first.bytes.withUnsafeBytes { try PayloadDecoder().decode(Model.self, from: $0, shared: source) }
        #expect(back == Model(points: points, centroids: [1, 2], labels: labels))
        #expect(cache.used == first.shared.map(\.1.count).reduce(0, +))
    }
}
