@_spi(Testing) import Curtain
import CurtainTestFunctions
import Foundation
import Synchronization

// `curtain-test-worker forge --kind K --build B --secret S --out FILE`: writes one forged queue entry for
// the forgery test of Scripts/cluster-test.sh (what a stranger who can reach the store might push).
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "forge" {
    var options: [String: String] = [:]
    var rest = CommandLine.arguments.dropFirst(2).makeIterator()
    while let name = rest.next(), let value = rest.next() { options[String(name.drop { $0 == "-" })] = value }
    guard let kind = options["kind"], let build = options["build"], let out = options["out"] else {
        FileHandle.standardError.write(Data("usage: forge --kind K --build B [--secret S] --out FILE\n".utf8))
        exit(2)
    }
    let secret = options["secret"]
    let mark = Array("{}".utf8)  // ClusterMark has no captures; its input is an Int
    let bytes: [UInt8]
    switch kind {
    case "unsigned":
        bytes = try QueueEntryForge.envelope(build: build, job: "forged", function: "ClusterMark", captures: mark, input: Array("1".utf8), secret: nil)
    case "badsig":
        bytes = try QueueEntryForge.envelope(
            build: build, job: "forged", function: "ClusterMark", captures: mark, input: Array("1".utf8), secret: "not-the-secret")
    case "unknown-function":
        bytes = try QueueEntryForge.envelope(build: build, job: "forged", function: "RmRfEverything", captures: mark, input: Array("1".utf8), secret: secret)
    case "wrong-build":
        bytes = try QueueEntryForge.envelope(build: build + "-other", job: "forged", function: "ClusterMark", captures: mark, input: Array("1".utf8), secret: secret)
    case "oversized":
        bytes = try QueueEntryForge.envelope(
            build: build, job: "forged", function: "ClusterMark", captures: mark, input: Array(repeating: UInt8(ascii: "1"), count: 2 << 20),
            secret: secret)
    case "garbage":
        var generator = SystemRandomNumberGenerator()
        bytes = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }
    default:
        FileHandle.standardError.write(Data("unknown kind \(kind)\n".utf8))
        exit(2)
    }
    try Data(bytes).write(to: URL(fileURLWithPath: out))
    exit(0)
}

// A worker executable for the tests: started with CURTAIN_ROLE=worker, Cloud.start never returns.
let cloud = try await Cloud.start(functions: allTestFunctions, actors: allTestActors)
// With CURTAIN_FIXTURE_PROGRESS=1 it runs a job of about a second with the default options and exits: a
// test runs it under a pseudo-terminal and through a pipe to see the progress bar drawn only on the first.
if ProcessInfo.processInfo.environment["CURTAIN_FIXTURE_PROGRESS"] == "1" {
    let outputs = try await cloud.map(SlowSquare(milliseconds: 10), over: 0..<200)
    print("sum:\(outputs.reduce(0, +))")
    await cloud.shutdown()
    exit(0)
}
// With CURTAIN_FIXTURE_DASHBOARD=1 (and CURTAIN_DASHBOARD, CURTAIN_STORAGE set) it runs a job of slow tasks
// and a task group whose odd tasks fail, both with reports, prints the dashboard's address and the
// failing job's report and trace, then serves the dashboard until its standard input closes (the browser
// test of Scripts/dashboard-browser-test.py).
if ProcessInfo.processInfo.environment["CURTAIN_FIXTURE_DASHBOARD"] == "1" {
    guard let url = cloud.dashboard?.url else {
        FileHandle.standardError.write(Data("the fixture needs CURTAIN_DASHBOARD\n".utf8))
        exit(2)
    }
    print("DASHBOARD \(url)")
    fflush(nil)
    // An actor on a worker, called from here, and a shared object: the dashboard's actor and object tables.
    let tally = try await cloud.spawn(Tally.self, restart: RestartPolicy(maxRestarts: 2))
    for n in 1...20 { _ = try await tally.add(n) }
    _ = try await cloud.memory.counter("dashboard-visits").add(3)
    _ = try await cloud.map(SlowSquare(milliseconds: 40), over: 0..<60, options: JobOptions(report: true))
    guard let report = try await failingJobReport(cloud) else {
        FileHandle.standardError.write(Data("the failing job wrote no report\n".utf8))
        exit(2)
    }
    print("REPORT \(report.html)")
    print("TRACE \(report.trace)")
    print("READY")
    fflush(nil)
    // Calls to an actor while the dashboard is watched: the task stream's actor lane.
    let pinger = try await cloud.spawn(Tally.self)
    let pinging = Task {
        while !Task.isCancelled {
            _ = try? await pinger.add(1)
            try? await Task.sleep(for: .milliseconds(300))
        }
    }
    while readLine() != nil {}
    pinging.cancel()
    await cloud.shutdown()
    exit(0)
}
// With CURTAIN_FIXTURE_REATTACH=<job id> it runs a named job of 40 slow tasks (counted in the file
// CURTAIN_FIXTURE_COUNTER) and prints their sum: a test kills the first such driver and starts a second.
if let jobID = ProcessInfo.processInfo.environment["CURTAIN_FIXTURE_REATTACH"],
    let counter = ProcessInfo.processInfo.environment["CURTAIN_FIXTURE_COUNTER"]
{
    let outputs = try await cloud.map(CountedSleep(counter: counter, milliseconds: 150), over: 0..<40, options: JobOptions(id: jobID))
    print("sum:\(outputs.reduce(0, +))")
    fflush(nil)
    await cloud.shutdown()
    exit(0)
}
// Started as a driver, it runs a few tasks on its workers and prints their process ids; with
// CURTAIN_FIXTURE_HOLD=1 it then waits forever (a test kills it with SIGKILL).
let pids = Set(try await cloud.map(WhereAmI(), over: 0..<20)).sorted()
print("workers:" + pids.map(String.init).joined(separator: ","))
fflush(nil)  // all streams: the test reads this line through a pipe
if ProcessInfo.processInfo.environment["CURTAIN_FIXTURE_HOLD"] == "1" {
    while true { try await Task.sleep(for: .seconds(60)) }
}
await cloud.shutdown()

/// Runs a task group of 24 slow tasks whose odd ones fail, with a report; returns where it went.
nonisolated func failingJobReport(_ cloud: Cloud) async throws -> JobReport? {
    let summary = Mutex<JobSummary?>(nil)
    let options = JobOptions(report: true, onSummary: { s in summary.withLock { $0 = s } })
    try await cloud.withTaskGroup(of: SlowOddRefused.self, options: options) { group in
        for i in 0..<24 { try await group.addTask(SlowOddRefused(milliseconds: 30), i) }
        // Iteration goes on after a failed task: the others still answer.
        while true {
            do {
                guard try await group.next() != nil else { break }
            } catch is RemoteTaskError {}
        }
    }
    return summary.withLock { $0?.report }
}
