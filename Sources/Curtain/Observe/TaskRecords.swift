public import CurtainRESP
import Distributed
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time in microseconds since the Unix epoch, on the store's clock: each process measures once
/// how far its own clock is from the store's `TIME` (taking the sample with the shortest round trip), so
/// the times one job's processes record on different hosts line up in its timeline.
public enum StoreClock {
    private static let offset = Atomic<Int64>(0)

    /// Now, in microseconds since the Unix epoch, corrected to the store's clock.
    public static func now() -> Int64 { local() + offset.load(ordering: .relaxed) }

    /// This process's own clock, in microseconds since the Unix epoch.
    static func local() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000
    }

    /// The correction last measured, in microseconds (the store's clock minus this process's).
    public static var correction: Int64 { offset.load(ordering: .relaxed) }

    /// Measures the correction against the store `client` reaches (three samples, the shortest round trip
    /// kept); a store that does not answer `TIME` leaves it as it was.
    public static func align(with client: RESPClient) async {
        var best: (rtt: Int64, offset: Int64)?
        for _ in 0..<3 {
            let before = local()
            guard let reply = try? await client.send(RESPCommand("TIME")), let parts = reply.array, parts.count == 2,
                let seconds = parts[0].string.flatMap({ Int64($0) }), let micros = parts[1].string.flatMap({ Int64($0) })
            else { break }
            let after = local()
            let store = seconds * 1_000_000 + micros
            let sample = (rtt: after - before, offset: store - (before + after) / 2)
            if best.map({ sample.rtt < $0.rtt }) ?? true { best = sample }
        }
        if let best { offset.store(best.offset, ordering: .relaxed) }
    }
}

/// What happened to one run of one task, as its driver saw it: when it was submitted, started, ended and
/// received (microseconds since the Unix epoch, on the store's clock, ``StoreClock``), where it ran, the
/// bytes that crossed, and how it ended.
public struct TaskRecord: Sendable, Hashable, Codable {
    /// The job the task belongs to.
    public var job: String
    /// The function's registered name.
    public var function: String
    /// The task's index in its job.
    public var index: UInt64
    /// Which run of the task this was (1 for the first).
    public var attempt: UInt16
    /// The worker that ran it.
    public var worker: String
    /// When the driver handed it to the store.
    public var submitted: Int64
    /// When its function started on the worker (0 if it never ran: a crash, a refused envelope).
    public var started: Int64
    /// When its function ended on the worker.
    public var ended: Int64
    /// When the driver read its result.
    public var received: Int64
    /// Bytes of the task as sent (captures and input; values shared by hash count where they were fetched).
    public var bytesIn: Int
    /// Bytes of its output (or failure) as received.
    public var bytesOut: Int
    /// Bytes of shared values its worker fetched for it.
    public var fetchedBytes: Int
    /// `nil` when the function returned; otherwise the failure's kind (`thrown`, `timedOut`, `crashed`, …).
    public var failureKind: String?
    /// The failure's error type and message.
    public var failure: String?
    /// The input as an error message shows it (failures only).
    public var input: String?

    /// Whether the run succeeded.
    public var succeeded: Bool { failureKind == nil }
    /// From submission until the function started (0 when it never ran).
    public var queueWait: Int64 { started > 0 ? max(0, started - submitted) : 0 }
    /// How long the function ran.
    public var runTime: Int64 { started > 0 ? max(0, ended - started) : 0 }
    /// From the function's end until the driver had the result.
    public var resultWait: Int64 { started > 0 ? max(0, received - ended) : max(0, received - submitted) }
}

/// A histogram of durations in microseconds, by powers of two (bucket `i` counts values below `2^i` µs):
/// exact counts however many tasks a job has.
public struct DurationHistogram: Sendable, Hashable, Codable {
    /// Counts per bucket; bucket `i` holds values in `[2^(i-1), 2^i)` µs (bucket 0: below 1 µs).
    public private(set) var buckets = [Int](repeating: 0, count: 40)
    /// Values recorded.
    public private(set) var count = 0
    /// Their sum, in microseconds.
    public private(set) var sum: Int64 = 0

