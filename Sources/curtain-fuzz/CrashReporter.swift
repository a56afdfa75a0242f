#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Names the generated input a seeded run was on when the process crashed, so that it can be replayed
/// with `--index`.
///
/// The handler writes one line with `write(2)` (no allocation), restores the previous handler (Swift's
/// backtracer) and returns; the faulting instruction runs again and the previous handler reports it.
enum CrashReporter {
    /// The index of the input being checked, or -1.
    nonisolated(unsafe) static var current = -1
    /// The run's seed.
    nonisolated(unsafe) static var seed: UInt64 = 0
    nonisolated(unsafe) private static var previous: [sigaction] = []
    private static let signals: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGABRT]

    /// Installs the handler (on an alternate stack, so a stack overflow is reported too).
    static func install(seed: UInt64) {
        self.seed = seed
        let stackSize = 1 << 18
        var stack = stack_t()
        stack.ss_sp = UnsafeMutableRawPointer.allocate(byteCount: stackSize, alignment: 16)
        stack.ss_size = stackSize
        stack.ss_flags = 0
        sigaltstack(&stack, nil)
        previous = signals.map { signal in
            var action = sigaction()
            #if canImport(Glibc)
            action.__sigaction_handler.sa_handler = handle
            #else
            action.__sigaction_u.__sa_handler = handle
            #endif
            action.sa_flags = Int32(SA_ONSTACK)
            sigemptyset(&action.sa_mask)
            var old = sigaction()
            sigaction(signal, &action, &old)
            return old
        }
    }

    private static let handle: @convention(c) (Int32) -> Void = { signal in
        if CrashReporter.current >= 0 {
            CrashReporter.write("\ncurtain-fuzz: signal ")
            CrashReporter.write(number: UInt64(signal))
            CrashReporter.write(" while checking input --index ")
            CrashReporter.write(number: UInt64(CrashReporter.current))
            CrashReporter.write(" of --seed ")
            CrashReporter.write(number: CrashReporter.seed)
            CrashReporter.write("\n")
        }
        for (i, s) in CrashReporter.signals.enumerated() where s == signal {
            var old = CrashReporter.previous[i]
            sigaction(s, &old, nil)
        }
    }

    private static func write(_ text: StaticString) {
        _ = rawWrite(2, text.utf8Start, text.utf8CodeUnitCount)
    }

    private static func write(number: UInt64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { raw in
            var n = number
            var i = raw.count
            repeat {
                i -= 1
                raw[i] = UInt8(ascii: "0") &+ UInt8(n % 10)
                n /= 10
            } while n > 0
            _ = rawWrite(2, raw.baseAddress! + i, raw.count - i)
        }
    }
}

@inline(__always)
private func rawWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, pointer, count)
}
