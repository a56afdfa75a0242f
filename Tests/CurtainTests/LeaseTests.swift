@testable import Curtain
import CurtainRESP
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// An HTTP request over a plain socket (``blockingRequest(port:_:_:body:headers:hostHeader:)``), on a
/// thread of its own: the status and the body.
func httpRequest(port: Int, _ method: String, _ path: String, body: String = "", headers: [String] = []) async throws -> (status: Int, body: String) {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try blockingRequest(port: port, method, path, body: body, headers: headers, hostHeader: "127.0.0.1") })
        }
    }
}

/// An `http-worker` of the fixture on a port the kernel picks; it exits when the test closes its input.
struct HTTPWorkerProcess {
    let process: Process
    let port: Int

    static func start(url: String, buildID: String = "fixture", environment extra: [String: String] = [:]) async throws -> HTTPWorkerProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try fixtureWorkerPath())
        var environment = ProcessInfo.processInfo.environment
        environment["CURTAIN_ROLE"] = "http-worker"
        environment["CURTAIN_STORE"] = url
        environment["CURTAIN_BUILD_ID"] = buildID
        environment["CURTAIN_PARENT_PIPE"] = "1"
        environment["CURTAIN_HTTP_HOST"] = "127.0.0.1"
        environment["PORT"] = "0"
        environment["CURTAIN_HEARTBEAT_MS"] = "1000"
        environment.merge(extra) { _, new in new }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = Pipe()
        try process.run()
        let line = await firstLine(of: output)
        guard line.hasPrefix("CURTAIN_HTTP_WORKER_PORT "), let port = Int(line.dropFirst("CURTAIN_HTTP_WORKER_PORT ".count).prefix { $0.isNumber }) else {
            throw TestStoreError(description: "the http worker did not say its port: '\(line)'")
        }
        return HTTPWorkerProcess(process: process, port: port)
    }

    var url: String { "http://127.0.0.1:\(port)/lease" }

    func stop() async { await terminate(process) }
}