    /// Records one value.
    public mutating func record(_ micros: Int64) {
        let value = max(0, micros)
        let bucket = value == 0 ? 0 : min(buckets.count - 1, 64 - value.leadingZeroBitCount)
        buckets[bucket] += 1
        count += 1
        sum += value
    }

    /// The upper bound of the bucket holding the `fraction` quantile, in microseconds (0 when empty).
    public func quantile(_ fraction: Double) -> Int64 {
        guard count > 0 else { return 0 }
        let rank = max(1, Int((fraction * Double(count)).rounded(.up)))
        var seen = 0
        for (i, n) in buckets.enumerated() {
            seen += n
            if seen >= rank { return i == 0 ? 0 : Int64(1) << i }
        }
        return Int64(1) << (buckets.count - 1)
    }
}

/// One job's exact tallies, kept whatever the ring of records has dropped.
public struct JobTally: Sendable, Hashable, Codable {
    /// The job's id.
    public var job: String
    /// Its function.
    public var function: String
    /// When it started (store clock, µs since the Unix epoch).
    public var began: Int64
    /// When it ended; `nil` while it runs.
    public var ended: Int64?
    /// Tasks submitted (first runs).
    public var submitted = 0
    /// Tasks that ended, successfully or not.
    public var done = 0
    /// Runs that failed (retried or not).
    public var failedRuns = 0
    /// Runs recorded.
    public var runs = 0
    /// Bytes sent and received.
    public var bytesIn = 0
    public var bytesOut = 0
    /// Where each run's time went.
    public var queueWait = DurationHistogram()
    public var runTime = DurationHistogram()
    public var resultWait = DurationHistogram()
    /// Per worker: runs.
    public var workers: [String: Int] = [:]
    /// The driver's time encoding inputs and captures, and decoding outputs, in microseconds.
    public var encodeMicros: Int64 = 0
    public var decodeMicros: Int64 = 0

    mutating func add(_ record: TaskRecord, final: Bool) {
        runs += 1
        if final { done += 1 }
        if !record.succeeded { failedRuns += 1 }
        bytesIn += record.bytesIn
        bytesOut += record.bytesOut
        if record.started > 0 {
            queueWait.record(record.queueWait)
            runTime.record(record.runTime)
        }
        resultWait.record(record.resultWait)
        workers[record.worker, default: 0] += 1
    }
}

/// What one process's calls to one actor in other processes did: how many, how many failed, how long.
public struct ActorCallTally: Sendable, Hashable, Codable {
    /// The actor's name (its id within the cluster).
    public var actor: String
    /// The node that hosted it at the last call.
    public var host: String
    /// Calls made, and those that failed.
    public var calls = 0
    public var failures = 0
    /// Call latency, from the call to its reply.
    public var latency = DurationHistogram()
}

/// One call this process made to an actor in another process: to whom, which method, when (microseconds
/// since the Unix epoch on the store's clock, ``StoreClock``) and how it ended.
public struct ActorCallRecord: Sendable, Hashable, Codable {
    /// The actor's name (its id within the cluster).
    public var actor: String
    /// The node that hosted it.
    public var host: String
    /// The node that called (this process's).
    public var caller: String
    /// The method's identifier (mangled; ``method`` is the readable name).
    public var target: String
    /// When the call was sent, and when its reply (or failure) came.
    public var started: Int64
    public var ended: Int64
    /// `ok`, or how it failed: `thrown` (the method threw), `unknownActor`, `badCall`, `transport` (no reply:
    /// the host was lost, or the call could not be sent).
    public var outcome: String

    /// Whether the method returned.
    public var succeeded: Bool { outcome == "ok" }
    /// The method's readable name, `add(_:)`.
    public var method: String { ActorCallRecord.readable(target) }

