public import CurtainRESP
import CurtainStore
import Dispatch
public import Foundation
import NIOCore
import NIOPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The two servers every store-facing test runs against: the embedded store and a real `redis-server`.
public enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Curtain's embedded store, started in-process.
    case embedded
    /// A real `redis-server` child process (it must be installed; `Scripts/test.sh` installs it).
    case redis

    /// `embedded` or `redis`, as shown in test names.
    public var description: String { rawValue }
}

/// What went wrong while starting a test server.
public struct TestStoreError: Error, CustomStringConvertible {
    /// What happened.
    public var description: String

    /// Creates an error.
    public init(description: String) { self.description = description }
}

/// A running test server, stopped by ``stop()`` (``withTestStore(_:requirePass:body:)`` does it for you).
public final class TestStore: Sendable {
    /// Which server this is.
    public let kind: StoreKind
    /// The TCP port it listens on.
    public let port: Int
    /// Its Unix socket path, when one was asked for.
    public let unixSocketPath: String?
    /// The password it requires, if any.
    public let password: String?
    private let embedded: StoreServer?
    private let process: Process?
    private let directory: String

    init(
        kind: StoreKind, port: Int, unixSocketPath: String?, password: String?, embedded: StoreServer?,
        process: Process?, directory: String
    ) {
        self.kind = kind
        self.port = port
        self.unixSocketPath = unixSocketPath
        self.password = password
        self.embedded = embedded
        self.process = process
        self.directory = directory
    }

