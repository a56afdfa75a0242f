import ArgumentParser
import Curtain
import CurtainExamples
import CurtainTestSupport
import CurtainRESP
import Foundation

/// `curtain-bench actors`: calls to a distributed actor hosted by a worker process, one at a time and with
/// many in flight, over direct connections and through the store (embedded and redis-server), each beside
/// the floor of its path measured in the same run.
struct ActorsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "actors",
        abstract: "Distributed actor calls per second (driver → actor on a worker): sequential, and many in flight.")

    @Option(help: "Sequential calls per run (three runs; the best counts).")
    var calls: Int = 20_000

    @Option(help: "Calls made with many in flight, per run (three runs; the best counts).")
    var pipelined: Int = 200_000

    @Option(help: "Calls in flight at once for the pipelined figure.")
    var inFlight: Int = 256

    @Option(help: "Stores to measure: embedded, redis or both.")
    var stores: String = "embedded,redis"

    @Option(help: "Paths of the calls to measure: direct, store or both (CURTAIN_ACTOR_PATH).")
    var paths: String = "direct,store"

    @Flag(help: "Encrypt direct connections (CURTAIN_ACTOR_TLS=1; a build with the TLS trait: swift build --traits TLS).")
    var tls = false

    @Flag(help: "Reach the stores over Unix sockets (as the embedded default does) instead of TCP on loopback.")
    var unixSocket = false

    @Flag(help: "Print one JSON object per figure instead of a table.")
    var json = false

    @Option(help: "Use this store (redis://…) instead of starting one; with --worker-namespace, one both sides reach.")
    var store: String?

    @Option(help: "Run the actor's host, and the echo servers of the floors, in this network namespace (ip netns), reached at --worker-address.")
    var workerNamespace: String?

    @Option(help: "The address of --worker-namespace's host, where the echo servers listen.")
    var workerAddress: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        if environment["CURTAIN_ROLE"] == "worker" {
            _ = try await Cloud.start(functions: [], actors: [Counter.self, Feeder.self])
        }
        let echoHost = environment["CURTAIN_BENCH_ECHO_HOST"] ?? "127.0.0.1"
        if environment["CURTAIN_BENCH_ECHO"] == "1" { TCPPingPong.serveEcho(host: echoHost) }
        if environment["CURTAIN_BENCH_ECHO"] == "nio" { NIOPingPong.serveEcho(host: echoHost) }
        guard (workerNamespace == nil) == (workerAddress == nil) else {
            throw ValidationError("--worker-namespace and --worker-address go together")
        }
        if workerNamespace != nil && store == nil {
            throw ValidationError("--worker-namespace needs --store, a store the namespace reaches")
        }
        let peer = BenchPeer(namespace: workerNamespace, host: workerAddress ?? "127.0.0.1")
        let chosen = paths.split(separator: ",").map { String($0) }
        let pathList = try chosen.map { name -> ActorPath in
            guard let path = ActorPath(rawValue: name), path != .auto else { throw ValidationError("--paths takes direct and store, not '\(name)'") }
            return path
        }
        var figures: [Figure] = []
        if let store {
            for path in pathList { figures += try await measure(url: store, label: "given store", peer: peer, path: path) }
            printTable(figures, json: json)
            return
        }
        let kinds = stores.split(separator: ",").compactMap { StoreKind(rawValue: String($0)) }
        for kind in kinds {
            let store = try await TestStore.start(kind, unixSocket: unixSocket)
            do {
                // A direct call does not touch the store: measured once, with the first store for discovery.
                for path in pathList where path == .store || kind == kinds.first {
                    let url = store.unixSocketPath.map { "unix://" + $0 } ?? store.url
                    let label = store.kind.rawValue + (store.unixSocketPath == nil ? "" : ", unix")
                    figures += try await measure(url: url, label: label, peer: peer, path: path)
                }
            } catch {
                await store.stop()
                throw error
            }
            await store.stop()
        }
        printTable(figures, json: json)
    }

    private func measure(url: String, label storeLabel: String, peer: BenchPeer, path: ActorPath) async throws -> [Figure] {
        var configuration = CloudConfiguration(backend: .store(url: url), buildID: "actors-\(getpid())")
        configuration.actorPath = path
        configuration.actorTLS = tls
        let cloud = try await Cloud.start(functions: [], actors: [Counter.self, Feeder.self], configuration: configuration)
        let workers = try startWorkerProcesses(
            1, executable: peer.executable, arguments: peer.arguments(Array(CommandLine.arguments.dropFirst())), url: url,
            buildID: cloud.buildID, idPrefix: "bench", environment: ["CURTAIN_ACTOR_PATH": path.rawValue, "CURTAIN_ACTOR_TLS": tls ? "1" : "0"])
        defer { for worker in workers { kill(worker.processIdentifier, SIGKILL) } }
        let label = (path == .direct ? (tls ? "direct, TLS" : "direct") : "through " + storeLabel)
            + (workerNamespace.map { ", host in \($0)" } ?? "")
        let counter = try await cloud.spawn(Counter.self)
        for _ in 0..<1_000 { _ = try await counter.add(1) }  // warm: connections, the worker's first calls

        var sequential = 0.0
        var unrecorded = 0.0
        var affine = 0.0
        var concurrent = 0.0
        var floor = 0.0
        var nioFloor = 0.0
        var nioCPU = Double.infinity
        // CPU time per sequential call in each process (user + system, from /proc): where the time of a
        // call goes when both sides are busy for all of it.
        var callerCPU = Double.infinity
        var hostCPU = Double.infinity
        for _ in 0..<3 {
            let before = (Self.cpuSeconds(getpid()), Self.cpuSeconds(workers[0].processIdentifier))
            let seconds = try await timed { for _ in 0..<calls { _ = try await counter.add(1) } }
            let after = (Self.cpuSeconds(getpid()), Self.cpuSeconds(workers[0].processIdentifier))
            callerCPU = min(callerCPU, (after.0 - before.0) / Double(calls) * 1e6)
            hostCPU = min(hostCPU, (after.1 - before.1) / Double(calls) * 1e6)
            floor = max(floor, path == .direct ? try await TCPPingPong.measure(count: calls, peer: peer) : try await pingPong(url: url, count: calls))
            sequential = max(sequential, Double(calls) / seconds)
            // What the driver's call records cost: the same calls with recording off, right after.
            TaskRecorder.shared.isEnabled = false
            let unrecordedSeconds = try await timed { for _ in 0..<calls { _ = try await counter.add(1) } }
            TaskRecorder.shared.isEnabled = true
            unrecorded = max(unrecorded, Double(calls) / unrecordedSeconds)
            if path == .direct {
                let nio = try await NIOPingPong.measure(count: calls, peer: peer)
                nioFloor = max(nioFloor, nio.rate)
                nioCPU = min(nioCPU, nio.cpuPerExchange.client + nio.cpuPerExchange.server)
            }
            if path == .direct {
                let onLoop = try await timed {
                    try await cloud.actors.withAffinity(to: counter) { for _ in 0..<calls { _ = try await counter.add(1) } }
                }
                affine = max(affine, Double(calls) / onLoop)
            }
            let total = pipelined
            let window = inFlight
            let pipelinedSeconds = try await timed {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    var started = 0
                    while started < min(window, total) {
                        group.addTask { try await counter.add(1) }
                        started += 1
                    }
                    while try await group.next() != nil {
                        if started < total {
                            group.addTask { try await counter.add(1) }
                            started += 1
                        }
                    }
                }
            }
            concurrent = max(concurrent, Double(total) / pipelinedSeconds)
        }
        let expected = 1_000 + 3 * (2 * calls + pipelined) + (path == .direct ? 3 * calls : 0)
        guard try await counter.add(0) == expected else { throw ValidationError("the counter lost calls") }
        // Placement: a feeder sends 200 calls of 8,000 Doubles (64 KB) to the counter, from this process
        // (apart) or from the counter's own (spawned near it); the bytes are what crossed loopback meanwhile.
        var placement: [Figure] = []
        // (On this host only: /proc/net/dev counts loopback, which a namespace's traffic does not cross.)
        if path == .direct && workerNamespace == nil {
            let values = [Double](repeating: 1, count: 8_000)
            let apart = Feeder(actorSystem: cloud.actors)
            let near = try await cloud.spawn(Feeder.self, near: counter)
            var moved: [Double] = []
            for feeder in [apart, near] {
                let before = Self.loopbackBytes()
                _ = try await feeder.feed(counter, values: values, times: 200)
                moved.append(Double(Self.loopbackBytes() - before) / 1_048_576)
            }
            placement = [
                Figure(name: "bytes moved, 200 calls of 64 KB, feeder apart", value: moved[0], unit: "MB", target: nil),
                Figure(name: "bytes moved, the same, feeder spawned near", value: moved[1], unit: "MB", target: nil),
            ]
        }
        for worker in workers { await terminate(worker) }
        await cloud.shutdown()
        return [
            Figure(
                name: "actor calls, sequential 1:1 (\(label))", value: sequential, unit: "calls/s",
                baseline: floor,
                baselineName: path == .direct
                    ? "bare TCP ping-pong between two processes, 64-byte messages"
                    : "store ping-pong: RPUSH/BLPOP there and back, one process",
                target: path == .direct ? 0.8 : nil, minimum: 15_000),
            Figure(
                name: "actor calls, sequential, with call records (best of 3)", value: sequential, unit: "calls/s",
                baseline: unrecorded, baselineName: "records off", target: 0.97),
        ] + (path == .direct ? [
            Figure(
                name: "actor calls, sequential 1:1, caller on the connection's loop", value: affine, unit: "calls/s",
                baseline: floor, baselineName: "bare TCP ping-pong between two processes, 64-byte messages", target: 0.8,
                minimum: 15_000),
            Figure(name: "CPU per sequential call, caller process (user + system)", value: callerCPU, unit: "µs", target: nil),
            Figure(name: "CPU per sequential call, host process (user + system)", value: hostCPU, unit: "µs", target: nil),
            Figure(
                name: "for comparison: NIO ping-pong, the same exchange (an event loop's floor)", value: nioFloor,
                unit: "exchanges/s", baseline: floor,
                baselineName: "bare TCP ping-pong between two processes, 64-byte messages", target: nil),
            Figure(name: "for comparison: CPU per NIO exchange, both processes (user + system)", value: nioCPU, unit: "µs", target: nil),
        ] : []) + [
            Figure(name: "actor calls, \(inFlight) in flight (\(label))", value: concurrent, unit: "calls/s", target: nil, minimum: 100_000),
        ] + placement
    }

    /// The CPU time (user + system) a process has used so far, in seconds (`/proc/<pid>/stat`).
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let fields = text.split(separator: ")").last?.split(separator: " "), fields.count > 12
        else { return 0 }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / ticks
    }

    /// Bytes received on the loopback interface so far (`/proc/net/dev`), counting every process's traffic.
    static func loopbackBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/net/dev", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.trimmingCharacters(in: .whitespaces).hasPrefix("lo:") {
            let fields = line.split(separator: ":", maxSplits: 1)[1].split(separator: " ")
            return Int(fields.first ?? "") ?? 0
        }
        return 0
    }

    /// The floor of any call carried by the store: one connection pushes to a list another waits on, which
    /// pushes back to a list the first waits on (the four legs of a call), in one process; exchanges/s.
    private func pingPong(url: String, count: Int) async throws -> Double {
        let client = try RESPClient(url: url)
        defer { Task { await client.close() } }
        let echo = Task {
            try await client.withDedicatedConnection { connection in
                for _ in 0..<count {
                    let request = try await connection.send(RESPCommand("BLPOP", "bench:ping", 5))
                    guard let bytes = request.array?.last?.buffer else { throw ValidationError("ping-pong timed out") }
                    _ = try await connection.send(RESPCommand("RPUSH", "bench:pong", bytes))
                }
            }
        }
        let seconds = try await timed {
            try await client.withDedicatedConnection { connection in
                for _ in 0..<count {
                    _ = try await connection.send(RESPCommand("RPUSH", "bench:ping", "ping"))
                    _ = try await connection.send(RESPCommand("BLPOP", "bench:pong", 5))
                }
            }
        }
        try await echo.value
        return Double(count) / seconds
    }
}

