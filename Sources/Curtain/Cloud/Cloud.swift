import CurtainRESP
import CurtainStore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Synchronization

/// The entry point: starts the configured backend and runs remote functions on it.
///
/// ```swift
/// let cloud = try await Cloud.start(functions: [CountHits.self])
/// // ^ in a worker process this never returns: the same binary serves as worker
/// let hits = try await cloud.map(CountHits(samples: 1_000_000), over: 0..<64)
/// // options per job: timeout, retries of thrown errors, progress, summary
/// let again = try await cloud.map(CountHits(samples: 1_000_000), over: 0..<64,
///                                 options: JobOptions(timeout: .seconds(10), retries: 1, summary: true))
/// await cloud.shutdown()
/// ```
///
/// The backend comes from configuration (`CURTAIN_BACKEND`, `CURTAIN_WORKERS`, or a ``CloudConfiguration``),
/// never from code: the same program runs in-process, on local worker processes, or on a cluster.
public final class Cloud: Sendable {
    /// The configuration in force.
    public let configuration: CloudConfiguration
    /// The build id shared by this driver and its workers.
    public let buildID: String
    private let registry: FunctionRegistry
    /// The store client jobs dispatch through; `nil` for the in-process backend.
    private let client: RESPClient?
    /// The store client shared objects use (the embedded store even for the in-process backend).
    private let memoryClient: RESPClient
    private let store: StoreServer?
    private let workers: WorkerProcesses?
    let directory: String?
    private let coldStart: ColdStartClock
    /// Shared objects of this cloud: counters, values, dictionaries, locks (see ``SharedMemory``).
    public let memory: SharedMemory
    /// Keeps this cloud's objects alive while it runs, and removes those of clouds that died.
    let janitor: MemoryJanitor
    /// The distributed actor system of this driver: actors it creates itself live here, and references to
    /// actors on workers resolve through it (see ``spawn(_:on:restart:)``).
    public let actors: CurtainActorSystem
    let actorRegistry: ActorRegistry
    /// The actors this cloud spawned, for release at shutdown and restarts.
    let spawned = SpawnedActors()
    /// Objects, as files: the store of ``CloudConfiguration/storage`` (see ``Storage``).
    public let storage: Storage
    /// Signs envelopes and checks results when ``CloudConfiguration/secret`` is set.
    var sealer: Sealer? { configuration.secret.map(Sealer.init(secret:)) }
    /// Where this cloud's large payloads go.
    var spill: SpillSettings {
        var settings = SpillSettings(storage: storage, threshold: configuration.spillThreshold, maxPayload: configuration.maxPayloadBytes)
        settings.format = configuration.payloadFormat
        settings.shareAbove = configuration.shareThreshold
        settings.shelf = shelf
        // In-process tasks fetch shared values as a worker would (once per process, through the cache).
        settings.place = SharedValuePlace(client: memoryClient, verify: false)
        return settings
    }
    /// Where this cloud's jobs put the values they share by hash.
    let shelf: SharedValueShelf
    /// The queues of `@Remote` calls, one per function.
    let callBatchers = CallBatchers()
    /// On a shared store: recovers the tasks of workers whose heartbeat lapsed.
    private let reaper = Mutex<TaskReaper?>(nil)

    private init(
        configuration: CloudConfiguration, buildID: String, registry: FunctionRegistry, client: RESPClient?,
        memoryClient: RESPClient, store: StoreServer?, workers: WorkerProcesses?, directory: String?,
        coldStart: ColdStartClock, actors: CurtainActorSystem, actorRegistry: ActorRegistry, storage: Storage
    ) {
        self.storage = storage
        self.shelf = SharedValueShelf(client: memoryClient)
        self.actors = actors
        self.actorRegistry = actorRegistry
        self.coldStart = coldStart
        self.configuration = configuration
        self.buildID = buildID
        self.registry = registry
        self.client = client
        self.memoryClient = memoryClient
        self.store = store
        self.workers = workers
        self.directory = directory
        self.memory = SharedMemory(namespace: "curtain:mem:\(TaskDispatcher.newJobID())")
        self.janitor = MemoryJanitor(namespace: memory.namespace, client: memoryClient)
        MemoryBinding.bind(memoryClient, namespace: memory.namespace)
    }

