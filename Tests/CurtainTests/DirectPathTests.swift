@testable import Curtain
import CurtainRESP
import Logging
import NIOCore
import NIOPosix
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import Testing

/// Sends `bytes` to `address` (`host:port`) over a plain TCP connection and returns everything the peer
/// sends back until it closes the connection (or `seconds` pass: then `closed` is false).
func exchangeRaw(_ address: String, _ bytes: [UInt8], seconds: Int = 10) async throws -> [UInt8] {
    try await exchangeRawUntilClosed(address, bytes, seconds: seconds).received
}

/// ``exchangeRaw(_:_:seconds:)``, saying also whether the peer closed the connection.
func exchangeRawUntilClosed(_ address: String, _ bytes: [UInt8], seconds: Int) async throws -> (received: [UInt8], closed: Bool) {
    let (host, port) = try #require(DirectPeer.parse(address))
    return try await runBlocking {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = UInt16(port).bigEndian
        target.sin_addr.s_addr = inet_addr(host)
        let connected = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw CocoaError(.fileReadUnknown) }
        if !bytes.isEmpty { _ = write(fd, bytes, bytes.count) }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n == 0 { return (received, true) }
            if n < 0 { return (received, false) }
            received += chunk[0..<n]
        }
    }
}

/// Direct connections between processes: calls at one round trip, failures noticed when the connection
/// drops, clear errors for anything that is not a Curtain peer of the same build.
@Suite("Direct actor calls: one connection per host, failures at once, strangers refused", .serialized)
struct DirectPathTests {
    /// The address and token `node` advertises for direct calls.
    func advertised(_ cloud: Cloud, _ node: String) async throws -> (address: String, token: String) {
        let (address, token, _) = try await advertisement(cloud, node)
        return (address, token)
    }

    /// The address, token and encryption `node` advertises for direct calls.
    func advertisement(_ cloud: Cloud, _ node: String) async throws -> (address: String, token: String, tls: Bool) {
        let transport = try #require(cloud.actors.transport)
        let text = try #require(try await transport.client.send(RESPCommand("GET", transport.keys.address(node))).string)
        return try #require(DirectWire.parseAdvertisement(text))
    }

