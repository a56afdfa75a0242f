#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Number parsing and formatting with Redis' exact rules.
enum Number {
    /// Parses a signed 64-bit decimal integer the way Redis' `string2ll` does: an optional `-`, no `+`,
    /// no leading zeros (except `"0"` itself), no spaces, no overflow.
    @inline(__always)
    static func parseInt64(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        let count = bytes.count
        if count == 0 || count > 20 { return nil }
        if count == 1 {
            let digit = bytes[0] &- 48
            return digit < 10 ? Int64(digit) : nil
        }
        var index = 0
        var negative = false
        if bytes[0] == UInt8(ascii: "-") {
            negative = true
            index = 1
        }
        // First digit must be 1…9.
        let first = bytes[index] &- 48
        guard first >= 1 && first <= 9 else { return nil }
        var magnitude = UInt64(first)
        index += 1
        while index < count {
            let digit = bytes[index] &- 48
            guard digit < 10 else { return nil }
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit))
            if overflow1 || overflow2 { return nil }
            magnitude = sum
            index += 1
        }
        if negative {
            if magnitude > UInt64(Int64.max) + 1 { return nil }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        if magnitude > UInt64(Int64.max) { return nil }
        return Int64(magnitude)
    }

    /// Parses a double as Redis does for timeouts and float arguments (`strtod`, no leading space, no
    /// trailing garbage, no NaN).
    static func parseDouble(_ bytes: UnsafeRawBufferPointer) -> Double? {
        guard bytes.count > 0, bytes.count <= 5 * 1024, !ASCII.isSpace(bytes[0]) else { return nil }
        return withCString(bytes) { pointer, count in
            var end: UnsafeMutablePointer<CChar>? = nil
            errno = 0
            let value = strtod(pointer, &end)
            guard let end, UnsafePointer(end) - pointer == count, !value.isNaN else { return nil }
            if errno == ERANGE && (value.isInfinite || value == 0) { return nil }
            return value
        }
    }

    #if arch(x86_64) || arch(i386)
    /// The wide float Redis uses for `INCRBYFLOAT` (`long double`).
    typealias WideFloat = Float80
    #else
    /// The wide float Redis uses for `INCRBYFLOAT` (`long double`, here the same as `double`).
    typealias WideFloat = Double
    #endif

    /// Parses a `long double` as Redis' `string2ld` does.
    static func parseWideFloat(_ bytes: UnsafeRawBufferPointer) -> WideFloat? {
        guard bytes.count > 0, bytes.count <= 5 * 1024, !ASCII.isSpace(bytes[0]) else { return nil }
        return withCString(bytes) { pointer, count -> WideFloat? in
            var end: UnsafeMutablePointer<CChar>? = nil
            errno = 0
            #if arch(x86_64) || arch(i386)
            let value = strtold(pointer, &end)
            #else
            let value = strtod(pointer, &end)
            #endif
            guard let end, UnsafePointer(end) - pointer == count, !value.isNaN else { return nil }
            if errno == ERANGE && (value.isInfinite || value == 0) { return nil }
            return value
        }
    }

    /// Formats a `long double` as Redis' `ld2string(…, LD_STR_HUMAN)` does: `%.17Lf`, trailing zeros and
    /// a trailing point removed.
    static func formatHuman(_ value: WideFloat) -> StoreBytes {
        var buffer = [CChar](repeating: 0, count: 5 * 1024 + 64)
        let written = buffer.withUnsafeMutableBufferPointer { out -> Int in
            #if arch(x86_64) || arch(i386)
            return Int(withVaList([value]) { vsnprintf(out.baseAddress!, out.count, "%.17Lf", $0) })
            #else
            return Int(withVaList([value]) { vsnprintf(out.baseAddress!, out.count, "%.17f", $0) })
            #endif
        }
        var length = min(max(written, 0), buffer.count - 1)
        if buffer[0..<length].contains(CChar(UInt8(ascii: "."))) {
            while length > 0 && buffer[length - 1] == CChar(UInt8(ascii: "0")) { length -= 1 }
            if length > 0 && buffer[length - 1] == CChar(UInt8(ascii: ".")) { length -= 1 }
        }
        if length == 2 && buffer[0] == CChar(UInt8(ascii: "-")) && buffer[1] == CChar(UInt8(ascii: "0")) {
            return StoreBytes("0")
        }
        return buffer.withUnsafeBytes { StoreBytes(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
    }

    /// Calls `body` with a NUL-terminated copy of `bytes` and its length.
    private static func withCString<R>(
        _ bytes: UnsafeRawBufferPointer,
        _ body: (UnsafePointer<CChar>, Int) -> R
    ) -> R {
        let count = bytes.count
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: count + 1) { scratch in
            let raw = UnsafeMutableRawBufferPointer(scratch)
            raw.copyMemory(from: bytes)
            scratch[count] = 0
            return body(UnsafePointer(scratch.baseAddress!), count)
        }
    }
}
