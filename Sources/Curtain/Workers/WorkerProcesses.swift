import CurtainRESP
import Dispatch
import Logging
import NIOCore
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

/// The worker processes of the `processes` backend: copies of an executable started with
/// `CURTAIN_ROLE=worker`, each holding the read end of a pipe from the driver on its standard input.
///
/// - A worker exits as soon as that pipe closes, which happens however the driver ends (even `kill -9`),
///   so workers never outlive their driver.
/// - A worker that dies on its own (signal, `exit`, OOM kill) is replaced, and the tasks in its in-flight
///   list go back to the front of the queue (see ``recover(workerID:how:)`` for how a crash is charged);
///   a task that has crashed `1 + crashRetries` workers on its own is answered with a
///   ``RemoteFailure/Kind/crashed`` failure naming the signal or exit status instead.
/// - A worker that exits with ``WorkerStuckError/exitStatus`` handed back its tasks itself (a timed-out
///   function would not stop) and is simply replaced.
actor WorkerProcesses {
    private struct Worker {
        var id: String
        var process: ChildProcess
        var spawnedAt = ContinuousClock.now
        /// The last check that found it running: how long it lived, at least, whenever its death is noticed
        /// (a late check on a loaded machine must not make a worker that died at once look long-lived).
        var seenAliveAt: ContinuousClock.Instant?
        /// Set once a dead worker's tasks are recovered: when its replacement may start.
        var replaceAt: ContinuousClock.Instant?
    }

    private let executable: String
    private let arguments: [String]
    private let storeURL: String
    private let buildID: String
    private let keys: StoreKeys
    private let client: RESPClient
    private let crashRetries: Int
    private let heartbeatTTL: Duration
    /// Variables set for every worker on top of the driver's environment.
    private let environment: [String: String]
    private let sealer: Sealer?
    private let logger: Logger
    private var workers: [Worker] = []
    private var generation = 0
    private var stopping = false
    /// How long to wait before replacing a worker that died young; doubles while workers keep dying within
    /// a second of starting (a program that cannot start as a worker must not be respawned in a tight loop).
    private(set) var respawnDelay: Duration = .zero
    private(set) var spawned = 0
    private var monitor: Task<Void, Never>?
    private var readiness: Task<Void, Never>?
    private let coldStart: ColdStartClock
    /// Tasks put back on the queue after a crash, and tasks given up on: for statistics and tests.
    private(set) var requeued = 0
    private(set) var crashes = 0

    /// Starts `count` workers of `executable` connecting to `storeURL`.
    init(
        count: Int, executable: String, arguments: [String], storeURL: String, buildID: String, client: RESPClient,
        crashRetries: Int, heartbeatTTL: Duration = .seconds(3), environment: [String: String] = [:], sealer: Sealer? = nil,
        coldStart: ColdStartClock, logger: Logger
    ) throws {
        self.sealer = sealer
        self.heartbeatTTL = heartbeatTTL
        self.environment = environment
        self.coldStart = coldStart
        self.executable = executable
        self.arguments = arguments
        self.storeURL = storeURL
        self.buildID = buildID
        self.keys = StoreKeys(buildID: buildID)
        self.client = client
        self.crashRetries = max(0, crashRetries)
        self.logger = logger
        var started: [Worker] = []
        for generation in 0..<count {
            started.append(try Self.spawn(
                id: Self.workerID(generation: generation), executable: executable, arguments: arguments,
                storeURL: storeURL, buildID: buildID, heartbeatTTL: heartbeatTTL, extra: environment))
        }
        self.workers = started
        self.generation = count
        self.spawned = count
    }

    /// Begins watching for workers that die on their own, and for the first worker to be ready.
    func startMonitoring() {
        let expected = workers.count
        readiness = Task { [client, keys, coldStart] in
            guard let connection = try? await client.leaseDedicatedConnection() else { return }
            while !Task.isCancelled && coldStart.readyWorkers < expected {
                guard let reply = try? await connection.send(RESPCommand("BLPOP", keys.ready, 1)) else { break }
                if reply.array != nil { coldStart.noteReady() }
            }
            await connection.close()
        }
        monitor = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(20))
                await self?.checkWorkers()
            }
        }
    }

    /// The process ids of the live workers.
    var processIDs: [Int32] { workers.map(\.process.processIdentifier) }

    private static func workerID(generation: Int) -> String {
        "\(ProcessInfo.processInfo.processIdentifier)-\(generation)"
    }

    private func spawn(id: String) throws -> Worker {
        try Self.spawn(
            id: id, executable: executable, arguments: arguments, storeURL: storeURL, buildID: buildID, heartbeatTTL: heartbeatTTL,
            extra: environment)
    }

    private static func spawn(
        id: String, executable: String, arguments: [String], storeURL: String, buildID: String, heartbeatTTL: Duration,
        extra: [String: String]
    ) throws -> Worker {
        var settings = extra
        settings["CURTAIN_HEARTBEAT_MS"] = "\(heartbeatTTL.wholeMilliseconds)"
        let environment = ChildProcess.workerEnvironment(id: id, storeURL: storeURL, buildID: buildID, settings: settings)
        do {
            return Worker(id: id, process: try ChildProcess(executable: executable, arguments: arguments, environment: environment))
        } catch {
            throw ConfigurationError(description: "cannot start worker process: \(error)")
        }
    }

    private func checkWorkers() async {
        guard !stopping else { return }
        let now = ContinuousClock.now
        for index in workers.indices where workers[index].process.isRunning {
            workers[index].seenAliveAt = now
        }
        for index in workers.indices where !workers[index].process.isRunning {
            let dead = workers[index]
            if dead.replaceAt == nil {
                let how = dead.process.termination?.description ?? "ended"
                if dead.process.termination == .exited(WorkerStuckError.exitStatus) {
                    logger.warning(
                        "replacing a worker: a timed-out task ignored cancellation", metadata: ["worker": "\(dead.id)"])
                } else {
                    crashes += 1
                    logger.warning("worker died; recovering its tasks", metadata: ["worker": "\(dead.id)", "how": "\(how)"])
                }
                do {
                    try await recover(workerID: dead.id, how: how)
                } catch {
                    logger.error("could not recover a dead worker's tasks", metadata: ["worker": "\(dead.id)", "error": "\(error)"])
                }
                // The recovery suspended this actor: a shutdown may have emptied the table meanwhile.
                guard !stopping, workers.indices.contains(index), workers[index].id == dead.id else { return }
                if (dead.seenAliveAt ?? dead.spawnedAt) - dead.spawnedAt < .seconds(1) {
                    respawnDelay = min(max(respawnDelay * 2, .milliseconds(20)), .seconds(5))
                } else {
                    respawnDelay = .zero
                }
                workers[index].replaceAt = now + respawnDelay
            }
            guard !stopping else { return }
            guard let replaceAt = workers[index].replaceAt, now >= replaceAt else { continue }
            do {
                workers[index] = try spawn(id: Self.workerID(generation: generation))
                generation += 1
                spawned += 1
            } catch {
                logger.error("could not replace a dead worker", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Puts the dead worker's in-flight tasks back at the front of the queue, or answers them as crashed
    /// (see ``TaskRecovery/recover(workerID:how:keys:crashRetries:client:)``).
    private func recover(workerID: String, how: String) async throws {
        let counts = try await TaskRecovery.recover(
            workerID: workerID, how: "process \(how)", keys: keys, crashRetries: crashRetries, client: client, sealer: sealer,
            forget: true)
        requeued += counts?.requeued ?? 0
    }

    /// Closes the workers' pipes (they exit by themselves), then kills any still running after `grace`.
    func shutdown(grace: Duration = .seconds(2)) async {
        stopping = true
        monitor?.cancel()
        readiness?.cancel()
        for worker in workers { worker.process.closeInput() }
        let clock = ContinuousClock()
        let deadline = clock.now + grace
        for worker in workers {
            while worker.process.isRunning && clock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
            if worker.process.isRunning {
                worker.process.send(SIGKILL)
                while worker.process.isRunning { try? await Task.sleep(for: .milliseconds(5)) }
            }
        }
        workers = []
    }
}

/// The signals that drain a worker: SIGTERM (what Kubernetes, systemd and `curtain workers` send) and SIGINT.
///
/// The first one calls `onFirst` on a Dispatch queue (never on the cooperative pool, which a function that
/// ignores cancellation may be holding); a later one changes nothing, the drain already under way.
/// The worker does this itself rather than through swift-service-lifecycle's `ServiceGroup`: one loop and
/// two signals need neither its merged async sequences nor their code resident in every idle worker.
final class DrainSignals: Sendable {
    private nonisolated(unsafe) let sources: [any DispatchSourceSignal]

    private init(sources: [any DispatchSourceSignal]) {
        self.sources = sources
    }

    /// Starts watching `signals`, and returns once Dispatch has registered every source (a signal sent
    /// before then would still end the process, as it would before this call).
    static func start(_ signals: [Int32] = [SIGTERM, SIGINT], onFirst: @escaping @Sendable (Int32) -> Void) async -> DrainSignals {
        let queue = DispatchQueue(label: "curtain.drain-signals")
        let fired = Mutex(false)
        var sources: [any DispatchSourceSignal] = []
        for number in signals {
            #if canImport(Darwin)
            // Dispatch delivers signals through kqueue there, below signal(3): the default action must go.
            signal(number, SIG_IGN)
            #endif
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                guard fired.withLock({ fired in defer { fired = true }; return !fired }) else { return }
                onFirst(number)
            }
            await withCheckedContinuation { (registered: CheckedContinuation<Void, Never>) in
                source.setRegistrationHandler { registered.resume() }
                source.resume()
            }
            sources.append(source)
        }
        return DrainSignals(sources: sources)
    }

    /// Stops watching.
    func cancel() { sources.forEach { $0.cancel() } }
}

/// The worker loop's task, once started: what the drain timeout cancels.
private final class RunningLoop: Sendable {
    private let task = Mutex<Task<Void, any Error>?>(nil)
    private let cancelled = Mutex(false)

    func set(_ task: Task<Void, any Error>) {
        let cancel = self.task.withLock { stored in
            stored = task
            return cancelled.withLock { $0 }
        }
        if cancel { task.cancel() }
    }

    func cancel() {
        cancelled.withLock { $0 = true }
        task.withLock { $0 }?.cancel()
    }
}

/// What a worker process sets up once, whatever runs its loop (``WorkerRole``, or the leases of
/// ``HTTPWorkerRole`` and ``LambdaRuntime``): its store client (bound for shared objects), its settings,
/// its actor system, and where its large outputs and shared values go.
///
/// Making it touches nothing remote. What needs the store (the clock's alignment, the actor transport's
/// listener, heartbeat and inbox, a first dedicated connection for the worker loop) starts at once in the
/// background, overlapping whatever the process does next (an HTTP worker answers its first lease request
/// meanwhile); ``storeReady()`` waits for it and reports its failure.
struct WorkerSetup: Sendable {
    let client: RESPClient
    let registry: FunctionRegistry
    let buildID: String
    let workerID: String
    let configuration: CloudConfiguration
    let spill: SpillSettings
    let sealer: Sealer?
    let transport: ActorTransport
    let logger: Logger
    /// The store-side start-up, under way from ``make(client:configuration:buildID:workerID:registry:actors:logger:hostsActors:)``.
    private let storeStartUp: Task<Void, any Error>

    /// Sets the process up as worker `workerID` of `buildID` on the store `client` reaches, with the
    /// settings a driver reads too (`configuration`, from the same environment). `hostsActors`: whether it
    /// offers itself as a host for spawned actors (a leased worker, which lives only as long as its lease,
    /// does not; it still calls actors).
    ///
    /// - Throws: ``ConfigurationError`` for an object store it cannot use; nothing remote is tried yet.
    static func make(
        client: RESPClient, configuration: CloudConfiguration, buildID: String, workerID: String, registry: FunctionRegistry,
        actors: ActorRegistry, logger: Logger, hostsActors: Bool
    ) throws -> WorkerSetup {
        MemoryBinding.bind(client)  // shared-object handles inside remote functions use this connection
        let sealer = configuration.secret.map(Sealer.init(secret:))
        // This process hosts spawned actors (or not), and resolves the actor references its tasks receive.
        let transport = ActorTransport(
            client: client, buildID: buildID, node: workerID, heartbeatTTL: configuration.heartbeatTTL,
            sealer: sealer, path: configuration.actorPath,
            advertise: configuration.advertise, maxPayload: configuration.maxPayloadBytes, encrypt: configuration.actorTLS,
            logger: logger)
        let system = CurtainActorSystem(node: workerID, registry: actors, transport: transport)
        CurtainActorSystem.makeFallback(system)
        // Large outputs spill to the object store the driver reads (the driver sets CURTAIN_STORAGE for
        // its local workers; workers started by hand must be given the cluster's).
        var spill = SpillSettings(
            storage: try Storage(url: configuration.storage ?? CloudConfiguration.defaultStorage),
            threshold: configuration.spillThreshold, maxPayload: configuration.maxPayloadBytes)
        // Shared values come from the store (and object stores): checked against their hash when tasks
        // are signed, since the hash is then their only proof.
        spill.place = SharedValuePlace(client: client, verify: configuration.secret != nil)
        // Three independent round-trip chains, each opening a connection of its own, run side by side.
        let storeStartUp = Task {
            // Times this worker records line up with its drivers' on the store's clock.
            async let aligned: Void = StoreClock.align(with: client)
            // The worker loop's connection, opened ahead of its first use (only a head start: if it fails,
            // the loop opens its own, and says so if it cannot).
            async let opened: Void? = try? await client.openDedicatedConnection()
            try await transport.startHosting(advertise: hostsActors)
            await aligned
            _ = await opened
        }
        return WorkerSetup(
            client: client, registry: registry, buildID: buildID, workerID: workerID, configuration: configuration, spill: spill,
            sealer: sealer, transport: transport, logger: logger, storeStartUp: storeStartUp)
    }

    /// Starts `loop` at once, so that its connection opens and its heartbeat is written while the
    /// store-side start-up may still run; it takes its first task only once that start-up is done (user code
    /// never runs in a worker that then fails to start). Meanwhile this waits for the start-up, then writes
    /// `heartbeat` and starts its periodic beats; if either fails, it stops the loop, hands back whatever
    /// it took, and throws. The loop's task, running.
    ///
    /// - Throws: ``WorkerStartError`` if the start-up failed; the store's error if the heartbeat could not
    ///   be written.
    func startLoop(_ loop: WorkerLoop, heartbeat: WorkerHeartbeat) async throws -> Task<Void, any Error> {
        let task = Task { try await loop.run(startingAfter: { try await storeReady() }) }
        do {
            // The loop takes nothing before this is done, so no task of this worker is in flight yet for a
            // reaper to find without a heartbeat.
            do {
                try await storeReady()
            } catch {
                throw WorkerStartError(underlying: error)
            }
            try await heartbeat.beat()
            heartbeat.start()
        } catch {
            loop.drain()
            task.cancel()
            _ = try? await task.value
            await heartbeat.stopAndWait()
            // Removes the heartbeat too (bounded by the store's connect timeout when it is out of reach).
            _ = try? await loop.handBackAll()
            throw error
        }
        return task
    }

    /// Waits until the store-side start-up is done.
    ///
    /// - Throws: what stopped it (the store unreachable, a direct actor port that `CURTAIN_ACTOR_PATH=direct`
    ///   requires but cannot be opened).
    func storeReady() async throws {
        try await storeStartUp.value
    }

    /// A number of seconds from the variable `name` (above 0, at most a day).
    static func seconds(_ text: String, name: String) throws -> Duration {
        guard let seconds = Double(text), seconds.isFinite, seconds > 0, seconds <= 86_400 else {
            throw ConfigurationError(description: "\(name)='\(text)' is not a number of seconds above 0 and at most 86400")
        }
        return .milliseconds(Int64(seconds * 1000))
    }

    /// The build and worker id from the environment (`CURTAIN_BUILD_ID`, `CURTAIN_WORKER_ID`), or this
    /// executable's build and `<host>-<pid>`.
    static func identity(_ environment: [String: String]) -> (buildID: String, workerID: String) {
        let buildID = environment["CURTAIN_BUILD_ID"].flatMap { $0.isEmpty ? nil : $0 } ?? BuildID.current()
        let workerID = environment["CURTAIN_WORKER_ID"] ?? "\(WorkerHeartbeat.hostName())-\(ProcessInfo.processInfo.processIdentifier)"
        return (buildID, workerID)
    }
}

/// What a process started with `CURTAIN_ROLE=worker` does instead of returning from `Cloud.start`.
enum WorkerRole {
    /// Runs the worker loop until the driver's pipe closes (processes backend) or forever (cluster), then exits.
    static func run(registry: FunctionRegistry, actors: ActorRegistry, environment: [String: String]) async -> Never {
        var logger = Logger(label: "curtain.worker")
        logger.logLevel = .info
        guard let url = environment["CURTAIN_STORE"] else {
            logger.critical("CURTAIN_ROLE=worker needs CURTAIN_STORE=<redis://…|unix://…>")
            exit(2)
        }
        // Unique across hosts unless given: host name, process id.
        let (buildID, workerID) = WorkerSetup.identity(environment)
        // Only workers spawned by a driver watch their stdin: one started by hand may have none.
        if environment["CURTAIN_PARENT_PIPE"] == "1" { watchParentPipe() }
        do {
            let idleExit = try environment["CURTAIN_WORKER_IDLE_EXIT"].map { try WorkerSetup.seconds($0, name: "CURTAIN_WORKER_IDLE_EXIT") }
            let setup = try WorkerSetup.make(
                client: try RESPClient(url: url), configuration: try CloudConfiguration.fromEnvironment(environment), buildID: buildID,
                workerID: workerID, registry: registry, actors: actors, logger: logger, hostsActors: true)
            let (client, configuration, transport) = (setup.client, setup.configuration, setup.transport)
            // The heartbeat says this worker's in-flight tasks are still its own; it is written before the
            // first task is taken.
            let heartbeat = WorkerHeartbeat(
                client: client, keys: StoreKeys(buildID: buildID), workerID: workerID, ttl: configuration.heartbeatTTL)
            // With a heartbeat, the loop says which shared values it holds, so drivers place tasks near them.
            let loop = WorkerLoop(
                client: client, registry: registry, buildID: buildID, workerID: workerID, logger: logger, spill: setup.spill,
                sealer: setup.sealer, maxEntryBytes: configuration.maxPayloadBytes, heartbeat: heartbeat)
            // CURTAIN_WORKER_IDLE_EXIT (Cloud Run jobs, KEDA ScaledJobs): after that long without a task, the
            // worker drains and exits 0.
            if let idleExit {
                let keeper = client.backgroundExecutor()
                Task(executorPreference: keeper) {
                    while true {
                        try? await keeper.sleep(for: .milliseconds(50))
                        if WorkerLoop.idleMicroseconds() >= Int64(idleExit.microseconds) {
                            logger.info("no task for \(idleExit); draining (CURTAIN_WORKER_IDLE_EXIT)", metadata: ["worker": "\(workerID)"])
                            loop.drain()
                            return
                        }
                    }
                }
            }
            // SIGTERM / SIGINT: take no new task, finish the running one, hand back the rest, exit 0; after
            // the drain timeout the running task is cancelled and handed back too.
            // The backstop: a function that ignores cancellation cannot keep the process past the drain
            // timeout by more than 5 s; whatever the worker holds goes back first. It runs on an event loop,
            // since such a function may be holding the cooperative pool.
            let drainTimeout = configuration.drainTimeout
            let backstopLogger = logger
            let backstop: @Sendable () -> Void = {
                let keeper = client.backgroundExecutor()
                Task(executorPreference: keeper) {
                    // Not Task.sleep: its wake-up needs a thread of the cooperative pool, which the task that
                    // ignores cancellation may be holding.
                    try? await keeper.sleep(for: drainTimeout + .seconds(5))
                    await heartbeat.stopAndWait()
                    let returned = (try? await loop.handBackAll()) ?? 0
                    backstopLogger.warning(
                        "a task ignored cancellation after the drain timeout; exiting anyway",
                        metadata: ["worker": "\(workerID)", "handed back": "\(returned)"])
                    exit(0)
                }
            }
            let running = RunningLoop()
            let signals = await DrainSignals.start { [logger] number in
                logger.info("draining", metadata: ["worker": "\(workerID)", "signal": "\(number)"])
                loop.drain()
                backstop()
                // After the drain timeout the running task is cancelled, and handed back below.
                let keeper = client.backgroundExecutor()
                Task(executorPreference: keeper) {
                    try? await keeper.sleep(for: drainTimeout)
                    running.cancel()
                }
            }
            // The loop starts once the signals are watched: a SIGTERM from then on drains it.
            let task = try await setup.startLoop(loop, heartbeat: heartbeat)
            running.set(task)
            logger.info("worker ready", metadata: ["worker": "\(workerID)", "build": "\(buildID)", "store": "\(RESPConfiguration.redacted(url: url))"])
            var stuck: WorkerStuckError?
            do {
                try await task.value
            } catch let error as WorkerStuckError {
                stuck = error
            } catch is CancellationError {
                // The drain ran out of time.
            }
            signals.cancel()
            await heartbeat.stopAndWait()
            let returned = try await loop.handBackAll()
            await transport.close()
            if let stuck { throw stuck }
            logger.info("worker stopped", metadata: ["worker": "\(workerID)", "handed back": "\(returned)"])
            exit(0)
        } catch let error as WorkerStuckError {
            logger.warning("exiting to be replaced", metadata: ["reason": "\(error)"])
            exit(WorkerStuckError.exitStatus)
        } catch {
            logger.critical("worker stopped", metadata: ["error": "\(error)"])
            exit(1)
        }
    }

    /// Exits the process when standard input reaches end of file (the driver closed its end or died).
    static func watchParentPipe() {
        // A blocking read on a Dispatch thread, never on the cooperative pool.
        DispatchQueue(label: "curtain.parent-pipe").async {
            var byte: UInt8 = 0
            while true {
                let n = read(0, &byte, 1)
                if n == 0 { exit(0) }
                if n < 0 && errno != EINTR { exit(0) }
            }
        }
    }
}