    private static let names = Mutex<[String: String]>([:])

    /// Demangles once per method (a record is read far less often than it is made).
    static func readable(_ target: String) -> String {
        if let known = names.withLock({ $0[target] }) { return known }
        let name = CurtainActorSystem.method(RemoteCallTarget(target))
        names.withLock { if $0.count < 10_000 { $0[target] = name } }
        return name
    }
}

/// The failed runs beyond what the recorder keeps in memory: appended as JSON lines to a file per job (up
/// to ``limit`` bytes in all), read back for the job's report, closed with the job's tallies.
///
/// Each file is unlinked as soon as it is opened and kept by its descriptor, so it takes no name in the
/// temporary directory and the kernel frees it when the job's tallies go or the process ends, however it
/// ends.
final class FailureOverflow: Sendable {
    /// The most bytes kept in all (beyond them, failures are only counted).
    static let limit = 1 << 30

    private struct File {
        var descriptor: Int32
        var bytes: Int
    }

    private struct State {
        var files: [String: File] = [:]
        var written = 0
    }
    private let state = Mutex(State())

    /// A new anonymous file in the temporary directory, or `nil` if none can be made.
    private static func makeFile() -> Int32? {
        let directory = FileManager.default.temporaryDirectory.path
        var template = Array("\(directory)/curtain-failures-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return nil }
        _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return fd
    }

    /// Appends `records` to their job's file; returns how many were kept (the rest went over the limit or
    /// could not be written: a write that fails leaves the file as it was).
    func append(_ records: [TaskRecord], job: String) -> Int {
        // Encoded before the lock is taken.
        let encoder = JSONEncoder()
        let lines = records.compactMap { try? encoder.encode($0) }
        return state.withLock { state in
            var bytes: [UInt8] = []
            var count = 0
            for line in lines {
                guard state.written + bytes.count + line.count + 1 <= Self.limit else { break }
                bytes += line
                bytes.append(UInt8(ascii: "\n"))
                count += 1
            }
            guard count > 0 else { return 0 }
            if state.files[job] == nil {
                guard let fd = Self.makeFile() else { return 0 }
                state.files[job] = File(descriptor: fd, bytes: 0)
            }
            let file = state.files[job]!
            let complete = bytes.withUnsafeBytes { raw -> Bool in
                var offset = 0
                while offset < raw.count {
                    let n = pwrite(file.descriptor, raw.baseAddress! + offset, raw.count - offset, off_t(file.bytes + offset))
                    if n < 0, errno == EINTR { continue }
                    guard n > 0 else { return false }
                    offset += n
                }
                return true
            }
            guard complete else {
                _ = ftruncate(file.descriptor, off_t(file.bytes))  // no half line for the next batch to join
                return 0
            }
            state.files[job]!.bytes += bytes.count
            state.written += bytes.count
            return count
        }
    }

    /// The JSON lines of `job` kept here, as written.
    func lines(job: String) -> [UInt8] {
        state.withLock { state in
            guard let file = state.files[job], file.bytes > 0 else { return [] }
            var bytes = [UInt8](repeating: 0, count: file.bytes)
            let read = bytes.withUnsafeMutableBytes { raw -> Int in
                var offset = 0
                while offset < raw.count {
                    let n = pread(file.descriptor, raw.baseAddress! + offset, raw.count - offset, off_t(offset))
                    if n < 0, errno == EINTR { continue }
                    guard n > 0 else { break }
                    offset += n
                }
                return offset
            }
            return Array(bytes.prefix(read))
        }
    }

    /// The failures of `job` kept here, in the order they came.
    func read(job: String) -> [TaskRecord] {
        let decoder = JSONDecoder()
        return lines(job: job).split(separator: UInt8(ascii: "\n")).compactMap { try? decoder.decode(TaskRecord.self, from: Data($0)) }
    }

    /// Bytes kept in all.
    var written: Int { state.withLock { $0.written } }

    /// Closes (and so frees) the file of `job`.
    func remove(job: String) {
        state.withLock { state in
            guard let file = state.files.removeValue(forKey: job) else { return }
            close(file.descriptor)
            state.written -= file.bytes
        }
    }
}

/// The driver's record of its tasks: the latest 100,000 runs in a ring, every failed run (10,000 per job
/// and 100,000 in all in memory, the rest in a file per job, ``FailureOverflow``), and exact tallies per
/// job beyond them. Kept always; reading it costs nothing until asked.
public final class TaskRecorder: Sendable {
    /// This process's recorder.
    public static let shared = TaskRecorder(capacity: 100_000)

