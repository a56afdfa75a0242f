import Dispatch
import Synchronization

/// Runs work against a wall-clock limit without relying on the work to cooperate.
///
/// The work runs in a task of its own and a Dispatch timer (not the cooperative pool, which a CPU-bound
/// function may be hogging) decides the race. When the timer wins, the work's task is cancelled and handed
/// back, so the caller can wait a grace period for it to wind down and, if it does not, act (a worker process
/// replaces itself; the in-process backend can only abandon it).
enum Deadline {
    /// How a race against the clock ended.
    enum Outcome<T: Sendable>: Sendable {
        /// The work finished in time.
        case finished(T)
        /// The limit passed first; the work's task has been cancelled and may still be running.
        case timedOut(Task<T, Never>)
    }

    /// Runs `work`, giving up on it after `limit`.
    static func run<T: Sendable>(within limit: Duration, _ work: @escaping @Sendable () async -> T) async -> Outcome<T> {
        let race = Race<T>()
        let task = Task {
            let value = await work()
            race.settle(value)
            return value
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + limit.dispatchInterval) { race.settle(nil) }
        // The caller's cancellation (a drain or a lease that ran out of time) ends the race too: the work's
        // task is unstructured, so it would not see it otherwise.
        let value = await withTaskCancellationHandler { await race.value() } onCancel: { race.settle(nil) }
        if let value { return .finished(value) }
        task.cancel()
        return .timedOut(task)
    }

    /// Whether `task` ends within `grace`.
    static func ends<T: Sendable>(_ task: Task<T, Never>, within grace: Duration) async -> Bool {
        if case .finished = await run(within: grace, { await task.value }) { return true }
        return false
    }

    /// The first of `settle(value)` and `settle(nil)` wins; `value()` waits for it.
    private final class Race<T: Sendable>: Sendable {
        private enum State {
            case waiting(CheckedContinuation<T?, Never>?)
            case settled(T?)
            case done
        }
        private let state = Mutex<State>(.waiting(nil))

        func settle(_ value: T?) {
            let continuation = state.withLock { state -> CheckedContinuation<T?, Never>? in
                switch state {
                case .waiting(let continuation?):
                    state = .done
                    return continuation
                case .waiting(nil):
                    state = .settled(value)
                    return nil
                case .settled, .done:
                    return nil
                }
            }
            continuation?.resume(returning: value)
        }

        func value() async -> T? {
            await withCheckedContinuation { continuation in
                let early = state.withLock { state -> T?? in
                    switch state {
                    case .waiting:
                        state = .waiting(continuation)
                        return .none
                    case .settled(let value):
                        state = .done
                        return .some(value)
                    case .done:
                        return .some(nil)
                    }
                }
                if let early { continuation.resume(returning: early) }
            }
        }
    }
}

extension Duration {
    /// The duration as a Dispatch interval (microsecond precision).
    var dispatchInterval: DispatchTimeInterval {
        let (seconds, attoseconds) = components
        return .microseconds(Int(seconds) * 1_000_000 + Int(attoseconds / 1_000_000_000_000))
    }

    /// Whole milliseconds, rounded up, clamped to `UInt32`.
    var wholeMilliseconds: UInt32 {
        let (seconds, attoseconds) = components
        let ms = Double(seconds) * 1000 + (Double(attoseconds) / 1e15).rounded(.up)
        return UInt32(max(0, min(ms, Double(UInt32.max))))
    }

    /// The duration in seconds, as a `Double` (for rates and for blocking-command timeouts).
    var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// Seconds for a blocking command's timeout: never 0, which would mean "forever".
    var blockingTimeout: Double { max(0.001, inSeconds) }

    /// Microseconds, for task durations.
    var microseconds: UInt64 {
        let (seconds, attoseconds) = components
        return UInt64(max(0, seconds)) * 1_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000_000)
    }
}
