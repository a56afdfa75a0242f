import CurtainRESP
import Logging
import Synchronization

/// Keeps enough leased workers for the backlog: about `ceil(backlog / tasksPerLease)` leases at once (at
/// most ``maxLeases``), counting the invocations under way and the workers whose heartbeats are live, so
/// the number of invocations follows the backlog, not the task count. The backlog is the shared queue and
/// the workers' own queues (tasks placed near their shared values, which an idle worker steals).
///
/// A throttled invocation (HTTP 429) holds further ones back for a growing, jittered while; a worker that
/// fails at start or refuses the lease is reported on the driver's standard error with the worker's own
/// words (once per distinct error), not left in a platform's log. An invoker whose workers refuse leases
/// for good (another build, a wrong token) gets no more; the others go on. ``stop()`` stops invoking (a
/// cancelled job, Ctrl-C, shutdown); leases under way end by themselves when idle.
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
        /// The invokers whose workers refused a lease for good: none is asked again.
        var refused: Set<Int> = []
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
    /// Ends the wait between two looks at the backlog early: a job submitted tasks.
    private let wakeUp = WakeUp()

    /// The running launchers, per store client and build (``nudge(client:build:)`` finds them), and how
    /// many there are (a driver without one pays a load per submission, nothing more).
    private static let running = Mutex<[String: LeaseLauncher]>([:])
    private static let runningCount = Atomic<Int>(0)

    /// Tells the running launcher of `build` for the cloud of `client`, if there is one, that tasks were
    /// just queued: it looks at the backlog at once rather than at its next tick (up to 20 ms later).
    static func nudge(client: RESPClient, build: String) {
        guard runningCount.load(ordering: .relaxed) > 0 else { return }
        running.withLock { $0[key(client, build)] }?.wakeUp.signal()
    }

    /// The least time between two looks at the backlog, however often jobs submit.
    static let minimumGap = Duration.milliseconds(2)

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

    /// Starts watching the backlog: every 20 ms, and whenever a job of this cloud queues tasks.
    func start() {
        let key = Self.key(client, keys.buildID)
        _ = Self.refusals.withLock { $0.removeValue(forKey: key) }
        Self.running.withLock { running in
            if running.updateValue(self, forKey: key) == nil { Self.runningCount.add(1, ordering: .relaxed) }
        }
        let watcher = Task { [self] in
            let clock = ContinuousClock()
            while !Task.isCancelled {
                let looked = clock.now
                await tick()
                await wakeUp.wait(upTo: .milliseconds(20))
                // Submissions in a stream do not make it poll the store back to back.
                let since = clock.now - looked
                if since < Self.minimumGap { try? await Task.sleep(for: Self.minimumGap - since) }
            }
        }
        task.withLock { $0 = watcher }
    }

    /// Stops invoking.
    func stop() {
        state.withLock { $0.stopped = true }
        task.withLock { $0?.cancel() }
        let key = Self.key(client, keys.buildID)
        _ = Self.refusals.withLock { $0.removeValue(forKey: key) }
        Self.running.withLock { running in
            if running[key] === self {
                running[key] = nil
                Self.runningCount.subtract(1, ordering: .relaxed)
            }
        }
    }

    /// The backlog (the shared queue and the own queues of workers with tasks placed on them) and the
    /// workers whose heartbeat is live (a member of the workers set whose heartbeat expired, and that no
    /// reaper removed yet, is not counted): two round trips.
    func backlogAndLiveWorkers() async throws -> (backlog: Int, live: Int) {
        try await Self.backlogAndLiveWorkers(keys: keys, client: client)
    }

    /// The backlog and the live workers of the build of `keys` (``backlogAndLiveWorkers()``).
    static func backlogAndLiveWorkers(keys: StoreKeys, client: RESPClient) async throws -> (backlog: Int, live: Int) {
        let first = try await client.pipeline([
            RESPCommand("LLEN", keys.queue), RESPCommand("SMEMBERS", keys.workers), RESPCommand("SMEMBERS", keys.placed),
        ])
        guard let queued = first[0].int else { throw RESPError.server(first[0].errorMessage ?? "LLEN answered \(first[0])") }
        let workers = (first[1].array ?? []).compactMap(\.string)
        let placed = (first[2].array ?? []).compactMap(\.string)
        guard !workers.isEmpty || !placed.isEmpty else { return (queued, 0) }
        // One `EXISTS` counts the live heartbeats (the keys share the build's hash slot).
        var commands = placed.map { RESPCommand("LLEN", keys.ownQueue(worker: $0)) }
        if !workers.isEmpty { commands.append(RESPCommand("EXISTS", arguments: workers.map { keys.worker($0) as any RESPArgument })) }
        let second = try await client.pipeline(commands)
        let own = second.prefix(placed.count).reduce(0) { $0 + ($1.int ?? 0) }
        let live = workers.isEmpty ? 0 : second[placed.count].int ?? 0
        return (queued + own, live)
    }

    private func tick() async {
        guard let (backlog, live) = try? await backlogAndLiveWorkers() else { return }
        let now = ContinuousClock.now
        let chosen = state.withLock { state -> [Int] in
            guard !state.stopped else { return [] }
            if let until = state.throttledUntil, now < until { return [] }
            let usable = state.pendingPer.indices.filter { !state.refused.contains($0) }
            guard !usable.isEmpty else { return [] }
            let wanted = Self.wanted(backlog: backlog, pending: state.pending, live: live, tasksPerLease: tasksPerLease, maxLeases: maxLeases)
            var chosen: [Int] = []
            for _ in 0..<wanted {
                let index = usable.min { state.pendingPer[$0] < state.pendingPer[$1] }!
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
            let report = state.withLock { state -> (Bool, allRefused: Bool) in
                // Once stopped (the driver shut down), leases cut short are expected, not news.
                guard !state.stopped else { return (false, false) }
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
                    // Another build, a wrong token: asking this invoker again changes nothing. Once every
                    // invoker is refused, none is left to ask.
                    state.refused.insert(index)
                    if state.refused.count == invokers.count {
                        state.stopped = true
                        Self.refusals.withLock { $0[Self.key(client, keys.buildID)] = failure }
                    }
                }
                let allRefused = state.refused.count == invokers.count
                if failure.kind == .throttled { return (false, allRefused) }
                return (state.reported.insert(failure.message).inserted, allRefused)
            }
            if report.0 {
                let then = failure.kind != .refused ? ""
                    : report.allRefused ? "; no more workers are invoked" : "; no more workers are invoked through it"
                StandardError.write("curtain: a leased worker could not start or refused its lease: \(failure)\(then)\n")
            }
        }
    }
}

/// A wait that ends after a timeout or as soon as ``signal()`` is called (a signal while nobody waits ends
/// the next wait at once). One waiter at a time: a second concurrent ``wait(upTo:)`` is not supported.
final class WakeUp: Sendable {
    private struct State {
        var signalled = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    /// Ends the wait under way, or the next one.
    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.signalled = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Waits until ``signal()`` or `timeout`, whichever comes first.
    func wait(upTo timeout: Duration) async {
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { signal() }
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.signalled {
                    state.signalled = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
        timer.cancel()
    }
}