    /// Starts Curtain with the functions this program may run remotely, and the actor types it may spawn
    /// on workers.
    ///
    /// In a process started as a worker (`CURTAIN_ROLE=worker`) this call never returns: it runs the worker
    /// loop (and hosts spawned actors) and exits.
    ///
    /// - Parameters:
    ///   - functions: every ``RemoteFunction`` type that may run remotely.
    ///   - actors: every ``SpawnableActor`` type that ``spawn(_:on:restart:)`` may create on a worker.
    ///   - configuration: where to run; `nil` reads the environment (``CloudConfiguration/fromEnvironment(_:)``).
    /// - Throws: ``RegistryError``, ``ConfigurationError``, or a connection error for the store.
    public static func start(
        functions: [any RemoteFunction.Type], actors: [any SpawnableActor.Type] = [], configuration: CloudConfiguration? = nil
    ) async throws -> Cloud {
        let cloud = try await make(functions: functions, actors: actors, configuration: configuration)
        if cloud.configuration.prometheus { CurtainMetrics.bootstrapPrometheus() }
        if cloud.workers != nil { CurtainMetrics.workers(cloud.configuration.workers) }
        if let address = cloud.configuration.dashboard {
            do {
                let dashboard = try await Dashboard.start(
                    address: address, token: cloud.configuration.dashboardToken, client: cloud.client ?? cloud.memoryClient)
                cloud.dashboardBox.withLock { $0 = dashboard }
                StandardError.write("curtain: dashboard at \(dashboard.url)\n")
            } catch {
                await cloud.shutdown()
                throw error
            }
        }
        return cloud
    }

    /// Whether this process was started as a worker, so that ``start(functions:actors:configuration:)``
    /// serves tasks and never returns: `CURTAIN_ROLE=worker` or `http-worker`, or on AWS Lambda (its
    /// Runtime API in the environment) with `CURTAIN_ROLE` unset, `worker` or `lambda-worker`.
    ///
    /// A program can check it first thing, to become a worker before it parses its command line or does
    /// anything else of a driver's (a worker's cold start then pays for nothing else):
    ///
    /// ```swift
    /// if Cloud.isWorkerProcess {
    ///     _ = try await Cloud.start(functions: [Square.self])  // never returns
    /// }
    /// ```
    public static var isWorkerProcess: Bool { WorkerKind(ProcessInfo.processInfo.environment) != nil }

    /// The live dashboard, when ``CloudConfiguration/dashboard`` asked for one.
    public var dashboard: Dashboard? { dashboardBox.withLock { $0 } }
    private let dashboardBox = Mutex<Dashboard?>(nil)

    /// Leases workers on demand from now on: about one per ``CloudConfiguration/tasksPerLease`` tasks of
    /// backlog (at most ``CloudConfiguration/maxLeases``), each through the invoker with the fewest under
    /// way; replaces what ``CloudConfiguration/invoke`` or an earlier call set up. For invokers the
    /// configuration cannot name, such as `CurtainS3`'s `LambdaInvoker`.
    ///
    /// - Throws: ``ConfigurationError`` without a shared store (the in-process and local backends start
    ///   their own workers), or without an invoker.
    public func invokeWorkers(with invokers: [any WorkerInvoker]) async throws {
        guard case .store = configuration.backend, let client else {
            throw ConfigurationError(description: "invoking workers needs a shared store (CURTAIN_BACKEND=redis://…): leased workers meet the driver there")
        }
        guard !invokers.isEmpty else { throw ConfigurationError(description: "invokeWorkers(with:) needs at least one invoker") }
        let launcher = LeaseLauncher(
            client: client, buildID: buildID, invokers: invokers, leaseSeconds: configuration.leaseSeconds,
            tasksPerLease: configuration.tasksPerLease, maxLeases: configuration.maxLeases)
        launcherBox.withLock { $0 }?.stop()
        launcherBox.withLock { $0 = launcher }
        launcher.start()
    }

    /// What invokes leased workers for this driver's backlog (``CloudConfiguration/invoke``), if anything.
    var launcher: LeaseLauncher? { launcherBox.withLock { $0 } }
    private let launcherBox = Mutex<LeaseLauncher?>(nil)

