import Testing

@testable import CurtainStore

@Suite("StoreBytes and Number")
struct StoreBytesAndNumberTests {
    @Test func inlineAndHeapRepresentationsRoundTrip() {
        for length in [0, 1, 22, 23, 24, 100] {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37) }
            let stored = StoreBytes(bytes)
            #expect(stored.count == length)
            #expect(stored.array == bytes)
            #expect(stored == StoreBytes(bytes))
            #expect(stored.hashValue == StoreBytes(bytes).hashValue)
        }
        #expect(StoreBytes("abc") != StoreBytes("abd"))
        #expect(StoreBytes("abc") != StoreBytes([97, 98, 99, 0] as [UInt8]))
        #expect(StoreBytes(String(repeating: "x", count: 30)) != StoreBytes(String(repeating: "x", count: 31)))
    }

    @Test func decimalFormatting() {
        for value: Int64 in [0, 7, -1, 42, 1_000_000, Int64.max, Int64.min] {
            #expect(StoreBytes(decimal: value).string == String(value))
        }
    }

    @Test func integerParsingFollowsString2ll() {
        func parse(_ text: String) -> Int64? {
            StoreBytes(text).withUnsafeBytes { Number.parseInt64($0) }
        }
        #expect(parse("0") == 0)
        #expect(parse("-12") == -12)
        #expect(parse("9223372036854775807") == Int64.max)
        #expect(parse("-9223372036854775808") == Int64.min)
        #expect(parse("9223372036854775808") == nil)
        #expect(parse("01") == nil)
        #expect(parse("+1") == nil)
        #expect(parse("-0") == nil)
        #expect(parse(" 1") == nil)
        #expect(parse("1 ") == nil)
        #expect(parse("") == nil)
        #expect(parse("1.5") == nil)
    }

    @Test func floatFormattingIsHumanFriendly() {
        func incr(_ a: String, _ b: String) -> String? {
            guard let x = StoreBytes(a).withUnsafeBytes({ Number.parseWideFloat($0) }),
                  let y = StoreBytes(b).withUnsafeBytes({ Number.parseWideFloat($0) })
            else { return nil }
            return Number.formatHuman(x + y).string
        }
        #expect(incr("10.50", "0.1") == "10.6")
        #expect(incr("0", "3") == "3")
        #expect(incr("5.0e3", "2.0e2") == "5200")
        #expect(incr("1", "-1") == "0")
        #expect(incr("abc", "1") == nil)
        #expect(incr(" 1", "1") == nil)
        #expect(incr("nan", "1") == nil)
    }
}
