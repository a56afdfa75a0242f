import ArgumentParser
import CurtainTestSupport
import Foundation

/// `curtain-bench all`: every benchmark and experiment with a target, one after the other, each in a
/// process of its own (each starts its own workers and stores), as one table or JSON lines.
struct AllBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all",
        abstract: "Run every benchmark with a target (and the sgd and wordcount experiments); one table or JSON lines.",
        discussion: """
            JSON lines have name, value, unit and, where they apply, baseline, baseline_name, ratio, target (the \
            least ratio), minimum or maximum (the bound on the value) and met. The experiments run from \
            curtain-demo next to this executable (swift build -c release --product curtain-demo).
            """
    )

    @Option(help: "Benchmarks to leave out, comma-separated (resp, tasks, coldstart, pi, memory, memory-ops, actors, storage, cluster, payloads, placement, sgd, wordcount, mandelbrot, kmeans).")
    var skip: String = ""

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    /// The benchmarks, in order: this executable's subcommands, then curtain-demo's experiments.
    static let benches = ["resp", "tasks", "coldstart", "pi", "memory", "memory-ops", "actors", "storage", "cluster", "payloads", "placement", "leases"]
    static let experiments = ["sgd", "wordcount", "mandelbrot", "kmeans"]

    func run() async throws {
        let skipped = Set(skip.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        let unknown = skipped.subtracting(Self.benches + Self.experiments)
        guard unknown.isEmpty else { throw ValidationError("--skip: unknown benchmark \(unknown.sorted().joined(separator: ", "))") }
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let demo = me.deletingLastPathComponent().appendingPathComponent("curtain-demo").path
        var figures: [Figure] = []
        func emit(_ new: [Figure]) {
            figures += new
            if json {
                for figure in new { print(figure.json) }
                fflush(nil)
            }
        }
        for bench in Self.benches where !skipped.contains(bench) {
            let (status, lines) = try await Self.run(me.path, [bench, "--json"])
            let parsed = lines.compactMap(Figure.init(jsonLine:))
            emit(status == 0 && !parsed.isEmpty ? parsed : [Figure(failed: bench, status: status)])
        }
        for experiment in Self.experiments where !skipped.contains(experiment) {
            guard FileManager.default.isExecutableFile(atPath: demo) else {
                emit([Figure(failed: experiment + " (curtain-demo is not built next to curtain-bench)", status: -1)])
                continue
            }
            let (status, lines) = try await Self.run(demo, [experiment, "--json"])
            guard status == 0, let line = lines.last(where: { $0.hasPrefix("{") }),
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            else {
                emit([Figure(failed: experiment, status: status)])
                continue
            }
            emit(Self.figures(experiment: experiment, object))
        }
        if !json { printTable(figures, json: false) }
    }

    /// The targets of the experiments, read from their JSON summaries.
    static func figures(experiment: String, _ object: [String: Any]) -> [Figure] {
        func number(_ key: String) -> Double { (object[key] as? NSNumber)?.doubleValue ?? .nan }
        switch experiment {
        case "sgd":
            return [
                Figure(
                    name: "SGD two-tier, local_s / curtain_s", value: 1 / number("two_tier_s"), unit: "runs/s",
                    baseline: 1 / number("local_s"), baselineName: "local HOGWILD!", target: 0.7),
                Figure(
                    name: "SGD two-tier loss gap to local (|gap| ≤ 2 %)", value: abs(number("loss_gap")) * 100, unit: "%",
                    target: nil, maximum: 2),
            ]
        case "mandelbrot":
            return [
                Figure(
                    name: "mandelbrot 1600x1200, 2 workers, local_s / curtain_s", value: 1 / number("curtain_s"), unit: "runs/s",
                    baseline: 1 / number("local_s"), baselineName: "local TaskGroup", target: 0.9)
            ]
        case "kmeans":
            return [
                Figure(
                    name: "kmeans 10 rounds, 6.4 MB capture, 2 workers, local_s / curtain_s", value: 1 / number("curtain_s"),
                    unit: "runs/s", baseline: 1 / number("local_s"), baselineName: "local TaskGroup", target: 0.7)
            ]
        default:
            return [
                Figure(
                    name: "wordcount, 2 workers, local_s / curtain_s", value: 1 / number("curtain_s"), unit: "runs/s",
                    baseline: 1 / number("local_s"), baselineName: "local", target: 0.9)
            ]
        }
    }

    /// Runs `executable` with `arguments`; its standard output as lines (standard error passes through).
    static func run(_ executable: String, _ arguments: [String]) async throws -> (Int32, [String]) {
        try await runBlocking {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let lines = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init)
            return (process.terminationStatus, lines)
        }
    }
}

extension Figure {
    /// A figure read back from its JSON line.
    init?(jsonLine line: String) {
        guard line.hasPrefix("{"), let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let name = object["name"] as? String, let value = (object["value"] as? NSNumber)?.doubleValue
        else { return nil }
        self.init(
            name: name, value: value, unit: object["unit"] as? String ?? "",
            baseline: (object["baseline"] as? NSNumber)?.doubleValue, baselineName: object["baseline_name"] as? String,
            target: (object["target"] as? NSNumber)?.doubleValue, minimum: (object["minimum"] as? NSNumber)?.doubleValue,
            maximum: (object["maximum"] as? NSNumber)?.doubleValue)
    }

    /// A benchmark that did not run to the end: shown, with its exit status, rather than left out.
    init(failed bench: String, status: Int32) {
        self.init(name: "\(bench): FAILED (exit status \(status))", value: .nan, unit: "", target: nil)
    }
}
