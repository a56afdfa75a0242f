@testable import Curtain
import CurtainRESP
import NIOCore
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import Distributed
import Testing

/// Where an actor test runs: the in-process backend (a local system), worker processes on the embedded
/// store, or workers started by hand on a real redis-server.
enum ActorBackend: String, CaseIterable, Sendable, CustomStringConvertible {
    case inprocess, processes, redis
    var description: String { rawValue }
}

/// Runs `body` with a cloud on `backend` whose workers can host the test actors.
func withActorCloud(
    _ backend: ActorBackend, workers: Int = 2, heartbeat: Duration = .seconds(3), _ body: @Sendable (Cloud) async throws -> Void
) async throws {
    func run(_ configuration: CloudConfiguration) async throws {
        var configuration = configuration
        configuration.heartbeatTTL = heartbeat
        let cloud = try await Cloud.start(functions: allTestFunctions, actors: allTestActors, configuration: configuration)
        do {
            try await body(cloud)
        } catch {
            await cloud.shutdown()
            throw error
        }
        await cloud.shutdown()
    }
    switch backend {
    case .inprocess:
        try await run(CloudConfiguration(backend: .inprocess, workers: workers))
    case .processes:
        try await run(CloudConfiguration(backend: .processes, workers: workers, workerExecutable: try fixtureWorkerPath(), buildID: "fixture"))
    case .redis:
        try await withTestStore(.redis) { store in
            let workers = try startWorkerProcesses(
                workers, executable: try fixtureWorkerPath(), url: store.url, buildID: "fixture", idPrefix: "actors-\(getpid())-\(UUID().uuidString.prefix(6))")
            do {
                try await run(CloudConfiguration(backend: .store(url: store.url), buildID: "fixture"))
            } catch {
                for worker in workers { await terminate(worker) }
                throw error
            }
            for worker in workers { await terminate(worker) }
        }
    }
}

/// A spawnable type that is not registered anywhere.
distributed actor Counterfeit: SpawnableActor {
    init(actorSystem: CurtainActorSystem) { self.actorSystem = actorSystem }
}

