import CurtainRESP
import NIOCore
import Synchronization
import Tracing

/// What a job needs to know about the cloud it runs on, beyond its transport.
struct JobContext: Sendable {
    /// The build id written into envelopes.
    var buildID: String
    /// The backend's name for summaries.
    var backend: String
    /// How many workers the backend has, for sizing the map window; `nil` if unknown.
    var workers: Int?
    /// Whether summaries are printed for every job (`CURTAIN_SUMMARY=1`).
    var printSummaries = false
    /// Whether progress bars may be drawn at all (`CURTAIN_PROGRESS=0` turns them off).
    var progressAllowed = true
    /// The cloud's cold-start clock, if it has one (the `processes` backend).
    var coldStart: ColdStartClock?
    /// Overrides the summary's worker count (the in-process backend's width).
    var reportedWorkers: Int?
    /// Where inputs and captures above the threshold go (and outputs, on the workers' side).
    var spill: SpillSettings?
    /// Whether every job writes its report (``CloudConfiguration/reports``).
    var reports = false
}

/// A cloud's cold start: from `Cloud.start` until its first worker is connected and ready for tasks; and
/// how many workers have announced themselves ready since.
final class ColdStartClock: Sendable {
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private let state = Mutex<(first: Duration?, ready: Int)>((nil, 0))

    init() { start = clock.now }

    /// Records that a worker is ready (the first call sets the cold start).
    func noteReady() {
        let now = clock.now
        state.withLock { state in
            if state.first == nil { state.first = now - start }
            state.ready += 1
        }
    }

    /// The cold start, once a worker has been seen ready.
    var value: Duration? { state.withLock { $0.first } }

    /// How many workers have announced themselves ready.
    var readyWorkers: Int { state.withLock { $0.ready } }
}

/// One job's bookkeeping, whatever its shape (`map`, `run`, task group): the tasks it is waiting for, their
/// retries, the statistics for its summary and its progress bar. Used by one task at a time.
struct Job<F: RemoteFunction> {
    private struct Pending {
        var captures: [UInt8]
        var input: [UInt8]
        /// The attempt last submitted: failures of earlier attempts are stale.
        var attempt: UInt16
        /// Crashes charged so far (carried back by results, so a retry keeps the crash budget spent).
        var crashes: UInt16 = 0
        var retriesUsed: Int
        /// Times the task was sent again because a worker could not fetch a shared value.
        var reshared = 0
        /// The hash of the largest shared value the task needs (it is placed near a worker holding it).
        var near: [UInt8]?
        /// When its latest run was handed to the store (store clock, µs since the Unix epoch).
        var submittedAt: Int64 = 0
    }

    let jobID: String
    let transport: any JobTransport
    let context: JobContext
    let options: JobOptions
    private var pending: [UInt64: Pending] = [:]
    private(set) var statistics: JobStatistics
    let progress: ProgressBar?
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private var finished = false
    /// One past the highest task index submitted (results for lower indices no longer pending are
    /// duplicates).
    private var submitted: UInt64 = 0
    /// Whether anything of this job went to the object store (its objects are deleted at the end).
    private var spilled = false
    /// The captures as sent: the reference, once spilled.
    private var sentCaptures: (original: [UInt8], sent: [UInt8])?
    /// The values this job's payloads share by hash (kept to put them back if a worker finds one gone).
    private var shared: [[UInt8]: SharedBlob] = [:]
    /// `F.name`, computed once (records carry it).
    private let functionName = F.name
    /// The job's metric handles.
    private let metrics: JobMetrics
    /// Tasks this job counts in `curtain_tasks_outstanding`.
    private var outstandingCounted = 0
    /// The job's span, and the trace context its envelopes carry.
    private let trace: (span: any Span, headers: [String: String])

    /// Prepares a job (`options` already validated).
    init(jobID: String, transport: any JobTransport, context: JobContext, options: JobOptions) {
        self.jobID = jobID
        self.transport = transport
        self.context = context
        self.options = options
        statistics = JobStatistics(keepDurations: options.summary || options.onSummary != nil || context.printSummaries)
        progress = ProgressBar.make(function: F.name, display: options.progress, enabled: context.progressAllowed)
        start = clock.now
        progress?.begin()
        TaskRecorder.shared.begin(job: jobID, function: functionName)
        metrics = JobMetrics(function: functionName)
        trace = TaskTracing.startJob(function: functionName)
        trace.span.attributes["curtain.job"] = jobID
    }

