import ArgumentParser

/// `curtain-bench`: end-to-end benchmarks that print ratios against a local baseline, since absolute
/// times on shared machines drift from run to run.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curtain-bench",
        abstract: "Curtain's benchmarks; each prints figures and their ratio to a baseline measured in the same run.",
        subcommands: [RESPBench.self, TasksBench.self, ColdstartBench.self, PiBench.self, MemoryBench.self, MemoryOpsBench.self, ActorsBench.self, StorageBench.self, ClusterBench.self, PayloadsBench.self, CallsBench.self, PlacementBench.self, LeasesBench.self, AllBench.self]
    )
}

/// One measured figure, printed as a table row or a JSON line.
struct Figure {
    var name: String
    var value: Double
    var unit: String
    var baseline: Double?
    var baselineName: String?
    /// The least ratio to the baseline that meets the target.
    var target: Double?
    /// The least value that meets the target, for figures without a baseline.
    var minimum: Double? = nil
    /// The greatest value that meets the target (latencies), for figures without a baseline.
    var maximum: Double? = nil

    var ratio: Double? { baseline.map { $0 > 0 ? value / $0 : 0 } }

    var json: String {
        guard value.isFinite else { return "{\"name\":\"\(name)\",\"value\":null,\"unit\":\"\(unit)\",\"met\":false}" }
        var parts = ["\"name\":\"\(name)\"", "\"value\":\(rounded(value, digits: abs(value) < 100 ? 3 : 1))", "\"unit\":\"\(unit)\""]
        if let baseline { parts.append("\"baseline\":\(rounded(baseline))") }
        if let baselineName { parts.append("\"baseline_name\":\"\(baselineName)\"") }
        if let ratio { parts.append("\"ratio\":\(rounded(ratio, digits: 3))") }
        if let target { parts.append("\"target\":\(target)") }
        if let target, let ratio, minimum == nil { parts.append("\"met\":\(ratio >= target)") }
        // With both, either meets the target ("≥ 15,000/s, or ≥ 0.8× the floor").
        if let minimum { parts.append("\"minimum\":\(minimum),\"met\":\(value >= minimum || (target.map { (ratio ?? 0) >= $0 } ?? false))") }
        if let maximum { parts.append("\"maximum\":\(maximum),\"met\":\(value <= maximum)") }
        return "{" + parts.joined(separator: ",") + "}"
    }

    var row: String {
        let v = format(value)
        let b = baseline.map(format) ?? "-"
        let r = ratio.map { String(rounded($0, digits: 2)) } ?? "-"
        var t = target.map { "≥ \($0)" } ?? ""
        var met = (target != nil && ratio != nil) ? (ratio! >= target! ? "met" : "NOT met") : ""
        if let minimum {
            // With a ratio target too, either meets it.
            let either = target.map { (ratio ?? 0) >= $0 } ?? false
            t = "≥ " + format(minimum) + (target.map { " or ×\($0)" } ?? "")
            met = value >= minimum || either ? "met" : "NOT met"
        }
        if let maximum {
            t = "≤ " + format(maximum)
            met = value <= maximum ? "met" : "NOT met"
        }
        return pad(name, 56) + pad(v + " " + unit, 16) + pad(b, 10) + pad(r, 7) + pad(t, 9) + met
    }
}

func rounded(_ x: Double, digits: Int = 1) -> Double {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    return (x * scale).rounded() / scale
}

func format(_ x: Double) -> String {
    x >= 100 ? String(Int(x.rounded())) : String(rounded(x, digits: 2))
}

func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
}

func printTable(_ figures: [Figure], json: Bool) {
    if json {
        for f in figures { print(f.json) }
        return
    }
    print(pad("figure", 56) + pad("value", 16) + pad("baseline", 10) + pad("ratio", 7) + pad("target", 9))
    for f in figures { print(f.row) }
}
