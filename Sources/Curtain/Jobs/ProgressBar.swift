import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A job's progress bar on standard error: done/total, rate, ETA and failures, redrawn in place a few times
/// a second once the job has run for half a second. Never drawn when standard error is not a terminal.
final class ProgressBar: Sendable {
    /// Tasks answered so far.
    let done = Atomic<Int>(0)
    /// Tasks known so far (inputs read for `map`, tasks added for groups).
    let total = Atomic<Int>(0)
    /// Whether `total` is final (the whole input has been read).
    let totalIsFinal = Atomic<Bool>(false)
    /// Failed attempts so far (thrown errors and timeouts, retried or not).
    let failures = Atomic<Int>(0)

    private let function: String
    private let output: @Sendable (String) -> Void
    private let columns: @Sendable () -> Int
    private let delay: Duration
    private let interval: Duration
    private let drawn = Atomic<Bool>(false)
    private let ticker = Mutex<Task<Void, Never>?>(nil)
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant

    /// A progress bar for `function` if `display` and the environment allow one, else `nil`.
    static func make(function: String, display: ProgressDisplay, enabled: Bool) -> ProgressBar? {
        guard display == .automatic, enabled, isatty(2) == 1 else { return nil }
        return ProgressBar(function: function, output: StandardError.write, columns: Self.terminalColumns)
    }

    init(
        function: String, output: @escaping @Sendable (String) -> Void, columns: @escaping @Sendable () -> Int,
        delay: Duration = .milliseconds(500), interval: Duration = .milliseconds(150)
    ) {
        self.function = function
        self.output = output
        self.columns = columns
        self.delay = delay
        self.interval = interval
        self.start = clock.now
    }

    /// Starts redrawing (after the initial delay).
    func begin() {
        let task = Task { [self] in
            try? await Task.sleep(for: delay)
            while !Task.isCancelled {
                draw()
                try? await Task.sleep(for: interval)
            }
        }
        ticker.withLock { $0 = task }
    }

    /// Stops redrawing; if the bar was ever shown, draws its final state and ends the line.
    func end() async {
        let task = ticker.withLock { task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }
        task?.cancel()
        await task?.value
        if drawn.load(ordering: .relaxed) {
            draw()
            output("\n")
        }
    }

    private func draw() {
        drawn.store(true, ordering: .relaxed)
        let line = Self.line(
            function: function, done: done.load(ordering: .relaxed), total: total.load(ordering: .relaxed),
            totalIsFinal: totalIsFinal.load(ordering: .relaxed), failures: failures.load(ordering: .relaxed),
            elapsed: clock.now - start, columns: columns())
        output("\r\u{1B}[2K" + line)
    }

    /// The bar's text, at most `columns` characters wide.
    static func line(
        function: String, done: Int, total: Int, totalIsFinal: Bool, failures: Int, elapsed: Duration, columns: Int
    ) -> String {
        let seconds = max(0.001, elapsed.inSeconds)
        let rate = Double(done) / seconds
        var tail = [String]()
        if totalIsFinal && total > 0 {
            let percent = min(100, done * 100 / total)
            tail.append("\(done)/\(total) \(percent)%")
        } else {
            tail.append("\(done) done")
        }
        tail.append("\(Format.count(rate))/s")
        if totalIsFinal && total > done && rate > 0 {
            tail.append("ETA \(Format.duration(.milliseconds(Int64(Double(total - done) / rate * 1000))))")
        }
        if failures > 0 { tail.append("\(failures) failed") }
        let text = tail.joined(separator: " · ")
        let name = String(function.prefix(24))
        let room = columns - name.count - text.count - 5
        guard totalIsFinal && total > 0 && room >= 10 else {
            return String("\(name) \(text)".prefix(max(columns - 1, 10)))
        }
        let width = min(room, 40)
        let filled = min(width, done * width / total)
        return "\(name) [\(String(repeating: "█", count: filled))\(String(repeating: "░", count: width - filled))] \(text)"
    }

    /// The terminal's width, 80 if it cannot be read.
    @Sendable static func terminalColumns() -> Int {
        var size = winsize()
        #if canImport(Glibc)
        let request = UInt(TIOCGWINSZ)
        #else
        let request = TIOCGWINSZ
        #endif
        guard ioctl(2, request, &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }
}

/// `write(2)`, under a name no method shadows.
func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}
