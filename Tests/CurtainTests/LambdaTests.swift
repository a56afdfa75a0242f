@testable import Curtain
import CurtainRESP
import CurtainS3
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import NIOHTTP1
import Testing

/// `Scripts/lambda-fixture.py`: a substitute for AWS Lambda (its Invoke and Runtime APIs, written from AWS's
/// published protocol, on loopback), running the fixture worker as the function.
struct LambdaFixture {
    let process: Process
    let port: Int

    static func start(
        store: String, buildID: String = "fixture", timeout: Double = 30, throttle: Int = 0, environment extra: [String: String] = [:]
    ) async throws -> LambdaFixture {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestStore.executablePath("python3"))
        process.arguments = [root.appendingPathComponent("Scripts/lambda-fixture.py").path, "--timeout", "\(timeout)", "--throttle", "\(throttle)", "--", try fixtureWorkerPath()]
        var environment = ProcessInfo.processInfo.environment
        environment["CURTAIN_STORE"] = store
        environment["CURTAIN_BUILD_ID"] = buildID
        environment["CURTAIN_HEARTBEAT_MS"] = "1000"
        environment.removeValue(forKey: "CURTAIN_ROLE")
        environment.merge(extra) { _, new in new }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = Pipe()
        try process.run()
        let line = await firstLine(of: output)
        guard let port = Int(line.dropFirst("LAMBDA_FIXTURE_PORT ".count).prefix { $0.isNumber }) else {
            throw TestStoreError(description: "the Lambda fixture did not say its port: '\(line)'")
        }
        return LambdaFixture(process: process, port: port)
    }

    /// Invokes the function (`RequestResponse`): the status, whether the function reported an error, and the payload.
    func invoke(_ payload: String) async throws -> (status: Int, functionError: String?, body: String) {
        let answer = try await HTTP1.request(
            .POST, host: "127.0.0.1", port: port, path: "/2015-03-31/functions/curtain/invocations",
            headers: [("X-Amz-Invocation-Type", "RequestResponse")], body: Array(payload.utf8), timeout: .seconds(120))
        return (answer.status, answer.headers.first(name: "X-Amz-Function-Error"), answer.body)
    }

    func stats() async throws -> [String: Int] {
        let answer = try await HTTP1.request(.GET, host: "127.0.0.1", port: port, path: "/fixture/stats", timeout: .seconds(30))
        return try JSONDecoder().decode([String: Int].self, from: Data(answer.body.utf8))
    }

    /// Closes its input (it then kills the function's process and exits), then makes sure.
    func stop() async {
        try? (process.standardInput as? Pipe)?.fileHandleForWriting.close()
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        await terminate(process)
    }
}

