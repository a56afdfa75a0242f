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

/// Why a child process could not be started.
struct SpawnError: Error, CustomStringConvertible {
    var description: String
}

/// A child process started with `posix_spawn`, its standard input the read end of a pipe whose write end
/// only this driver holds (close-on-exec, so no other child inherits it). Closing that end, or the driver
/// dying in any way, gives the child end-of-file on standard input: its cue to exit.
///
/// Built on `posix_spawn` rather than Foundation's `Process` (which keeps libFoundation and ICU resident in
/// every worker and leaves children with signals blocked) or swift-subprocess (whose run-until-exit API does
/// not fit a supervisor that polls and replaces long-lived children).
final class ChildProcess {
    /// How a child ended.
    enum Termination: Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        var description: String {
            switch self {
            case .exited(let status): "exited with status \(status)"
            case .signalled(let signal): "was killed by signal \(signal)"
            }
        }
    }

    let processIdentifier: pid_t
    private var stdinWriter: Int32
    private(set) var termination: Termination?

    /// Starts `executable` with `arguments` (not including argv[0]) and exactly `environment`.
    init(executable: String, arguments: [String], environment: [String: String]) throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw SpawnError(description: "cannot create a pipe for \(executable): \(String(cString: strerror(errno)))")
        }
        let (reader, writer) = (fds[0], fds[1])
        _ = fcntl(reader, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writer, F_SETFD, FD_CLOEXEC)
        defer { close(reader) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, reader, 0)  // dup2 clears close-on-exec on fd 0
        // Nothing else of this process's crosses into the child. SwiftNIO opens its sockets without
        // close-on-exec, so every worker used to hold copies of its driver's connections and listeners:
        // a connection the driver closed stayed open at the store while any worker lived, and a blocking
        // wait on it went on taking elements for a reader who was gone.
        let spawnFlags = Self.closeInheritedDescriptors(&actions)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)  // nothing blocked in the child
        posix_spawnattr_setsigdefault(&attributes, &allSignals)  // every handler back to its default
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) | spawnFlags)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard status == 0 else {
            close(writer)
            throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(status)))")
        }
        processIdentifier = pid
        stdinWriter = writer
    }

    /// Arranges for the child to get no descriptor of this process but its standard streams (and what
    /// `actions` gives it): glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later; looked up
    /// at run time, as Swift's Glibc module does not declare it), else every open descriptor above 2 marked
    /// close-on-exec (one opened by another thread in the meantime may still cross). Returns the spawn
    /// flags to add (on Darwin, `POSIX_SPAWN_CLOEXEC_DEFAULT`).
    static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) -> Int16 {
        #if os(Linux)
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
            let addCloseFrom = unsafeBitCast(symbol, to: AddCloseFrom.self)
            if addCloseFrom(&actions, 3) == 0 { return 0 }
        }
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        let own = dirfd(directory)
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let fd = Int32(name), fd > 2, fd != own else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
        return 0
        #else
        return Int16(POSIX_SPAWN_CLOEXEC_DEFAULT)
        #endif
    }

    /// Whether the child still runs; reaps it (recording its ``termination``) once it has ended.
    var isRunning: Bool {
        if termination != nil { return false }
        var status: Int32 = 0
        let result = waitpid(processIdentifier, &status, WNOHANG)
        if result == 0 { return true }
        if result == processIdentifier {
            let signal = status & 0x7f
            termination = signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
        } else {
            termination = .exited(-1)  // not our child any more (reaped elsewhere)
        }
        closeInput()
        return false
    }

    /// Closes the child's standard input (it exits on end-of-file).
    func closeInput() {
        if stdinWriter >= 0 {
            close(stdinWriter)
            stdinWriter = -1
        }
    }

    /// Sends `signal` to the child if it has not been reaped.
    func send(_ signal: Int32) {
        if termination == nil { kill(processIdentifier, signal) }
    }

    deinit { closeInput() }

    /// The environment of a worker process started by this one (a supervisor or a launcher): this
    /// process's environment plus `settings`, then the worker role on the store at `storeURL` for
    /// `buildID` under the id `id`, watching its standard input (it exits when its starter's end closes).
    static func workerEnvironment(id: String, storeURL: String, buildID: String, settings: [String: String]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment.merge(settings) { _, new in new }
        environment["CURTAIN_ROLE"] = "worker"
        environment["CURTAIN_STORE"] = storeURL
        environment["CURTAIN_BUILD_ID"] = buildID
        environment["CURTAIN_WORKER_ID"] = id
        environment["CURTAIN_PARENT_PIPE"] = "1"
        return environment
    }
}