    /// The process id of a `redis-server` store (`nil` for the embedded one), for tests that freeze it.
    public var serverProcessIdentifier: Int32? {
        guard kind == .redis, let text = try? String(contentsOfFile: directory + "/redis.pid", encoding: .utf8) else {
            return nil
        }
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// `redis://[:password@]127.0.0.1:PORT`.
    public var url: String {
        if let password { return "redis://:\(password)@127.0.0.1:\(port)" }
        return "redis://127.0.0.1:\(port)"
    }

    /// A configuration pointing at this server.
    public func configuration(protocolVersion: Int = 2) -> RESPConfiguration {
        var c = RESPConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port))
        c.password = password
        c.protocolVersion = protocolVersion
        // Generous: on a loaded machine (the whole suite shares two cores) a connection and its handshake
        // can take seconds; the product's 5 s default is for a cluster, not a crowded test run.
        c.connectTimeout = .seconds(30)
        return c
    }

    /// A new client for this server.
    public func client(protocolVersion: Int = 2) throws -> RESPClient {
        try RESPClient(configuration: configuration(protocolVersion: protocolVersion))
    }

    /// Stops the server and removes its files.
    public func stop() async {
        if let embedded { try? await embedded.shutdown() }
        if let process {
            // Kill redis-server itself (the watchdog then exits by itself), then make sure of the watchdog.
            let pid = (try? String(contentsOfFile: directory + "/redis.pid", encoding: .utf8))
                .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if let pid { kill(pid, SIGKILL) }
            await terminate(process)
            // kill returns before the server has exited, and on a loaded machine its exit can take a while:
            // until then its port is still bound and its connections still open, so a test that restarts a
            // server on the same port, or expects its clients to see the connection drop, waits for it.
            if let pid { await Self.waitUntilGone(pid) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Waits (up to a minute) until the redis-server of process `pid` has exited: gone from `/proc`, or a
    /// zombie (whose files, sockets included, the kernel has closed).
    static func waitUntilGone(_ pid: Int32) async {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            // Gone, or the number already reused by another program.
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), stat.contains("(redis-server)") else { return }
            // The state follows the command's closing parenthesis: "pid (comm) S ...".
            if let close = stat.lastIndex(of: ")"), stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z") {
                return
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Starts a server of `kind` on a free loopback port.
    public static func start(
        _ kind: StoreKind, requirePass: String? = nil, unixSocket: Bool = false, port fixedPort: Int? = nil,
        extraRedisArguments: [String] = []
    ) async throws -> TestStore {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("curtain-test-\(kind)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let socketPath = unixSocket ? directory + "/store.sock" : nil
        switch kind {
        case .embedded:
            let server = try await StoreServer.start(
                configuration: StoreConfiguration(port: fixedPort ?? 0, unixSocketPath: socketPath, requirePass: requirePass))
            guard let port = server.port else { throw TestStoreError(description: "embedded store bound no TCP port") }
            return TestStore(
                kind: kind, port: port, unixSocketPath: socketPath, password: requirePass, embedded: server,
                process: nil, directory: directory)
        case .redis:
            let executable = try redisServerPath()
            var lastError = ""
            for _ in 0..<5 {
                let port = try fixedPort ?? TestPorts.next()
                var arguments = [
                    "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", directory, "--daemonize", "no", "--loglevel", "warning",
                ]
                if let requirePass { arguments += ["--requirepass", requirePass] }
                if let socketPath { arguments += ["--unixsocket", socketPath, "--unixsocketperm", "700"] }
                arguments += extraRedisArguments
                // A small shell watchdog runs redis-server and takes it down when this test process dies
                // (even by SIGKILL), so no server outlives its tests. Signals are sent as SIGKILL: children
                // spawned from Foundation's Process may inherit a mask that blocks SIGTERM.
                let quoted = ([executable] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
                let parent = ProcessInfo.processInfo.processIdentifier
                let script = """
                    \(quoted.joined(separator: " ")) &
                    child=$!
                    echo $child > '\(directory)/redis.pid'
                    while kill -0 \(parent) 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.2; done
                    kill -9 $child 2>/dev/null
                    wait $child
                    """
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/bin/sh")
                process.arguments = ["-c", script]
                let log = directory + "/redis.log"
                _ = FileManager.default.createFile(atPath: log, contents: nil)
                let handle = FileHandle(forWritingAtPath: log)
                process.standardOutput = handle
                process.standardError = handle
                try process.run()
                let store = TestStore(
                    kind: kind, port: port, unixSocketPath: socketPath, password: requirePass, embedded: nil,
                    process: process, directory: directory)
                if await store.waitUntilReady() { return store }
                lastError = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                await terminate(process)
            }
            try? FileManager.default.removeItem(atPath: directory)
            throw TestStoreError(description: "redis-server did not start: \(lastError)")
        }
    }

    private func waitUntilReady() async -> Bool {
        for _ in 0..<200 {
            if let process, !process.isRunning { return false }
            if let connection = try? await RESPConnection.connect(configuration: configuration()) {
                var ok = (try? await connection.send("PING")) != nil
                // The server answering must be ours: another test's redis-server may have taken the port
                // between TestPorts.next() and our bind (ours then exits, but the watchdog lingers a moment), and
                // two tests sharing a server see each other's keys.
                if ok, kind == .redis {
                    let info = (try? await connection.send("INFO", "server"))?.string ?? ""
                    let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("process_id:") }
                    let pid = line.flatMap { Int32($0.dropFirst("process_id:".count)) }
                    if pid == nil || pid != serverProcessIdentifier {
                        await connection.close()
                        if serverProcessIdentifier != nil { return false }  // the pid is known: someone else's server
                        try? await Task.sleep(for: .milliseconds(25))
                        continue
                    }
                    ok = true
                }
                await connection.close()
                if ok { return true }
            }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return false
    }

    /// The path of `redis-server`; throws (it never skips) when it is missing.
    public static func redisServerPath() throws -> String {
        try executablePath("redis-server")
    }

    /// Finds `name` in `PATH` (and the usual system directories).
    public static func executablePath(_ name: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":") + ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestStoreError(
            description: "\(name) is not installed; run Scripts/test.sh, which installs it (apt-get install redis-server)")
    }
}

/// Ports for test servers that cannot bind port 0 and report back (redis-server, moto_server), or that must
/// come back on the same address. A port the kernel handed out and was given back can be taken by any
/// process's outgoing connection a moment later, so these come from below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`), where the kernel never assigns one, and this process never
/// hands out the same number twice. A server that still loses a race for one (another test run on the
/// machine) fails to bind, and its starter retries with the next.
public enum TestPorts {
    private static let state = Mutex<(next: Int, span: Range<Int>)?>(nil)

    /// The next port of this process's sequence that nothing listens on now.
    public static func next() throws -> Int {
        try state.withLock { state in
            if state == nil {
                let low = ephemeralLow()
                // 10,000 ports below the ephemeral range (never below 1024), each run starting elsewhere.
                let span = max(1024, low - 10_000)..<low
                state = (span.lowerBound + Int(getpid() &* 7919) % span.count, span)
            }
            for _ in 0..<state!.span.count {
                let candidate = state!.next
                state!.next = candidate + 1 < state!.span.upperBound ? candidate + 1 : state!.span.lowerBound
                if canBind(candidate) { return candidate }
            }
            throw TestStoreError(description: "no free TCP port below the ephemeral range \(state!.span)")
        }
    }

    /// The first port of the kernel's ephemeral range (32768 if it cannot be read).
    static func ephemeralLow() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
            let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first,
            let low = Int(first), low > 2048
        else { return 32768 }
        return low
    }

    /// Whether a listener could bind 127.0.0.1:`port` now (probed with a socket that is closed at once).
    static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// Starts `count` copies of `executable` as Curtain workers of the store at `url`, the way a cluster's
/// workers are started by hand (`CURTAIN_ROLE=worker`). Each holds a pipe on its standard input and exits
/// when that closes, so none outlives its starter.
public func startWorkerProcesses(
    _ count: Int, executable: String, arguments: [String] = [], url: String, buildID: String, idPrefix: String,
    environment extra: [String: String] = [:]
) throws -> [Process] {
    try (0..<count).map { i in
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["CURTAIN_ROLE"] = "worker"
        environment["CURTAIN_STORE"] = url
        environment["CURTAIN_BUILD_ID"] = buildID
        environment["CURTAIN_WORKER_ID"] = "\(idPrefix)-\(i)"
        environment["CURTAIN_PARENT_PIPE"] = "1"
        environment.merge(extra) { _, new in new }
        process.environment = environment
        process.standardInput = Pipe()
        try process.run()
        return process
    }
}

/// Runs blocking work (reading a child's output to the end, waiting for a tool) on a Dispatch thread, so
/// that it never holds a thread of the cooperative pool, which has only two here: tests that blocked it
/// stalled every other test's tasks, supervisors and timers included.
public func runBlocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}

/// The first line a child writes to `pipe` (without its newline; what came before the end if it wrote
/// no whole line), read on a thread of its own: a port or an address a server announces.
public func firstLine(of pipe: Pipe) async -> String {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            var text = ""
            while !text.contains("\n") {
                let chunk = pipe.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            continuation.resume(returning: String(text.prefix { $0 != "\n" }))
        }
    }
}

/// Kills `process` (SIGKILL: a child of Foundation's Process may have SIGTERM blocked) and waits for it to exit without blocking a thread of the cooperative pool
/// (`Process.waitUntilExit` can stall there on Linux).
public func terminate(_ process: Process) async {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    await waitForExit(process)
}

/// Waits, polling, until `process` has exited.
public func waitForExit(_ process: Process) async {
    while process.isRunning {
        try? await Task.sleep(for: .milliseconds(5))
    }
}

/// Runs `body` against a fresh server of `kind`, stopping it afterwards whatever happens.
public func withTestStore<T>(
    _ kind: StoreKind, requirePass: String? = nil, unixSocket: Bool = false,
    body: (TestStore) async throws -> T
) async throws -> T {
    let store = try await TestStore.start(kind, requirePass: requirePass, unixSocket: unixSocket)
    do {
        let result = try await body(store)
        await store.stop()
        return result
    } catch {
        await store.stop()
        throw error
    }
}

/// Runs `body` with a client connected to a fresh server of `kind`; closes both afterwards.
public func withTestClient<T>(
    _ kind: StoreKind, protocolVersion: Int = 2, requirePass: String? = nil,
    body: (RESPClient, TestStore) async throws -> T
) async throws -> T {
    try await withTestStore(kind, requirePass: requirePass) { store in
        let client = try store.client(protocolVersion: protocolVersion)
        do {
            let result = try await body(client, store)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }
}

/// Makes a CA (`ca.crt`, `ca.key`) and a server certificate it signed for `localhost` and 127.0.0.1
/// (`server.crt`, `server.key`) in `dir`, with openssl, for redis-server's TLS port in tests. Blocking: call
/// it through ``runBlocking(_:)``.
public func makeTestCertificates(in dir: String) throws {
    let script = """
        set -e
        cd '\(dir)'
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=curtain-test-ca 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext.cnf 2>/dev/null
        chmod 644 server.key
        """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-c", script]
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestStoreError(description: "openssl could not make test certificates (status \(process.terminationStatus))")
    }
}