    /// The tasks submitted and not yet answered.
    var outstanding: Int { pending.count }

    /// Tasks that ended, with their output or the error of a task that failed for good.
    typealias Ended = [(index: UInt64, outcome: Result<F.Output, RemoteTaskError>)]

    /// Encodes a function value's captures (values above the share threshold by reference).
    static func encode(function: F, context: JobContext) throws -> EncodedPayload {
        do {
            return try PayloadCodec.encodePayload(function, settings: context.spill?.inputSettings ?? PayloadCodec.Settings())
        } catch {
            throw InputEncodingError(function: F.name, index: -1, message: "the function value cannot be encoded: \(error)")
        }
    }

    /// Encodes one input, naming its index if it cannot be.
    static func encode(_ input: F.Input, index: Int, context: JobContext) throws -> EncodedPayload {
        do {
            return try PayloadCodec.encodePayload(input, settings: context.spill?.inputSettings ?? PayloadCodec.Settings())
        } catch {
            throw InputEncodingError(function: F.name, index: index, message: "\(error)")
        }
    }

    /// Decodes an output as received (read in place: a large output is copied once, into its value).
    static func decode(output bytes: ByteBuffer) async throws -> F.Output {
        if bytes.readableBytesView.first == Spill.marker {
            return try PayloadCodec.decodePayload(F.Output.self, from: try await Spill.resolve(Array(bytes.readableBytesView)))
        }
        return try bytes.withUnsafeReadableBytes { try PayloadCodec.decodePayload(F.Output.self, from: $0) }
    }

    /// Decodes the outputs of `ended` tasks (`.success` bytes), in parallel when there is enough to decode.
    static func decode(_ ended: [(index: UInt64, outcome: Result<ByteBuffer, RemoteTaskError>)], job: String) async -> Ended {
        let clock = ContinuousClock()
        let start = clock.now
        let decoded = await decode(ended)
        TaskRecorder.shared.driverTime(job: job, decode: clock.now - start)
        return decoded
    }

    /// Decodes the outputs of `ended` tasks (`.success` bytes), in parallel when there is enough to decode.
    static func decode(_ ended: [(index: UInt64, outcome: Result<ByteBuffer, RemoteTaskError>)]) async -> Ended {
        func one(_ item: (index: UInt64, outcome: Result<ByteBuffer, RemoteTaskError>)) async -> (index: UInt64, outcome: Result<F.Output, RemoteTaskError>) {
            switch item.outcome {
            case .failure(let error): return (item.index, .failure(error))
            case .success(let bytes):
                do {
                    return (item.index, .success(try await decode(output: bytes)))
                } catch {
                    return (item.index, .failure(RemoteTaskError(
                        function: F.name, index: item.index, input: "(see the job's inputs)",
                        failure: RemoteFailure(
                            kind: .decoding, errorType: "\(type(of: error))",
                            message: "the caller could not decode the output as \(F.Output.self): \(error)"))))
                }
            }
        }
        let bytes = ended.reduce(0) { total, item in total + ((try? item.outcome.get().readableBytes) ?? 0) }
        guard ended.count > 1, bytes >= 64 * 1024 else {
            var decoded: Ended = []
            decoded.reserveCapacity(ended.count)
            for item in ended { decoded.append(await one(item)) }
            return decoded
        }
        let parts = min(ended.count, 4)
        let size = (ended.count + parts - 1) / parts
        return await withTaskGroup(of: Ended.self) { group in
            for start in stride(from: 0, to: ended.count, by: size) {
                let slice = Array(ended[start..<min(start + size, ended.count)])
                group.addTask {
                    var decoded: Ended = []
                    for item in slice { decoded.append(await one(item)) }
                    return decoded
                }
            }
            var all: Ended = []
            all.reserveCapacity(ended.count)
            for await part in group { all += part }
            return all
        }
    }

