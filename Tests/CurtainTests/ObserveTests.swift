@testable import Curtain
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import NIOPosix
import Synchronization
import Testing
import Tracing
import InMemoryTracing
import ServiceContextModule

#if canImport(Glibc)
import Glibc
#endif

/// A GET over a plain socket (`Connection: close`): the status and the body. The blocking socket calls
/// run on a Dispatch thread of their own: not on the cooperative pool (two blocked tests would hold all
/// of it here), nor on NIO's thread pool (which the dashboard and the storage use).
func httpGet(port: Int, _ path: String, headers: [String] = [], hostHeader: String = "127.0.0.1") async throws -> (status: Int, body: String) {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try blockingRequest(port: port, "GET", path, headers: headers, hostHeader: hostHeader) })
        }
    }
}

/// A blocking TCP connection to `port` on 127.0.0.1 (the caller closes it).
func loopbackConnection(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EIO) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        throw POSIXError(.ECONNREFUSED)
    }
    return fd
}

/// One HTTP/1.1 request with blocking socket calls (`Connection: close`; a `Content-Length` when there is
/// a body): the status and the body. Only on a thread of its own (``httpGet(port:_:headers:hostHeader:)``).
func blockingRequest(
    port: Int, _ method: String, _ path: String, body: String = "", headers: [String], hostHeader: String
) throws -> (status: Int, body: String) {
    let fd = try loopbackConnection(port: port)
    defer { close(fd) }
    let host = headers.contains { $0.lowercased().hasPrefix("host:") } ? "" : "Host: \(hostHeader)\r\n"
    let length = body.isEmpty && method == "GET" ? "" : "Content-Length: \(body.utf8.count)\r\n"
    let request = "\(method) \(path) HTTP/1.1\r\n" + host + "Connection: close\r\n" + length + headers.map { $0 + "\r\n" }.joined() + "\r\n" + body
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        bytes += buffer[..<n]
    }
    let text = String(decoding: bytes, as: UTF8.self)
    let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return (status, body)
}

@Suite("Observing jobs: task records, the timeline, the report, the dashboard")
struct ObserveTests {
    func run(_ index: UInt64, job: String = "j", failed: Bool = false, at start: Int64 = 1_000) -> TaskRecord {
        TaskRecord(
            job: job, function: "F", index: index, attempt: 1, worker: index % 2 == 0 ? "w0" : "w1", submitted: start,
            started: start + 100, ended: start + 300, received: start + 350, bytesIn: 10, bytesOut: 20, fetchedBytes: 0,
            failureKind: failed ? "thrown" : nil, failure: failed ? "E: no" : nil, input: failed ? "\(index)" : nil)
    }

    @Test func theRecorderKeepsTheLatestRunsEveryFailureAndExactTallies() {
        let recorder = TaskRecorder(capacity: 10)
        recorder.begin(job: "j", function: "F")
        recorder.submitted(job: "j", count: 25)
        for i in 0..<25 { recorder.record(run(UInt64(i), failed: i < 3), final: true) }
        let kept = recorder.records(job: "j")
        #expect(kept.map(\.index) == Array(15..<25))
        #expect(recorder.dropped == 15)
        // Failures are kept though the ring let them go; the tallies count every run.
        #expect(recorder.failures(job: "j").map(\.index) == [0, 1, 2])
        let tally = try! #require(recorder.tally(job: "j"))
        #expect(tally.runs == 25 && tally.done == 25 && tally.failedRuns == 3 && tally.submitted == 25)
        #expect(tally.runTime.count == 25 && tally.runTime.sum == 25 * 200)
        #expect(tally.queueWait.sum == 25 * 100 && tally.resultWait.sum == 25 * 50)
        #expect(tally.workers == ["w0": 13, "w1": 12])
        #expect(tally.runTime.quantile(0.5) == 256)  // 200 µs falls in [128, 256)
        // Off, nothing is recorded.
        recorder.isEnabled = false
        recorder.record(run(99), final: true)
        #expect(recorder.tally(job: "j")?.runs == 25)
    }