/// The floor of a call over a direct connection: two processes exchanging 64-byte messages over one TCP
/// connection on loopback, with blocking sockets and no Curtain (or NIO) code on either side.
enum TCPPingPong {
    static let size = 64

    /// Exchanges/s: starts `curtain-bench actors` again as an echo server (`CURTAIN_BENCH_ECHO=1`), which
    /// prints its port, and bounces `count` messages off it.
    static func measure(count: Int, peer: BenchPeer) async throws -> Double {
        let (process, port) = try await peer.startEcho("1")
        defer { kill(process.processIdentifier, SIGKILL) }
        return try await runBlocking { try exchange(host: peer.host, port: UInt16(port), count: count) }
    }

    private static func exchange(host: String, port: UInt16, count: Int) throws -> Double {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr(host)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw ValidationError("cannot connect to the echo server: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var message = [UInt8](repeating: 7, count: size)
        let start = ContinuousClock.now
        for _ in 0..<count {
            guard write(fd, message, size) == size, readFully(fd, &message) else { throw ValidationError("the echo server went away") }
        }
        let elapsed = ContinuousClock.now - start
        return Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }

    private static func readFully(_ fd: Int32, _ buffer: inout [UInt8]) -> Bool {
        var got = 0
        while got < buffer.count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) }
            if n <= 0 { return false }
            got += n
        }
        return true
    }

    /// The echo side: listens on a port of `host`, prints it, echoes one connection's messages, exits.
    static func serveEcho(host: String) -> Never {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr(host)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        listen(listener, 1)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let line = Array("\(UInt16(bigEndian: address.sin_port))\n".utf8)
        _ = write(1, line, line.count)
        let fd = accept(listener, nil, nil)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var message = [UInt8](repeating: 0, count: size)
        while readFully(fd, &message) {
            guard write(fd, message, size) == size else { break }
        }
        exit(0)
    }
}