    private struct State {
        var ring: [TaskRecord] = []
        var next = 0
        var dropped = 0
        var failures: [String: [TaskRecord]] = [:]
        var failuresKept = 0
        var tallies: [String: JobTally] = [:]
        /// Failed runs beyond memory's share, per job: written to the overflow file, and lost (over its limit).
        var failuresSpilled: [String: Int] = [:]
        var failuresLost: [String: Int] = [:]
        var order: [String] = []
        var actors: [String: ActorCallTally] = [:]
        var calls: [ActorCallRecord] = []
        var nextCall = 0
        var droppedCalls = 0
    }
    private let state = Mutex(State())
    /// How many records the ring holds.
    public let capacity: Int
    /// The most failed runs kept in memory per job (the rest go to ``FailureOverflow``).
    public static let failuresPerJob = 10_000
    /// The most failed runs kept in memory in all (their messages are cut at 2,000 characters).
    public static let failuresKept = 100_000
    /// Where failed runs beyond memory's share go.
    let overflow = FailureOverflow()
    /// The most jobs whose tallies are kept (the oldest ended ones go first).
    public static let jobsKept = 1_000

    /// A recorder holding the latest `capacity` records.
    public init(capacity: Int) { self.capacity = max(1, capacity) }

    private let enabledFlag = Atomic<Bool>(true)
    /// Whether runs are recorded (on by default; `curtain-bench tasks` turns it off to measure what
    /// recording costs). Off, runs leave no record and count in no tally.
    public var isEnabled: Bool {
        get { enabledFlag.load(ordering: .relaxed) }
        set { enabledFlag.store(newValue, ordering: .relaxed) }
    }

    /// Notes a job's start.
    func begin(job: String, function: String) {
        let now = StoreClock.now()
        var evicted: String?
        state.withLock { state in
            if state.tallies[job] == nil {
                state.tallies[job] = JobTally(job: job, function: function, began: now)
                state.order.append(job)
                if state.order.count > Self.jobsKept, let old = state.order.firstIndex(where: { state.tallies[$0]?.ended != nil }) {
                    let gone = state.order.remove(at: old)
                    state.tallies[gone] = nil
                    state.failuresKept -= state.failures.removeValue(forKey: gone)?.count ?? 0
                    state.failuresSpilled[gone] = nil
                    state.failuresLost[gone] = nil
                    evicted = gone
                }
            }
        }
        if let evicted { overflow.remove(job: evicted) }
    }

    /// Notes tasks submitted for the first time.
    func submitted(job: String, count: Int) {
        state.withLock { $0.tallies[job]?.submitted += count }
    }

    /// Adds the driver's own time spent on a job's payloads.
    func driverTime(job: String, encode: Duration = .zero, decode: Duration = .zero) {
        state.withLock { state in
            state.tallies[job]?.encodeMicros += Int64(encode.microseconds)
            state.tallies[job]?.decodeMicros += Int64(decode.microseconds)
        }
    }

    /// Notes a job's end.
    func end(job: String) {
        let now = StoreClock.now()
        state.withLock { $0.tallies[job]?.ended = now }
    }

    /// Keeps one run's record; `final` when the task ended with it (not retried).
    func record(_ record: TaskRecord, final: Bool) {
        self.record([(record, final)])
    }

