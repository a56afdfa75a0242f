import CurtainRESP
public import Distributed
import Synchronization

/// The actors a cloud spawned: where each lives and how it may be restarted.
final class SpawnedActors: Sendable {
    struct Entry: Sendable {
        var typeName: String
        var host: String
        var restartsLeft: Int
        var retryCalls: Bool
    }

    let entries = Mutex<[String: Entry]>([:])
    /// Spawns this cloud placed per node (a lower bound on their load until heartbeats report it).
    let placed = Mutex<[String: Int]>([:])
    let monitor = Mutex<Task<Void, Never>?>(nil)
}

extension Cloud {
    static func driverActorSystem(
        client: RESPClient, buildID: String, registry: ActorRegistry, configuration: CloudConfiguration
    ) async throws -> CurtainActorSystem {
        let node = "driver-\(TaskDispatcher.newJobID().prefix(12))"
        let transport = ActorTransport(
            client: client, buildID: buildID, node: node, heartbeatTTL: configuration.heartbeatTTL,
            sealer: configuration.secret.map(Sealer.init(secret:)), path: configuration.actorPath,
            advertise: configuration.advertise, maxPayload: configuration.maxPayloadBytes, encrypt: configuration.actorTLS)
        let system = CurtainActorSystem(node: node, registry: registry, transport: transport)
        try await transport.startHosting(advertise: false)
        CurtainActorSystem.makeFallback(system)
        return system
    }

    /// Creates an actor of a registered type on a worker and returns a reference to it, used like any
    /// distributed actor (`try await tally.add(1)`).
    ///
    /// The actor lives until ``release(_:)`` or until this cloud shuts down. On the in-process backend it
    /// lives in this process.
    ///
    /// - Parameters:
    ///   - type: a type passed to `Cloud.start(functions:actors:)`.
    ///   - worker: the worker to host it (one of ``actorHosts()``); `nil` picks the one hosting fewest.
    ///   - restart: what to do if its worker dies (see ``RestartPolicy``).
    /// - Throws: ``ActorCallError``: ``ActorCallError/Kind/placement`` if the type is not registered or no
    ///   worker is alive within 30 s; ``ActorCallError/Kind/thrown`` if its initializer threw.
    public func spawn<A: SpawnableActor>(_ type: A.Type, on worker: String? = nil, restart: RestartPolicy = .never) async throws -> A {
        guard actorRegistry.contains(A.name) else {
            throw ActorCallError(
                kind: .placement, actor: A.name, method: "spawn",
                message: "\(A.name) is not registered: pass it to Cloud.start(functions:actors:)")
        }
        guard let transport = actors.transport else {
            let actor = try await A(actorSystem: actors)
            actors.manage(actor, name: actor.id.name)
            return actor
        }
        let name = TaskDispatcher.newJobID()
        let host = try await place(A.name, preferring: worker, excluding: [], transport: transport)
        try await create(typeName: A.name, name: name, on: host, transport: transport)
        if restart.maxRestarts > 0 {
            _ = try await transport.client.send(RESPCommand(
                "HSET", transport.keys.record(name), "type", A.name, "host", host, "restarts", restart.maxRestarts,
                "retry", restart.retryCalls ? 1 : 0))
        }
        spawned.entries.withLock {
            $0[name] = SpawnedActors.Entry(typeName: A.name, host: host, restartsLeft: restart.maxRestarts, retryCalls: restart.retryCalls)
        }
        if restart.maxRestarts > 0 { startRestartMonitor(transport: transport) }
        guard let actor = try A.resolve(id: CurtainActorID(host: host, name: name), using: actors) as A? else {
            throw ActorCallError(kind: .placement, actor: A.name, method: "spawn", message: "the new actor cannot be resolved")
        }
        return actor
    }