    /// Sends already-encoded inputs as tasks `index → input`, all with the same function captures.
    ///
    /// Inputs and captures above the spill threshold are written to the object store first, and travel
    /// as references (once per job for the captures).
    ///
    /// Tasks below ``JobTransport/alreadySubmitted`` (a reattached job's first driver sent them) are only
    /// registered as pending.
    mutating func submit(_ tasks: [(index: UInt64, input: EncodedPayload)], captures encoded: EncodedPayload) async throws {
        guard !tasks.isEmpty else { return }
        let already = UInt64(transport.alreadySubmitted)
        if let over = context.spill?.overLimit(encoded.bytes.count) {
            throw InputEncodingError(function: F.name, index: -1, message: "the function value is \(over)")
        }
        let spill = context.spill
        func overLimit(_ blobs: [SharedBlob]) -> String? { blobs.lazy.compactMap { spill?.overLimit($0.bytes.count) }.first }
        if let over = overLimit(encoded.shared) {
            throw InputEncodingError(function: F.name, index: -1, message: "a value in it is \(over)")
        }
        for task in tasks {
            if let over = context.spill?.overLimit(task.input.bytes.count) {
                throw InputEncodingError(function: F.name, index: Int(task.index), message: "it is \(over)")
            }
            if let over = overLimit(task.input.shared) {
                throw InputEncodingError(function: F.name, index: Int(task.index), message: "a value in it is \(over)")
            }
        }
        // Values shared by hash go where workers fetch them before any task that needs them is sent.
        var blobs = encoded.shared
        for task in tasks { blobs += task.input.shared }
        if !blobs.isEmpty {
            for blob in blobs { shared[blob.ref.hash] = blob }
            try await shareValues(blobs)
        }
        let captures = try await spillCaptures(encoded.bytes)
        var envelopes: [TaskEnvelope] = []
        var near: [[UInt8]?] = []
        envelopes.reserveCapacity(tasks.count)
        let now = StoreClock.now()
        for task in tasks {
            let hash = encoded.shared.isEmpty && task.input.shared.isEmpty ? nil : Placement.nearest(encoded.shared, task.input.shared)
            var input = task.input.bytes
            if let spill = context.spill, input.count > spill.threshold {
                input = try await Spill.store(input, as: Spill.prefix(job: jobID) + "in-\(task.index)", in: spill.storage)
                spilled = true
            }
            pending[task.index] = Pending(captures: captures, input: input, attempt: 1, retriesUsed: 0, near: hash, submittedAt: now)
            submitted = Swift.max(submitted, task.index + 1)
            if task.index < already { continue }
            envelopes.append(envelope(index: task.index, captures: captures, input: input, attempt: 1))
            near.append(hash)
            statistics.bytesSent += captures.count + input.count
        }
        if !envelopes.isEmpty {
            try await transport.submit(envelopes, near: near)
            TaskRecorder.shared.submitted(job: jobID, count: envelopes.count)
            CurtainMetrics.outstandingChanged(by: envelopes.count)
            outstandingCounted += envelopes.count
        }
    }

    /// An input as an error message shows it: JSON as is, a binary payload decoded and described.
    static func describe(input bytes: [UInt8]) -> String {
        if Spill.isReference(bytes) { return "(spilled) " + Abbreviation.bytes(Array(bytes.dropFirst())) }
        guard bytes.first == PayloadWire.marker else { return Abbreviation.bytes(bytes) }
        guard let input = try? PayloadCodec.decodePayload(F.Input.self, from: bytes, actorSystem: nil) else {
            return "(\(bytes.count) bytes, shared by hash)"
        }
        return Abbreviation.text(String(reflecting: input))
    }

    /// Puts shared values where workers fetch them (those already there cost nothing).
    private mutating func shareValues(_ blobs: [SharedBlob]) async throws {
        guard let shelf = context.spill?.shelf else {
            throw InputEncodingError(function: F.name, index: -1, message: "values to share by hash, and no store to put them in")
        }
        do {
            statistics.bytesSent += try await shelf.ensure(blobs)
        } catch {
            throw InputEncodingError(function: F.name, index: -1, message: "cannot store the values the tasks share by hash: \(error)")
        }
    }

    private mutating func spillCaptures(_ captures: [UInt8]) async throws -> [UInt8] {
        guard let spill = context.spill, captures.count > spill.threshold else { return captures }
        if let sent = sentCaptures, sent.original == captures { return sent.sent }
        let reference = try await Spill.store(captures, as: Spill.prefix(job: jobID) + "captures", in: spill.storage)
        spilled = true
        sentCaptures = (captures, reference)
        return reference
    }