    /// Keeps the records of runs received together (one lock, one tally lookup per job for the batch).
    func record(_ runs: [(record: TaskRecord, final: Bool)]) {
        guard isEnabled, !runs.isEmpty else { return }
        // Failed runs beyond memory's share, written to the overflow file after the lock is let go.
        let spilled = state.withLock { state -> [TaskRecord] in
            var spilled: [TaskRecord] = []
            var job = runs[0].record.job
            var tally = state.tallies.removeValue(forKey: job)
            for (record, final) in runs {
                if state.ring.count < capacity {
                    state.ring.append(record)
                } else {
                    state.ring[state.next] = record
                    state.dropped += 1
                }
                state.next = (state.next + 1) % capacity
                if !record.succeeded, state.failuresKept < Self.failuresKept,
                    state.failures[record.job, default: []].count < Self.failuresPerJob
                {
                    state.failures[record.job, default: []].append(record)
                    state.failuresKept += 1
                } else if !record.succeeded {
                    spilled.append(record)
                }
                if record.job != job {
                    if let tally { state.tallies[job] = tally }
                    job = record.job
                    tally = state.tallies.removeValue(forKey: job)
                }
                // Taken out of the dictionary, so changed in place (a copy would copy its histograms).
                tally?.add(record, final: final)
            }
            if let tally { state.tallies[job] = tally }
            return spilled
        }
        guard !spilled.isEmpty else { return }
        var byJob: [String: [TaskRecord]] = [:]
        for record in spilled { byJob[record.job, default: []].append(record) }
        for (job, records) in byJob {
            let written = overflow.append(records, job: job)
            let evicted = state.withLock { state -> Bool in
                // Its tallies went while the file was written: so does the file.
                guard state.tallies[job] != nil else { return true }
                state.failuresSpilled[job, default: 0] += written
                if written < records.count { state.failuresLost[job, default: 0] += records.count - written }
                return false
            }
            if evicted { overflow.remove(job: job) }
        }
    }

    /// The most actors whose calls are tallied (calls to others are not counted).
    public static let actorsKept = 10_000

    /// Keeps one call to an actor in another process: in the ring of the latest ``capacity`` calls, and in
    /// its actor's tally.
    func actorCall(_ call: ActorCallRecord) {
        guard isEnabled else { return }
        state.withLock { state in
            if state.calls.count < capacity {
                state.calls.append(call)
            } else {
                state.calls[state.nextCall] = call
                state.droppedCalls += 1
            }
            state.nextCall = (state.nextCall + 1) % capacity
            if state.actors[call.actor] == nil {
                guard state.actors.count < Self.actorsKept else { return }
                state.actors[call.actor] = ActorCallTally(actor: call.actor, host: call.host)
            }
            state.actors[call.actor]?.host = call.host
            state.actors[call.actor]?.calls += 1
            if !call.succeeded { state.actors[call.actor]?.failures += 1 }
            state.actors[call.actor]?.latency.record(call.ended - call.started)
        }
    }

    /// The calls to actors that ended since `since` (store clock, µs), oldest first, at most `limit` of the
    /// newest.
    public func recentActorCalls(since: Int64, limit: Int) -> [ActorCallRecord] {
        state.withLock { state in
            var found: [ActorCallRecord] = []
            var i = state.nextCall
            for _ in 0..<min(state.calls.count, max(0, limit)) {
                i = (i - 1 + state.calls.count) % state.calls.count
                let call = state.calls[i]
                guard call.ended >= since else { break }
                found.append(call)
            }
            return found.reversed()
        }
    }

    /// Every call to an actor still in the ring, oldest first.
    public func allActorCalls() -> [ActorCallRecord] {
        state.withLock { state in
            state.calls.count < capacity ? state.calls : Array(state.calls[state.nextCall...] + state.calls[..<state.nextCall])
        }
    }

