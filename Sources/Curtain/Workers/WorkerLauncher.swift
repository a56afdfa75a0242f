import CurtainRESP
public import Logging
public import ServiceLifecycle
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How ``WorkerLauncher`` sizes its workers on one host.
public struct ScalingPolicy: Sendable, Hashable {
    /// Workers kept running even when there is nothing to do (0: scale to zero).
    public var minimum: Int
    /// Workers never exceeded.
    public var maximum: Int
    /// Queued tasks per worker: with `depth` tasks waiting the launcher wants `depth / tasksPerWorker`
    /// workers (rounded up, within the bounds).
    public var tasksPerWorker: Int
    /// How long the queue must stay empty, with no task in any worker's hands, before workers above
    /// ``minimum`` are stopped (they drain first).
    public var idleTimeout: Duration
    /// How often the queue is looked at.
    public var interval: Duration

    /// Creates a policy; `maximum` defaults to the number of active processor cores.
    public init(
        minimum: Int = 0, maximum: Int? = nil, tasksPerWorker: Int = 1, idleTimeout: Duration = .seconds(30),
        interval: Duration = .milliseconds(250)
    ) {
        self.minimum = minimum
        self.maximum = maximum ?? ProcessInfo.processInfo.activeProcessorCount
        self.tasksPerWorker = tasksPerWorker
        self.idleTimeout = idleTimeout
        self.interval = interval
    }

    /// The policy, or a ``ConfigurationError`` naming the bad bound.
    public func validated() throws(ConfigurationError) -> ScalingPolicy {
        guard minimum >= 0 else { throw ConfigurationError(description: "minimum workers must be at least 0, not \(minimum)") }
        guard maximum >= max(1, minimum) else {
            throw ConfigurationError(description: "maximum workers (\(maximum)) must be at least 1 and at least the minimum (\(minimum))")
        }
        guard tasksPerWorker >= 1 else {
            throw ConfigurationError(description: "tasks per worker must be at least 1, not \(tasksPerWorker)")
        }
        guard idleTimeout >= .zero, interval > .zero else {
            throw ConfigurationError(description: "the idle timeout must not be negative and the interval must be positive")
        }
        return self
    }

    /// How many workers to run with `depth` tasks queued and `running` workers up.
    func desired(depth: Int, running: Int, idleFor: Duration) -> Int {
        if depth > 0 {
            let wanted = (depth + tasksPerWorker - 1) / tasksPerWorker
            return min(maximum, max(minimum, running, wanted))  // never shrink under a backlog
        }
        if idleFor >= idleTimeout { return minimum }
        return max(minimum, running)
    }
}

/// Starts and stops worker processes of one executable on this host as its queue fills and empties: the
/// elasticity of a cluster without Kubernetes (`curtain workers`). Workers are started with
/// `CURTAIN_ROLE=worker CURTAIN_STORE=<url>` and this process's environment (so `CURTAIN_SECRET` and the
/// other settings pass through), and stopped with SIGTERM, which makes them drain.
///
/// A graceful shutdown of the launcher (SIGTERM to a ``ServiceGroup`` running it) stops every worker the
/// same way and returns once they have exited.
public final class WorkerLauncher: Service, Sendable {
    /// The executable started as workers.
    public let executable: String
    /// Its arguments (the path its `main` takes to `Cloud.start`).
    public let arguments: [String]
    /// The store URL the workers get as `CURTAIN_STORE`.
    public let storeURL: String
    /// The build id of ``executable``: whose queue is watched.
    public let buildID: String
    /// The policy.
    public let policy: ScalingPolicy
    private let client: RESPClient
    private let logger: Logger
    private let extraEnvironment: [String: String]
    private let state = Mutex(LaunchState())

    private struct LaunchState {
        var workers: [(id: String, process: ChildProcess, started: ContinuousClock.Instant)] = []
        var next = 0
        var stopping: [ChildProcess] = []
        /// After workers that fail young (a bad setting, an unreachable store): no new worker before this,
        /// and the delay doubles with each such failure (0.5 s to 30 s).
        var holdUntil: ContinuousClock.Instant?
        var backoff: Duration = .milliseconds(500)
    }

    /// Prepares a launcher (nothing starts until ``run()``).
    ///
    /// - Parameters:
    ///   - buildID: the build id of `executable`'s tasks; `nil` computes it from the file as the workers will
    ///     (unless `CURTAIN_BUILD_ID` in `environment` or this process's environment overrides it).
    ///   - environment: settings added to this process's environment for the workers.
    /// - Throws: ``ConfigurationError`` for a bad policy or an executable that cannot be run; a
    ///   ``RESPError`` for a bad store URL.
    public init(
        executable: String, arguments: [String] = [], storeURL: String, buildID: String? = nil, policy: ScalingPolicy,
        environment: [String: String] = [:], logger: Logger = Logger(label: "curtain.launcher")
    ) throws {
        guard access(executable, X_OK) == 0 else {
            throw ConfigurationError(description: "\(executable) is not an executable file")
        }
        self.policy = try policy.validated()
        self.executable = executable
        self.arguments = arguments
        self.storeURL = storeURL
        let override = environment["CURTAIN_BUILD_ID"] ?? ProcessInfo.processInfo.environment["CURTAIN_BUILD_ID"]
        self.buildID = buildID ?? override.flatMap { $0.isEmpty ? nil : $0 } ?? BuildID.of(path: executable)
        self.extraEnvironment = environment
        self.logger = logger
        self.client = try RESPClient(url: storeURL)
    }