    private func envelope(
        index: UInt64, captures: [UInt8], input: [UInt8], attempt: UInt16, crashes: UInt16 = 0
    ) -> TaskEnvelope {
        var envelope = TaskEnvelope(
            buildID: context.buildID, jobID: jobID, index: index, attempt: attempt, crashes: crashes,
            timeoutMilliseconds: options.timeoutMilliseconds, function: functionName, functionPayload: captures, input: input)
        envelope.traceContext = trace.headers
        return envelope
    }

    /// Waits for results; returns the tasks that ended, in arrival order: with their output, or with the
    /// ``RemoteTaskError`` of a task that failed for good.
    ///
    /// Results of other jobs, duplicates (a task re-run after a crash answers twice: the first answer wins)
    /// and failures of superseded attempts are dropped. A thrown error or timeout is retried while the task
    /// has retries left. Every result received is accounted for, even when several tasks end at once.
    ///
    /// - Throws: `CancellationError`; store errors.
    mutating func receive() async throws -> Ended {
        await Self.decode(try await receiveEncoded(), job: jobID)
    }

    /// ``receive()`` without decoding the outputs (the caller decodes them, perhaps while receiving more).
    mutating func receiveEncoded() async throws -> [(index: UInt64, outcome: Result<ByteBuffer, RemoteTaskError>)] {
        let results = try await transport.receive()
        try Task.checkCancellation()
        var ended: [(index: UInt64, outcome: Result<ByteBuffer, RemoteTaskError>)] = []
        var again: [TaskEnvelope] = []
        var againNear: [[UInt8]?] = []
        var reshare = false
        let received = StoreClock.now()
        let recorder = TaskRecorder.shared
        let recording = recorder.isEnabled
        var runs: [(record: TaskRecord, final: Bool)] = []
        if recording { runs.reserveCapacity(results.count) }
        /// Keeps the record of one run (its input described only when it failed).
        var ok = 0, failedForGood = 0, sentAgain = 0, retried = 0
        func record(_ result: TaskResult, _ task: Pending, final: Bool, failure: RemoteFailure?) {
            if failure == nil { ok += 1 } else if final { failedForGood += 1 } else { sentAgain += 1 }
            // Sent again because a shared value had to be put back is not a retry.
            if !final, failure?.kind != .missingSharedValue { retried += 1 }
            if result.startedMicroseconds > 0 {
                metrics.duration.recordMicroseconds(Int64(clamping: result.durationMicroseconds))
                metrics.queueWait.recordMicroseconds(max(0, Int64(clamping: result.startedMicroseconds) - task.submittedAt))
            }
            guard recording else { return }
            let started = Int64(clamping: result.startedMicroseconds)
            var bytesOut = 0
            if case .success(let bytes) = result.payload { bytesOut = bytes.readableBytes }
            runs.append((TaskRecord(
                job: jobID, function: functionName, index: result.index, attempt: result.attempt, worker: result.workerID,
                submitted: task.submittedAt, started: started,
                ended: started > 0 ? started + Int64(clamping: result.durationMicroseconds) : 0, received: received,
                bytesIn: task.captures.count + task.input.count, bytesOut: bytesOut, fetchedBytes: result.shared.fetchedBytes,
                failureKind: failure.map { "\($0.kind)" },
                failure: failure.map { Abbreviation.text("\($0.errorType): \($0.message)", limit: 2000) },
                input: failure == nil ? nil : Self.describe(input: task.input)), final))
        }
        for result in results {
            if case .success(let bytes) = result.payload, bytes.readableBytesView.first == Spill.marker { spilled = true }
            guard result.jobID == jobID else { continue }
            guard var task = pending[result.index] else {
                if result.index < submitted {  // answered already: the first wins
                    statistics.duplicates += 1
                    metrics.duplicates.increment()
                }
                continue
            }
            guard result.attempt >= task.attempt else { continue }
            let failure: RemoteFailure
            switch result.payload {
            case .success(let bytes):
                record(result, task, final: true, failure: nil)
                pending[result.index] = nil
                statistics.completed += 1
                statistics.record(result)
                progress?.done.add(1, ordering: .relaxed)
                ended.append((result.index, .success(bytes)))
                continue
            case .failure(let remote):
                failure = remote
            }
            statistics.record(shared: result.shared)
            let retriable = failure.kind == .thrown || failure.kind == .timedOut
            let sentAgain = (failure.kind == .missingSharedValue && task.reshared < 3) || (retriable && task.retriesUsed < options.retries)
            record(result, task, final: !sentAgain, failure: failure)
            task.submittedAt = received
            if failure.kind == .missingSharedValue && task.reshared < 3 {
                // Expired or evicted from the store: put back, and the task sent again (not a retry).
                task.reshared += 1
                task.attempt = result.attempt + 1
                task.crashes = result.crashes
                pending[result.index] = task
                reshare = true
                again.append(envelope(
                    index: result.index, captures: task.captures, input: task.input, attempt: task.attempt, crashes: task.crashes))
                againNear.append(task.near)
                continue
            }
            progress?.failures.add(1, ordering: .relaxed)
            if retriable && task.retriesUsed < options.retries {
                statistics.failedAttempts += 1
                task.retriesUsed += 1
                task.attempt = result.attempt + 1
                task.crashes = result.crashes
                pending[result.index] = task
                again.append(envelope(
                    index: result.index, captures: task.captures, input: task.input, attempt: task.attempt,
                    crashes: task.crashes))
                againNear.append(task.near)
            } else {
                pending[result.index] = nil
                statistics.failed += 1
                statistics.record(result)
                progress?.done.add(1, ordering: .relaxed)
                ended.append((result.index, .failure(RemoteTaskError(
                    function: F.name, index: result.index,
                    input: Self.describe(input: task.input), failure: failure))))
            }
        }
        recorder.record(runs)
        if ok > 0 { metrics.succeeded.increment(by: ok) }
        if failedForGood > 0 { metrics.failed.increment(by: failedForGood) }
        if sentAgain > 0 { metrics.retried.increment(by: sentAgain) }
        if retried > 0 { metrics.retries.increment(by: retried) }
        let settled = min(outstandingCounted, ok + failedForGood)
        if settled > 0 {
            CurtainMetrics.outstandingChanged(by: -settled)
            outstandingCounted -= settled
        }
        if reshare, let shelf = context.spill?.shelf {
            shelf.forget(Array(shared.values))
            try await shareValues(Array(shared.values))
        }
        if !again.isEmpty { try await transport.submit(again, near: againNear) }
        await transport.progress(statistics, submitted: Int(submitted))
        return ended
    }