    /// Checks what Perfetto relies on: slices on one track nest, every flow has one start and one end, each
    /// end inside a slice of its track; returns the parsed events.
    func checkTrace(_ text: String) throws -> [[String: Any]] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let events = try #require(object["traceEvents"] as? [[String: Any]])
        func number(_ e: [String: Any], _ key: String) -> Int64 { (e[key] as? NSNumber)?.int64Value ?? -1 }
        var slices: [String: [(Int64, Int64)]] = [:]
        for e in events where e["ph"] as? String == "X" {
            slices["\(number(e, "pid"))/\(number(e, "tid"))", default: []].append((number(e, "ts"), number(e, "ts") + number(e, "dur")))
        }
        for (track, spans) in slices {
            var open: [Int64] = []
            for (start, end) in spans.sorted(by: { ($0.0, -$0.1) < ($1.0, -$1.1) }) {
                while let last = open.last, last <= start { open.removeLast() }
                if let last = open.last { #expect(end <= last, "track \(track): \(start)-\(end) overlaps a slice ending at \(last)") }
                open.append(end)
            }
        }
        var starts: [Int64: [String: Any]] = [:]
        var ends: [Int64: [String: Any]] = [:]
        for e in events {
            if e["ph"] as? String == "s" { starts[number(e, "id")] = e }
            if e["ph"] as? String == "f" { ends[number(e, "id")] = e }
        }
        #expect(!starts.isEmpty && Set(starts.keys) == Set(ends.keys))
        for (id, end) in ends {
            #expect(number(end, "ts") >= number(starts[id] ?? [:], "ts"))
            let track = "\(number(end, "pid"))/\(number(end, "tid"))"
            #expect(slices[track, default: []].contains { $0.0 <= number(end, "ts") && number(end, "ts") <= $0.1 }, "flow \(id) ends outside its track's slices")
        }
        #expect(events.contains { $0["ph"] as? String == "C" })
        return events
    }

    @Test func overlappingRunsOfOneWorkerGetLanesAndTheTraceNests() throws {
        // One worker running three tasks at once (the in-process backend does): three lanes.
        let records = [run(0, at: 0), run(2, at: 50), run(4, at: 120), run(6, at: 1_000)].map { r -> TaskRecord in
            var r = r
            r.worker = "w0"
            return r
        }
        let (placed, workers, lanes) = TimelineExport.lanes(records)
        #expect(workers == ["w0"] && lanes == [3])
        #expect(placed.map(\.lane) == [0, 1, 2, 0])
        _ = try checkTrace(TimelineExport.chromeTrace(records))
    }

