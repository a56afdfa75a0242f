#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
internal import Synchronization
#if canImport(FoundationEssentials)
internal import FoundationEssentials
#else
internal import Foundation
#endif

extension Cloud {
    /// The cloud a `@Remote` call below this point runs on: the one bound to the current task
    /// (``withAmbient(_:)``), else the one ``start()`` made the program's, else none (calls run locally).
    public static var ambient: Cloud? { current ?? programCloud.withLock { $0 } }

    /// The cloud bound to the current task and its child tasks by ``withAmbient(_:)``.
    @TaskLocal public static var current: Cloud?

    /// The cloud ``start()`` started for the whole program, until its ``shutdown()``.
    private static let programCloud = Mutex<Cloud?>(nil)

    /// Starts the program's cloud with every `@Remote` function and spawnable actor linked into the
    /// executable, configured from the environment (``CloudConfiguration/fromEnvironment(_:)``), and makes it
    /// the ambient cloud: from here on a `@Remote` call anywhere in the program runs on its workers.
    ///
    /// In a process started as a worker (`CURTAIN_ROLE=worker`) this call never returns: it runs the worker
    /// loop. Nothing has to be shut down at the end: the workers and the embedded store end with the program
    /// (``shutdown()`` ends them earlier, and the program's calls then run locally again).
    ///
    /// A cloud that cannot start (an unreachable store, an invalid `CURTAIN_*` setting, two registered
    /// functions with one name) ends the program with the reason on standard error and exit status 1, so that
    /// the one line a port adds does not make `main` throw. To handle that error instead, use
    /// ``start(configuration:)``.
    @discardableResult
    public static func start() async -> Cloud {
        do {
            return try await start(configuration: nil, ambient: true)
        } catch {
            StandardError.write("curtain: cannot start the cloud: \(error)\n")
            exit(1)
        }
    }

    /// Starts a cloud with every `@Remote` function and spawnable actor linked into the executable, and makes
    /// it the program's ambient cloud (see ``start()``), throwing what stops it from starting.
    ///
    /// - Parameter configuration: where to run; `nil` reads the environment.
    /// - Throws: ``RegistryError``, ``ConfigurationError``, or a connection error for the store.
    @discardableResult
    public static func start(configuration: CloudConfiguration?) async throws -> Cloud {
        try await start(configuration: configuration, ambient: true)
    }

    private static func start(configuration: CloudConfiguration?, ambient: Bool) async throws -> Cloud {
        let cloud = try await start(functions: RemoteRecords.functions, actors: RemoteRecords.actors, configuration: configuration)
        programCloud.withLock { if $0 == nil { $0 = cloud } }
        // A program that ends without shutting down: its workers see their pipe close and end, the embedded
        // store ends with the process, and its socket's directory goes at exit.
        if let directory = cloud.directory { removeAtExit(directory) }
        return cloud
    }

    /// Directories to remove when the program exits.
    private static let leftovers = Mutex<[String]?>(nil)

    private static func removeAtExit(_ directory: String) {
        let first = leftovers.withLock { list in
            defer { list = (list ?? []) + [directory] }
            return list == nil
        }
        guard first else { return }
        atexit {
            for directory in Cloud.leftovers.withLock({ $0 ?? [] }) { try? FileManager.default.removeItem(atPath: directory) }
        }
    }

    /// Runs `body` with this cloud as the ambient one for the current task and every task it creates, so
    /// that `@Remote` calls below it run here (for example two clouds in one test process).
    public func withAmbient<Result>(_ body: () async throws -> Result) async rethrows -> Result {
        try await Cloud.$current.withValue(self) { try await body() }
    }

    /// Forgets this cloud as the program's ambient one (at its shutdown).
    func resignAmbient() {
        Cloud.programCloud.withLock { if $0 === self { $0 = nil } }
        if let directory { Cloud.leftovers.withLock { $0?.removeAll { $0 == directory } } }
    }
}