    /// Ends the job (queued tasks never run), stops the progress bar and reports the summary.
    mutating func finish() async {
        guard !finished else { return }
        finished = true
        await transport.finish()
        TaskRecorder.shared.end(job: jobID)
        if outstandingCounted > 0 { CurtainMetrics.outstandingChanged(by: -outstandingCounted) }
        if statistics.failed > 0 { trace.span.setStatus(SpanStatus(code: .error, message: "\(statistics.failed) tasks failed")) }
        trace.span.end()
        if spilled, let spill = context.spill { await Spill.clean(job: jobID, in: spill.storage) }
        await progress?.end()
        var report: JobReport?
        if options.report || context.reports, let storage = context.spill?.storage {
            report = await JobReport.write(job: jobID, function: functionName, to: storage)
        }
        let wantSummary = options.summary || context.printSummaries
        guard wantSummary || options.onSummary != nil else { return }
        var summary = JobSummary(
            function: F.name, backend: context.backend, tasks: statistics.completed, failed: statistics.failed,
            workers: context.reportedWorkers ?? statistics.workers.count, wallTime: clock.now - start,
            coldStart: context.coldStart?.value, p50: statistics.quantile(0.5), p99: statistics.quantile(0.99),
            retries: statistics.retries, duplicates: statistics.duplicates, bytesSent: statistics.bytesSent,
            sharedHits: statistics.sharedHits, sharedBytesFetched: statistics.sharedBytesFetched, report: report)
        summary.job = jobID
        options.onSummary?(summary)
        if wantSummary { StandardError.write(summary.description + "\n") }
    }
}