    @Test(arguments: [ActorBackend.processes, .redis])
    func callsGoDirectlyWhenTheHostAdvertisesAnAddress(backend: ActorBackend) async throws {
        try await withActorCloud(backend) { cloud in
            let tally = try await cloud.spawn(Tally.self)
            #expect(try await tally.add(2) == 2)
            let (address, token) = try await advertised(cloud, tally.id.host)
            let (host, port) = try #require(DirectPeer.parse(address))
            #expect(token.count == 32)
            // The store is on this machine: the worker advertises loopback, on a port of its own.
            #expect(host == "127.0.0.1" && port > 0)
            // Nothing went through the host's inbox: the call used the connection.
            let transport = try #require(cloud.actors.transport)
            #expect(try await transport.client.send(RESPCommand("EXISTS", transport.keys.inbox(tally.id.host))).int == 0)
            // Many calls in flight on one connection all come back, each to its own caller.
            let sums = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<200 { group.addTask { try await tally.add(1) } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(Set(sums).count == 200 && sums.max() == 202)
            #expect(try await cloud.actors.withAffinity(to: tally) { try await tally.add(0) } == 202)
        }
    }

    @Test func theStorePathStillCarriesCallsWhenChosen() async throws {
        var configuration = CloudConfiguration(backend: .processes, workers: 1, workerExecutable: try fixtureWorkerPath(), buildID: "fixture")
        configuration.actorPath = .store
        let cloud = try await Cloud.start(functions: allTestFunctions, actors: allTestActors, configuration: configuration)
        do {
            let tally = try await cloud.spawn(Tally.self)
            #expect(try await tally.add(4) == 4)
            let transport = try #require(cloud.actors.transport)
            // Workers started by this driver were told the same path: none advertises an address.
            #expect(try await transport.client.send(RESPCommand("EXISTS", transport.keys.address(tally.id.host))).int == 0)
        } catch {
            await cloud.shutdown()
            throw error
        }
        await cloud.shutdown()
    }

    @Test func aKilledHostIsNoticedWhenItsConnectionDropsNotWhenItsHeartbeatLapses() async throws {
        // A 10 s heartbeat: the store path would take at least that long to notice.
        try await withActorCloud(.processes, heartbeat: .seconds(10)) { cloud in
            let tally = try await cloud.spawn(Tally.self)
            let pid = try await tally.processID()
            let call = Task { try await tally.slowAdd(1, milliseconds: 60_000) }
            try await Task.sleep(for: .milliseconds(200))
            let clock = ContinuousClock()
            let start = clock.now
            kill(pid, SIGKILL)
            do {
                _ = try await call.value
                Issue.record("expected an error")
            } catch let error as ActorCallError {
                #expect(error.kind == .hostLost)
                #expect(error.message.contains("connection dropped"))
                #expect(error.message.contains("may have run"))
            }
            #expect(clock.now - start < .seconds(8))

            // With a restart policy that retries, the call in flight is sent to the new incarnation as soon
            // as it exists, again without waiting for the heartbeat.
            let retrying = try await cloud.spawn(Tally.self, restart: RestartPolicy(maxRestarts: 1, retryCalls: true))
            #expect(try await retrying.add(2) == 2)
            let host = try await retrying.processID()
            let retried = Task { try await retrying.slowAdd(1, milliseconds: 2_000) }
            try await Task.sleep(for: .milliseconds(200))
            let restartStart = clock.now
            kill(host, SIGKILL)
            #expect(try await retried.value == 1)
            #expect(clock.now - restartStart < .seconds(9))
            #expect(try await retrying.processID() != host)
        }
    }

    @Test func aPeerThatSpeaksAnythingElseGetsAClearErrorAndNothingRuns() async throws {
        try await withActorCloud(.processes, workers: 1) { cloud in
            let tally = try await cloud.spawn(Tally.self)
            #expect(try await tally.add(1) == 1)
            let (address, token) = try await advertised(cloud, tally.id.host)
            // redis-cli's PING: one RESP error line naming what the port expects, then the connection closes.
            let answer = String(decoding: try await exchangeRaw(address, Array("*1\r\n$4\r\nPING\r\n".utf8)), as: UTF8.self)
            #expect(answer.hasPrefix("-ERR this is a Curtain actor port"))
            #expect(answer.contains("CURTDIR1"))
            // The right preamble without the token (which only the store tells): refused, and nothing about the
            // host (its build, its node) is told.
            func refusal(_ hello: ByteBuffer) async throws -> String {
                var answer = ByteBuffer(bytes: try await exchangeRaw(address, DirectWire.preamble + Array(buffer: DirectWire.frame(hello))))
                #expect(answer.readInteger(as: UInt32.self) != nil)
                #expect(answer.readInteger(as: UInt8.self) == 1)
                return try answer.readShortString(field: "answer")
            }
            let guessed = try await refusal(try DirectWire.hello(buildID: "fixture", from: "stranger", to: tally.id.host, token: "guess"))
            #expect(guessed.contains("token") && !guessed.contains("fixture") && !guessed.contains(tally.id.host))
            // With the token, a process of another build is still refused.
            let other = try await refusal(try DirectWire.hello(buildID: "other-build", from: "stranger", to: tally.id.host, token: token))
            #expect(other.contains("another build"))
            // A connection that says nothing is closed once the hello is overdue, not held open forever.
            let silent = try await exchangeRawUntilClosed(address, [], seconds: 60)
            #expect(silent.closed && silent.received.isEmpty)
            // A hello larger than a hello can be is refused before it is read.
            let bloated = String(decoding: try await exchangeRaw(address, DirectWire.preamble + [0, 0, 0x20, 0]), as: UTF8.self)
            #expect(bloated.contains("hello of 8192 bytes is over the limit"))
            // The actor never saw any of it.
            #expect(try await tally.add(0) == 1)
        }
    }

    @Test func aForcedDirectPathFailsClearlyForAHostWithoutAnAddress() async throws {
        try await withTestStore(.redis) { store in
            // A worker that takes calls only through the store.
            let workers = try startWorkerProcesses(
                1, executable: try fixtureWorkerPath(), url: store.url, buildID: "fixture",
                idPrefix: "direct-\(getpid())-\(UUID().uuidString.prefix(6))", environment: ["CURTAIN_ACTOR_PATH": "store"])
            var configuration = CloudConfiguration(backend: .store(url: store.url), buildID: "fixture")
            configuration.actorPath = .direct
            let cloud = try await Cloud.start(functions: allTestFunctions, actors: allTestActors, configuration: configuration)
            do {
                try await cloud.waitForWorkers()
                do {
                    _ = try await cloud.spawn(Tally.self)
                    Issue.record("expected the spawn to fail")
                } catch let error as ActorCallError {
                    #expect(error.message.contains("CURTAIN_ACTOR_PATH=direct"))
                    #expect(error.message.contains("advertises no direct address"))
                }
            } catch {
                await cloud.shutdown()
                for worker in workers { await terminate(worker) }
                throw error
            }
            await cloud.shutdown()
            for worker in workers { await terminate(worker) }
        }
    }

    @Test func anActorSpawnedNearAnotherSharesItsProcess() async throws {
        try await withActorCloud(.processes, workers: 2) { cloud in
            // Both workers ready to host (a worker still starting would leave one choice).
            let deadline = ContinuousClock.now + .seconds(60)
            while (try await cloud.actorHosts().count) < 2 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            let first = try await cloud.spawn(Tally.self)
            // Spawned one by one without a neighbour, actors spread over the workers…
            let apart = try await cloud.spawn(Tally.self)
            #expect(apart.id.host != first.id.host)
            // …and with one, the new actor joins it, so their calls to each other stay in the process.
            let beside = try await cloud.spawn(Tally.self, near: first)
            #expect(beside.id.host == first.id.host)
            #expect(try await beside.processID() == (try await first.processID()))
            #expect(try await first.feed(beside, 2, times: 50) == 100)
            // A neighbour in this process gets its new neighbour here too.
            let here = Tally(actorSystem: cloud.actors)
            let local = try await cloud.spawn(Tally.self, near: here)
            #expect(local.id.host == cloud.actors.node)
            #expect(try await local.processID() == getpid())
            #expect(try await here.feed(local, 1, times: 3) == 3)
        }
    }

    #if TLS
    @Test func directConnectionsAreEncryptedWhenAskedAndTakeNoPlainText() async throws {
        var configuration = CloudConfiguration(backend: .processes, workers: 1, workerExecutable: try fixtureWorkerPath(), buildID: "fixture")
        configuration.actorTLS = true
        configuration.actorPath = .direct  // no quiet fallback to the store: every call below is direct
        let cloud = try await Cloud.start(functions: allTestFunctions, actors: allTestActors, configuration: configuration)
        do {
            let tally = try await cloud.spawn(Tally.self)
            #expect(try await tally.add(2) == 2)
            // The worker was told to encrypt (the driver passes the setting on) and says so with its address.
            let (address, _, tls) = try await advertisement(cloud, tally.id.host)
            #expect(tls)
            // The calls went over an (encrypted) connection to the host: it is open and usable…
            let transport = try #require(cloud.actors.transport)
            #expect(await transport.directExecutor(to: tally.id.host) != nil)
            let sums = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<100 { group.addTask { try await tally.add(1) } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(Set(sums).count == 100 && sums.max() == 102)
            // …and the port speaks only TLS: plain text gets a TLS alert record (0x15) or nothing, never the
            // port's plain-text answer.
            let answer = try await exchangeRaw(address, Array("*1\r\n$4\r\nPING\r\n".utf8))
            #expect(answer.isEmpty || answer.first == 0x15)
            #expect(!String(decoding: answer, as: UTF8.self).contains("Curtain"))
            #expect(try await tally.add(0) == 102)
        } catch {
            await cloud.shutdown()
            throw error
        }
        await cloud.shutdown()
    }

    @Test func anEncryptedPortTakesOnlyItsOwnTokenAndNoPlainHello() async throws {
        let listener = try await DirectListener.start(
            group: MultiThreadedEventLoopGroup.singleton, bindHost: "127.0.0.1", port: 0, advertiseHost: "127.0.0.1",
            buildID: "fixture", node: "host-1", maxPayload: 1 << 20, sealer: nil, encrypt: true, system: { nil },
            logger: Logger(label: "test"))
        defer { Task { await listener.close() } }
        let (address, token, tls) = try #require(DirectWire.parseAdvertisement(listener.advertised))
        #expect(tls)
        func connect(token: String, tls: Bool) async throws -> DirectPeer {
            try await DirectPeer.connect(
                group: MultiThreadedEventLoopGroup.singleton, address: address, token: token, tls: tls, host: "host-1",
                node: "caller", buildID: "fixture", maxPayload: 1 << 20, id: 1, timeout: .seconds(10), onReply: { _ in },
                onClose: {})
        }
        // The right token: the handshake and the hello both pass.
        let peer = try await connect(token: token, tls: true)
        try await peer.channel.close()
        // Another token: the handshake fails, so not even the hello is read.
        await #expect(throws: DirectConnectError.self) { try await connect(token: String(token.reversed()), tls: true) }
        do {
            _ = try await connect(token: DirectWire.newToken(), tls: true)
            Issue.record("a wrong token was accepted")
        } catch let error as DirectConnectError {
            #expect(error.description.contains("TLS handshake"))
        }
        // The right token in a plain-text hello: the port answers nothing a Curtain caller could read.
        let plain = try await exchangeRaw(
            address, DirectWire.preamble + Array(buffer: DirectWire.frame(try DirectWire.hello(buildID: "fixture", from: "x", to: "host-1", token: token))))
        #expect(plain.isEmpty || plain.first == 0x15)
        await #expect(throws: (any Error).self) { try await connect(token: token, tls: false) }
    }

    @Test func aClusterOnATLSStoreCallsItsActorsOverEncryptedConnections() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("curtain-tls-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await runBlocking { try makeTestCertificates(in: dir) }
        let tlsPort = try TestPorts.next()
        let store = try await TestStore.start(
            .redis,
            extraRedisArguments: [
                "--tls-port", String(tlsPort), "--tls-cert-file", "\(dir)/server.crt", "--tls-key-file",
                "\(dir)/server.key", "--tls-ca-cert-file", "\(dir)/ca.crt", "--tls-auth-clients", "no",
            ])
        // Only what a cluster user writes: a rediss:// URL trusting the cluster's CA, nothing about actors.
        let url = "rediss://localhost:\(tlsPort)?ssl_ca_certs=\(dir)/ca.crt"
        let workers = try startWorkerProcesses(
            1, executable: try fixtureWorkerPath(), url: url, buildID: "fixture", idPrefix: "tls-\(getpid())-\(UUID().uuidString.prefix(6))")
        var configuration = CloudConfiguration(backend: .store(url: url), buildID: "fixture")
        configuration.actorPath = .direct  // no quiet fallback to the store: every call below is direct
        let cloud = try await Cloud.start(functions: allTestFunctions, actors: allTestActors, configuration: configuration)
        do {
            try await cloud.waitForWorkers()
            let tally = try await cloud.spawn(Tally.self)
            #expect(tally.id.host != cloud.actors.node)
            #expect(try await tally.add(5) == 5)
            let (_, _, tls) = try await advertisement(cloud, tally.id.host)
            #expect(tls)
            let transport = try #require(cloud.actors.transport)
            #expect(transport.encrypt)
            #expect(await transport.directExecutor(to: tally.id.host) != nil)
            #expect(try await cloud.actors.withAffinity(to: tally) { try await tally.add(1) } == 6)
        } catch {
            await cloud.shutdown()
            for worker in workers { await terminate(worker) }
            await store.stop()
            throw error
        }
        await cloud.shutdown()
        for worker in workers { await terminate(worker) }
        await store.stop()
    }

    @Test func aCallerThatEncryptsNeverCallsAPlainHostDirectly() async throws {
        try await withTestStore(.redis) { store in
            // A worker told not to encrypt, and a driver that must.
            let workers = try startWorkerProcesses(
                1, executable: try fixtureWorkerPath(), url: store.url, buildID: "fixture",
                idPrefix: "plain-\(getpid())-\(UUID().uuidString.prefix(6))", environment: ["CURTAIN_ACTOR_TLS": "0"])
            func run(_ path: ActorPath, _ body: (Cloud) async throws -> Void) async throws {
                var configuration = CloudConfiguration(backend: .store(url: store.url), buildID: "fixture")
                configuration.actorTLS = true
                configuration.actorPath = path
                let cloud = try await Cloud.start(functions: allTestFunctions, actors: allTestActors, configuration: configuration)
                do {
                    try await cloud.waitForWorkers()
                    try await body(cloud)
                } catch {
                    await cloud.shutdown()
                    throw error
                }
                await cloud.shutdown()
            }
            do {
                // Forced direct: the call fails, saying why.
                try await run(.direct) { cloud in
                    do {
                        _ = try await cloud.spawn(Tally.self)
                        Issue.record("expected the spawn to fail")
                    } catch let error as ActorCallError {
                        #expect(error.message.contains("does not encrypt its direct connections"))
                    }
                }
                // Automatic: the calls go through the store instead, and work.
                try await run(.auto) { cloud in
                    let tally = try await cloud.spawn(Tally.self)
                    #expect(try await tally.add(3) == 3)
                    let transport = try #require(cloud.actors.transport)
                    #expect(await transport.directExecutor(to: tally.id.host) == nil)
                }
            } catch {
                for worker in workers { await terminate(worker) }
                throw error
            }
            for worker in workers { await terminate(worker) }
        }
    }

    @Test func aTLSStoreMeansEncryptedDirectConnectionsUnlessToldOtherwise() async throws {
        // Nothing connects here (clients open connections on first use): only the choice is checked.
        let secure = try RESPClient(url: "rediss://127.0.0.1:1")
        let plain = try RESPClient(url: "redis://127.0.0.1:1")
        let transports = [
            ActorTransport(client: secure, buildID: "fixture", node: "a", heartbeatTTL: .seconds(3)),
            ActorTransport(client: secure, buildID: "fixture", node: "b", heartbeatTTL: .seconds(3), encrypt: false),
            ActorTransport(client: plain, buildID: "fixture", node: "c", heartbeatTTL: .seconds(3)),
            ActorTransport(client: plain, buildID: "fixture", node: "d", heartbeatTTL: .seconds(3), encrypt: true),
        ]
        #expect(transports.map(\.encrypt) == [true, false, false, true])
        for transport in transports { await transport.close() }
        await secure.close()
        await plain.close()
    }
    #endif

    @Test func settingsAreCheckedWhenRead() throws {
        #if TLS
        #expect(try CloudConfiguration.fromEnvironment(["CURTAIN_ACTOR_TLS": "1"]).actorTLS == true)
        #else
        #expect(throws: ConfigurationError.self) { try CloudConfiguration.fromEnvironment(["CURTAIN_ACTOR_TLS": "1"]) }
        #endif
        #expect(try CloudConfiguration.fromEnvironment(["CURTAIN_ACTOR_TLS": "off"]).actorTLS == false)
        #expect(try CloudConfiguration.fromEnvironment([:]).actorTLS == nil)
        #expect(throws: ConfigurationError.self) { try CloudConfiguration.fromEnvironment(["CURTAIN_ACTOR_TLS": "maybe"]) }
        #expect(DirectWire.parseAdvertisement("127.0.0.1:7000 abc tls")! == ("127.0.0.1:7000", "abc", true))
        #expect(DirectWire.parseAdvertisement("127.0.0.1:7000 abc")! == ("127.0.0.1:7000", "abc", false))
        #expect(DirectWire.parseAdvertisement("127.0.0.1:7000 abc ssl") == nil)
        #expect(try CloudConfiguration.fromEnvironment(["CURTAIN_ACTOR_PATH": "Direct"]).actorPath == .direct)
        #expect(try CloudConfiguration.fromEnvironment([:]).actorPath == .auto)
        #expect(throws: ConfigurationError.self) { try CloudConfiguration.fromEnvironment(["CURTAIN_ACTOR_PATH": "carrier-pigeon"]) }
        #expect(try CloudConfiguration.fromEnvironment(["CURTAIN_ADVERTISE": "10.0.0.5:7000"]).advertise == "10.0.0.5:7000")
        #expect(try CloudConfiguration.fromEnvironment(["CURTAIN_ADVERTISE": "pod-3.workers"]).advertise == "pod-3.workers")
        for bad in ["10.0.0.5:0", "10.0.0.5:99999", "host:port", "two words", "redis://x:1"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try CloudConfiguration.fromEnvironment(["CURTAIN_ADVERTISE": bad]) }
        }
        #expect(DirectPeer.advertised("[::1]:7000")! == ("::1", 7000))
        #expect(DirectPeer.advertised("fd00::5")! == ("fd00::5", nil))
    }
}
