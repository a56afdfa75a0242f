public import CurtainRESP
import NIOCore

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

/// What a shared store says about the Curtain cluster meeting in it: workers, queues, running jobs and
/// tasks given up on, of every build. `curtain status --store URL` prints it.
public struct ClusterStatus: Sendable, Codable, Hashable {
    /// A worker with a live heartbeat.
    public struct Worker: Sendable, Codable, Hashable {
        /// The worker's id (`CURTAIN_WORKER_ID`, or `<host>-<pid>`).
        public var id: String
        /// The host it runs on.
        public var host: String
        /// Its process id on that host.
        public var pid: Int
        /// The build id of its executable.
        public var build: String
        /// Tasks it has answered since it started.
        public var tasksDone: Int
        /// Its last heartbeat, in Unix milliseconds.
        public var lastBeat: Int
        /// Tasks it holds right now.
        public var inFlight: Int
        /// Its resident memory at its last heartbeat, in bytes (`nil` from workers that do not say).
        public var rssBytes: Int?
    }

    /// The task queue of one build.
    public struct Queue: Sendable, Codable, Hashable {
        /// The build whose tasks wait here.
        public var build: String
        /// The store key (what an autoscaler watches, e.g. KEDA's `listName`).
        public var key: String
        /// Tasks waiting in the shared queue.
        public var depth: Int
        /// Tasks waiting on workers' own queues (placed near the shared values they need).
        public var placed: Int
    }

    /// A job whose driver is running it.
    public struct Job: Sendable, Codable, Hashable {
        /// The job id.
        public var id: String
        /// The build of its driver.
        public var build: String
        /// The remote function's name.
        public var function: String
        /// The driver (`<host>-<pid>`).
        public var driver: String
        /// Tasks submitted so far.
        public var submitted: Int
        /// Tasks answered successfully.
        public var completed: Int
        /// Tasks failed for good.
        public var failed: Int
        /// Extra attempts (retries of failures and crashes).
        public var retries: Int
        /// Second answers dropped.
        public var duplicates: Int
        /// When the job started, in Unix milliseconds.
        public var started: Int
    }

    /// A task given up on after crashing every worker it met.
    public struct DeadLetter: Sendable, Codable, Hashable {
        /// The build it belonged to.
        public var build: String
        /// Its job.
        public var job: String
        /// Its index in the job.
        public var index: UInt64
        /// The function.
        public var function: String
        /// How many times it was run.
        public var attempts: Int
        /// The worker that held it last.
        public var worker: String
        /// Why it was given up on.
        public var reason: String
        /// When, in Unix milliseconds.
        public var at: Int
    }

    /// Live workers, by build then id.
    public var workers: [Worker]
    /// Queues of every build that has one, by build.
    public var queues: [Queue]
    /// Running jobs, oldest first.
    public var jobs: [Job]
    /// The latest tasks given up on (up to `deadLetterLimit` per build), newest last.
    public var deadLetters: [DeadLetter]

