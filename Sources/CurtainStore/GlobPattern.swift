/// Redis-style glob matching (`KEYS`, `SCAN … MATCH`, `PSUBSCRIBE`, `CONFIG GET`).
///
/// `*` matches any run of bytes, `?` any one byte, `[abc]` one of a set, `[^abc]` one byte not in it,
/// `[a-z]` a range (either order), and `\x` the byte `x` literally (also inside brackets). Matching works on
/// raw bytes, so patterns and subjects are binary safe. The algorithm backtracks only to the last `*`, so
/// it runs in O(pattern × subject) time and never recurses.
enum GlobPattern {
    /// Whether `subject` matches `pattern`.
    static func matches(_ pattern: UnsafeRawBufferPointer, _ subject: UnsafeRawBufferPointer) -> Bool {
        var p = 0
        var s = 0
        // Where to resume after the most recent `*`: the pattern index after it, and the subject index it
        // currently absorbs up to.
        var starPattern = -1
        var starSubject = 0
        let plen = pattern.count
        let slen = subject.count
        while true {
            if p < plen {
                let c = pattern[p]
                if c == UInt8(ascii: "*") {
                    // Collapse runs of stars.
                    while p < plen && pattern[p] == UInt8(ascii: "*") { p += 1 }
                    if p == plen { return true }
                    starPattern = p
                    starSubject = s
                    continue
                }
                if s < slen {
                    if let next = matchOne(pattern, at: p, subject[s]) {
                        p = next
                        s += 1
                        continue
                    }
                }
            } else if s == slen {
                return true
            }
            // Mismatch: let the last star absorb one more byte.
            guard starPattern >= 0, starSubject < slen else { return false }
            starSubject += 1
            s = starSubject
            p = starPattern
        }
    }

    /// Whether `subject` matches `pattern`.
    static func matches(_ pattern: StoreBytes, _ subject: StoreBytes) -> Bool {
        pattern.withUnsafeBytes { p in subject.withUnsafeBytes { s in matches(p, s) } }
    }

    /// Whether `pattern` is `*`, which matches everything.
    static func isMatchAll(_ pattern: UnsafeRawBufferPointer) -> Bool {
        pattern.count == 1 && pattern[0] == UInt8(ascii: "*")
    }

    /// Matches the single-byte token at `p` (`?`, a class, an escape or a literal) against `byte`.
    ///
    /// - Returns: the pattern index after the token when it matches, `nil` otherwise.
    private static func matchOne(_ pattern: UnsafeRawBufferPointer, at start: Int, _ byte: UInt8) -> Int? {
        let plen = pattern.count
        var p = start
        switch pattern[p] {
        case UInt8(ascii: "?"):
            return p + 1
        case UInt8(ascii: "["):
            p += 1
            var negate = false
            if p < plen && pattern[p] == UInt8(ascii: "^") {
                negate = true
                p += 1
            }
            var matched = false
            while true {
                if p >= plen {
                    // Unterminated class: what was read so far is the class (Redis' behaviour).
                    break
                }
                let c = pattern[p]
                if c == UInt8(ascii: "\\") && plen - p >= 2 {
                    p += 1
                    if pattern[p] == byte { matched = true }
                } else if c == UInt8(ascii: "]") {
                    break
                } else if plen - p >= 3 && pattern[p + 1] == UInt8(ascii: "-") {
                    var low = c
                    var high = pattern[p + 2]
                    if low > high { swap(&low, &high) }
                    if byte >= low && byte <= high { matched = true }
                    p += 2
                } else if c == byte {
                    matched = true
                }
                p += 1
            }
            if negate { matched.toggle() }
            // Skip the closing bracket (if any).
            return matched ? min(p + 1, plen) : nil
        case UInt8(ascii: "\\") where plen - p >= 2:
            return pattern[p + 1] == byte ? p + 2 : nil
        default:
            return pattern[p] == byte ? p + 1 : nil
        }
    }
}
