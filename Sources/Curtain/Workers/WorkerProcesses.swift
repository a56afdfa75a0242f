import Foundation
import CurtainRESP
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The worker processes of the `processes` backend: copies of an executable started with
/// `CURTAIN_ROLE=worker`, each holding the read end of a pipe from the driver on its standard input.
///
/// A worker exits as soon as that pipe closes, which happens however the driver ends (even `kill -9`), so
/// workers never outlive their driver.
final class WorkerProcesses: @unchecked Sendable {
    // Mutated only in init and shutdown, which the owning Cloud serializes.
    private var processes: [Process] = []
    private var pipes: [Pipe] = []

    /// Starts `count` workers of `executable` connecting to `storeURL`.
    init(count: Int, executable: String, storeURL: String, buildID: String, logger: Logger) throws {
        let environment = ProcessInfo.processInfo.environment
        for i in 0..<count {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = Array(CommandLine.arguments.dropFirst())
            var env = environment
            env["CURTAIN_ROLE"] = "worker"
            env["CURTAIN_STORE"] = storeURL
            env["CURTAIN_BUILD_ID"] = buildID
            env["CURTAIN_PARENT_PIPE"] = "1"
            env["CURTAIN_WORKER_ID"] = "\(ProcessInfo.processInfo.processIdentifier)-\(i)"
            process.environment = env
            let pipe = Pipe()
            process.standardInput = pipe
            do {
                try process.run()
            } catch {
                throw ConfigurationError(description: "cannot start worker process \(executable): \(error)")
            }
            processes.append(process)
            pipes.append(pipe)
        }
        logger.debug("started worker processes", metadata: ["count": "\(count)", "executable": "\(executable)"])
    }

    /// Closes the workers' pipes (they exit by themselves), then kills any still running after `grace`.
    func shutdown(grace: Duration = .seconds(2)) async {
        for pipe in pipes { try? pipe.fileHandleForWriting.close() }
        let clock = ContinuousClock()
        let deadline = clock.now + grace
        for process in processes {
            while process.isRunning && clock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                while process.isRunning { try? await Task.sleep(for: .milliseconds(5)) }
            }
        }
        processes = []
        pipes = []
    }
}

/// What a process started with `CURTAIN_ROLE=worker` does instead of returning from `Cloud.start`.
enum WorkerRole {
    /// Runs the worker loop until the driver's pipe closes (processes backend) or forever (cluster), then exits.
    static func run(registry: FunctionRegistry, environment: [String: String]) async -> Never {
        var logger = Logger(label: "curtain.worker")
        logger.logLevel = .info
        guard let url = environment["CURTAIN_STORE"] else {
            logger.critical("CURTAIN_ROLE=worker needs CURTAIN_STORE=<redis://…|unix://…>")
            exit(2)
        }
        let buildID = environment["CURTAIN_BUILD_ID"].flatMap { $0.isEmpty ? nil : $0 } ?? BuildID.current()
        let workerID = environment["CURTAIN_WORKER_ID"] ?? "\(ProcessInfo.processInfo.processIdentifier)"
        // Only workers spawned by a driver watch their stdin: one started by hand may have none.
        if environment["CURTAIN_PARENT_PIPE"] == "1" { watchParentPipe() }
        do {
            let client = try RESPClient(url: url)
            let loop = WorkerLoop(client: client, registry: registry, buildID: buildID, workerID: workerID, logger: logger)
            try await loop.run()
            exit(0)
        } catch {
            logger.critical("worker stopped", metadata: ["error": "\(error)"])
            exit(1)
        }
    }

    /// Exits the process when standard input reaches end of file (the driver closed its end or died).
    private static func watchParentPipe() {
        let thread = Thread {
            var byte: UInt8 = 0
            while true {
                let n = read(0, &byte, 1)
                if n == 0 { exit(0) }
                if n < 0 && errno != EINTR { exit(0) }
            }
        }
        thread.start()
    }
}