    /// Reads the status from the store `client` talks to.
    ///
    /// - Throws: a ``RESPError`` if the store cannot be read.
    public static func read(from client: RESPClient, deadLetterLimit: Int = 20) async throws -> ClusterStatus {
        var workers: [Worker] = []
        let workerKeys = try await client.allKeys(matching: "curtain:{*}:worker:*")
        if !workerKeys.isEmpty {
            var commands: [RESPCommand] = []
            for key in workerKeys {
                commands.append(RESPCommand("HMGET", key, "host", "pid", "build", "tasks", "beat", "rss"))
                if let (build, id) = parse(key, kind: "worker") {
                    commands.append(RESPCommand("LLEN", StoreKeys(buildID: build).inflight(worker: id)))
                } else {
                    commands.append(RESPCommand("PING"))
                }
            }
            let replies = try await client.pipeline(commands)
            for (n, key) in workerKeys.enumerated() {
                guard let (build, id) = parse(key, kind: "worker"), let fields = replies[2 * n].array, fields.count == 6,
                    fields[0].string != nil
                else { continue }  // expired between SCAN and HMGET
                workers.append(Worker(
                    id: id, host: fields[0].string ?? "?", pid: Int(fields[1].string ?? "") ?? 0,
                    build: fields[2].string ?? build, tasksDone: Int(fields[3].string ?? "") ?? 0,
                    lastBeat: Int(fields[4].string ?? "") ?? 0, inFlight: replies[2 * n + 1].int ?? 0,
                    rssBytes: fields[5].string.flatMap { Int($0) }))
            }
        }
        workers.sort { ($0.build, $0.id) < ($1.build, $1.id) }

        var queues: [Queue] = []
        let queueKeys = try await client.allKeys(matching: "curtain:{*}:queue")
        if !queueKeys.isEmpty {
            let depths = try await client.pipeline(queueKeys.map { RESPCommand("LLEN", $0) })
            for (key, depth) in zip(queueKeys, depths) {
                guard let build = build(of: key) else { continue }
                queues.append(Queue(build: build, key: key, depth: depth.int ?? 0, placed: 0))
            }
        }
        // Builds whose workers are up but whose queue is empty (an empty list does not exist) show too.
        for build in Set(workers.map(\.build)) where !queues.contains(where: { $0.build == build }) {
            queues.append(Queue(build: build, key: StoreKeys(buildID: build).queue, depth: 0, placed: 0))
        }
        for index in queues.indices {
            let keys = StoreKeys(buildID: queues[index].build)
            let owners = (try await client.send(RESPCommand("SMEMBERS", keys.placed)).array ?? []).compactMap(\.string)
            guard !owners.isEmpty else { continue }
            let lengths = try await client.pipeline(owners.map { RESPCommand("LLEN", keys.ownQueue(worker: $0)) })
            queues[index].placed = lengths.reduce(0) { $0 + ($1.int ?? 0) }
        }
        queues.sort { $0.build < $1.build }

        var jobs: [Job] = []
        let jobKeys = try await client.allKeys(matching: "curtain:{*}:job:*")
        if !jobKeys.isEmpty {
            let replies = try await client.pipeline(jobKeys.map { RESPCommand("HGETALL", $0) })
            for (key, reply) in zip(jobKeys, replies) {
                guard let (build, id) = parse(key, kind: "job") else { continue }
                let flat = reply.array ?? []
                var fields: [String: String] = [:]
                for i in stride(from: 0, to: flat.count - 1, by: 2) {
                    if let name = flat[i].string { fields[name] = flat[i + 1].string }
                }
                guard !fields.isEmpty else { continue }
                func number(_ name: String) -> Int { Int(fields[name] ?? "") ?? 0 }
                jobs.append(Job(
                    id: id, build: build, function: fields["function"] ?? "?", driver: fields["driver"] ?? "?",
                    submitted: number("submitted"), completed: number("completed"), failed: number("failed"),
                    retries: number("retries"), duplicates: number("duplicates"), started: number("started")))
            }
        }
        jobs.sort { ($0.started, $0.id) < ($1.started, $1.id) }

        var letters: [DeadLetter] = []
        let deadKeys = try await client.allKeys(matching: "curtain:{*}:dead")
        for key in deadKeys.sorted() {
            guard let build = build(of: key) else { continue }
            let entries = try await client.send(RESPCommand("LRANGE", key, -max(1, deadLetterLimit), -1)).array ?? []
            for entry in entries {
                guard let bytes = entry.buffer.map({ Array($0.readableBytesView) }),
                    let letter = try? PayloadCodec.decode(Curtain.DeadLetter.self, from: bytes)
                else { continue }
                letters.append(DeadLetter(
                    build: build, job: letter.job, index: letter.index, function: letter.function, attempts: letter.attempts,
                    worker: letter.worker, reason: letter.reason, at: letter.at))
            }
        }
        return ClusterStatus(workers: workers, queues: queues, jobs: jobs, deadLetters: letters)
    }

    /// The build id in a key `curtain:{B}:…`.
    static func build(of key: String) -> String? {
        guard key.hasPrefix("curtain:{"), let close = key.firstRange(of: "}:") else { return nil }
        return String(key[key.index(key.startIndex, offsetBy: 9)..<close.lowerBound])
    }