    /// The calls to actors still in the ring that overlap `from...to` (store clock, µs), oldest first.
    public func actorCalls(from: Int64, to: Int64) -> [ActorCallRecord] {
        allActorCalls().filter { $0.ended >= from && $0.started <= to }
    }

    /// Calls to actors the ring has let go of (the tallies still count them).
    public var droppedActorCalls: Int { state.withLock { $0.droppedCalls } }

    /// This process's calls to actors in other processes, by actor.
    public func actorCalls() -> [ActorCallTally] {
        state.withLock { Array($0.actors.values) }.sorted { $0.actor < $1.actor }
    }

    /// The records received since `since` (store clock, µs), oldest first, at most `limit` of the newest:
    /// read from the ring's newest end, so a look at the last minute does not copy the whole ring.
    public func recent(since: Int64, limit: Int) -> [TaskRecord] {
        state.withLock { state in
            var found: [TaskRecord] = []
            var i = state.next
            for _ in 0..<min(state.ring.count, max(0, limit)) {
                i = (i - 1 + state.ring.count) % state.ring.count
                let record = state.ring[i]
                // Kept in the order received: the first older one ends the look.
                guard record.received >= since else { break }
                found.append(record)
            }
            return found.reversed()
        }
    }

    /// The records of `job` still in the ring, oldest first.
    public func records(job: String) -> [TaskRecord] {
        all().filter { $0.job == job }
    }

    /// Every record in the ring, oldest first.
    public func all() -> [TaskRecord] {
        state.withLock { state in
            state.ring.count < capacity ? state.ring : Array(state.ring[state.next...] + state.ring[..<state.next])
        }
    }

    /// The failed runs of `job` kept in memory (the first ``failuresPerJob``; ``allFailures(job:)`` has
    /// the rest too).
    public func failures(job: String) -> [TaskRecord] {
        state.withLock { $0.failures[job] ?? [] }
    }

    /// Every failed run of `job` as JSON lines (one ``TaskRecord`` per line): those in memory, then the
    /// overflow file's bytes as they are.
    func failureLines(job: String) -> [UInt8] {
        Self.jsonLines(failures(job: job)) + overflow.lines(job: job)
    }

    /// `records` as JSON lines (one ``TaskRecord`` per line).
    static func jsonLines(_ records: [TaskRecord]) -> [UInt8] {
        let encoder = JSONEncoder()
        var bytes: [UInt8] = []
        for record in records {
            guard let line = try? encoder.encode(record) else { continue }
            bytes += line
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }

    /// Every failed run of `job`: those in memory, then those in the overflow file.
    public func allFailures(job: String) -> [TaskRecord] {
        let (kept, spilled) = state.withLock { ($0.failures[job] ?? [], $0.failuresSpilled[job] ?? 0) }
        return spilled > 0 ? kept + overflow.read(job: job) : kept
    }

    /// How many failed runs of `job` are beyond memory: in the overflow file, and only counted (the file
    /// reached ``FailureOverflow/limit``, or could not be written).
    public func failuresBeyondMemory(job: String) -> (inFile: Int, lost: Int) {
        state.withLock { ($0.failuresSpilled[job] ?? 0, $0.failuresLost[job] ?? 0) }
    }

    /// The exact tallies of `job`.
    public func tally(job: String) -> JobTally? {
        state.withLock { $0.tallies[job] }
    }

    /// Every job's tallies, oldest first.
    public func tallies() -> [JobTally] {
        state.withLock { state in state.order.compactMap { state.tallies[$0] } }
    }

    /// Records the ring has let go of since this process started (the tallies still count them).
    public var dropped: Int { state.withLock { $0.dropped } }

    /// Forgets everything (tests).
    func removeAll() {
        let jobs = state.withLock { state -> [String] in
            defer { state = State() }
            return Array(state.failuresSpilled.keys)
        }
        for job in jobs { overflow.remove(job: job) }
    }
}