// Serialized: each case starts several worker processes; all at once they stalled the 2-core machine for
// seconds and broke other suites' timing.
@Suite("Distributed actors: the same code on a local system and on workers", .serialized)
struct ActorTests {
    @Test(arguments: ActorBackend.allCases)
    func callsRoundTripWithAssortedTypes(backend: ActorBackend) async throws {
        try await withActorCloud(backend) { cloud in
            let tally = try await cloud.spawn(Tally.self)
            #expect(try await tally.add(2) == 2)
            #expect(try await tally.add(3) == 5)
            #expect(try await tally.current() == 5)
            try await tally.reset()
            #expect(try await tally.current() == 0)
            let text = try await tally.describe(
                label: "a", values: [1.5, 2.25], point: Point(x: 1, y: -2), flag: true, id: UInt64.max)
            #expect(text == "a:3.75:(1.0,-2.0):true:\(UInt64.max)")
            _ = try await tally.describe(label: "b", values: [], point: nil, flag: false, id: 0)
            #expect(try await tally.recorded() == ["a", "b"])
            let same = try await tally.this()
            #expect(same.id == tally.id)
            #expect(try await same.current() == 0)
            let pid = try await tally.processID()
            if backend == .inprocess {
                #expect(pid == getpid())
            } else {
                #expect(pid != getpid())
                #expect(tally.id.host != cloud.actors.node)
                // Placed on a given worker when asked; the hosts report what they host (both, once the second
                // worker is up: a loaded machine may still be starting it).
                try await waitUntil { try await cloud.actorHosts().count == 2 }
                let hosts = try await cloud.actorHosts()
                #expect(hosts.count == 2)
                let other = try #require(hosts.first { $0.node != tally.id.host })
                let placed = try await cloud.spawn(Tally.self, on: other.node)
                #expect(placed.id.host == other.node)
                #expect(try await placed.processID() != pid)
                await #expect(throws: ActorCallError.self) { _ = try await cloud.spawn(Counterfeit.self) }
            }
            // Many calls in flight at once all arrive, each exactly once.
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<500 { group.addTask { try await tally.add(1) } }
                var seen = Set<Int>()
                for try await total in group { seen.insert(total) }
                #expect(seen == Set(1...500))
            }
            #expect(try await tally.current() == 500)
        }
    }

    @Test(arguments: ActorBackend.allCases)
    func actorsTravelAsArgumentsAndInRemoteFunctions(backend: ActorBackend) async throws {
        try await withActorCloud(backend) { cloud in
            let a = try await cloud.spawn(Tally.self)
            let b = try await cloud.spawn(Tally.self)
            #expect(try await a.feed(b, 2, times: 3) == 6)
            #expect(try await b.current() == 6)
            // A remote function whose captures hold the reference calls the actor from wherever it runs.
            let totals = try await cloud.map(FeedTally(tally: b), over: 1...10)
            #expect(totals.max() == 61)
            #expect(try await b.current() == 61)
            // An actor of the driver's own, called back from a worker's actor.
            let mine = Tally(actorSystem: cloud.actors)
            #expect(try await b.feed(mine, 5, times: 2) == 10)
            #expect(try await mine.current() == 10)
        }
    }

    @Test(arguments: ActorBackend.allCases)
    func aRemoteThrowNamesTheActorAndTheMethod(backend: ActorBackend) async throws {
        try await withActorCloud(backend) { cloud in
            let tally = try await cloud.spawn(Tally.self)
            do {
                _ = try await tally.fail("not today")
                Issue.record("expected an error")
            } catch let error as ActorCallError {
                #expect(backend != .inprocess)
                #expect(error.kind == .thrown)
                #expect(error.actor.contains("Tally") && error.actor.contains(tally.id.name))
                #expect(error.method.contains("fail"))
                #expect(error.errorType.hasSuffix("Refusal"))
                #expect(error.message == "refused: not today")
            } catch let error as Tally.Refusal {
                #expect(backend == .inprocess)  // a local actor's call stays local: its own error
                #expect(error.description == "refused: not today")
            }
            // The actor lives on after throwing.
            #expect(try await tally.add(1) == 1)
        }
    }

    @Test(arguments: ActorBackend.allCases)
    func unknownActorsAndReleasedOnesAreClearErrors(backend: ActorBackend) async throws {
        try await withActorCloud(backend, heartbeat: .milliseconds(300)) { cloud in
            let tally = try await cloud.spawn(Tally.self)
            _ = try await tally.add(1)
            guard backend != .inprocess else {
                #expect(throws: ActorCallError.self) {
                    _ = try Tally.resolve(id: CurtainActorID(host: cloud.actors.node, name: "nobody"), using: cloud.actors)
                }
                try await cloud.release(tally)
                await #expect(throws: ActorCallError.self) { try await cloud.release(tally) }
                return
            }
            // An id on a live host that hosts no such actor.
            let ghost = try Tally.resolve(id: CurtainActorID(host: tally.id.host, name: "nobody"), using: cloud.actors)
            do {
                _ = try await ghost.add(1)
                Issue.record("expected an error")
            } catch let error as ActorCallError {
                #expect(error.kind == .unknownActor)
                #expect(error.method.contains("add"))
            }
            // An id on a host that does not exist: not a hang, a host-lost error once its heartbeat is missed.
            let nowhere = try Tally.resolve(id: CurtainActorID(host: "no-such-worker", name: "x"), using: cloud.actors)
            do {
                _ = try await nowhere.current()
                Issue.record("expected an error")
            } catch let error as ActorCallError {
                #expect(error.kind == .hostLost)
                #expect(error.message.contains("never reached"))
            }
            // A method name the actor's type does not have.
            let transport = try #require(cloud.actors.transport)
            let reply = try await transport.send(
                ActorMessage(kind: .call, callID: 0, replyNode: cloud.actors.node, actor: tally.id.name, target: "$s4Fake5ThingC3fooyyF", arguments: []),
                to: tally.id.host, label: { ("raw", "raw") })
            #expect(reply.status == .badCall)
            #expect(String(decoding: reply.payload, as: UTF8.self).contains("has no distributed method"))
            // A type the workers do not know.
            let spawn = try await transport.send(
                ActorMessage(kind: .spawn, callID: 0, replyNode: cloud.actors.node, actor: "n1", target: "Nope.Actor", arguments: []),
                to: tally.id.host, label: { ("raw", "raw") })
            #expect(spawn.status == .badCall)
            #expect(String(decoding: spawn.payload, as: UTF8.self).contains("no actor type named 'Nope.Actor'"))
            // Released: calls through old references fail.
            try await cloud.release(tally)
            do {
                _ = try await tally.add(1)
                Issue.record("expected an error")
            } catch let error as ActorCallError {
                #expect(error.kind == .unknownActor)
            }
        }
    }

    @Test(arguments: [ActorBackend.processes, .redis])
    func aCallToAnActorWhoseWorkerIsKilledFailsInsteadOfHanging(backend: ActorBackend) async throws {
        try await withActorCloud(backend, heartbeat: .milliseconds(300)) { cloud in
            let tally = try await cloud.spawn(Tally.self)
            let pid = try await tally.processID()
            let call = Task { try await tally.slowAdd(1, milliseconds: 60_000) }
            try await Task.sleep(for: .milliseconds(200))
            kill(pid, SIGKILL)
            do {
                _ = try await call.value
                Issue.record("expected an error")
            } catch let error as ActorCallError {
                #expect(error.kind == .hostLost)
                #expect(error.method.contains("slowAdd"))
                #expect(error.message.contains("may have run"))
            }
            // Later calls fail the same way, and other actors are unaffected.
            await #expect(throws: ActorCallError.self) { _ = try await tally.current() }
            let other = try await cloud.spawn(Tally.self)
            #expect(try await other.add(4) == 4)
        }
    }

    @Test(arguments: [ActorBackend.processes, .redis])
    func aRestartPolicyRecreatesTheActorElsewhere(backend: ActorBackend) async throws {
        try await withActorCloud(backend, workers: 3, heartbeat: .milliseconds(300)) { cloud in
            let tally = try await cloud.spawn(Tally.self, restart: RestartPolicy(maxRestarts: 1))
            #expect(try await tally.add(5) == 5)
            let pid = try await tally.processID()
            kill(pid, SIGKILL)
            // Recreated on another worker, under the same name: the same reference reaches it, and its state
            // started anew.
            try await waitUntil { cloud.actors.route(tally.id) != tally.id.host }
            #expect(try await tally.add(1) == 1)
            #expect(try await tally.processID() != pid)

            // With retries, a call in flight when the host died is sent again to the new incarnation.
            let retrying = try await cloud.spawn(Tally.self, restart: RestartPolicy(maxRestarts: 1, retryCalls: true))
            #expect(try await retrying.add(2) == 2)
            let host = try await retrying.processID()
            // Long enough that the host dies while the call runs, however slow the machine.
            let call = Task { try await retrying.slowAdd(1, milliseconds: 5_000) }
            try await Task.sleep(for: .milliseconds(200))
            kill(host, SIGKILL)
            #expect(try await call.value == 1)
            #expect(try await retrying.processID() != host)

            // The budget is spent: a second death is final.
            kill(try await tally.processID(), SIGKILL)
            do {
                _ = try await tally.current()
                Issue.record("expected an error")
            } catch let error as ActorCallError {
                #expect(error.kind == .hostLost)
            }
        }
    }

    /// Polls `condition` every 10 ms for up to 20 s.
    func waitUntil(_ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while try await !condition() {
            guard ContinuousClock.now < deadline else { throw TestStoreError(description: "condition not met within 20 s") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func actorIDsAndMessagesRoundTripAndRejectBadBytes() throws {
        let id = CurtainActorID(host: "w-1", name: "abc")
        let data = try JSONEncoder().encode(id)
        #expect(String(decoding: data, as: UTF8.self) == "\"abc@w-1\"")
        #expect(try JSONDecoder().decode(CurtainActorID.self, from: data) == id)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(CurtainActorID.self, from: Data("\"nohost\"".utf8)) }
        let message = ActorMessage(kind: .call, callID: 42, replyNode: "driver", actor: "abc", target: "$s1", arguments: [[1, 2], []])
        let encoded = try message.encoded()
        #expect(try ActorMessage(decoding: encoded) == message)
        var truncated = encoded
        truncated.moveWriterIndex(to: encoded.writerIndex - 1)
        #expect(throws: EnvelopeError.self) { try ActorMessage(decoding: truncated) }
        let reply = ActorReply(callID: 7, status: .thrown, errorType: "E", payload: Array("boom".utf8))
        #expect(try ActorReply(decoding: reply.encoded()) == reply)
        #expect(throws: EnvelopeError.self) { try ActorReply(decoding: ByteBuffer(bytes: [1, 2, 3])) }
    }
}