    /// Creates an actor of a registered type in the process that hosts `neighbour`, so that calls between
    /// the two are ordinary calls within one process: nothing is encoded, nothing crosses the network.
    ///
    /// A neighbour that lives in this process (an actor this driver created itself) gets its new neighbour
    /// here too. A neighbour that was restarted elsewhere is joined where it lives now.
    ///
    /// ```swift
    /// let server = try await cloud.spawn(ParameterServer.self)
    /// let shard = try await cloud.spawn(Shard.self, near: server)   // same worker as the server
    /// ```
    ///
    /// - Parameters:
    ///   - type: a type passed to `Cloud.start(functions:actors:)`.
    ///   - neighbour: the actor whose process should host the new one.
    ///   - restart: what to do if that worker dies (see ``RestartPolicy``; a restarted actor is placed anew,
    ///     not necessarily beside its neighbour).
    /// - Throws: ``ActorCallError``, as ``spawn(_:on:restart:)``; ``ActorCallError/Kind/placement`` if the
    ///   neighbour's worker is no longer alive.
    public func spawn<A: SpawnableActor, N: DistributedActor>(
        _ type: A.Type, near neighbour: N, restart: RestartPolicy = .never
    ) async throws -> A where N.ID == CurtainActorSystem.ActorID {
        let host = actors.route(neighbour.id)
        guard host != actors.node, actors.transport != nil else {
            guard actorRegistry.contains(A.name) else {
                throw ActorCallError(
                    kind: .placement, actor: A.name, method: "spawn",
                    message: "\(A.name) is not registered: pass it to Cloud.start(functions:actors:)")
            }
            let actor = try await A(actorSystem: actors)
            actors.manage(actor, name: actor.id.name)
            return actor
        }
        return try await spawn(type, on: host, restart: restart)
    }

    /// Lets a spawned actor go: its worker drops it (and it deinitializes once nothing there holds it).
    /// Calls made through references to it afterwards fail with ``ActorCallError/Kind/unknownActor``.
    ///
    /// - Throws: ``ActorCallError`` if its host cannot be reached or does not know it.
    public func release<A: SpawnableActor>(_ actor: A) async throws {
        let name = actor.id.name
        let entry = spawned.entries.withLock { $0.removeValue(forKey: name) }
        guard let transport = actors.transport else {
            guard actors.release(name: name) else {
                throw ActorCallError(kind: .unknownActor, actor: "\(A.self)(\(actor.id))", method: "release", message: "it was not spawned here, or was already released")
            }
            return
        }
        let host = actors.route(actor.id)
        if let entry { spawned.placed.withLock { $0[entry.host, default: 1] -= 1 } }
        _ = try? await transport.client.send(RESPCommand("DEL", transport.keys.record(name)))
        let reply = try await transport.send(
            ActorMessage(kind: .release, callID: 0, replyNode: actors.node, actor: name, target: "", arguments: []),
            to: host, label: { ("\(A.self)(\(actor.id))", "release") })
        guard reply.status == .void else {
            throw ActorCallError(
                kind: .unknownActor, actor: "\(A.self)(\(actor.id))", method: "release",
                message: String(decoding: reply.payload, as: UTF8.self))
        }
    }

    /// The worker nodes that can host spawned actors now, with how many each hosts.
    public func actorHosts() async throws -> [(node: String, actors: Int)] {
        guard let transport = actors.transport else { return [] }
        return try await transport.liveNodes().map { ($0.node, $0.load) }
    }

