import ArgumentParser

/// `curtain-bench`: end-to-end benchmarks that print ratios against a local baseline, since absolute
/// times on shared machines drift from run to run.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curtain-bench",
        abstract: "Curtain's benchmarks; each prints figures and their ratio to a baseline measured in the same run.",
        subcommands: [RESPBench.self, TasksBench.self, ColdstartBench.self, PiBench.self, MemoryBench.self, MemoryOpsBench.self]
    )
}

/// One measured figure, printed as a table row or a JSON line.
struct Figure {
    var name: String
    var value: Double
    var unit: String
    var baseline: Double?
    var baselineName: String?
    var target: Double?

    var ratio: Double? { baseline.map { $0 > 0 ? value / $0 : 0 } }

    var json: String {
        var parts = ["\"name\":\"\(name)\"", "\"value\":\(rounded(value))", "\"unit\":\"\(unit)\""]
        if let baseline { parts.append("\"baseline\":\(rounded(baseline))") }
        if let baselineName { parts.append("\"baseline_name\":\"\(baselineName)\"") }
        if let ratio { parts.append("\"ratio\":\(rounded(ratio, digits: 3))") }
        if let target { parts.append("\"target\":\(target)") }
        if let target, let ratio { parts.append("\"met\":\(ratio >= target)") }
        return "{" + parts.joined(separator: ",") + "}"
    }

    var row: String {
        let v = format(value)
        let b = baseline.map(format) ?? "-"
        let r = ratio.map { String(rounded($0, digits: 2)) } ?? "-"
        let t = target.map { "≥ \($0)" } ?? ""
        let met = (target != nil && ratio != nil) ? (ratio! >= target! ? "met" : "NOT met") : ""
        return pad(name, 46) + pad(v + " " + unit, 20) + pad(b, 14) + pad(r, 8) + pad(t, 8) + met
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
    print(pad("figure", 46) + pad("value", 20) + pad("baseline", 14) + pad("ratio", 8) + pad("target", 8))
    for f in figures { print(f.row) }
}
