extension TimelineExport {
    /// A self-contained HTML report of one job (no script, no external request): its numbers, where the
    /// time went, a timeline with a lane per worker (utilization bands beyond 5,000 runs), and every
    /// failed run with its error, input and worker.
    public static func html(
        records: [TaskRecord], tally: JobTally?, failures: [TaskRecord], title: String, dropped: Int = 0,
        beyondMemory: (inFile: Int, lost: Int) = (0, 0)
    ) -> String {
        var out = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
            h1{font-size:20px}h2{font-size:16px;margin-top:28px}
            table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
            .bar{display:flex;height:22px;width:800px;border:1px solid #999}.bar div{height:100%}
            .legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:10px;height:10px;margin-right:4px}
            .note{color:#a60}pre{margin:0;white-space:pre-wrap;max-width:700px}
            </style></head><body>
            <h1>\(escape(title))</h1>

            """
        if let tally {
            let wall = max(0, (tally.ended ?? StoreClock.now()) - tally.began)
            let rows: [(String, String)] = [
                ("function", tally.function), ("job", tally.job),
                ("tasks", "\(tally.done) of \(tally.submitted) ended, \(tally.failedRuns) failed runs, \(tally.runs) runs"),
                ("workers", "\(tally.workers.count)"),
                ("wall time", Format.duration(.microseconds(wall))),
                ("run time p50 / p99", "≤ \(Format.duration(.microseconds(tally.runTime.quantile(0.5)))) / ≤ \(Format.duration(.microseconds(tally.runTime.quantile(0.99))))"),
                ("bytes sent / received", "\(Format.bytes(tally.bytesIn)) / \(Format.bytes(tally.bytesOut))"),
            ]
            out += "<table id=\"summary\">" + rows.map { "<tr><th>\(escape($0.0))</th><td>\(escape($0.1))</td></tr>" }.joined() + "</table>\n"
            out += whereTimeWent(tally)
        }
        if dropped > 0 {
            out += "<p class=\"note\" id=\"dropped\">The driver's ring of records dropped \(dropped) older runs: the timeline shows the latest ones; the numbers above count every run.</p>\n"
        }
        out += "<h2>Timeline</h2>\n" + timelineSVG(records)
        let unlisted = beyondMemory.inFile + beyondMemory.lost
        out += "<h2>Failed runs (\(failures.count + unlisted))</h2>\n"
        if beyondMemory.inFile > 0 {
            out += "<p class=\"note\" id=\"unlisted\">\(beyondMemory.inFile) more failed runs are not listed here: "
                + "<code>failures.jsonl</code> beside the job's stored report holds every one.</p>\n"
        }
        if beyondMemory.lost > 0 {
            out += "<p class=\"note\">\(beyondMemory.lost) failed runs were only counted: the driver's overflow file reached its limit of "
                + "\(Format.bytes(FailureOverflow.limit)).</p>\n"
        }
        if failures.isEmpty {
            out += "<p id=\"failures\">None.</p>\n"
        } else {
            out += "<table id=\"failures\"><tr><th>task</th><th>attempt</th><th>worker</th><th>kind</th><th>error</th><th>input</th></tr>"
            for f in failures {
                out += "<tr><td>#\(f.index)</td><td>\(f.attempt)</td><td>\(escape(f.worker))</td><td>\(escape(f.failureKind ?? ""))</td>"
                out += "<td><pre>\(escape(f.failure ?? ""))</pre></td><td><pre>\(escape(f.input ?? ""))</pre></td></tr>"
            }
            out += "</table>\n"
        }
        return out + "</body></html>\n"
    }

    /// The stacked bar of where a job's time went, from its exact tallies.
    static func whereTimeWent(_ tally: JobTally) -> String {
        let parts: [(String, Int64, String)] = [
            ("encode", tally.encodeMicros, "#9467bd"), ("queue wait", tally.queueWait.sum, "#ff7f0e"),
            ("run", tally.runTime.sum, "#2ca02c"), ("result wait", tally.resultWait.sum, "#1f77b4"),
            ("decode", tally.decodeMicros, "#8c564b"),
        ]
        let total = max(1, parts.reduce(0) { $0 + $1.1 })
        var out = "<h2>Where the time went</h2>\n<div class=\"bar\" id=\"where\">"
        for (name, value, color) in parts where value > 0 {
            let percent = Double(value) * 100 / Double(total)
            out += "<div title=\"\(name): \(Format.fixed(percent, digits: 1)) %\" style=\"width:\(Format.fixed(percent, digits: 3))%;background:\(color)\"></div>"
        }
        out += "</div>\n<p class=\"legend\">"
        for (name, value, color) in parts {
            let percent = Double(value) * 100 / Double(total)
            out += "<span><i class=\"sw\" style=\"background:\(color)\"></i>\(name) \(Format.duration(.microseconds(value))) (\(Format.fixed(percent, digits: 1)) %)</span>"
        }
        return out + "</p>\n<p>Summed over tasks (tasks overlap, so the sum exceeds the wall time); encode and decode are the driver's.</p>\n"
    }

    /// An SVG of the runs, a row per lane of each worker: a rectangle per run up to 5,000 runs, utilization
    /// bands (the busy fraction of each of 250 columns) beyond.
    static func timelineSVG(_ records: [TaskRecord]) -> String {
        let (placed, workers, laneCounts) = lanes(records)
        guard let origin = records.map(\.submitted).min(), !placed.isEmpty else { return "<p id=\"timeline\">No runs recorded.</p>\n" }
        let end = max(records.map(\.received).max() ?? origin, origin + 1)
        let width = 900.0
        let left = 160.0
        let row = 16.0
        var rowOf: [[Int]] = []
        var rows = 0
        for count in laneCounts {
            rowOf.append(Array(rows..<(rows + max(1, count))))
            rows += max(1, count)
        }
        let height = Double(rows) * row + 24
        func x(_ t: Int64) -> Double { left + Double(t - origin) / Double(end - origin) * width }
        var out = "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + width + 10))\" height=\"\(Int(height))\" font-size=\"11\">"
        for (i, worker) in workers.enumerated() {
            let y = Double(rowOf[i][0]) * row
            out += "<text class=\"lane\" x=\"0\" y=\"\(Format.fixed(y + 12, digits: 1))\">\(escape(String(worker.suffix(24))))</text>"
        }
        if placed.count <= 5000 {
            for item in placed {
                let r = item.record
                let y = Double(rowOf[item.process][item.lane]) * row + 2
                let w = max(0.5, x(max(r.ended, r.started + 1)) - x(r.started))
                let color = r.succeeded ? "#2ca02c" : "#d62728"
                out += "<rect class=\"\(r.succeeded ? "run" : "run failed")\" x=\"\(Format.fixed(x(r.started), digits: 1))\" y=\"\(Format.fixed(y, digits: 1))\" width=\"\(Format.fixed(w, digits: 2))\" height=\"\(Int(row - 4))\" fill=\"\(color)\"><title>#\(r.index) attempt \(r.attempt) · \(Format.duration(.microseconds(r.runTime)))\(r.failure.map { " · " + escape($0) } ?? "")</title></rect>"
            }
        } else {
            let columns = 250
            // Whole microseconds per column (at least one), each run's overlap with each column it covers.
            let span = max(1, (end - origin + Int64(columns) - 1) / Int64(columns))
            var busy = [[Int64]](repeating: [Int64](repeating: 0, count: columns), count: rows)
            for item in placed {
                let r = item.record
                let rowIndex = rowOf[item.process][item.lane]
                let from = min(max(r.started - origin, 0), end - origin)
                let to = min(max(r.ended, r.started + 1) - origin, end - origin)
                guard to > from else { continue }
                for column in Int(from / span)...min(columns - 1, Int((to - 1) / span)) {
                    let lo = max(from, Int64(column) * span)
                    let hi = min(to, Int64(column + 1) * span)
                    if hi > lo { busy[rowIndex][column] += hi - lo }
                }
            }
            for (rowIndex, columnsBusy) in busy.enumerated() {
                for (column, time) in columnsBusy.enumerated() where time > 0 {
                    let opacity = min(1, Double(time) / Double(span))
                    out += "<rect class=\"band\" x=\"\(Format.fixed(left + Double(column) * width / Double(columns), digits: 1))\" y=\"\(Format.fixed(Double(rowIndex) * row + 2, digits: 1))\" width=\"\(Format.fixed(width / Double(columns), digits: 2))\" height=\"\(Int(row - 4))\" fill=\"#2ca02c\" fill-opacity=\"\(Format.fixed(opacity, digits: 2))\"/>"
                }
            }
        }
        out += "<text x=\"\(Int(left))\" y=\"\(Int(height - 6))\">0</text><text x=\"\(Int(left + width - 60))\" y=\"\(Int(height - 6))\">\(Format.duration(.microseconds(end - origin)))</text>"
        return out + "</svg>\n"
    }

    /// `text` with HTML's special characters escaped.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