    /// The least loaded live worker (or `preferred`), waiting up to 30 s for one to be up.
    private func place(_ typeName: String, preferring preferred: String?, excluding: Set<String>, transport: ActorTransport) async throws -> String {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        while true {
            let live = try await transport.liveNodes().filter { !excluding.contains($0.node) }
            if let preferred {
                if live.contains(where: { $0.node == preferred }) { return preferred }
            } else if !live.isEmpty {
                let placed = spawned.placed.withLock { $0 }
                let loads = live.map { ($0.node, max($0.load, placed[$0.node] ?? 0)) }
                let least = loads.map(\.1).min()!
                let host = loads.filter { $0.1 == least }.randomElement()!.0
                spawned.placed.withLock { $0[host, default: 0] += 1 }
                return host
            }
            guard clock.now < deadline else {
                let what = preferred.map { "worker \($0) is not alive" } ?? "no worker of build \(buildID) is alive"
                throw ActorCallError(kind: .placement, actor: typeName, method: "spawn", message: "\(what) (waited 30 s)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Asks `host` to create an actor of `typeName` named `name`.
    private func create(typeName: String, name: String, on host: String, transport: ActorTransport) async throws {
        let reply = try await transport.send(
            ActorMessage(kind: .spawn, callID: 0, replyNode: actors.node, actor: name, target: typeName, arguments: []),
            to: host, label: { ("\(typeName)(\(name)@\(host))", "spawn") })
        switch reply.status {
        case .void, .value: return
        case .thrown:
            throw ActorCallError(
                kind: .thrown, actor: "\(typeName)(\(name)@\(host))", method: "init(actorSystem:)", errorType: reply.errorType,
                message: String(decoding: reply.payload, as: UTF8.self))
        case .badCall, .unknownActor:
            throw ActorCallError(
                kind: .placement, actor: "\(typeName)(\(name)@\(host))", method: "spawn",
                message: String(decoding: reply.payload, as: UTF8.self))
        }
    }

    /// Watches the hosts of restartable actors; when one's heartbeat lapses, recreates its actors on other
    /// workers under the same names and records where, so calls find them.
    private func startRestartMonitor(transport: ActorTransport) {
        spawned.monitor.withLock { monitor in
            guard monitor == nil else { return }
            // A host known gone at once (its direct connection dropped, nothing answers at its address) is acted on now.
            transport.onHostLost { [weak self] _ in await self?.restartLostActors(transport: transport) }
            monitor = transport.client.everyPeriod(transport.heartbeatTTL / 3) { [weak self] in
                guard let self else { return false }
                await self.restartLostActors(transport: transport)
                return true
            }
        }
    }

    private func restartLostActors(transport: ActorTransport) async {
        let restartable = spawned.entries.withLock { $0.filter { $0.value.restartsLeft > 0 } }
        let hosts = Array(Set(restartable.values.map(\.host)))
        guard !hosts.isEmpty,
            let alive = try? await transport.client.pipeline(hosts.map { RESPCommand("EXISTS", transport.keys.alive($0)) })
        else { return }
        let dead = Set(zip(hosts, alive).filter { $0.1.int == 0 }.map(\.0))
        for (name, entry) in restartable where dead.contains(entry.host) {
            do {
                let host = try await place(entry.typeName, preferring: nil, excluding: dead, transport: transport)
                try await create(typeName: entry.typeName, name: name, on: host, transport: transport)
                _ = try await transport.client.send(RESPCommand(
                    "HSET", transport.keys.record(name), "host", host, "restarts", entry.restartsLeft - 1))
                actors.relocate(name, to: host)
                spawned.entries.withLock {
                    $0[name]?.host = host
                    $0[name]?.restartsLeft -= 1
                }
            } catch {
                // Tried again at the next check (another worker may be up by then).
                continue
            }
        }
    }

    /// Releases every actor this cloud spawned (at shutdown), best effort.
    func releaseSpawnedActors() async {
        spawned.monitor.withLock { $0?.cancel() }
        let entries = spawned.entries.withLock { entries in
            defer { entries = [:] }
            return entries
        }
        guard let transport = actors.transport, !entries.isEmpty else { return }
        _ = try? await transport.client.pipeline(entries.keys.map { RESPCommand("DEL", transport.keys.record($0)) })
        await _Concurrency.withTaskGroup(of: Void.self) { group in
            for (name, entry) in entries {
                group.addTask { [actors] in
                    let host = actors.route(CurtainActorID(host: entry.host, name: name))
                    guard (try? await transport.isAlive(host)) == true else { return }
                    _ = try? await transport.send(
                        ActorMessage(kind: .release, callID: 0, replyNode: actors.node, actor: name, target: "", arguments: []),
                        to: host, label: { ("\(entry.typeName)(\(name))", "release") })
                }
            }
        }
    }
}
