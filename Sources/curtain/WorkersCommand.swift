import ArgumentParser
import Curtain
import Logging
import ServiceLifecycle

/// `curtain workers`: keeps workers of one executable running on this host, as many as its queue needs.
struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "Start and stop workers of an executable on this host as its task queue fills and empties.",
        discussion: """
            Workers are EXECUTABLE started with CURTAIN_ROLE=worker and CURTAIN_STORE=<--store>, plus this \
            process's environment (CURTAIN_SECRET and the other settings pass through). With --min 0 they \
            scale to zero after --idle seconds without work. SIGTERM or SIGINT drains every worker and exits.
            Example: curtain workers --store redis://10.0.0.5:6379 --max 8 -- .build/release/my-app
            """
    )

    @Option(name: .long, help: "The store the cluster meets in: redis://…, rediss://… or unix:///path.")
    var store: String

    @Option(name: .long, help: "Workers kept running when there is nothing to do.")
    var min: Int = 0

    @Option(name: .long, help: "Workers never exceeded (default: the number of cores).")
    var max: Int?

    @Option(name: .customLong("tasks-per-worker"), help: "Queued tasks per worker started.")
    var tasksPerWorker: Int = 1

    @Option(name: .long, help: "Seconds without work before workers above --min are stopped.")
    var idle: Double = 30

    @Option(name: .customLong("build-id"), help: "The build id of the executable's tasks (default: computed from the file, as its workers do).")
    var buildID: String?

    @Argument(help: "The executable to start as workers, then its arguments (after --).")
    var command: [String]

    func run() async throws {
        guard let executable = command.first else { throw ValidationError("name the executable to start as workers, after --") }
        guard idle >= 0 else { throw ValidationError("--idle must not be negative") }
        var logger = Logger(label: "curtain.launcher")
        logger.logLevel = .info
        let launcher: WorkerLauncher
        do {
            launcher = try WorkerLauncher(
                executable: executable, arguments: Array(command.dropFirst()), storeURL: store, buildID: buildID,
                policy: ScalingPolicy(
                    minimum: min, maximum: max, tasksPerWorker: tasksPerWorker,
                    idleTimeout: .milliseconds(Int64(idle * 1000))),
                logger: logger)
        } catch {
            throw ValidationError("\(error)")
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [launcher], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