// Serialized: each case starts worker processes.
@Suite("AWS Lambda's Runtime API, against a substitute of Lambda on loopback", .serialized)
struct LambdaTests {
    @Test func invocationsLeaseOneFrozenAndThawedWorkerUntilTheJobIsDone() async throws {
        try await withTestStore(.embedded) { store in
            let lambda = try await LambdaFixture.start(store: store.url)
            let cloud = try await Cloud.start(
                functions: allTestFunctions, configuration: CloudConfiguration(backend: .store(url: store.url), buildID: "fixture"))
            let job = Task { try await cloud.map(SlowSquare(milliseconds: 5), over: 0..<30) }
            var reports: [LeaseReport] = []
            while reports.reduce(0, { $0 + $1.tasks }) < 30 {
                let answer = try await lambda.invoke(#"{"build":"fixture","seconds":20,"idleMilliseconds":200}"#)
                #expect(answer.status == 200 && answer.functionError == nil, "\(answer)")
                reports.append(try JSONDecoder().decode(LeaseReport.self, from: Data(answer.body.utf8)))
                try #require(reports.count < 50)
            }
            #expect(try await job.value == (0..<30).map { $0 * $0 })
            // Two more invocations: each thaws the same process (one cold start), which answers and is frozen again.
            for _ in 0..<2 {
                let answer = try await lambda.invoke(#"{"build":"fixture","seconds":20,"idleMilliseconds":50}"#)
                #expect(answer.status == 200 && answer.functionError == nil)
            }
            let stats = try await lambda.stats()
            #expect(stats["cold_starts"] == 1 && stats["freezes"] ?? 0 >= reports.count + 1, "\(stats)")
            await cloud.shutdown()
            await lambda.stop()
        }
    }

    @Test func aDriverInvokesTheFunctionThroughTheLambdaInvokerAndBacksOffWhenThrottled() async throws {
        try await withTestStore(.embedded) { store in
            // The first three invocations are throttled (429), as a Lambda at its concurrency limit answers.
            let lambda = try await LambdaFixture.start(store: store.url, throttle: 3)
            var configuration = CloudConfiguration(backend: .store(url: store.url), buildID: "fixture")
            configuration.maxLeases = 1
            let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
            // The substitute checks no signature (moto's Lambda API does, in CurtainS3Tests).
            let invoker = try LambdaInvoker(
                function: "curtain", region: "us-east-1", accessKey: "k", secretKey: "s", endpoint: "http://127.0.0.1:\(lambda.port)")
            try await cloud.invokeWorkers(with: [invoker])
            // No worker runs: the invocations start one, through the throttling.
            #expect(try await cloud.map(SlowSquare(milliseconds: 1), over: 0..<40) == (0..<40).map { $0 * $0 })
            let stats = try await lambda.stats()
            #expect(stats["throttled"] == 3 && stats["cold_starts"] == 1 && stats["invocations"] ?? 0 >= 1, "\(stats)")
            let launcher = try #require(cloud.launcher)
            #expect(launcher.failures.filter { $0.kind == .throttled }.count == 3)
            // An Event invocation is only queued: no report.
            let queued = try LambdaInvoker(
                function: "curtain", region: "us-east-1", accessKey: "k", secretKey: "s", endpoint: "http://127.0.0.1:\(lambda.port)",
                invocationType: .event)
            #expect(try await queued.invoke(LeaseRequest(build: "fixture", seconds: 5, idleMilliseconds: 50)) == nil)
            await cloud.shutdown()
            await lambda.stop()
        }
    }

    @Test func aLeaseEndsBeforeTheFunctionsDeadline() async throws {
        try await withTestStore(.embedded) { store in
            // The function's timeout is 3 s; the invocation asks for 60: the deadline header decides.
            let lambda = try await LambdaFixture.start(store: store.url, timeout: 3)
            let cloud = try await Cloud.start(
                functions: allTestFunctions, configuration: CloudConfiguration(backend: .store(url: store.url), buildID: "fixture"))
            let job = Task { try await cloud.map(SlowSquare(milliseconds: 10_000), over: 0..<2) }
            let client = try store.client()
            let keys = StoreKeys(buildID: "fixture")
            try await eventually("both tasks queued") { try await client.send(RESPCommand("LLEN", keys.queue)).int ?? 0 == 2 }
            let answer = try await lambda.invoke(#"{"build":"fixture","seconds":60}"#)
            #expect(answer.status == 200 && answer.functionError == nil, "\(answer)")
            let report = try JSONDecoder().decode(LeaseReport.self, from: Data(answer.body.utf8))
            #expect(report.ended == "deadline" && report.tasks == 0 && report.seconds < 3, "\(report)")
            #expect(try await client.send(RESPCommand("LLEN", keys.queue)).int == 2)  // handed back, nothing lost
            job.cancel()
            await client.close()
            await cloud.shutdown()
            await lambda.stop()
        }
    }

    @Test func badInvocationsAndAWorkerThatCannotStartAreReportedNotLost() async throws {
        try await withTestStore(.embedded) { store in
            let lambda = try await LambdaFixture.start(store: store.url)
            let client = try store.client()
            let keys = StoreKeys(buildID: "fixture")
            _ = try await client.send(RESPCommand("RPUSH", keys.queue, "not run"))
            let other = try await lambda.invoke(#"{"build":"other","seconds":5}"#)
            #expect(other.functionError == "Unhandled" && other.body.contains("CURTAIN_BUILD_ID") && other.body.contains("Curtain.Lease.wrongBuild"))
            let malformed = try await lambda.invoke("{")
            #expect(malformed.functionError == "Unhandled" && malformed.body.contains("not a lease request"))
            #expect(try await client.send(RESPCommand("LRANGE", keys.queue, 0, -1)).array?.compactMap(\.string) == ["not run"])
            await client.close()
            await lambda.stop()
        }
        // A function whose store cannot be reached reports its init error: the invocation sees it.
        let lambda = try await LambdaFixture.start(store: "redis://127.0.0.1:1")
        let answer = try await lambda.invoke(#"{"build":"fixture","seconds":5}"#)
        #expect(answer.functionError == "Unhandled" && answer.body.contains("Curtain.StartupError") && answer.body.contains("127.0.0.1:1"), "\(answer)")
        await lambda.stop()
    }
}