    @Test func failedRunsBeyondMemoryGoToAFileAndAreAllKept() throws {
        func overflowFiles() -> Int {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path)) ?? []
            return names.filter { $0.hasPrefix("curtain-failures-") }.count
        }
        let filesBefore = overflowFiles()
        let recorder = TaskRecorder(capacity: 100)
        recorder.begin(job: "many", function: "F")
        let total = TaskRecorder.failuresPerJob + 50
        for start in stride(from: 0, to: total, by: 1000) {
            recorder.record((start..<min(total, start + 1000)).map { (run(UInt64($0), job: "many", failed: true), true) })
        }
        #expect(recorder.failures(job: "many").count == TaskRecorder.failuresPerJob)
        #expect(recorder.failuresBeyondMemory(job: "many") == (50, 0))
        let all = recorder.allFailures(job: "many")
        #expect(all.map(\.index) == (0..<UInt64(total)).map { $0 })
        #expect(all.last?.failure == "E: no" && all.last?.input == "\(total - 1)")
        // The report counts them all and says where the rest are; its JSON lines hold every one.
        let html = TimelineExport.html(
            records: [], tally: recorder.tally(job: "many"), failures: recorder.failures(job: "many"), title: "t",
            beyondMemory: recorder.failuresBeyondMemory(job: "many"))
        #expect(html.contains("Failed runs (\(total))") && html.contains("50 more failed runs"))
        let lines = recorder.failureLines(job: "many").split(separator: UInt8(ascii: "\n"))
        #expect(lines.count == total)
        #expect(try JSONDecoder().decode(TaskRecord.self, from: Data(lines[total - 1])) == all[total - 1])
        // The file has no name (nothing is left behind in the temporary directory, whatever ends the process).
        #expect(overflowFiles() == filesBefore)
        #expect(recorder.overflow.written > 0)
        // Gone with the recorder's records, and its bytes given back.
        recorder.removeAll()
        #expect(recorder.allFailures(job: "many").isEmpty)
        #expect(recorder.overflow.read(job: "many").isEmpty)
        #expect(recorder.overflow.written == 0)
    }

    @Test func actorCallsAreKeptInARingAndDrawnOnTheirOwnTrack() throws {
        let recorder = TaskRecorder(capacity: 3)
        func call(_ actor: String, _ start: Int64, _ end: Int64, _ outcome: String = "ok") -> ActorCallRecord {
            ActorCallRecord(actor: actor, host: "h", caller: "d", target: "add(_:)", started: start, ended: end, outcome: outcome)
        }
        // Two overlapping calls to one actor, one to another, then a failed one that pushes the oldest out.
        // Kept as they end.
        for c in [call("b", 150, 250), call("a", 200, 300), call("a", 100, 400), call("a", 500, 600, "thrown")] {
            recorder.actorCall(c)
        }
        #expect(recorder.allActorCalls().map(\.started) == [200, 100, 500])
        #expect(recorder.droppedActorCalls == 1)
        #expect(recorder.recentActorCalls(since: 350, limit: 10).map(\.started) == [100, 500])
        #expect(recorder.recentActorCalls(since: 0, limit: 1).map(\.started) == [500])
        #expect(recorder.actorCalls(from: 280, to: 450).map(\.started) == [200, 100])
        let tally = try #require(recorder.actorCalls().first { $0.actor == "a" })
        #expect(tally.calls == 3 && tally.failures == 1)
        // In a trace: their own process, a thread per actor and lane, slices that nest.
        let all = [call("a", 100, 400), call("a", 200, 300), call("b", 150, 250), call("a", 500, 600, "thrown")]
        let events = try checkTrace(TimelineExport.chromeTrace([run(0, at: 0)], calls: all))
        let threads = events.filter { $0["name"] as? String == "thread_name" && ($0["pid"] as? Int) == 2 }
            .compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        #expect(threads.sorted() == ["→ a", "→ a (2)", "→ b"])
        let slices = events.filter { $0["cat"] as? String == "actor" }
        #expect(slices.count == 4 && slices.contains { $0["name"] as? String == "add(_:) (thrown)" })
        // Only calls: still a trace.
        let only = try JSONSerialization.jsonObject(with: Data(TimelineExport.chromeTrace([], calls: all).utf8)) as? [String: Any]
        #expect((only?["traceEvents"] as? [Any])?.count ?? 0 > 4)
    }

    @Test func aJobOnWorkerProcessesHasATimelineOnOneClock() async throws {
        let cloud = try await Cloud.start(
            functions: allTestFunctions,
            configuration: CloudConfiguration(backend: .processes, workers: 2, workerExecutable: try fixtureWorkerPath(), buildID: "fixture"))
        defer { Task { await cloud.shutdown() } }
        let summary = Mutex<JobSummary?>(nil)
        _ = try await cloud.map(SlowSquare(milliseconds: 5), over: 0..<40, options: JobOptions(onSummary: { s in summary.withLock { $0 = s } }))
        let job = try #require(summary.withLock { $0 }).job
        let records = TaskRecorder.shared.records(job: job)
        #expect(records.count == 40)
        #expect(Set(records.map(\.worker)).count == 2)
        for r in records {
            // Submitted, started, ended, received: in order on the store's clock (2 ms for the alignment).
            #expect(r.submitted <= r.started + 2_000 && r.started < r.ended && r.ended <= r.received + 2_000, "\(r)")
            #expect(r.runTime >= 5_000)
        }
        let tally = try #require(TaskRecorder.shared.tally(job: job))
        #expect(tally.done == 40 && tally.submitted == 40 && tally.ended != nil)
        let events = try checkTrace(TimelineExport.chromeTrace(records, title: job))
        let processes = events.filter { $0["name"] as? String == "process_name" }.compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        #expect(processes.count == 3 && processes.contains("driver"))
        await cloud.shutdown()
    }

    @Test func aReportIsWrittenToStorageWithTheFailures() async throws {
        let directory = temporaryPath("curtain-reports")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = CloudConfiguration(backend: .inprocess, workers: 2)
        configuration.storage = "file://" + directory
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
        defer { Task { await cloud.shutdown() } }
        let summary = Mutex<JobSummary?>(nil)
        try await cloud.withTaskGroup(
            of: SlowOddRefused.self, options: JobOptions(report: true, onSummary: { s in summary.withLock { $0 = s } })
        ) { group in
            for i in 0..<6 { try await group.addTask(SlowOddRefused(milliseconds: 1), i) }
            var failed = 0
            while true {
                do {
                    guard try await group.next() != nil else { break }
                } catch is RemoteTaskError { failed += 1 }
            }
            #expect(failed == 3)
        }
        let report = try #require(summary.withLock { $0?.report })
        #expect(report.html == directory + "/curtain-reports/\(report.job)/report.html")
        let html = try String(contentsOfFile: report.html, encoding: .utf8)
        #expect(html.contains("odd input 3 refused") && html.contains("id=\"timeline\"") && html.contains("id=\"where\""))
        // Self-contained: no script, nothing loaded from anywhere (the SVG namespace is a name, not a request).
        #expect(!html.contains("<script") && !html.contains("src=") && !html.contains("href=") && !html.contains("url("))
        _ = try checkTrace(try String(contentsOfFile: report.trace, encoding: .utf8))
        // Every failed run, one JSON record per line.
        let lines = try String(contentsOfFile: report.failures, encoding: .utf8).split(separator: "\n")
        let failures = try lines.map { try JSONDecoder().decode(TaskRecord.self, from: Data($0.utf8)) }
        #expect(failures.map(\.index).sorted() == [1, 3, 5] && failures.allSatisfy { $0.failureKind == "thrown" })
        await cloud.shutdown()
    }

    @Test func theDashboardServesItsPageStateAndTraces() async throws {
        let dashboard = try await Dashboard.start(address: "127.0.0.1:0", client: nil)
        let port = try #require(Int(dashboard.url.split(separator: ":").last?.filter(\.isNumber) ?? ""))
        TaskRecorder.shared.begin(job: "dash-job", function: "F")
        TaskRecorder.shared.record(run(1, job: "dash-job", failed: true), final: true)
        let page = try await httpGet(port: port, "/")
        #expect(page.status == 200 && page.body.contains("EventSource") && !page.body.contains("https://"))
        let state = try await httpGet(port: port, "/api/state")
        #expect(state.status == 200)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(state.body.utf8)) as? [String: Any])
        let jobs = try #require(object["jobs"] as? [[String: Any]])
        #expect(jobs.contains { $0["job"] as? String == "dash-job" })
        let failures = try #require(object["failures"] as? [[String: Any]])
        #expect(failures.contains { $0["error"] as? String == "E: no" && $0["input"] as? String == "1" })
        #expect(try await httpGet(port: port, "/api/trace/dash-job").status == 200)
        #expect(try await httpGet(port: port, "/api/report/dash-job").body.contains("E: no"))
        #expect(try await httpGet(port: port, "/api/trace/no-such-job").status == 404)
        #expect(try await httpGet(port: port, "/elsewhere").status == 404)
        await dashboard.close()
    }

    @Test func aDashboardBeyondLoopbackNeedsAToken() async throws {
        await #expect(throws: ConfigurationError.self) { try await Dashboard.start(address: "0.0.0.0:0", client: nil) }
        await #expect(throws: ConfigurationError.self) { try await Dashboard.start(address: "127.0.0.1", client: nil) }
        // A token travels in the page's URL: only characters that need no escaping, and not too short.
        await #expect(throws: ConfigurationError.self) { try await Dashboard.start(address: "0.0.0.0:0", token: "a+b/c=d&e", client: nil) }
        await #expect(throws: ConfigurationError.self) { try await Dashboard.start(address: "0.0.0.0:0", token: "short", client: nil) }
        let dashboard = try await Dashboard.start(address: "0.0.0.0:0", token: "s3cret-token", client: nil)
        #expect(dashboard.url.hasSuffix("?token=s3cret-token"))
        let port = try #require(Int(dashboard.url.split(separator: ":").last?.prefix(while: \.isNumber) ?? ""))
        #expect(try await httpGet(port: port, "/api/state").status == 401)
        #expect(try await httpGet(port: port, "/api/state?token=wrong").status == 401)
        #expect(try await httpGet(port: port, "/api/state?token=s3cret-toke").status == 401)
        #expect(try await httpGet(port: port, "/api/state?token=s3cret-token").status == 200)
        #expect(try await httpGet(port: port, "/api/state", headers: ["Authorization: Bearer s3cret-token"]).status == 200)
        await dashboard.close()
    }

    @Test func aLoopbackDashboardAnswersOnlyLoopbackNames() async throws {
        // Without a token, a page elsewhere must not reach it by rebinding its own name to 127.0.0.1.
        let dashboard = try await Dashboard.start(address: "127.0.0.1:0", client: nil)
        let port = try #require(Int(dashboard.url.split(separator: ":").last?.filter(\.isNumber) ?? ""))
        #expect(try await httpGet(port: port, "/api/state").status == 200)
        #expect(try await httpGet(port: port, "/api/state", headers: ["Host: localhost:\(port)"]).status == 200)
        // (httpGet sends Host: 127.0.0.1; a second Host header makes the request ambiguous, so test a raw one.)
        let rebound = try await httpGet(port: port, "/api/state", hostHeader: "attacker.example:\(port)")
        #expect(rebound.status == 403)
        await dashboard.close()
    }

    @Test func utilizationBandsAtScaleEndAndStayInTheirColumns() async throws {
        // Over 5,000 runs the report draws bands; over 2,000 the dashboard does: uneven times, a run that
        // starts before the first submission (a skewed clock) and one that ends after everything.
        var records: [TaskRecord] = []
        var rng = SplitMix64(seed: 7)
        for i in 0..<6_000 {
            let start = Int64(rng.next() % 10_000_000)
            var r = run(UInt64(i), at: start)
            r.worker = "w\(i % 3)"
            r.started = start + Int64(rng.next() % 997) - 300
            r.ended = r.started + Int64(rng.next() % 50_000) + 1
            r.received = r.ended + 13
            records.append(r)
        }
        let html = TimelineExport.html(records: records, tally: nil, failures: [], title: "bands")
        #expect(html.contains("class=\"band\"") && !html.contains("class=\"run\""))
        let recorder = TaskRecorder(capacity: 10_000)
        let now = StoreClock.now()
        recorder.begin(job: "bands", function: "F")
        recorder.record(records.map { r in
            var r = r
            r.job = "bands"
            (r.submitted, r.started, r.ended, r.received) = (r.submitted + now - 10_000_000, r.started + now - 10_000_000, r.ended + now - 10_000_000, r.received + now - 10_000_000)
            return (r, true)
        })
        let state = DashboardSnapshot(client: nil).json(recorder: recorder)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(state.utf8)) as? [String: Any])
        let stream = try #require(object["stream"] as? [String: Any])
        #expect(stream["bands"] as? Bool == true)
        let lanes = try #require(stream["workers"] as? [[String: Any]])
        #expect(lanes.count == 3 && lanes.allSatisfy { ($0["runs"] as? [Double])?.count == 120 })
    }
    @Test func curtainReportFetchesAJobsTraceAndReport() async throws {
        let storage = temporaryPath("curtain-report-storage")
        let out = temporaryPath("curtain-report-out")
        defer {
            try? FileManager.default.removeItem(atPath: storage)
            try? FileManager.default.removeItem(atPath: out)
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var configuration = CloudConfiguration(backend: .inprocess, workers: 2)
        configuration.storage = "file://" + storage
        configuration.reports = true  // CURTAIN_REPORT=1: every job
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
        defer { Task { await cloud.shutdown() } }
        let summary = Mutex<JobSummary?>(nil)
        _ = try await cloud.map(SlowSquare(milliseconds: 1), over: 0..<4, options: JobOptions(onSummary: { s in summary.withLock { $0 = s } }))
        let job = try #require(summary.withLock { $0 }).job
        await cloud.shutdown()
        func curtain(_ arguments: [String]) throws -> (status: Int32, output: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try builtExecutablePath("curtain"))
            process.arguments = arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        let fetched = try curtain(["report", job, "--storage", "file://" + storage, "--out", out])
        #expect(fetched.status == 0, "\(fetched.output)")
        let html = try String(contentsOfFile: out + "/report.html", encoding: .utf8)
        #expect(html.contains("SlowSquare") && html.contains(job))
        _ = try checkTrace(try String(contentsOfFile: out + "/trace.json", encoding: .utf8))
        #expect(FileManager.default.fileExists(atPath: out + "/failures.jsonl"))
        // A job that wrote no report: a clear error naming the job and how reports are written.
        let missing = try curtain(["report", "no-such-job", "--storage", "file://" + storage, "--out", out])
        #expect(missing.status != 0 && missing.output.contains("no-such-job") && missing.output.contains("JobOptions(report: true)"))
    }
}

