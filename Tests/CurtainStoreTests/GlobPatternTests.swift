import Testing

@testable import CurtainStore

@Suite("GlobPattern")
struct GlobPatternTests {
    private func matches(_ pattern: String, _ subject: String) -> Bool {
        GlobPattern.matches(StoreBytes(pattern), StoreBytes(subject))
    }

    @Test func literalsAndWildcards() {
        #expect(matches("hello", "hello"))
        #expect(!matches("hello", "hell"))
        #expect(matches("h?llo", "hallo"))
        #expect(!matches("h?llo", "hllo"))
        #expect(matches("h*llo", "hllo"))
        #expect(matches("h*llo", "heeeello"))
        #expect(matches("*", ""))
        #expect(matches("**a**", "bab"))
        #expect(!matches("a*b", "acbd"))
        #expect(matches("a*b*c", "aXbYbZc"))
        #expect(matches("task:*:result", "task:42:result"))
        #expect(!matches("task:*:result", "task:42:results"))
    }

    @Test func characterClasses() {
        #expect(matches("h[ae]llo", "hello"))
        #expect(matches("h[ae]llo", "hallo"))
        #expect(!matches("h[ae]llo", "hillo"))
        #expect(matches("h[^e]llo", "hallo"))
        #expect(!matches("h[^e]llo", "hello"))
        #expect(matches("h[a-b]llo", "hbllo"))
        #expect(!matches("h[a-b]llo", "hcllo"))
        #expect(matches("h[z-a]llo", "hmllo"))  // reversed ranges work, as in Redis
        #expect(matches("[\\]]", "]"))
        #expect(matches("x[abc", "xb"))  // unterminated class: the rest is the class
    }

    @Test func escapes() {
        #expect(matches("h\\*llo", "h*llo"))
        #expect(!matches("h\\*llo", "hello"))
        #expect(matches("h\\?", "h?"))
        #expect(matches("a\\", "a\\"))
    }

    @Test func binarySubjects() {
        let subject = StoreBytes([0, 255, 10, 42] as [UInt8])
        #expect(GlobPattern.matches(StoreBytes("*"), subject))
        #expect(GlobPattern.matches(StoreBytes("????"), subject))
        #expect(!GlobPattern.matches(StoreBytes("???"), subject))
    }

    @Test func pathologicalPatternTerminates() {
        let pattern = String(repeating: "a*", count: 30) + "b"
        let subject = String(repeating: "a", count: 200)
        #expect(!matches(pattern, subject))
    }
}
