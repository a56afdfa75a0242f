#if !CURTAIN_LIBFUZZER
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import CurtainTestFunctions
import CurtainTestSupport

/// `curtain-fuzz`: feeds random and malformed RESP to the decoder, the embedded store and the client.
///
/// ```
/// curtain-fuzz decoder [--count N] [--seed S] [--start I] [--index I] [--max-attribute-chain N] [--verbose]
/// curtain-fuzz server  [--count N] [--seed S] [--concurrency C] [--skip-reply-check] [--verbose]
/// curtain-fuzz client  [--count N] [--seed S] [--verbose]
/// curtain-fuzz payload [--count N] [--seed S] [--start I]
/// ```
/// Exits 0 when every invariant held, 1 on a violation, 2 on a usage error. Built with
/// `-DCURTAIN_LIBFUZZER` (see `Scripts/fuzz.sh`) this file is left out and libFuzzer drives
/// `LLVMFuzzerTestOneInput` instead.
@main
struct CurtainFuzz {
    static let usage = """
        usage: curtain-fuzz decoder [--count N] [--seed S] [--start I] [--index I] [--max-attribute-chain N] [--verbose]
               curtain-fuzz server  [--count N] [--seed S] [--concurrency C] [--skip-reply-check] [--verbose]
               curtain-fuzz client  [--count N] [--seed S] [--verbose]
               curtain-fuzz payload [--count N] [--seed S] [--start I]
        """

    static func fail(_ message: String, code: Int32) -> Never {
        print(message)
        fflush(nil)
        exit(code)
    }

    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        guard let mode = arguments.first, ["decoder", "server", "client", "payload"].contains(mode) else {
            fail(usage, code: 2)
        }
        arguments.removeFirst()
        var options: [String: String] = [:]
        var verbose = false
        var skipReplyCheck = false
        while let flag = arguments.first {
            arguments.removeFirst()
            if flag == "--verbose" || flag == "--skip-reply-check" {
                if flag == "--verbose" { verbose = true } else { skipReplyCheck = true }
                continue
            }
            guard flag.hasPrefix("--"), let value = arguments.first else { fail(usage, code: 2) }
            arguments.removeFirst()
            options[String(flag.dropFirst(2))] = value
        }
        func number(_ name: String, _ fallback: Int) -> Int {
            guard let text = options.removeValue(forKey: name) else { return fallback }
            guard let n = Int(text.filter { $0 != "_" }), n >= 0 else {
                fail("--\(name) needs a non-negative integer, not '\(text)'", code: 2)
            }
            return n
        }
        let seed = UInt64(number("seed", 1))
        let clock = ContinuousClock()
        let started = clock.now
        func elapsed() -> String {
            let seconds = (clock.now - started) / .seconds(1)
            return "\((seconds * 10).rounded() / 10) s"
        }

        switch mode {
        case "decoder":
            var fuzz = DecoderFuzz(seed: seed, count: number("count", 1_000_000))
            fuzz.start = number("start", 0)
            fuzz.maxAttributeChain = number("max-attribute-chain", fuzz.maxAttributeChain)
            fuzz.verbose = verbose
            if let index = options["index"] {
                _ = options.removeValue(forKey: "index")
                guard let i = Int(index) else { fail("--index needs an integer", code: 2) }
                fuzz.start = i
                fuzz.count = 1
                fuzz.verbose = true
            }
            guard options.isEmpty else { fail("unknown options: \(options.keys.sorted())\n\(usage)", code: 2) }
            CrashReporter.install(seed: seed)
            print("decoder fuzz: \(fuzz.count) inputs from #\(fuzz.start), seed \(seed)")
            fflush(nil)
            do {
                let c = try fuzz.run()
                print(
                    "decoder fuzz OK: \(c.inputs) inputs (\(c.bytes) bytes): \(c.exact) valid frame sets decoded exactly, "
                        + "\(c.values) values, \(c.incomplete) incomplete, \(c.errors) protocol errors, in \(elapsed())")
            } catch {
                fail("decoder fuzz FAILED (seed \(seed), input --index \(CrashReporter.current)): \(error)", code: 1)
            }
        case "payload":
            let count = number("count", 1_000_000)
            let start = number("start", 0)
            guard options.isEmpty else { fail("unknown options: \(options.keys.sorted())\n\(usage)", code: 2) }
            CrashReporter.install(seed: seed)
            print("payload fuzz: \(count) inputs from #\(start), seed \(seed)")
            fflush(nil)
            do {
                let c = try PayloadFuzz.run(
                    count: count, start: start, generator: { SplitMix64(seed: seed, index: $0) },
                    onInput: { CrashReporter.current = $0 })
                var usage = rusage()
                #if canImport(Glibc)
                getrusage(RUSAGE_SELF.rawValue, &usage)
                #else
                getrusage(RUSAGE_SELF, &usage)
                #endif
                let peakMiB = usage.ru_maxrss / 1024
                print(
                    "payload fuzz OK: \(c.inputs) inputs (\(c.bytes) bytes): \(c.roundTrips) valid payloads round-tripped, "
                        + "\(c.decoded) decoded as some type, \(c.rejected) refused with a DecodingError; peak RSS \(peakMiB) MiB; in \(elapsed())")
                // Hostile lengths must never be allocated: a run of small inputs stays small.
                if peakMiB > 512 { fail("payload fuzz FAILED: peak RSS \(peakMiB) MiB for inputs under 1 KiB", code: 1) }
            } catch {
                fail("payload fuzz FAILED (seed \(seed), input --start \(CrashReporter.current) --count 1): \(error)", code: 1)
            }
        case "server":
            var fuzz = ServerFuzz(seed: seed, count: number("count", 100_000))
            fuzz.concurrency = max(1, number("concurrency", fuzz.concurrency))
            fuzz.checkReplyFormat = !skipReplyCheck
            fuzz.verbose = verbose
            guard options.isEmpty else { fail("unknown options: \(options.keys.sorted())\n\(usage)", code: 2) }
            print("server fuzz: \(fuzz.count) inputs, seed \(seed), \(fuzz.concurrency) connections at a time")
            fflush(nil)
            do {
                let c = try await fuzz.run()
                print(
                    "server fuzz OK: \(c.inputs) inputs over \(c.connections) connections (\(c.bytesSent) bytes sent, "
                        + "\(c.bytesReceived) received); \(c.protocolErrors) protocol errors, \(c.closedByServer) closed "
                        + "cleanly, \(c.resets) reset, \(c.timeouts) timed out; canaries intact after \(c.canaryChecks) checks; "
                        + "in \(elapsed())")
            } catch {
                fail("server fuzz FAILED (seed \(seed)): \(error)", code: 1)
            }
        default:
            var fuzz = ClientFuzz(seed: seed, count: number("count", 20_000))
            fuzz.verbose = verbose
            guard options.isEmpty else { fail("unknown options: \(options.keys.sorted())\n\(usage)", code: 2) }
            print("client fuzz: \(fuzz.count) connections, seed \(seed)")
            fflush(nil)
            do {
                let c = try await fuzz.run()
                print(
                    "client fuzz OK: \(c.connections) connections: \(c.exact) exact, \(c.otherValues) other replies, "
                        + "\(c.protocolViolations) protocol violations, \(c.connectionClosed) closed early; in \(elapsed())")
            } catch {
                fail("client fuzz FAILED (seed \(seed)): \(error)", code: 1)
            }
        }
        fflush(nil)
    }
}
#endif