    /// How many workers this launcher has started in all.
    var startedCount: Int { state.withLock { $0.next } }

    /// The process ids of the workers running now.
    public var processIDs: [Int32] { state.withLock { $0.workers.map { $0.process.processIdentifier } } }

    /// Watches the queue and scales until a graceful shutdown or cancellation, then stops every worker
    /// (SIGTERM, so they drain) and waits for them to exit.
    ///
    /// - Throws: `SpawnError` if a worker cannot be started.
    public func run() async throws {
        let keys = StoreKeys(buildID: buildID)
        let clock = ContinuousClock()
        let idleSince = Mutex(clock.now)
        logger.info(
            "launching workers", metadata: ["executable": "\(executable)", "build": "\(buildID)", "queue": "\(keys.queue)",
                                            "min": "\(policy.minimum)", "max": "\(policy.maximum)"])
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await self.tick(keys: keys, clock: clock, idleSince: idleSince)
                } catch let error as RESPError {
                    self.logger.warning("cannot read the queue", metadata: ["error": "\(error)"])
                } catch {
                    self.logger.error("cannot start a worker", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: self.policy.interval)
            }
        }
        await stopAll()
        await client.close()
    }

    private func tick(keys: StoreKeys, clock: ContinuousClock, idleSince: borrowing Mutex<ContinuousClock.Instant>) async throws {
        reap()
        let ids = state.withLock { $0.workers.map { $0.id } }
        var commands = [RESPCommand("LLEN", keys.queue)]
        commands += ids.map { RESPCommand("LLEN", keys.inflight(worker: $0)) }
        // Tasks placed on the workers' own queues wait too.
        commands += ids.map { RESPCommand("LLEN", keys.ownQueue(worker: $0)) }
        let replies = try await client.pipeline(commands)
        let depth = (replies[0].int ?? 0) + replies.suffix(ids.count).reduce(0) { $0 + ($1.int ?? 0) }
        let busy = replies.dropFirst().prefix(ids.count).contains { ($0.int ?? 0) > 0 }
        let now = clock.now
        let idleFor = idleSince.withLock { since in
            if depth > 0 || busy { since = now }
            return now - since
        }
        let running = ids.count
        let desired = policy.desired(depth: depth, running: running, idleFor: idleFor)
        let held = state.withLock { state in state.holdUntil.map { now < $0 } ?? false }
        if desired > running && !held {
            for _ in running..<desired { try start() }
            logger.info("scaled up", metadata: ["workers": "\(desired)", "queued": "\(depth)"])
        } else if desired < running {
            stop(running - desired)
            logger.info("scaled down", metadata: ["workers": "\(desired)"])
        }
    }

    private func start() throws {
        let id = state.withLock { state -> String in
            defer { state.next += 1 }
            return "\(WorkerHeartbeat.hostName())-launch-\(getpid())-\(state.next)"
        }
        // A launcher that dies takes its workers with it (they watch the pipe on their standard input).
        let environment = ChildProcess.workerEnvironment(id: id, storeURL: storeURL, buildID: buildID, settings: extraEnvironment)
        try state.withLock { state in
            state.workers.append(
                (id, try ChildProcess(executable: executable, arguments: arguments, environment: environment), ContinuousClock.now))
        }
    }

    /// Asks the newest `count` workers to drain and exit.
    private func stop(_ count: Int) {
        state.withLock { state in
            for _ in 0..<min(count, state.workers.count) {
                let worker = state.workers.removeLast()
                worker.process.send(SIGTERM)
                state.stopping.append(worker.process)
            }
        }
    }

    /// Forgets workers that exited (a crashed one is replaced at the next tick if still wanted).
    private func reap() {
        state.withLock { state in
            let now = ContinuousClock.now
            for worker in state.workers where !worker.process.isRunning {
                logger.warning("a worker exited", metadata: ["worker": "\(worker.id)", "how": "\(worker.process.termination!)"])
                if worker.process.termination != .exited(0) && now - worker.started < .seconds(5) {
                    state.holdUntil = now + state.backoff
                    logger.warning("workers fail young; waiting before starting another", metadata: ["delay": "\(state.backoff)"])
                    state.backoff = min(state.backoff * 2, .seconds(30))
                } else {
                    state.backoff = .milliseconds(500)
                }
            }
            state.workers.removeAll { !$0.process.isRunning }
            state.stopping.removeAll { !$0.isRunning }
        }
    }

    /// Stops every worker (SIGTERM: they drain) and waits for them; one still running a minute later (past
    /// any drain timeout and its 5 s backstop) is killed.
    private func stopAll() async {
        stop(Int.max)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while state.withLock({ state in
            state.stopping.removeAll { !$0.isRunning }
            if clock.now >= deadline { for process in state.stopping { process.send(SIGKILL) } }
            return !state.stopping.isEmpty
        }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
