import CurtainRESP
import Logging
import Synchronization

/// Keeps enough leased workers for the backlog: about `ceil(backlog / tasksPerLease)` leases at once (at
/// most ``maxLeases``), counting the invocations under way and the workers whose heartbeats are live, so
/// the number of invocations follows the backlog, not the task count.
///
/// A throttled invocation (HTTP 429) holds further ones back for a growing, jittered while; a worker that
/// fails at start or refuses the lease is reported on the driver's standard error with the worker's own
/// words (once per distinct error), not left in a platform's log. ``stop()`` stops invoking (a cancelled
/// job, Ctrl-C, shutdown); leases under way end by themselves when idle.
final class LeaseLauncher: Sendable {
    let client: RESPClient
    let keys: StoreKeys
    /// The invokers, each given the next lease when it has the fewest under way (one endpoint behind a
    /// load balancer, or several addressed directly).
    let invokers: [any WorkerInvoker]
    let leaseSeconds: Double
    let tasksPerLease: Int
    let maxLeases: Int
    let logger: Logger

    private struct State {
        /// Invocations under way, per invoker.
        var pendingPer: [Int] = []
        /// Invocations under way.
        var pending: Int { pendingPer.reduce(0, +) }
        var invoked = 0
        var reports: [LeaseReport] = []
        var failures: [InvokeError] = []
        var reported: Set<String> = []
        var throttledUntil: ContinuousClock.Instant?
        var throttles = 0
        var stopped = false
    }
    private let state = Mutex(State())
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// Per store client and build: the refusal that stopped a running launcher (another build, a bad
    /// token), for the jobs of that cloud waiting for workers (``StoreTransport`` fails them with it).
    private static let refusals = Mutex<[String: InvokeError]>([:])

    private static func key(_ client: RESPClient, _ build: String) -> String { "\(ObjectIdentifier(client).hashValue) \(build)" }

    /// The refusal that stopped invoking workers of `build` for the cloud of `client`, if one did.
    static func refusal(client: RESPClient, build: String) -> InvokeError? { refusals.withLock { $0[key(client, build)] } }

    convenience init(
        client: RESPClient, buildID: String, invoker: any WorkerInvoker, leaseSeconds: Double = 60, tasksPerLease: Int = 256,
        maxLeases: Int = 64, logger: Logger = Logger(label: "curtain.invoker")
    ) {
        self.init(
            client: client, buildID: buildID, invokers: [invoker], leaseSeconds: leaseSeconds, tasksPerLease: tasksPerLease,
            maxLeases: maxLeases, logger: logger)
    }

    init(
        client: RESPClient, buildID: String, invokers: [any WorkerInvoker], leaseSeconds: Double = 60, tasksPerLease: Int = 256,
        maxLeases: Int = 64, logger: Logger = Logger(label: "curtain.invoker")
    ) {
        precondition(!invokers.isEmpty, "a launcher needs an invoker")
        self.client = client
        self.keys = StoreKeys(buildID: buildID)
        self.invokers = invokers
        state.withLock { $0.pendingPer = Array(repeating: 0, count: invokers.count) }
        self.leaseSeconds = leaseSeconds
        self.tasksPerLease = max(1, tasksPerLease)
        self.maxLeases = max(1, maxLeases)
        self.logger = logger
    }

    /// Invocations made, and those under way.
    var counts: (invoked: Int, pending: Int) { state.withLock { ($0.invoked, $0.pending) } }
    /// The reports of leases that ended.
    var reports: [LeaseReport] { state.withLock { $0.reports } }
    /// The invocations that failed.
    var failures: [InvokeError] { state.withLock { $0.failures } }

    /// How many leases the backlog calls for, given the leases under way and the live workers.
    static func wanted(backlog: Int, pending: Int, live: Int, tasksPerLease: Int, maxLeases: Int) -> Int {
        guard backlog > 0 else { return 0 }
        let target = min(maxLeases, (backlog + tasksPerLease - 1) / tasksPerLease)
        return max(0, target - max(pending, live))
    }

    /// Starts watching the backlog (every 20 ms).
    func start() {
        _ = Self.refusals.withLock { $0.removeValue(forKey: Self.key(client, keys.buildID)) }
        let watcher = Task { [self] in
            while !Task.isCancelled {
                await tick()
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        task.withLock { $0 = watcher }
    }

    /// Stops invoking.
    func stop() {
        state.withLock { $0.stopped = true }
        task.withLock { $0?.cancel() }
        _ = Self.refusals.withLock { $0.removeValue(forKey: Self.key(client, keys.buildID)) }
    }

    private func tick() async {
        guard let replies = try? await client.pipeline([RESPCommand("LLEN", keys.queue), RESPCommand("SCARD", keys.workers)]),
            let backlog = replies[0].int, let live = replies[1].int
        else { return }
        let now = ContinuousClock.now
        let chosen = state.withLock { state -> [Int] in
            guard !state.stopped else { return [] }
            if let until = state.throttledUntil, now < until { return [] }
            let wanted = Self.wanted(backlog: backlog, pending: state.pending, live: live, tasksPerLease: tasksPerLease, maxLeases: maxLeases)
            var chosen: [Int] = []
            for _ in 0..<wanted {
                let index = state.pendingPer.indices.min { state.pendingPer[$0] < state.pendingPer[$1] }!
                state.pendingPer[index] += 1
                chosen.append(index)
            }
            state.invoked += wanted
            return chosen
        }
        for index in chosen { Task { await invokeOne(index) } }
    }

    private func invokeOne(_ index: Int) async {
        let request = LeaseRequest(build: keys.buildID, seconds: leaseSeconds)
        defer { state.withLock { $0.pendingPer[index] -= 1 } }
        do {
            guard let report = try await invokers[index].invoke(request) else {
                // Only queued (Lambda's Event type): counted as under way until its heartbeat can show
                // (then live workers count it), so the same backlog is not invoked for again meanwhile.
                try? await Task.sleep(for: .seconds(min(10, leaseSeconds)))
                state.withLock { $0.throttles = 0 }
                return
            }
            state.withLock { state in
                state.throttles = 0
                state.reports.append(report)
                if state.reports.count > 1000 { state.reports.removeFirst(state.reports.count - 1000) }
            }
        } catch {
            let failure = error as? InvokeError ?? InvokeError(.failed, "\(error)")
            let report = state.withLock { state -> Bool in
                // Once stopped (the driver shut down), leases cut short are expected, not news.
                guard !state.stopped else { return false }
                state.failures.append(failure)
                if state.failures.count > 1000 { state.failures.removeFirst(state.failures.count - 1000) }
                switch failure.kind {
                case .throttled, .failed, .unreachable:
                    // Exponential, jittered, at most 5 s: many drivers throttled at once do not return in
                    // step, and a worker that cannot start is not started again and again at full speed.
                    state.throttles += 1
                    let ceiling = min(5_000, 50 << min(state.throttles, 7))
                    state.throttledUntil = ContinuousClock.now + .milliseconds(Int.random(in: ceiling / 2...ceiling))
                case .refused:
                    // Another build, a wrong token: asking again changes nothing.
                    state.stopped = true
                    Self.refusals.withLock { $0[Self.key(client, keys.buildID)] = failure }
                }
                if failure.kind == .throttled { return false }
                return state.reported.insert(failure.message).inserted
            }
            if report {
                let then = failure.kind == .refused ? "; no more workers are invoked" : ""
                StandardError.write("curtain: a leased worker could not start or refused its lease: \(failure)\(then)\n")
            }
        }
    }
}