/// `map` over any transport: streams inputs through a window, returns outputs in input order.
enum MapRunner {
    static func map<F: RemoteFunction, Inputs: Sequence>(
        _ function: F, over inputs: Inputs, context: JobContext, options: JobOptions,
        transport makeTransport: (_ jobID: String) async throws -> any JobTransport
    ) async throws -> [F.Output] where Inputs.Element == F.Input {
        let options = try options.validated()
        let window = options.window ?? max(4096, 256 * (context.workers ?? 1))
        var iterator = inputs.makeIterator()
        var read = 0
        var exhausted = false
        /// Reads and encodes inputs until `room` tasks are ready or the inputs run out.
        func readInputs(room: Int) throws -> [(index: UInt64, input: EncodedPayload)] {
            var batch: [(index: UInt64, input: EncodedPayload)] = []
            while batch.count < room, !exhausted {
                guard let input = iterator.next() else {
                    exhausted = true
                    break
                }
                batch.append((UInt64(read), try Job<F>.encode(input, index: read, context: context)))
                read += 1
            }
            return batch
        }
        // The first window is encoded before anything is dispatched: a bad input among them stops the job
        // before any task runs.
        let encodeClock = ContinuousClock()
        let encodeStart = encodeClock.now
        let captures = try Job<F>.encode(function: function, context: context)
        var first = try readInputs(room: window)
        var encoding = encodeClock.now - encodeStart
        if first.isEmpty { return [] }
        // A named job's transport decides its id (the name and its run's token).
        let transport = try await makeTransport(options.id ?? TaskDispatcher.newJobID())
        var job = Job<F>(jobID: transport.jobID, transport: transport, context: context, options: options)
        var outputs: [F.Output?] = []
        var done = 0
        // The bar's total: exact for collections and ranges (their underestimated count is their count),
        // otherwise what has been read until the inputs run out.
        let expected = inputs.underestimatedCount
        func showTotal() {
            job.progress?.total.store(max(expected, read), ordering: .relaxed)
            job.progress?.totalIsFinal.store(exhausted || expected > 0, ordering: .relaxed)
        }
        // From here on the job exists: whatever throws ends it (its tally, span and progress bar) first.
        do {
            // A reattached job: everything its first driver submitted is pending from the start (its results
            // may be among those that driver had received).
            if job.transport.alreadySubmitted > first.count {
                let more = encodeClock.now
                first += try readInputs(room: job.transport.alreadySubmitted - first.count)
                encoding += encodeClock.now - more
            }
            TaskRecorder.shared.driverTime(job: job.jobID, encode: encoding)
            outputs = [F.Output?](repeating: nil, count: first.count)
            try await job.submit(first, captures: captures)
            showTotal()
            // Outputs are decoded by child tasks while this one goes on receiving (and on other cores).
            try await withThrowingTaskGroup(of: Job<F>.Ended.self) { decoders in
                var decoding = 0
                func collect(_ part: Job<F>.Ended) throws {
                    for (index, outcome) in part { outputs[Int(index)] = try outcome.get() }
                }
                while done < read || !exhausted {
                    let ended = try await job.receiveEncoded()
                    done += ended.count
                    // A task that failed for good ends the job now.
                    for item in ended { if case .failure(let error) = item.outcome { throw error } }
                    if !ended.isEmpty {
                        let id = job.jobID
                        decoders.addTask { await Job<F>.decode(ended, job: id) }
                        decoding += 1
                    }
                    // At most a few batches in decoding at once (their bytes are held until then).
                    while decoding > 4, let part = try await decoders.next() {
                        try collect(part)
                        decoding -= 1
                    }
                    // Top the window up in chunks, so each refill is one pipelined push.
                    let room = window - job.outstanding
                    if !exhausted && (room >= window / 4 || job.outstanding == 0) {
                        let encodeStart = encodeClock.now
                        let more = try readInputs(room: room)
                        TaskRecorder.shared.driverTime(job: job.jobID, encode: encodeClock.now - encodeStart)
                        outputs.append(contentsOf: repeatElement(nil, count: more.count))
                        try await job.submit(more, captures: captures)
                        showTotal()
                    }
                }
                for try await part in decoders { try collect(part) }
            }
            await job.finish()
        } catch {
            await job.finish()
            if Task.isCancelled { throw CancellationError() }
            throw error
        }
        return outputs.map { $0! }
    }
}

/// Unbuffered writes to standard error (summaries), never interleaved mid-line with other writers of ours.
enum StandardError {
    private static let lock = Mutex(())

    static func write(_ text: String) {
        lock.withLock { _ in
            let bytes = Array(text.utf8)
            bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = systemWrite(2, raw.baseAddress! + offset, raw.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
        }
    }
}