/// Waits until `condition` holds (a failure after a minute, not a hang).
func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(60)
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TestStoreError(description: "not within 60 s: \(what)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

// Serialized: each case starts worker processes.
@Suite("Leased workers: an invocation leases a worker, which runs the loop until idle", .serialized)
struct LeaseTests {
    @Test(arguments: StoreKind.allCases)
    func aLeaseRunsTheBacklogAndAnswersWhatItDid(kind: StoreKind) async throws {
        try await withTestStore(kind) { store in
            let worker = try await HTTPWorkerProcess.start(url: store.url)
            let cloud = try await Cloud.start(
                functions: allTestFunctions, configuration: CloudConfiguration(backend: .store(url: store.url), buildID: "fixture"))
            let job = Task { try await cloud.map(SlowSquare(milliseconds: 5), over: 0..<20) }
            let invoker = try HTTPInvoker(url: worker.url)
            // Until the job's tasks are queued, a lease may end idle having run none: lease until all ran.
            var reports: [LeaseReport] = []
            while reports.reduce(0, { $0 + $1.tasks }) < 20 {
                reports.append(try await invoker.lease(LeaseRequest(build: "fixture", seconds: 30, idleMilliseconds: 300)))
                try #require(reports.count < 50, "50 leases ran \(reports.reduce(0) { $0 + $1.tasks }) of 20 tasks")
            }
            // Each lease has an id of its own.
            #expect(Set(reports.map(\.worker)).count == reports.count)
            #expect(try await job.value == (0..<20).map { $0 * $0 })
            let last = try #require(reports.last)
            #expect(last.ended == "idle" && last.build == "fixture" && last.failures == 0 && last.handedBack == 0)
            #expect(last.seconds < 30)
            // The lease ended: the worker's heartbeat is gone, and it says it is free.
            let client = try store.client()
            #expect(try await client.send(RESPCommand("EXISTS", StoreKeys(buildID: "fixture").worker(last.worker))).int == 0)
            let health = try await httpRequest(port: worker.port, "GET", "/healthz")
            #expect(health.status == 200 && health.body.contains(#""leased":false"#) && health.body.contains(#""setup":"done""#), "\(health)")
            await client.close()
            await cloud.shutdown()
            await worker.stop()
        }
    }

    @Test func aLeaseEndsBeforeItsBudgetWithTheRunningTaskHandedBack() async throws {
        try await withTestStore(.embedded) { store in
            let worker = try await HTTPWorkerProcess.start(url: store.url)
            let cloud = try await Cloud.start(
                functions: allTestFunctions, configuration: CloudConfiguration(backend: .store(url: store.url), buildID: "fixture"))
            // Tasks of 3 s against a lease of 2 s: the first is cancelled at the budget's end and handed back.
            // With a timeout, the task runs under a deadline of its own, which the lease's end cancels too.
            let job = Task { try await cloud.map(SlowSquare(milliseconds: 3_000), over: 0..<2, options: JobOptions(timeout: .seconds(60))) }
            let client = try store.client()
            let keys = StoreKeys(buildID: "fixture")
            try await eventually("both tasks queued") { try await client.send(RESPCommand("LLEN", keys.queue)).int ?? 0 == 2 }
            let report = try await HTTPInvoker(url: worker.url).lease(LeaseRequest(build: "fixture", seconds: 2))
            #expect(report.ended == "deadline" && report.tasks == 0 && report.handedBack >= 1)
            #expect(report.seconds < 2.2)
            #expect(try await client.send(RESPCommand("LLEN", keys.queue)).int == 2)  // both back, nothing lost
            job.cancel()
            await client.close()
            await cloud.shutdown()
            await worker.stop()
        }
    }

    @Test func aWorkerKilledMidLeaseLosesNothing() async throws {
        try await withTestStore(.embedded) { store in
            var configuration = CloudConfiguration(backend: .store(url: store.url), buildID: "fixture")
            configuration.heartbeatTTL = .seconds(1)
            let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
            let first = try await HTTPWorkerProcess.start(url: store.url)
            let job = Task { try await cloud.map(SlowSquare(milliseconds: 100), over: 0..<30) }
            let lease = Task { try await HTTPInvoker(url: first.url).invoke(LeaseRequest(build: "fixture", seconds: 60)) }
            // Once it has run some, kill it with tasks in flight.
            let client = try store.client()
            let keys = StoreKeys(buildID: "fixture")
            try await eventually("a few tasks taken") { try await client.send(RESPCommand("LLEN", keys.queue)).int ?? 0 <= 25 }
            kill(first.process.processIdentifier, SIGKILL)
            await #expect(throws: InvokeError.self) { _ = try await lease.value }
            // A second worker's leases finish the job: every task's result, the killed one's in-flight
            // tasks included (run again, once the reaper saw its heartbeat lapse).
            let second = try await HTTPWorkerProcess.start(url: store.url)
            let finished = Task { () -> [Int] in try await job.value }
            let invoker = try HTTPInvoker(url: second.url)
            let leasing = Task {
                while !Task.isCancelled {
                    if (try? await invoker.invoke(LeaseRequest(build: "fixture", seconds: 30, idleMilliseconds: 200))) == nil {
                        try? await Task.sleep(for: .milliseconds(50))
                    }
                }
            }
            #expect(try await finished.value == (0..<30).map { $0 * $0 })
            leasing.cancel()
            await client.close()
            await cloud.shutdown()
            await first.stop()
            await second.stop()
        }
    }

    @Test func badLeaseRequestsAreClearErrorsAndRunNothing() async throws {
        try await withTestStore(.embedded) { store in
            let worker = try await HTTPWorkerProcess.start(url: store.url, environment: ["CURTAIN_LEASE_TOKEN": "s3cret-token"])
            let client = try store.client()
            let keys = StoreKeys(buildID: "fixture")
            // A queued entry that any lease would take (and answer or refuse): it must stay where it is.
            _ = try await client.send(RESPCommand("RPUSH", keys.queue, "not run"))
            let good = #"{"build":"fixture","seconds":5}"#
            let auth = "Authorization: Bearer s3cret-token"
            let missing = try await httpRequest(port: worker.port, "POST", "/lease", body: good)
            #expect(missing.status == 401 && missing.body.contains("CURTAIN_LEASE_TOKEN"))
            let wrong = try await httpRequest(port: worker.port, "POST", "/lease", body: good, headers: ["Authorization: Bearer nope"])
            #expect(wrong.status == 401)
            let malformed = try await httpRequest(port: worker.port, "POST", "/lease", body: "{", headers: [auth])
            #expect(malformed.status == 400 && malformed.body.contains("not a lease request"))
            let noBuild = try await httpRequest(port: worker.port, "POST", "/lease", body: #"{"seconds":5}"#, headers: [auth])
            #expect(noBuild.status == 400 && noBuild.body.contains("'build' is missing"))
            let negative = try await httpRequest(port: worker.port, "POST", "/lease", body: #"{"build":"fixture","seconds":-1}"#, headers: [auth])
            #expect(negative.status == 400 && negative.body.contains("seconds must be above 0"))
            for idle in ["0", "99999999999999999"] {
                let bad = try await httpRequest(
                    port: worker.port, "POST", "/lease", body: #"{"build":"fixture","seconds":5,"idleMilliseconds":"# + idle + "}", headers: [auth])
                #expect(bad.status == 400 && bad.body.contains("idleMilliseconds"), "\(bad)")
            }
            let other = try await httpRequest(port: worker.port, "POST", "/lease", body: #"{"build":"other","seconds":5}"#, headers: [auth])
            #expect(other.status == 409 && other.body.contains("build fixture") && other.body.contains("build other"))
            #expect(try await httpRequest(port: worker.port, "GET", "/lease").status == 405)
            #expect(try await httpRequest(port: worker.port, "GET", "/nothing").status == 404)
            // Through the invoker: the refusal names the builds.
            do {
                _ = try await HTTPInvoker(url: worker.url, token: "s3cret-token").invoke(LeaseRequest(build: "other", seconds: 5))
                Issue.record("a lease for another build was granted")
            } catch let error as InvokeError {
                #expect(error.kind == .refused && error.status == 409 && error.message.contains("CURTAIN_BUILD_ID"))
            }
            #expect(try await client.send(RESPCommand("LRANGE", keys.queue, 0, -1)).array?.compactMap(\.string) == ["not run"])
            #expect(try await client.send(RESPCommand("SCARD", keys.workers)).int == 0)
            #expect(throws: ConfigurationError.self) { _ = try HTTPInvoker(url: "https://example.invalid/lease") }
            await client.close()
            await worker.stop()
        }
    }

    @Test func aDriverInvokesLeasesForItsBacklogWithNoWorkerRunning() async throws {
        try await withTestStore(.embedded) { store in
            let worker = try await HTTPWorkerProcess.start(url: store.url)
            var configuration = CloudConfiguration(backend: .store(url: store.url), buildID: "fixture")
            configuration.invoke = worker.url
            configuration.leaseSeconds = 30
            let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
            #expect(try await cloud.map(SlowSquare(milliseconds: 1), over: 0..<50) == (0..<50).map { $0 * $0 })
            let launcher = try #require(cloud.launcher)
            #expect(launcher.counts.invoked >= 1)
            await cloud.shutdown()
            await worker.stop()
        }
    }

    @Test func aDriverWhoseLeasesAreRefusedForAnotherBuildFailsItsJobWithTheReason() async throws {
        try await withTestStore(.embedded) { store in
            let worker = try await HTTPWorkerProcess.start(url: store.url, buildID: "other")
            var configuration = CloudConfiguration(backend: .store(url: store.url), buildID: "fixture")
            configuration.invoke = worker.url
            let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
            do {
                _ = try await cloud.map(SlowSquare(milliseconds: 1), over: 0..<5)
                Issue.record("a job whose workers refuse its build succeeded")
            } catch let error as ConfigurationError {
                #expect(error.description.contains("build fixture") && error.description.contains("CURTAIN_BUILD_ID"), "\(error)")
            }
            await cloud.shutdown()
            await worker.stop()
        }
    }

    /// Two endpoints, one of another build: its refusal stops only it, and the job runs through the other.
    @Test func aRefusingEndpointIsLeftAndTheOthersServeTheJob() async throws {
        try await withTestStore(.embedded) { store in
            let other = try await HTTPWorkerProcess.start(url: store.url, buildID: "other")
            let good = try await HTTPWorkerProcess.start(url: store.url)
            var configuration = CloudConfiguration(backend: .store(url: store.url), buildID: "fixture")
            configuration.invoke = "\(other.url),\(good.url)"
            configuration.leaseSeconds = 30
            let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
            #expect(try await cloud.map(SlowSquare(milliseconds: 1), over: 0..<40) == (0..<40).map { $0 * $0 })
            let launcher = try #require(cloud.launcher)
            #expect(launcher.failures.contains { $0.kind == .refused && $0.status == 409 })
            // The good endpoint's lease answers once idle, with the tasks it ran.
            try await eventually("a lease report") { !launcher.reports.isEmpty }
            #expect(launcher.reports.allSatisfy { $0.build == "fixture" })
            #expect(LeaseLauncher.refusal(client: launcher.client, build: "fixture") == nil)
            await cloud.shutdown()
            await other.stop()
            await good.stop()
        }
    }

    /// The backlog counts tasks placed on workers' own queues; live workers are those whose heartbeat
    /// exists, not every member of the workers set (a dead one stays there until a reaper removes it).
    @Test func theLauncherCountsOwnQueuesAndOnlyLiveHeartbeats() async throws {
        try await withTestStore(.embedded) { store in
            let client = try store.client()
            let keys = StoreKeys(buildID: "counted")
            final class Never: WorkerInvoker {
                func invoke(_ request: LeaseRequest) async throws -> LeaseReport? { nil }
            }
            let launcher = LeaseLauncher(client: client, buildID: "counted", invoker: Never())
            #expect(try await launcher.backlogAndLiveWorkers() == (0, 0))
            _ = try await client.pipeline([
                RESPCommand("RPUSH", keys.queue, "a", "b"),
                RESPCommand("RPUSH", keys.ownQueue(worker: "w1"), "c", "d", "e"),
                RESPCommand("SADD", keys.placed, "w1", "w2"),
                RESPCommand("SADD", keys.workers, "w1", "gone"),
                RESPCommand("HSET", keys.worker("w1"), "beat", 1),
            ])
            let (backlog, live) = try await launcher.backlogAndLiveWorkers()
            #expect(backlog == 5)
            #expect(live == 1)
            await client.close()
        }
    }

    /// A job's submission wakes its launcher (an hour-long wait here would otherwise hang the test).
    @Test func aWakeUpEndsTheWaitUnderWayOrTheNextOne() async {
        let wakeUp = WakeUp()
        wakeUp.signal()
        await wakeUp.wait(upTo: .seconds(3600))  // signalled before: returns at once
        let waiting = Task { await wakeUp.wait(upTo: .seconds(3600)) }
        Task {
            try? await Task.sleep(for: .milliseconds(50))
            wakeUp.signal()
        }
        await waiting.value
        await wakeUp.wait(upTo: .milliseconds(10))  // not signalled: the timeout ends it
    }

    @Test func theLauncherFollowsTheBacklogAndBacksOffWhenThrottled() async throws {
        #expect(LeaseLauncher.wanted(backlog: 0, pending: 0, live: 0, tasksPerLease: 10, maxLeases: 5) == 0)
        #expect(LeaseLauncher.wanted(backlog: 1, pending: 0, live: 0, tasksPerLease: 10, maxLeases: 5) == 1)
        #expect(LeaseLauncher.wanted(backlog: 25, pending: 1, live: 0, tasksPerLease: 10, maxLeases: 5) == 2)
        #expect(LeaseLauncher.wanted(backlog: 25, pending: 1, live: 3, tasksPerLease: 10, maxLeases: 5) == 0)
        #expect(LeaseLauncher.wanted(backlog: 1_000, pending: 0, live: 0, tasksPerLease: 10, maxLeases: 5) == 5)
        // An invoker that is throttled: the launcher holds back (a jittered, growing pause after each 429)
        // instead of invoking every 20 ms.
        final class Throttled: WorkerInvoker {
            let calls = Atomic<Int>(0)
            func invoke(_ request: LeaseRequest) async throws -> LeaseReport? {
                calls.add(1, ordering: .relaxed)
                throw InvokeError(.throttled, status: 429, "slow down")
            }
        }
        try await withTestStore(.embedded) { store in
            let client = try store.client()
            let keys = StoreKeys(buildID: "throttled")
            _ = try await client.send(RESPCommand("RPUSH", keys.queue, "waiting"))
            let invoker = Throttled()
            let launcher = LeaseLauncher(client: client, buildID: "throttled", invoker: invoker, tasksPerLease: 1, maxLeases: 1)
            let clock = ContinuousClock()
            let start = clock.now
            launcher.start()
            while invoker.calls.load(ordering: .relaxed) < 5, clock.now - start < .seconds(60) { try await Task.sleep(for: .milliseconds(5)) }
            let elapsed = clock.now - start
            launcher.stop()
            // The pauses before the 2nd to 5th call: at least half of 100, 200, 400 and 800 ms. Without them
            // the launcher would invoke every 20 ms (5 calls in about 80 ms).
            #expect(invoker.calls.load(ordering: .relaxed) >= 5)
            #expect(elapsed >= .milliseconds(750), "5 invocations in \(elapsed)")
            #expect(launcher.failures.allSatisfy { $0.kind == .throttled })
            await client.close()
        }
    }

    @Test func aStoppedWorkerEndsItsLeaseHandsBackAndExits() async throws {
        try await withTestStore(.embedded) { store in
            let worker = try await HTTPWorkerProcess.start(url: store.url, environment: ["CURTAIN_DRAIN_SECONDS": "1"])
            let cloud = try await Cloud.start(
                functions: allTestFunctions, configuration: CloudConfiguration(backend: .store(url: store.url), buildID: "fixture"))
            let job = Task { try await cloud.map(SlowSquare(milliseconds: 20_000), over: 0..<3) }
            let client = try store.client()
            let keys = StoreKeys(buildID: "fixture")
            try await eventually("the tasks queued") { try await client.send(RESPCommand("LLEN", keys.queue)).int ?? 0 == 3 }
            let lease = Task { try await HTTPInvoker(url: worker.url).lease(LeaseRequest(build: "fixture", seconds: 120)) }
            try await eventually("a task taken") { try await client.send(RESPCommand("LLEN", keys.queue)).int ?? 0 < 3 }
            kill(worker.process.processIdentifier, SIGTERM)
            // Answered at once (the running task cancelled after the 1 s drain timeout), not after 20 s.
            let report = try await lease.value
            #expect(report.ended == "stopped" && report.tasks == 0 && report.handedBack >= 1)
            #expect(report.seconds < 15)
            try await eventually("the worker exited") { !worker.process.isRunning }
            #expect(worker.process.terminationStatus == 0)
            #expect(try await client.send(RESPCommand("LLEN", keys.queue)).int == 3)
            job.cancel()
            await client.close()
            await cloud.shutdown()
        }
    }

    /// The port opens before the worker is set up (its first request travels meanwhile): a worker that
    /// then cannot reach its store answers the lease with the reason, where the driver sees it, and exits.
    @Test func anHTTPWorkerThatCannotStartAnswersTheReasonAndExits() async throws {
        let missing = "unix://\(NSTemporaryDirectory())curtain-no-store-\(UUID().uuidString).sock"
        // A store it cannot reach, and a bad setting: both are answered to the driver.
        let unreachable = try await HTTPWorkerProcess.start(url: missing)
        let misconfigured = try await HTTPWorkerProcess.start(url: missing, environment: ["CURTAIN_HEARTBEAT_MS": "soon"])
        for (worker, reason) in [(unreachable, "curtain-no-store-"), (misconfigured, "CURTAIN_HEARTBEAT_MS")] {
            do {
                _ = try await HTTPInvoker(url: worker.url).invoke(LeaseRequest(build: "fixture", seconds: 5))
                Issue.record("a worker that cannot start granted a lease")
            } catch let error as InvokeError {
                #expect(error.kind == .failed && error.status == 500, "\(error)")
                #expect(error.message.contains("the worker could not start") && error.message.contains(reason), "\(error)")
            }
            // Its health check says so too, until it exits.
            let health = try await httpRequest(port: worker.port, "GET", "/healthz")
            #expect(health.status == 503 && health.body.contains(#""setup":"failed""#), "\(health)")
        }
        for worker in [unreachable, misconfigured] {
            let deadline = ContinuousClock.now + .seconds(60)
            while worker.process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(!worker.process.isRunning)
            #expect(worker.process.terminationStatus == 1)
        }
    }

    /// Half a request is cut off after the read timeout; an idle connection (a proxy's kept-alive one) is
    /// not, and a lease that lasts longer than the timeout is still answered.
    @Test func aHalfSentRequestIsCutOffButIdleConnectionsAndLeasesAreNot() async throws {
        try await withTestStore(.embedded) { store in
            let worker = try await HTTPWorkerProcess.start(url: store.url, environment: ["CURTAIN_HTTP_READ_TIMEOUT": "0.3"])
            let half = "POST /lease HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{\"bui"
            let closed = try await onThread { try closedByPeer(port: worker.port, after: half) }
            #expect(closed)
            // Idle for 1 s, three times the read timeout, then a whole request on the same connection.
            let status = try await onThread { try requestAfterIdling(port: worker.port, seconds: 1) }
            #expect(status == 200)
            // Idle for 1 s, three times the read timeout, before it answers.
            let report = try await HTTPInvoker(url: worker.url).lease(LeaseRequest(build: "fixture", seconds: 10, idleMilliseconds: 1000))
            #expect(report.ended == "idle" && report.seconds >= 0.9)
            await worker.stop()
        }
    }

    @Test func anIdleHTTPWorkerExitsWhenToldTo() async throws {
        try await withTestStore(.embedded) { store in
            let worker = try await HTTPWorkerProcess.start(url: store.url, environment: ["CURTAIN_WORKER_IDLE_EXIT": "0.3"])
            let deadline = ContinuousClock.now + .seconds(60)
            while worker.process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(!worker.process.isRunning)
            #expect(worker.process.terminationStatus == 0)
        }
    }
}

/// `body` on a thread of its own (it blocks).
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Connects to `port` on loopback, waits `seconds`, then sends `GET /healthz` on that connection: the
/// answer's status (0 if the connection was closed meanwhile).
func requestAfterIdling(port: Int, seconds: UInt32) throws -> Int {
    let fd = try loopbackConnection(port: port)
    defer { close(fd) }
    sleep(seconds)
    let request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    _ = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        bytes += buffer[..<n]
    }
    return Int(String(decoding: bytes, as: UTF8.self).split(separator: " ").dropFirst().first ?? "") ?? 0
}

/// Connects to `port` on loopback, sends `text`, and reads until the peer closes: true if it did (within a
/// minute, the socket's receive timeout), false if it was still open then.
func closedByPeer(port: Int, after text: String) throws -> Bool {
    let fd = try loopbackConnection(port: port)
    defer { close(fd) }
    var wait = timeval(tv_sec: 60, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
    if !text.isEmpty { _ = text.withCString { send(fd, $0, strlen($0), 0) } }
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n == 0 { return true }
        if n < 0 { return errno == ECONNRESET }
    }
}