/// Where the processes on the far side of a measurement run: on this host, or in a network namespace
/// (`ip netns exec`), reached at `host`.
struct BenchPeer {
    let namespace: String?
    let host: String

    /// This program, or `ip` (which then runs this program by its real path, since `/proc/self/exe` would
    /// name `ip` once exec'd through it).
    var executable: String {
        guard namespace != nil else { return "/proc/self/exe" }
        return ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "ip"
    }

    /// Starts this program there as an echo server of `kind` (`CURTAIN_BENCH_ECHO`: `1` blocking, `nio`),
    /// listening on `host`, and returns it with the port it printed.
    func startEcho(_ kind: String) async throws -> (process: Process, port: Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments(["actors"])
        process.environment = ["CURTAIN_BENCH_ECHO": kind, "CURTAIN_BENCH_ECHO_HOST": host]
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = Pipe()
        try process.run()
        let line = try await runBlocking { () -> String in
            var bytes: [UInt8] = []
            while let byte = try output.fileHandleForReading.read(upToCount: 1)?.first, byte != UInt8(ascii: "\n") { bytes.append(byte) }
            return String(decoding: bytes, as: UTF8.self)
        }
        guard let port = Int(line), (1...65535).contains(port) else {
            kill(process.processIdentifier, SIGKILL)
            throw ValidationError("the echo server (\(kind)) printed '\(line)', not a port")
        }
        return (process, port)
    }

    /// The arguments that run this program with `arguments` there.
    func arguments(_ arguments: [String]) -> [String] {
        guard let namespace else { return arguments }
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return ["netns", "exec", namespace, path] + arguments
    }
}
