@testable import Curtain
import CurtainTestSupport
import NIOCore
import Testing

@Suite("Task envelopes")
struct TaskEnvelopeTests {
    let sample = TaskEnvelope(
        buildID: "b1f2", jobID: "job-7", index: 41, attempt: 2, function: "Square",
        functionPayload: Array("{\"offset\":1}".utf8), input: [0, 13, 10, 255])

    @Test func roundTrips() throws {
        let decoded = try TaskEnvelope(decoding: try sample.encoded())
        #expect(decoded == sample)
        var marked = sample
        marked.crashes = 2
        marked.suspect = true
        marked.timeoutMilliseconds = 1500
        #expect(try TaskEnvelope(decoding: try marked.encoded()) == marked)
    }

    @Test func resultsRoundTripAndRejectTruncation() throws {
        let results = [
            TaskResult(jobID: "j", index: 3, attempt: 2, crashes: 1, workerID: "w1", durationMicroseconds: 1234, outcome: .success([1, 2])),
            TaskResult(
                jobID: "j", index: 4, attempt: 1, workerID: "w2",
                outcome: .failure(RemoteFailure(kind: .timedOut, errorType: "Curtain.TaskTimeout", message: "slow"))),
        ]
        for result in results {
            let bytes = Array(try result.encoded().readableBytesView)
            #expect(try TaskResult(decoding: ByteBuffer(bytes: bytes)) == result)
            for length in 0..<bytes.count {
                #expect(throws: EnvelopeError.self) { _ = try TaskResult(decoding: ByteBuffer(bytes: bytes[..<length])) }
            }
        }
    }

    @Test func everyTruncationIsAnErrorNotACrash() throws {
        let bytes = Array(try sample.encoded().readableBytesView)
        for length in 0..<bytes.count {
            #expect(throws: EnvelopeError.self) { _ = try TaskEnvelope(decoding: ByteBuffer(bytes: bytes[..<length])) }
        }
        #expect(throws: EnvelopeError.self) { _ = try TaskEnvelope(decoding: ByteBuffer(bytes: bytes + [0])) }
    }

    @Test func limitsAndBadFieldsAreNamed() throws {
        var big = sample
        big.input = Array(repeating: 7, count: 2000)
        do {
            _ = try TaskEnvelope(decoding: try big.encoded(), maximumPayload: 1000)
            Issue.record("an input over the limit must be refused")
        } catch {
            #expect(error.description.contains("input declares 2000 bytes"))
        }
        var bytes = Array(try sample.encoded().readableBytesView)
        bytes[0] = UInt8(ascii: "X")
        #expect(throws: EnvelopeError(description: "not a Curtain task envelope (bad magic or unsupported version)")) {
            _ = try TaskEnvelope(decoding: ByteBuffer(bytes: bytes))
        }
    }

    @Test func randomBytesNeverCrashTheDecoder() throws {
        var rng = SplitMix64(seed: 7)
        let valid = Array(try sample.encoded().readableBytesView)
        for i in 0..<5000 {
            var bytes = i % 2 == 0 ? valid : (0..<rng.below(64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if !bytes.isEmpty {
                for _ in 0..<(1 + rng.below(4)) { bytes[rng.below(bytes.count)] = UInt8(truncatingIfNeeded: rng.next()) }
            }
            // Either a well-formed envelope or an EnvelopeError: anything else (a trap) fails the run.
            if let decoded = try? TaskEnvelope(decoding: ByteBuffer(bytes: bytes)) {
                #expect(Array(try decoded.encoded().readableBytesView) == bytes)
            }
        }
    }
}
