import ArgumentParser
import Curtain
import CurtainExamples
import CurtainRESP
import CurtainTestSupport
import Foundation

/// `curtain-bench cluster`: cluster mode on a real redis-server: no-op throughput, submit-to-result latency
/// from an already running worker, and how soon a killed worker's task is answered elsewhere.
struct ClusterBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Through redis-server: no-op tasks/s (≥ 30,000), first result after submit (≤ 5 ms), kill -9 to resumed (≤ TTL + task).",
        discussion: """
            Without --store it starts its own redis-server on a free loopback port. Workers are this executable, \
            started by the benchmark (--workers) or already running elsewhere (--workers 0: e.g. in another \
            network namespace, as Scripts/cluster-bench.sh does).
            """
    )

    @Option(help: "A running store (redis://host:port); by default a redis-server started on loopback.")
    var store: String?

    @Option(help: "Worker processes of this executable to start (0: use workers already connected).")
    var workers: Int = 2

    @Option(help: "No-op tasks for the throughput figure.")
    var tasks: Int = 100_000

    @Option(help: "Sequential single-task jobs for the latency figure.")
    var samples: Int = 300

    @Option(help: "Which figures: throughput, latency, kill (comma-separated).")
    var only: String = "throughput,latency,kill"

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    func validate() throws {
        guard workers >= 0, tasks >= 1, samples >= 1 else { throw ValidationError("--workers ≥ 0, --tasks and --samples ≥ 1") }
        if only.contains("kill") && workers < 2 {
            throw ValidationError("the kill figure needs --workers 2 or more (it kills one of the workers it started)")
        }
    }

    func run() async throws {
        // Workers started below run this same executable: there, this call never returns.
        _ = try await Cloud.start(functions: [Noop.self, Pause.self], configuration: CloudConfiguration(backend: .inprocess, workers: 1))
        var owned: TestStore?
        let url: String
        if let store {
            url = store
        } else {
            let started = try await TestStore.start(.redis)
            owned = started
            url = started.url
        }
        var figures: [Figure] = []
        do {
            figures = try await measure(url: url)
        } catch {
            await owned?.stop()
            throw error
        }
        await owned?.stop()
        printTable(figures, json: json)
    }

    private func measure(url: String) async throws -> [Figure] {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let build = "bench-\(getpid())"
        let started = try startWorkerProcesses(
            workers, executable: executable, arguments: ["cluster"], url: url, buildID: build, idPrefix: "bench-\(getpid())")
        defer { for worker in started { kill(worker.processIdentifier, SIGKILL) } }
        // Workers already running elsewhere (--workers 0) serve their own build: use theirs.
        let buildID = workers > 0 ? build : nil
        var configuration = CloudConfiguration(backend: .store(url: url), workers: max(1, workers), buildID: buildID)
        configuration.showProgress = false
        let cloud = try await Cloud.start(functions: [Noop.self, Pause.self], configuration: configuration)
        defer { Task { await cloud.shutdown() } }
        _ = try await cloud.map(Noop(), over: 0..<2_000)  // every worker connected and warm
        var figures: [Figure] = []
        let place = workers > 0 ? "\(workers) local workers" : "workers already running"
        if only.contains("throughput") {
            let elapsed = try await timed { _ = try await cloud.map(Noop(), over: 0..<tasks) }
            figures.append(Figure(
                name: "no-op tasks through redis-server, \(place)", value: Double(tasks) / elapsed, unit: "tasks/s",
                target: nil, minimum: 30_000))
        }
        if only.contains("latency") {
            var times: [Double] = []
            for i in 0..<samples {
                times.append(try await timed { _ = try await cloud.run(Noop(), i) } * 1000)
            }
            times.sort()
            figures.append(Figure(
                name: "first result after submit (median of \(samples)), \(place)", value: times[times.count / 2], unit: "ms",
                target: nil, maximum: 5))
            figures.append(Figure(
                name: "first result after submit (p99)", value: times[min(times.count - 1, times.count * 99 / 100)], unit: "ms",
                target: nil))
        }
        if only.contains("kill") {
            figures.append(try await killFigure(cloud: cloud, url: url, build: build, workers: started))
        }
        return figures
    }

    /// Two 300 ms tasks on the workers; the worker holding one is killed with SIGKILL as soon as it has
    /// it; the figure is the time from the kill to that job's end (the task answered elsewhere).
    private func killFigure(cloud: Cloud, url: String, build: String, workers: [Process]) async throws -> Figure {
        let pause = 300
        let client = try RESPClient(url: url)
        defer { Task { await client.close() } }
        let job = Task { try await cloud.map(Pause(milliseconds: pause), over: 0..<2) }
        var victim: Int32?
        let prefix = "curtain:{\(build)}:inflight:"
        while victim == nil {
            for list in try await client.send(RESPCommand("KEYS", prefix + "*")).array?.compactMap(\.string) ?? []
            where try await client.send(RESPCommand("LLEN", list)).int ?? 0 > 0 {
                let id = String(list.dropFirst(prefix.count))
                victim = try await client.send(RESPCommand("HGET", "curtain:{\(build)}:worker:\(id)", "pid")).string.flatMap { Int32($0) }
                if victim != nil { break }
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        let clock = ContinuousClock()
        kill(victim!, SIGKILL)
        let killed = clock.now
        _ = try await job.value
        let elapsed = clock.now - killed
        let ttl = cloud.configuration.heartbeatTTL
        let bound = Double((ttl + .milliseconds(pause)).components.seconds) * 1000
            + Double((ttl + .milliseconds(pause)).components.attoseconds) / 1e15
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        return Figure(
            name: "kill -9 to its task answered elsewhere (TTL \(ttl), task \(pause) ms)", value: ms, unit: "ms",
            target: nil, maximum: bound)
    }
}

/// Sleeps, then returns its input: a task of known length.
struct Pause: RemoteFunction {
    var milliseconds: Int
    func callAsFunction(_ x: Int) async throws -> Int {
        try await Task.sleep(for: .milliseconds(milliseconds))
        return x
    }
}
