import CurtainRESP
import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one lease of a worker did: the answer to a lease request (``HTTPWorker``'s `POST /lease`) and to
/// a serverless invocation.
///
/// A lease runs the ordinary worker loop against the store until the worker has been idle for a while or
/// its time budget nears its end, then drains it: the running task finishes (or, at the budget's end, is
/// cancelled), everything else the worker took goes back to the queue, and its heartbeat is removed.
public struct LeaseReport: Sendable, Hashable, Codable {
    /// The worker's id (as its heartbeat named it).
    public var worker: String
    /// The build it runs.
    public var build: String
    /// Tasks it answered during the lease.
    public var tasks: Int
    /// Of those, the ones answered with a failure.
    public var failures: Int
    /// Tasks it handed back to the queue when the lease ended (unrun, or cancelled at the deadline).
    public var handedBack: Int
    /// How long the lease lasted, in seconds.
    public var seconds: Double
    /// Why it ended: `idle` (no task for the idle time), `deadline` (the budget's end neared) or `stopped`
    /// (the process was told to stop).
    public var ended: String

    /// A report of the values given.
    public init(worker: String, build: String, tasks: Int, failures: Int, handedBack: Int, seconds: Double, ended: String) {
        self.worker = worker
        self.build = build
        self.tasks = tasks
        self.failures = failures
        self.handedBack = handedBack
        self.seconds = seconds
        self.ended = ended
    }
}

/// Why a lease could not be granted.
public struct LeaseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of refusal.
    public enum Kind: String, Sendable, Hashable {
        /// The worker is leased already (one lease at a time per process).
        case busy
        /// The request asked for another build than the worker runs.
        case wrongBuild
        /// The request was malformed (its body, its budget).
        case badRequest
        /// The request lacked the configured token.
        case unauthorized
    }

    /// What kind of refusal.
    public var kind: Kind
    /// What was wrong, for people.
    public var description: String

    /// A refusal of `kind`.
    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// The worker could not start (its store unreachable, its actor port refused): what a lease answers then.
struct WorkerStartError: Error, CustomStringConvertible {
    var underlying: any Error
    var description: String { "the worker could not start: \(underlying)" }
}

/// Leases of one worker process, one at a time: each runs a fresh worker loop and heartbeat, under an id
/// of its own, against the process's store connection, and ends as ``LeaseReport`` says.
///
/// The process's ``WorkerSetup`` may still be under way when a lease is asked for (an HTTP worker answers
/// on its port before it is set up, so that its first request travels while it sets up): the lease waits
/// for it, and fails with ``WorkerStartError`` if it failed.
final class WorkerLeases: Sendable {
    /// The build the worker runs.
    let buildID: String
    /// The worker's id (each lease's is this and a suffix).
    let workerID: String
    private let pending: Task<WorkerSetup, any Error>

    private struct State {
        var running = false
        /// The process is going away: no lease starts any more.
        var closing = false
    }
    private let state = Mutex(State())
    /// The stop every lease from now on ends with (SIGTERM: the process is going away), and when.
    private let stopping = Mutex<ContinuousClock.Instant?>(nil)
    /// When the last lease ended or the last request came (monotonic µs), for the idle exit.
    private let lastActive = Atomic<Int64>(Monotonic.microseconds())
    /// Set when a task would not stop: the process must exit once the lease has answered (its thread is lost).
    private let mustExitFlag = Atomic<Bool>(false)

    /// The part of the budget kept for what follows the last task: answering it, handing back, removing
    /// the heartbeat, and the response (Lambda freezes the process once it has answered).
    static let margin = Duration.milliseconds(500)

    /// Leases of worker `workerID` of `buildID`, once `setup` is done.
    init(buildID: String, workerID: String, setup: Task<WorkerSetup, any Error>) {
        self.buildID = buildID
        self.workerID = workerID
        self.pending = setup
    }

    /// Leases of a worker already set up.
    convenience init(setup: WorkerSetup) {
        self.init(buildID: setup.buildID, workerID: setup.workerID, setup: Task { setup })
    }

    /// How the process's setup went, as `GET /healthz` says it.
    enum SetupStatus: String {
        case running, done, failed
    }

    private let setupState = Atomic<Int>(0)

    /// How the process's setup went (as noted with ``noteSetup(failed:)``).
    var setupStatus: SetupStatus {
        switch setupState.load(ordering: .relaxed) {
        case 1: .done
        case 2: .failed
        default: .running
        }
    }

    /// Notes that the setup (its store-side part included) ended.
    func noteSetup(failed: Bool) { setupState.store(failed ? 2 : 1, ordering: .relaxed) }

    /// The worker's setup, once done.
    ///
    /// - Throws: ``WorkerStartError`` if it failed.
    func setup() async throws -> WorkerSetup {
        do {
            return try await pending.value
        } catch {
            throw WorkerStartError(underlying: error)
        }
    }

    /// Whether a lease runs now.
    var isLeased: Bool { state.withLock { $0.running } }

    /// Whether the process must exit after answering (a task ignored cancellation at a lease's end).
    var mustExit: Bool { mustExitFlag.load(ordering: .relaxed) }

    /// Notes a request (it counts as activity for the idle exit).
    func noteRequest() { lastActive.store(Monotonic.microseconds(), ordering: .relaxed) }

    /// Closes the worker to leases if none runs and none came for `idle`: true if it did (the caller exits).
    func closeIfIdle(for idle: Duration) -> Bool {
        state.withLock { state in
            guard !state.running, !state.closing,
                Monotonic.microseconds() - lastActive.load(ordering: .relaxed) >= Int64(idle.microseconds)
            else { return false }
            state.closing = true
            return true
        }
    }

    /// Refuses new leases and ends the running one (if any): it stops taking tasks at once, and its
    /// running task is cancelled after `grace` (the drain timeout).
    func stop(grace: Duration) {
        state.withLock { $0.closing = true }
        stopping.withLock { $0 = $0 ?? ContinuousClock.now + grace }
    }

    /// Leases the worker for at most `budget`: it takes tasks until none came for `idle` or until the
    /// budget's end nears (``margin`` before it, a task still running is cancelled and handed back; one
    /// that ignores cancellation is abandoned, handed back, and the process exits after answering), then
    /// drains and answers what it did.
    ///
    /// - Throws: ``LeaseError`` (`busy`, `badRequest`) before anything runs; ``WorkerStartError`` if the
    ///   process's setup failed (the lease then ran nothing); a store error if the heartbeat could not be
    ///   written or the store was lost for good.
    func lease(budget: Duration, idle: Duration) async throws -> LeaseReport {
        guard budget > Self.margin * 2 else {
            throw LeaseError(.badRequest, "a lease of \(budget) leaves no time to run a task: at least \(Self.margin * 2) is needed")
        }
        guard idle >= .milliseconds(1), idle <= budget else {
            throw LeaseError(.badRequest, "the idle time must be from 1 ms to the lease's budget (\(budget)), not \(idle)")
        }
        try state.withLock { state in
            guard !state.closing else { throw LeaseError(.busy, "the worker \(self.workerID) is stopping") }
            guard !state.running else { throw LeaseError(.busy, "the worker \(self.workerID) is leased already (one lease at a time)") }
            state.running = true
        }
        defer {
            lastActive.store(Monotonic.microseconds(), ordering: .relaxed)
            state.withLock { $0.running = false }
        }
        let clock = ContinuousClock()
        let start = clock.now
        let setup = try await self.setup()
        // An id of its own per lease: a later lease of this process (or another container with the same
        // host name and process id) never shares its in-flight list, and a reaper looking at an earlier
        // lease's heartbeat never touches this one's tasks.
        var random = SystemRandomNumberGenerator()
        let leaseID = setup.workerID + "-" + String(random.next() as UInt64 % 2_176_782_336, radix: 36)
        let heartbeat = WorkerHeartbeat(
            client: setup.client, keys: StoreKeys(buildID: setup.buildID), workerID: leaseID, ttl: setup.configuration.heartbeatTTL)
        let loop = WorkerLoop(
            client: setup.client, registry: setup.registry, buildID: setup.buildID, workerID: leaseID,
            logger: setup.logger, spill: setup.spill, sealer: setup.sealer, maxEntryBytes: setup.configuration.maxPayloadBytes,
            heartbeat: heartbeat)
        // What earlier leases cached is announced under this lease's id.
        SharedValueCache.process.announceAll()
        let done = (WorkerLoop.tasksDone.load(ordering: .relaxed), WorkerLoop.tasksFailed.load(ordering: .relaxed))
        WorkerLoop.noteActivity()
        // The loop starts at once; the first lease may come before the process's store-side start-up is
        // done, and fails if it failed.
        // SIGTERM while the lease waited for the setup: it ends as it would have.
        if stopping.withLock({ $0 }) != nil { throw LeaseError(.busy, "the worker \(workerID) is stopping") }
        let task = try await setup.startLoop(loop, heartbeat: heartbeat)
        // Watched from the keeper thread: a CPU-bound task may be holding the cooperative pool.
        let keeper = setup.client.backgroundExecutor()
        let stopTaking = start + budget - Self.margin * 2
        let cancelAt = start + budget - Self.margin
        // Past this, a task that ignored cancellation is abandoned: the lease must still answer in time.
        let abandonAt = start + budget - Self.margin / 2
        let idleMicros = Int64(idle.microseconds)
        let (ended, abandoned) = await Task(executorPreference: keeper) { () -> (String, Bool) in
            var reason: String?
            while true {
                try? await keeper.sleep(for: .milliseconds(10))
                let now = clock.now
                let stopAt = self.stopping.withLock { $0 }
                if reason == nil {
                    if stopAt != nil {
                        reason = "stopped"
                    } else if now >= stopTaking {
                        reason = "deadline"
                    } else if WorkerLoop.idleMicroseconds() >= idleMicros {
                        reason = "idle"
                    }
                    if reason != nil {
                        // A loop waiting on the queue wakes now rather than at the end of its wait (the id is
                        // read first: the drain withdraws it).
                        let id = heartbeat.connectionID
                        loop.drain()
                        if let id { _ = try? await setup.client.keeper.send(RESPCommand("CLIENT", "UNBLOCK", id)) }
                    }
                }
                if loop.hasStopped { return (reason ?? "stopped", false) }
                if now >= cancelAt || stopAt.map({ now >= $0 }) == true { task.cancel() }
                if now >= abandonAt { return (reason ?? "deadline", true) }
            }
        }.value
        var failure: (any Error)?
        if abandoned {
            setup.logger.warning("a task ignored cancellation at the lease's end: handed back, and the process exits after answering")
            mustExitFlag.store(true, ordering: .relaxed)
        } else {
            do {
                try await task.value
            } catch is CancellationError {
                // The budget ran out with a task running: it is still in flight, and handed back below.
            } catch let error as WorkerStuckError {
                setup.logger.warning("a timed-out task would not stop; the process exits after answering", metadata: ["function": "\(error.function)"])
                mustExitFlag.store(true, ordering: .relaxed)
            } catch {
                failure = error  // the store went away for good: whatever can be handed back still is
            }
        }
        await heartbeat.stopAndWait()
        let handedBack = try await loop.handBackAll()
        if let failure { throw failure }
        return LeaseReport(
            worker: leaseID, build: setup.buildID,
            tasks: WorkerLoop.tasksDone.load(ordering: .relaxed) - done.0,
            failures: WorkerLoop.tasksFailed.load(ordering: .relaxed) - done.1,
            handedBack: handedBack, seconds: Double((clock.now - start).microseconds) / 1e6,
            ended: abandoned ? "deadline (a task ignored cancellation)" : ended)
    }
}

/// Monotonic time in microseconds (for idle times kept in atomics).
enum Monotonic {
    static func microseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000
    }
}