    private static func make(
        functions: [any RemoteFunction.Type], actors: [any SpawnableActor.Type], configuration: CloudConfiguration?
    ) async throws -> Cloud {
        let coldStart = ColdStartClock()
        let environment = ProcessInfo.processInfo.environment
        let kind = WorkerKind(environment)
        // An HTTP worker opens its port before anything else, registering the functions meanwhile.
        if kind == .http { await HTTPWorkerRole.run(functions: functions, actors: actors, environment: environment) }
        let registry = try FunctionRegistry(functions)
        let actorRegistry = try ActorRegistry(actors)
        switch kind {
        case .lambda: await LambdaRuntime.run(registry: registry, actors: actorRegistry, environment: environment)
        case .plain: await WorkerRole.run(registry: registry, actors: actorRegistry, environment: environment)
        case .http, nil: break
        }
        let configuration = try configuration ?? CloudConfiguration.fromEnvironment(environment)
        guard configuration.workers >= 1 else {
            throw ConfigurationError(description: "workers must be at least 1, not \(configuration.workers)")
        }
        try configuration.checkTraits()
        if let invoke = configuration.invoke {
            guard case .store = configuration.backend else {
                throw ConfigurationError(
                    description: "CURTAIN_INVOKE=\(invoke) needs a shared store (CURTAIN_BACKEND=redis://…): leased workers meet the driver there")
            }
        }
        let buildID = configuration.buildID ?? BuildID.current()
        let storage = try Storage(url: configuration.storage ?? CloudConfiguration.defaultStorage)
        if case .store(let url) = configuration.backend {
            let client = try RESPClient(url: url)
            try await client.ping()
            // Times recorded here and on the workers line up on the store's clock.
            await StoreClock.align(with: client)
            let actors = try await Self.driverActorSystem(client: client, buildID: buildID, registry: actorRegistry, configuration: configuration)
            let cloud = Cloud(
                configuration: configuration, buildID: buildID, registry: registry, client: client,
                memoryClient: client, store: nil, workers: nil, directory: nil, coldStart: coldStart,
                actors: actors, actorRegistry: actorRegistry, storage: storage)
            // A shared store outlives this driver: keep its objects alive while it runs, and clear out those
            // of drivers that died without shutting down. (An embedded store dies with its driver.)
            await cloud.janitor.start()
            // No supervisor watches workers started elsewhere: their heartbeats do.
            cloud.reaper.withLock {
                $0 = TaskReaper(
                    client: client, keys: StoreKeys(buildID: buildID), heartbeatTTL: configuration.heartbeatTTL,
                    crashRetries: configuration.crashRetries, sealer: cloud.sealer)
            }
            // Workers started on demand: leases follow the backlog.
            if let invoke = configuration.invoke {
                try await cloud.invokeWorkers(
                    with: invoke.split(separator: ",").map { try HTTPInvoker(url: String($0), token: configuration.invokeToken) })
            }
            return cloud
        }
        // In-process and local processes alike host the embedded store on a Unix socket: workers meet the
        // driver there, and shared objects live there.
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("curtain-\(ProcessInfo.processInfo.processIdentifier)-\(TaskDispatcher.newJobID().prefix(6))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let socket = directory + "/store.sock"
        var storeLogger = Logger(label: "curtain.store")
        storeLogger.logLevel = .warning
        let store: StoreServer
        do {
            store = try await StoreServer.start(
                configuration: StoreConfiguration(host: nil, unixSocketPath: socket, logger: storeLogger))
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        do {
            let url = "unix://\(socket)"
            let client = try RESPClient(url: url)
            guard configuration.backend == .processes else {
                let actors = CurtainActorSystem(
                    node: "local-\(TaskDispatcher.newJobID().prefix(8))", registry: actorRegistry, transport: nil)
                CurtainActorSystem.makeFallback(actors)
                return Cloud(
                    configuration: configuration, buildID: buildID, registry: registry, client: nil,
                    memoryClient: client, store: store, workers: nil, directory: directory, coldStart: coldStart,
                    actors: actors, actorRegistry: actorRegistry, storage: storage)
            }
            let actors = try await Self.driverActorSystem(client: client, buildID: buildID, registry: actorRegistry, configuration: configuration)
            let workers = try WorkerProcesses(
                count: configuration.workers,
                executable: configuration.workerExecutable ?? BuildID.executablePath(),
                arguments: configuration.workerArguments ?? Array(CommandLine.arguments.dropFirst()),
                storeURL: url, buildID: buildID, client: client, crashRetries: configuration.crashRetries,
                heartbeatTTL: configuration.heartbeatTTL,
                environment: [
                    "CURTAIN_STORAGE": storage.url, "CURTAIN_SPILL_BYTES": "\(configuration.spillThreshold)",
                    "CURTAIN_PAYLOAD_FORMAT": configuration.payloadFormat.rawValue,
                    "CURTAIN_MAX_PAYLOAD_BYTES": "\(configuration.maxPayloadBytes)",
                    "CURTAIN_ACTOR_PATH": configuration.actorPath.rawValue,
                ]
                    .merging(configuration.secret.map { ["CURTAIN_SECRET": $0] } ?? [:]) { _, new in new }
                    .merging(configuration.actorTLS.map { ["CURTAIN_ACTOR_TLS": $0 ? "1" : "0"] } ?? [:]) { _, new in new },
                sealer: configuration.secret.map(Sealer.init(secret:)),
                coldStart: coldStart, logger: Logger(label: "curtain.cloud"))
            await workers.startMonitoring()
            return Cloud(
                configuration: configuration, buildID: buildID, registry: registry, client: client,
                memoryClient: client, store: store, workers: workers, directory: directory, coldStart: coldStart,
                actors: actors, actorRegistry: actorRegistry, storage: storage)
        } catch {
            try? await store.shutdown()
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// Runs `function` on one input remotely and returns its output.
    ///
    /// - Throws: as ``map(_:over:options:)``.
    public func run<F: RemoteFunction>(_ function: F, _ input: F.Input, options: JobOptions = JobOptions()) async throws
        -> F.Output
    {
        try await map(function, over: CollectionOfOne(input), options: options)[0]
    }

    /// Runs `function` on every input and returns the outputs in input order.
    ///
    /// Inputs are read and encoded only as the job's window (``JobOptions/window``) has room, so the
    /// sequence can be long or lazy: a million inputs are never all in memory, encoded, at once.
    ///
    /// - Throws: ``InputEncodingError`` for an input that cannot be encoded (before anything runs if it is in
    ///   the first window); ``RemoteTaskError`` for the first task that fails for good; `CancellationError` if
    ///   the calling task is cancelled (the job's queued tasks then never run); ``ConfigurationError`` for
    ///   invalid `options`.
    public func map<F: RemoteFunction, Inputs: Sequence>(
        _ function: F, over inputs: Inputs, options: JobOptions = JobOptions()
    ) async throws -> [F.Output] where Inputs.Element == F.Input {
        let registry = self.registry
        let width = configuration.workers
        let (spill, sealer) = (self.spill, self.sealer)
        let (shared, maxEntry, placement) = (isSharedStore, configuration.maxPayloadBytes, configuration.placement)
        // Actor references among the outputs (and, in-process, the captures and inputs) resolve through
        // this cloud's actor system.
        return try await CurtainActorSystem.$taskCurrent.withValue(actors) {
            try await MapRunner.map(function, over: inputs, context: jobContext, options: options) { [client, buildID] jobID in
                if let client {
                    return try await StoreTransport(
                        client: client, buildID: buildID, jobID: jobID, function: F.name, sealer: sealer, durable: options.id != nil,
                        sharedStore: shared, maxEntryBytes: maxEntry, placement: placement)
                }
                return LocalTransport(registry: registry, width: width, spill: spill, jobID: jobID)
            }
        }
    }

    /// Runs `body` with a group to which remote tasks of one function type can be added one by one, their
    /// outputs read in completion order (see ``RemoteTaskGroup``). The group's job ends when `body` returns
    /// or throws: tasks that have not run by then never run.
    ///
    /// - Throws: what `body` throws; ``ConfigurationError`` for invalid `options`.
    public func withTaskGroup<F: RemoteFunction, Result>(
        of function: F.Type, options: JobOptions = JobOptions(), body: (RemoteTaskGroup<F>) async throws -> Result
    ) async throws -> Result {
        let group = RemoteTaskGroup<F>(job: try await makeJob(of: F.self, options: options))
        do {
            let result = try await CurtainActorSystem.$taskCurrent.withValue(actors) { try await body(group) }
            await group.finish()
            return result
        } catch {
            await group.finish()
            throw error
        }
    }

    /// A new job of `function` on this cloud's transport. A `quiet` job (the queued calls of a `@Remote`
    /// function) draws no progress bar and prints no summary: there may be many of them.
    func makeJob<F: RemoteFunction>(of function: F.Type, options: JobOptions, quiet: Bool = false) async throws -> Job<F> {
        let options = try options.validated()
        let jobID = TaskDispatcher.newJobID()
        let transport: any JobTransport
        if let client {
            transport = try await StoreTransport(
                client: client, buildID: buildID, jobID: jobID, function: F.name, sealer: sealer, sharedStore: isSharedStore,
                maxEntryBytes: configuration.maxPayloadBytes, placement: configuration.placement)
        } else {
            transport = LocalTransport(registry: registry, width: configuration.workers, spill: spill, jobID: jobID)
        }
        var context = jobContext
        if quiet {
            context.printSummaries = false
            context.progressAllowed = false
        }
        return Job(jobID: jobID, transport: transport, context: context, options: options)
    }

    /// Whether jobs go through a store that outlives this driver (`redis://…`), not its embedded one.
    private var isSharedStore: Bool {
        if case .store = configuration.backend { return true }
        return false
    }

    /// What every job of this cloud shares.
    private var jobContext: JobContext {
        let backend: String
        switch configuration.backend {
        case .inprocess: backend = "inprocess"
        case .processes: backend = "processes"
        case .store(let url): backend = RESPConfiguration.redacted(url: url)
        }
        return JobContext(
            buildID: buildID, backend: backend, workers: configuration.workers,
            printSummaries: configuration.printSummaries, progressAllowed: configuration.showProgress,
            coldStart: workers == nil ? nil : coldStart, reportedWorkers: client == nil ? configuration.workers : nil,
            spill: spill, reports: configuration.reports)
    }

    /// Waits until every worker process this cloud started is connected and ready for tasks, so that what
    /// follows is not slowed by worker start-up (benchmarks, latency-sensitive first jobs). Returns at once
    /// for backends whose workers this cloud does not start (`inprocess`, a shared store).
    ///
    /// - Throws: ``ConfigurationError`` if the workers are not ready within `timeout` (they failed to start
    ///   or cannot reach the store); `CancellationError`.
    public func waitForWorkers(timeout: Duration = .seconds(30)) async throws {
        guard workers != nil else { return }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while coldStart.readyWorkers < configuration.workers {
            guard clock.now < deadline else {
                throw ConfigurationError(
                    description: "\(coldStart.readyWorkers) of \(configuration.workers) workers were ready after \(Format.duration(timeout))")
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    /// The supervisor of the `processes` backend (for tests).
    var supervisor: WorkerProcesses? { workers }

    /// The process ids of the live local worker processes (empty for other backends).
    public var workerProcessIDs: [Int32] {
        get async { await workers?.processIDs ?? [] }
    }

    /// Stops the workers and the embedded store this cloud started, removes its shared objects (except
    /// persistent ones), and closes its connections.
    public func shutdown() async {
        resignAmbient()
        launcher?.stop()  // no more leases: those under way end by themselves once idle
        await dashboardBox.withLock { state in defer { state = nil }; return state }?.close()
        reaper.withLock { $0?.stop() }
        await releaseSpawnedActors()
        await actors.transport?.close()
        CurtainActorSystem.clearFallback(actors)
        await workers?.shutdown()
        await janitor.stop()
        await shelf.removeAll()
        await memory.removeAll(using: memoryClient)
        MemoryBinding.unbind(memoryClient)
        await memoryClient.close()
        try? await store?.shutdown()
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }
}

/// What kind of worker the environment makes this process, if any.
enum WorkerKind {
    /// AWS Lambda's Runtime API (``LambdaRuntime``).
    case lambda
    /// `CURTAIN_ROLE=worker` (``WorkerRole``).
    case plain
    /// `CURTAIN_ROLE=http-worker` (``HTTPWorkerRole``).
    case http

    init?(_ environment: [String: String]) {
        let role = environment["CURTAIN_ROLE"]
        // On AWS Lambda (its Runtime API in the environment), a worker answers invocations as leases; any
        // other role (`driver`) keeps a driver running there a driver.
        if environment["AWS_LAMBDA_RUNTIME_API"] != nil, role.map({ $0 == "worker" || $0 == "lambda-worker" }) ?? true {
            self = .lambda
        } else if role == "worker" {
            self = .plain
        } else if role == "http-worker" {
            self = .http
        } else {
            return nil
        }
    }
}
