import CurtainRESP
import CurtainStore
import Foundation
import Logging

/// The entry point: starts the configured backend and runs remote functions on it.
///
/// ```swift
/// let cloud = try await Cloud.start(functions: [CountHits.self])
/// // ^ in a worker process this never returns: the same binary serves as worker
/// let hits = try await cloud.map(CountHits(samples: 1_000_000), over: 0..<64)
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
    private let client: RESPClient?
    private let store: StoreServer?
    private let workers: WorkerProcesses?
    private let directory: String?

    private init(
        configuration: CloudConfiguration, buildID: String, registry: FunctionRegistry, client: RESPClient?,
        store: StoreServer?, workers: WorkerProcesses?, directory: String?
    ) {
        self.configuration = configuration
        self.buildID = buildID
        self.registry = registry
        self.client = client
        self.store = store
        self.workers = workers
        self.directory = directory
    }

    /// Starts Curtain with the functions this program may run remotely.
    ///
    /// In a process started as a worker (`CURTAIN_ROLE=worker`) this call never returns: it runs the worker
    /// loop and exits.
    ///
    /// - Parameters:
    ///   - functions: every ``RemoteFunction`` type that may run remotely.
    ///   - configuration: where to run; `nil` reads the environment (``CloudConfiguration/fromEnvironment(_:)``).
    /// - Throws: ``RegistryError``, ``ConfigurationError``, or a connection error for the store.
    public static func start(
        functions: [any RemoteFunction.Type], configuration: CloudConfiguration? = nil
    ) async throws -> Cloud {
        let registry = try FunctionRegistry(functions)
        let environment = ProcessInfo.processInfo.environment
        if environment["CURTAIN_ROLE"] == "worker" {
            await WorkerRole.run(registry: registry, environment: environment)
        }
        let configuration = try configuration ?? CloudConfiguration.fromEnvironment(environment)
        guard configuration.workers >= 1 else {
            throw ConfigurationError(description: "workers must be at least 1, not \(configuration.workers)")
        }
        let buildID = configuration.buildID ?? BuildID.current()
        switch configuration.backend {
        case .inprocess:
            return Cloud(
                configuration: configuration, buildID: buildID, registry: registry, client: nil, store: nil,
                workers: nil, directory: nil)
        case .store(let url):
            let client = try RESPClient(url: url)
            try await client.ping()
            return Cloud(
                configuration: configuration, buildID: buildID, registry: registry, client: client, store: nil,
                workers: nil, directory: nil)
        case .processes:
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("curtain-\(ProcessInfo.processInfo.processIdentifier)-\(TaskDispatcher.newJobID().prefix(6))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let socket = directory + "/store.sock"
            var storeLogger = Logger(label: "curtain.store")
            storeLogger.logLevel = .warning
            let store = try await StoreServer.start(
                configuration: StoreConfiguration(host: nil, unixSocketPath: socket, logger: storeLogger))
            do {
                let url = "unix://\(socket)"
                let client = try RESPClient(url: url)
                let workers = try WorkerProcesses(
                    count: configuration.workers,
                    executable: configuration.workerExecutable ?? BuildID.executablePath(),
                    storeURL: url, buildID: buildID, client: client, crashRetries: configuration.crashRetries,
                    logger: Logger(label: "curtain.cloud"))
                await workers.startMonitoring()
                return Cloud(
                    configuration: configuration, buildID: buildID, registry: registry, client: client, store: store,
                    workers: workers, directory: directory)
            } catch {
                try? await store.shutdown()
                try? FileManager.default.removeItem(atPath: directory)
                throw error
            }
        }
    }

    /// Runs `function` on one input remotely and returns its output.
    public func run<F: RemoteFunction>(_ function: F, _ input: F.Input) async throws -> F.Output {
        try await map(function, over: CollectionOfOne(input))[0]
    }

    /// Runs `function` on every input and returns the outputs in input order.
    ///
    /// - Throws: ``InputEncodingError`` before anything runs if an input cannot be encoded;
    ///   ``RemoteTaskError`` for the first task that fails; `CancellationError` if the calling task is
    ///   cancelled (the job's queued tasks then never run).
    public func map<F: RemoteFunction, Inputs: Sequence>(_ function: F, over inputs: Inputs) async throws -> [F.Output]
    where Inputs.Element == F.Input {
        if let client {
            return try await TaskDispatcher(client: client, buildID: buildID).map(function, over: inputs)
        }
        return try await mapInProcess(function, over: inputs)
    }

    /// Runs `body` with a group to which remote tasks of one function type can be added one by one, their
    /// outputs read in completion order (see ``RemoteTaskGroup``). The group's job ends when `body` returns
    /// or throws: tasks that have not run by then never run.
    public func withTaskGroup<F: RemoteFunction, Result>(
        of function: F.Type, body: (RemoteTaskGroup<F>) async throws -> Result
    ) async throws -> Result {
        let group: RemoteTaskGroup<F>
        if let client {
            let connection = try await RESPConnection.connect(configuration: client.configuration)
            group = RemoteTaskGroup(engine: .store(
                client: client, keys: StoreKeys(buildID: buildID), jobID: TaskDispatcher.newJobID(), connection: connection))
        } else {
            let (stream, continuation) = AsyncStream<(Int, Swift.Result<[UInt8], RemoteFailure>)>.makeStream()
            group = RemoteTaskGroup(engine: .local(registry: registry, stream: stream, continuation: continuation))
        }
        do {
            let result = try await body(group)
            await group.finish()
            return result
        } catch {
            await group.finish()
            throw error
        }
    }

    /// The in-process backend: the same encode → registry → decode path as a worker, without the store.
    private func mapInProcess<F: RemoteFunction, Inputs: Sequence>(_ function: F, over inputs: Inputs) async throws
        -> [F.Output] where Inputs.Element == F.Input
    {
        let captures = try PayloadCodec.encode(function)
        let encoded = try PayloadCodec.encodeInputs(inputs, for: F.self)
        let registry = self.registry
        let width = max(1, configuration.workers)
        var outputs = [F.Output?](repeating: nil, count: encoded.count)
        try await withThrowingTaskGroup(of: (Int, Result<[UInt8], RemoteFailure>).self) { group in
            var next = 0
            func addNext() {
                let index = next
                let input = encoded[index]
                group.addTask { (index, await registry.run(F.name, function: captures, input: input)) }
                next += 1
            }
            while next < min(width, encoded.count) { addNext() }
            while let (index, outcome) = try await group.next() {
                switch outcome {
                case .success(let bytes):
                    outputs[index] = try PayloadCodec.decode(F.Output.self, from: bytes)
                case .failure(let failure):
                    group.cancelAll()
                    throw RemoteTaskError(
                        function: F.name, index: UInt64(index), input: Abbreviation.bytes(encoded[index]), failure: failure)
                }
                try Task.checkCancellation()
                if next < encoded.count { addNext() }
            }
        }
        return outputs.map { $0! }
    }

    /// The process ids of the live local worker processes (empty for other backends).
    public var workerProcessIDs: [Int32] {
        get async { await workers?.processIDs ?? [] }
    }

    /// Stops the workers and the embedded store this cloud started, and closes its connections.
    public func shutdown() async {
        await workers?.shutdown()
        await client?.close()
        try? await store?.shutdown()
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }
}
