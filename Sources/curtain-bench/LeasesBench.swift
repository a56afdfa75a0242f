import ArgumentParser
import Curtain
import CurtainExamples
import CurtainTestSupport
import Foundation

/// `curtain-bench leases`: workers leased per invocation (`CURTAIN_ROLE=http-worker`) against plain
/// workers, on one embedded store: a leased worker's cold start from exec to the first task result, the
/// first result of a driver with no worker running (through the HTTP invoker, the endpoint up), and no-op
/// tasks/s through leased workers.
struct LeasesBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leases", abstract: "Leased workers: cold start (≤ 25 ms), first result with no worker, tasks/s (≥ 0.8× plain).")

    @Option(help: "No-op tasks for the throughput figures.")
    var tasks: Int = 50_000

    @Option(help: "Worker processes for the throughput figures.")
    var workers: Int = 2

    @Option(help: "Repetitions of the start-up figures; the median is reported.")
    var repeats: Int = 5

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    func run() async throws {
        let buildID = "leases-\(getpid())"
        // In a worker process (this executable started as one below), Cloud.start below never returns: the
        // store is started first only in the driver, since a worker's Cloud.start ignores the configuration.
        if ProcessInfo.processInfo.environment["CURTAIN_ROLE"] != nil {
            _ = try await Cloud.start(functions: [Noop.self])
        }
        let store = try await TestStore.start(.embedded)
        defer { Task { await store.stop() } }
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let arguments = Array(CommandLine.arguments.dropFirst())
        let cloud = try await Cloud.start(functions: [Noop.self], configuration: CloudConfiguration(backend: .store(url: store.url), buildID: buildID))

        // Cold start: a queued task, then a fresh process; exec to the task's result. Measured for the
        // program as it is deployed (curtain-demo beside this executable: the Swift runtime linked
        // statically, what Scripts/image.sh puts in an image), and for this executable (linked dynamically
        // to the runtime and Foundation), each against its own floor, rounds interleaved.
        let demo = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("curtain-demo").path
        var programs = [(name: "this executable (runtime linked dynamically)", path: me, arguments: arguments)]
        if FileManager.default.isExecutableFile(atPath: demo) {
            programs.insert((name: "curtain-demo (runtime linked statically, as in its image)", path: demo, arguments: []), at: 0)
        }
        var leased = Array(repeating: [Double](), count: programs.count)
        var plain = leased
        var floor = leased
        for round in 0..<max(1, repeats) {
            for (index, program) in programs.enumerated() {
                for role in ["http-worker", "worker"] {
                    let job = Task { try await cloud.run(Noop(), round) }
                    try await waitForQueued(store: store, buildID: buildID)
                    let clock = ContinuousClock()
                    let start = clock.now
                    let (process, port) = try await spawn(program.path, program.arguments, role: role, url: store.url, buildID: buildID)
                    var lease: Task<LeaseReport, any Error>?
                    if let port {
                        let invoker = try HTTPInvoker(url: "http://127.0.0.1:\(port)/lease")
                        lease = Task { try await invoker.lease(LeaseRequest(build: buildID, seconds: 30, idleMilliseconds: 50)) }
                    }
                    guard try await job.value == round else { throw ValidationError("a no-op task answered wrongly") }
                    let elapsed = (clock.now - start) / .milliseconds(1)
                    if role == "http-worker" { leased[index].append(elapsed) } else { plain[index].append(elapsed) }
                    _ = try await lease?.value
                    await terminate(process)
                }
                // The floor: the same executable started and gone again, doing nothing (`--help`).
                let clock = ContinuousClock()
                let start = clock.now
                let process = Process()
                process.executableURL = URL(fileURLWithPath: program.path)
                process.arguments = ["--help"]
                process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
                try process.run()
                try await runBlocking { process.waitUntilExit() }  // on a thread of its own, not polled
                floor[index].append((clock.now - start) / .milliseconds(1))
            }
        }

        // First result with no worker running: the driver invokes an endpoint that is up.
        let (endpoint, port) = try await spawn(me, arguments, role: "http-worker", url: store.url, buildID: buildID)
        var invokingConfiguration = CloudConfiguration(backend: .store(url: store.url), buildID: buildID)
        invokingConfiguration.invoke = "http://127.0.0.1:\(port!)/lease"
        let invoking = try await Cloud.start(functions: [Noop.self], configuration: invokingConfiguration)
        var firstResult: [Double] = []
        for round in 0..<max(1, repeats) {
            try await waitUntilNoWorker(store: store, buildID: buildID)
            let seconds = try await timed { _ = try await invoking.run(Noop(), round) }
            firstResult.append(seconds * 1000)
        }
        await invoking.shutdown()
        await terminate(endpoint)

        // Throughput: the same map through `workers` plain workers, then through as many leased ones.
        let plainWorkers = try startWorkerProcesses(
            workers, executable: me, arguments: arguments, url: store.url, buildID: buildID, idPrefix: "plain-\(getpid())")
        try await waitForWorkers(store: store, buildID: buildID, count: workers)
        _ = try await cloud.map(Noop(), over: 0..<1000)
        let plainSeconds = try await timed { _ = try await cloud.map(Noop(), over: 0..<tasks) }
        for process in plainWorkers { await terminate(process) }
        try await waitUntilNoWorker(store: store, buildID: buildID)
        var endpoints: [(Process, Int)] = []
        for _ in 0..<workers {
            let (process, port) = try await spawn(me, arguments, role: "http-worker", url: store.url, buildID: buildID)
            endpoints.append((process, port!))
        }
        var throughputConfiguration = CloudConfiguration(backend: .store(url: store.url), buildID: buildID)
        throughputConfiguration.invoke = endpoints.map { "http://127.0.0.1:\($0.1)/lease" }.joined(separator: ",")
        // The default tasks per lease (256): the queue holds at most a job's window (4,096 tasks), so a
        // larger figure would ask for fewer leases than there are workers.
        throughputConfiguration.maxLeases = workers
        let throughCloud = try await Cloud.start(functions: [Noop.self], configuration: throughputConfiguration)
        _ = try await throughCloud.map(Noop(), over: 0..<1000)
        let leasedSeconds = try await timed { _ = try await throughCloud.map(Noop(), over: 0..<tasks) }
        await throughCloud.shutdown()
        for (process, _) in endpoints { await terminate(process) }
        await cloud.shutdown()

        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        // The demo program beside this executable (what README's images hold), else this executable.
        let imaged = FileManager.default.isExecutableFile(atPath: demo) ? demo : me
        let imageBytes = try Self.imageContents(of: imaged)
        var figures: [Figure] = []
        for (index, program) in programs.enumerated() {
            // The target is the deployed program's (the first); the other is for comparison.
            figures += [
                Figure(
                    name: "leased worker cold start, exec to first task result: \(program.name)", value: median(leased[index]), unit: "ms",
                    target: nil, maximum: index == 0 ? 25 : nil),
                Figure(name: "  for comparison: plain worker cold start, the same executable", value: median(plain[index]), unit: "ms", target: nil),
                Figure(name: "  the floor: the same executable started and exited, doing nothing (--help)", value: median(floor[index]), unit: "ms", target: nil),
            ]
        }
        printTable(figures + [
            Figure(name: "first result with no worker running, through the HTTP invoker (endpoint up)", value: median(firstResult), unit: "ms", target: nil),
            Figure(
                name: "no-op tasks through \(workers) leased workers", value: Double(tasks) / leasedSeconds, unit: "tasks/s",
                baseline: Double(tasks) / plainSeconds, baselineName: "\(workers) plain workers, the same store", target: 0.8),
            Figure(
                name: "image of \(URL(fileURLWithPath: imaged).lastPathComponent): executable, shared libraries, CA certificates (Scripts/image.sh)",
                value: Double(imageBytes) / 1_048_576, unit: "MiB", target: nil),
        ], json: json)
    }

    /// What `Scripts/image.sh` puts in an image of `executable`: the file itself, the shared libraries
    /// `ldd` lists (with the loader), and the CA bundle; their bytes.
    static func imageContents(of executable: String) throws -> Int {
        let ldd = Process()
        ldd.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
        ldd.arguments = [executable]
        let pipe = Pipe()
        ldd.standardOutput = pipe
        try ldd.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        ldd.waitUntilExit()
        let libraries = text.split(whereSeparator: \.isWhitespace).filter { $0.hasPrefix("/") }.map(String.init)
        let files = [executable, "/etc/ssl/certs/ca-certificates.crt"] + libraries
        return files.reduce(0) { total, path in
            let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            return total + ((try? FileManager.default.attributesOfItem(atPath: resolved)[.size] as? NSNumber)?.intValue ?? 0)
        }
    }

    /// Starts this executable as a worker of `role`; for an `http-worker`, returns the port it serves.
    private func spawn(_ executable: String, _ arguments: [String], role: String, url: String, buildID: String) async throws -> (Process, Int?) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["CURTAIN_ROLE"] = role
        environment["CURTAIN_STORE"] = url
        environment["CURTAIN_BUILD_ID"] = buildID
        environment["CURTAIN_PARENT_PIPE"] = "1"
        environment["CURTAIN_HTTP_HOST"] = "127.0.0.1"
        environment["PORT"] = "0"
        process.environment = environment
        process.standardInput = Pipe()
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        guard role == "http-worker" else { return (process, nil) }
        let line = await firstLine(of: output)
        guard let port = Int(line.dropFirst("CURTAIN_HTTP_WORKER_PORT ".count).prefix { $0.isNumber }) else {
            throw ValidationError("the http worker did not say its port: '\(line)'")
        }
        return (process, port)
    }

    private func waitForQueued(store: TestStore, buildID: String) async throws {
        let client = try store.client()
        defer { Task { await client.close() } }
        while try await client.send("LLEN", "curtain:{\(buildID)}:queue").int ?? 0 < 1 { try await Task.sleep(for: .milliseconds(1)) }
    }

    private func waitUntilNoWorker(store: TestStore, buildID: String) async throws {
        let client = try store.client()
        defer { Task { await client.close() } }
        while try await client.send("SCARD", "curtain:{\(buildID)}:workers").int ?? 0 > 0 { try await Task.sleep(for: .milliseconds(5)) }
    }

    private func waitForWorkers(store: TestStore, buildID: String, count: Int) async throws {
        let client = try store.client()
        defer { Task { await client.close() } }
        while try await client.send("SCARD", "curtain:{\(buildID)}:workers").int ?? 0 < count { try await Task.sleep(for: .milliseconds(5)) }
    }
}