@Suite("Metrics and traces through swift-metrics and swift-distributed-tracing")
struct TelemetryTests {
    @Test func oneTraceGoesFromTheCallerThroughTheJobIntoEachTask() async throws {
        let tracer = InMemoryTracer()
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: CloudConfiguration(backend: .inprocess, workers: 2))
        defer { Task { await cloud.shutdown() } }
        try await TaskTracing.$tracerOverride.withValue(tracer) {
            let app = tracer.startSpan("app")
            try await ServiceContext.withValue(app.context) {
                _ = try await cloud.map(SlowSquare(milliseconds: 1), over: 0..<5)
            }
            app.end()
        }
        let spans = tracer.finishedSpans
        let appSpan = try #require(spans.first { $0.operationName == "app" })
        let job = try #require(spans.first { $0.operationName == "curtain.job SlowSquare" })
        let tasks = spans.filter { $0.operationName == "curtain.task SlowSquare" }
        #expect(job.traceID == appSpan.traceID && job.spanContext.parentSpanID == appSpan.spanContext.spanID)
        #expect(tasks.count == 5)
        #expect(tasks.allSatisfy { $0.traceID == appSpan.traceID && $0.spanContext.parentSpanID == job.spanContext.spanID })
        // Through the envelope: each task's context was extracted from the headers its envelope carried.
        #expect(tracer.performedContextExtractions.count >= 5)
        await cloud.shutdown()
    }

    /// A caller and a host actor system in this process on one store, each with the test's tracer (a
    /// bootstrap is once per process), over the direct path and the store path.
    @Test(arguments: [ActorPath.direct, .store])
    func oneTraceGoesFromTheCallerIntoTheActorsHost(path: ActorPath) async throws {
        let tracer = InMemoryTracer()
        try await withTestStore(.embedded) { store in
            let client = try store.client()
            let registry = try ActorRegistry([Tally.self])
            let hostTransport = ActorTransport(client: client, buildID: "traced", node: "host-\(path)", heartbeatTTL: .seconds(3), path: path)
            let callerTransport = ActorTransport(client: client, buildID: "traced", node: "caller-\(path)", heartbeatTTL: .seconds(3), path: path)
            let host = CurtainActorSystem(node: "host-\(path)", registry: registry, transport: hostTransport, tracer: tracer)
            let caller = CurtainActorSystem(node: "caller-\(path)", registry: registry, transport: callerTransport, tracer: tracer)
            try await hostTransport.startHosting(advertise: true)
            try await callerTransport.startHosting(advertise: false)
            let local = Tally(actorSystem: host)
            let remote = try Tally.resolve(id: local.id, using: caller)
            let app = tracer.startSpan("app")
            try await ServiceContext.withValue(app.context) { () async throws in
                #expect(try await remote.add(2) == 2)
                await #expect(throws: ActorCallError.self) { _ = try await remote.fail("no") }
            }
            app.end()
            // The host ends its span after sending the reply: wait for both.
            let deadline = ContinuousClock.now + .seconds(30)
            while tracer.finishedSpans.filter({ $0.operationName.hasPrefix("curtain.actor Tally.") }).count < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            let spans = tracer.finishedSpans
            let calls = spans.filter { $0.operationName.hasPrefix("curtain.actor.call Tally.") }
            let served = spans.filter { $0.operationName.hasPrefix("curtain.actor Tally.") }
            #expect(calls.map(\.operationName).sorted() == ["curtain.actor.call Tally.add(_:)", "curtain.actor.call Tally.fail(_:)"])
            #expect(served.count == 2)
            for call in calls {
                #expect(call.traceID == app.context.inMemorySpanContext?.traceID)
                #expect(call.spanContext.parentSpanID == app.context.inMemorySpanContext?.spanID)
                let child = try #require(served.first { $0.spanContext.parentSpanID == call.spanContext.spanID })
                #expect(child.traceID == call.traceID)
                #expect(child.attributes["curtain.actor.host"]?.toSpanAttribute() == SpanAttribute.string("host-\(path)"))
                // The thrown call is an error on both sides.
                let failed = call.operationName.hasSuffix("fail(_:)")
                #expect((call.status?.code == .error) == failed && (child.status?.code == .error) == failed)
            }
            // Calls record the caller's view: method, host, outcome (the tally counts them too).
            let records = TaskRecorder.shared.allActorCalls().filter { $0.actor == local.id.name }
            #expect(records.map(\.method) == ["add(_:)", "fail(_:)"])
            #expect(records.map(\.outcome) == ["ok", "thrown"])
            #expect(records.allSatisfy { $0.host == "host-\(path)" && $0.caller == "caller-\(path)" && $0.ended >= $0.started })
            await callerTransport.close()
            await hostTransport.close()
            await client.close()
        }
    }

    @Test func anActorMessageCarriesTheTraceContextOnlyWhenThereIsOne() throws {
        var message = ActorMessage(kind: .call, callID: 9, replyNode: "d", actor: "a", target: "$s1", arguments: [[1]])
        let plain = try message.encoded()
        message.traceContext = ["traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]
        let traced = try message.encoded()
        #expect(try ActorMessage(decoding: traced) == message)
        #expect(try ActorMessage(decoding: plain).traceContext.isEmpty)
        // One count byte, then the name and value with their lengths.
        #expect(traced.readableBytes == plain.readableBytes + 1 + 2 + 11 + 2 + 55)
        #expect(throws: EnvelopeError.self) { try ActorMessage(decoding: traced.getSlice(at: 0, length: traced.readableBytes - 4)!) }
        var empty = plain
        empty.writeInteger(UInt8(0))
        #expect(throws: EnvelopeError.self) { try ActorMessage(decoding: empty) }
        // A name given twice is refused, not silently merged.
        var twice = plain
        twice.writeInteger(UInt8(2))
        for value in ["1", "2"] {
            twice.writeInteger(UInt16(1))
            twice.writeString("a")
            twice.writeInteger(UInt16(1))
            twice.writeString(value)
        }
        #expect(throws: EnvelopeError(description: "actor message's trace context names 'a' twice")) { try ActorMessage(decoding: twice) }
    }

    @Test func theEnvelopeCarriesTheTraceContextAndRejectsATruncatedOne() throws {
        var envelope = TaskEnvelope(buildID: "b", jobID: "j", index: 1, function: "F", functionPayload: [], input: [1])
        envelope.traceContext = ["traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "x=1"]
        let bytes = try envelope.encoded()
        #expect(try TaskEnvelope(decoding: bytes) == envelope)
        #expect(throws: EnvelopeError.self) { try TaskEnvelope(decoding: bytes.getSlice(at: 0, length: bytes.readableBytes - 3)!) }
        // Without a context, the bytes are what they were (no flag, nothing after the input).
        let plain = TaskEnvelope(buildID: "b", jobID: "j", index: 1, function: "F", functionPayload: [], input: [1])
        #expect(try plain.encoded().readableBytes == bytes.readableBytes - (1 + 2 + 11 + 2 + 55 + 2 + 10 + 2 + 3))
    }

    @Test func metricsReachAPrometheusRegistryAndTheDashboard() async throws {
        CurtainMetrics.bootstrapPrometheus()
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: CloudConfiguration(backend: .inprocess, workers: 2))
        defer { Task { await cloud.shutdown() } }
        _ = try await cloud.map(SlowSquare(milliseconds: 1), over: 0..<7)
        let text = try #require(CurtainMetrics.exposition())
        let line = try #require(text.split(separator: "\n").first {
            $0.hasPrefix("curtain_tasks_total{") && $0.contains("function=\"SlowSquare\"") && $0.contains("outcome=\"succeeded\"")
        })
        #expect((Double(line.split(separator: " ").last ?? "") ?? 0) >= 7)
        #expect(text.contains("curtain_task_duration_seconds_bucket"))
        let dashboard = try await Dashboard.start(address: "127.0.0.1:0", client: nil)
        let port = try #require(Int(dashboard.url.split(separator: ":").last?.filter(\.isNumber) ?? ""))
        let metrics = try await httpGet(port: port, "/metrics")
        #expect(metrics.status == 200 && metrics.body.contains("curtain_tasks_total"))
        await dashboard.close()
        await cloud.shutdown()
    }
}