    /// The build and the name in a key `curtain:{B}:<kind>:<name>`.
    static func parse(_ key: String, kind: String) -> (build: String, name: String)? {
        guard let build = build(of: key) else { return nil }
        let prefix = "curtain:{\(build)}:\(kind):"
        guard key.hasPrefix(prefix) else { return nil }
        return (build, String(key.dropFirst(prefix.count)))
    }
}

/// Which workers are alive, by build: a driver that waits in vain uses it to say why.
struct WorkerCensus: Sendable {
    /// Live workers per build, with their hosts.
    var hostsByBuild: [String: [String]]

    static func take(client: RESPClient) async throws -> WorkerCensus {
        let status = try await ClusterStatus.read(from: client, deadLetterLimit: 1)
        var hosts: [String: [String]] = [:]
        for worker in status.workers { hosts[worker.build, default: []].append(worker.host) }
        return WorkerCensus(hostsByBuild: hosts)
    }

    /// What is wrong for a job of `build`, if anything: no worker of that build, but workers of others, or
    /// none at all.
    func complaint(for build: String) -> String? {
        guard hostsByBuild[build, default: []].isEmpty else { return nil }
        let others = hostsByBuild.filter { !$0.value.isEmpty }
        guard !others.isEmpty else {
            return "no worker is connected to the store: start workers with CURTAIN_ROLE=worker CURTAIN_STORE=<this store's URL>"
        }
        let list = others.sorted { $0.key < $1.key }.map { build, hosts in
            "\(hosts.count) of build \(build) (on \(Set(hosts).sorted().joined(separator: ", ")))"
        }.joined(separator: "; ")
        return "no worker of this build (\(build)) is connected, only workers built from other code, which never take its tasks: "
            + list + ". Start workers from the same executable as this driver."
    }
}

/// A running job's record in the store, `curtain:{B}:job:<id>`, for `curtain status` (and, for a named job,
/// for a driver that reattaches): refreshed about once a second; deleted when the job ends. It expires 15 s
/// after its driver's last refresh, so a driver that died leaves it only briefly, except for a named job
/// (``JobOptions/id``), whose record waits a day for its driver to come back.
struct JobRecord: Sendable {
    let key: String
    let function: String
    let driver: String
    let started: Int
    let durable: Bool

    init(key: String, function: String, durable: Bool = false) {
        self.key = key
        self.function = function
        self.durable = durable
        self.driver = "\(WorkerHeartbeat.hostName())-\(getpid())"
        self.started = Int(time(nil)) * 1000
    }

    var expiry: RESPCommand { RESPCommand("PEXPIRE", key, durable ? 24 * 3600 * 1000 : 15_000) }

    /// The statistics (`submitted` only ever counts tasks whose submission completed).
    func commands(_ statistics: JobStatistics, submitted: Int) -> [RESPCommand] {
        [
            RESPCommand(
                "HSET", key, "function", function, "driver", driver, "started", started, "submitted", submitted,
                "completed", statistics.completed, "failed", statistics.failed, "retries", statistics.retries,
                "duplicates", statistics.duplicates),
            expiry,
        ]
    }

    /// How many tasks have been submitted (written in the same transaction as the pushes).
    func commands(submitted: Int) -> [RESPCommand] {
        [RESPCommand("HSET", key, "function", function, "driver", driver, "submitted", submitted), expiry]
    }
}

extension RESPClient {
    /// Every key matching `pattern` (one full pass of `SCAN`).
    ///
    /// - Throws: a ``RESPError`` if the store cannot be read.
    func allKeys(matching pattern: String) async throws -> [String] {
        var keys: [String] = []
        var cursor = "0"
        repeat {
            let reply = try await send(RESPCommand("SCAN", cursor, "MATCH", pattern, "COUNT", 1000))
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                throw RESPError.protocolViolation("unexpected reply to SCAN: \(reply)")
            }
            keys += (parts[1].array ?? []).compactMap(\.string)
            cursor = next
        } while cursor != "0"
        return Array(Set(keys)).sorted()
    }
}
