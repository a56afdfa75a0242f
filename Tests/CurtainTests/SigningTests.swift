@testable import Curtain
import CurtainRESP
import CurtainTestFunctions
import CurtainTestSupport
import Foundation
import NIOCore
import Testing

#if Signing

@Suite("Signing: with CURTAIN_SECRET, nothing unsigned or forged runs", .serialized)
struct SigningTests {
    @Test func sealsOpenOnlyWithTheirSecret() throws {
        let sealer = Sealer(secret: "s3cret")
        let payload = ByteBuffer(string: "payload")
        let sealed = sealer.seal(payload)
        #expect(try sealer.open(sealed) == payload)
        #expect(throws: SealError.self) { try Sealer(secret: "other").open(sealed) }
        #expect(throws: SealError.self) { try sealer.open(payload) }  // unsigned
        var tampered = sealed
        tampered.setInteger(UInt8(ascii: "P"), at: tampered.writerIndex - 7)
        #expect(throws: SealError.self) { try sealer.open(tampered) }
        // Without a secret, a seal is dropped unchecked and plain entries pass.
        #expect(try Sealer.open(sealed, with: nil) == payload)
        #expect(try Sealer.open(payload, with: nil) == payload)
    }

    @Test func forgedEntriesInTheQueueNeverRunAndTheWorkerLivesOn() async throws {
        try await withTestStore(.redis) { store in
            let counter = FileManager.default.temporaryDirectory.appendingPathComponent("curtain-signing-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: counter) }
            let workers = try startWorkerProcesses(
                1, executable: try fixtureWorkerPath(), url: store.url, buildID: "fixture",
                idPrefix: "signing-\(getpid())-\(UUID().uuidString.prefix(6))", environment: ["CURTAIN_SECRET": "s3cret"])
            defer { for worker in workers { kill(worker.processIdentifier, SIGKILL) } }
            var configuration = CloudConfiguration(backend: .store(url: store.url), buildID: "fixture")
            configuration.secret = "s3cret"
            let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
            // What a stranger who reaches the store could push (as with redis-cli): a valid envelope unsigned,
            // the same with a made-up MAC, signed with another secret, and bytes that are no envelope at all.
            let function = try PayloadCodec.encode(CountedSleep(counter: counter, milliseconds: 0))
            let envelope = try TaskEnvelope(
                buildID: "fixture", jobID: "forged", index: 0, function: "CountedSleep", functionPayload: function,
                input: Array("1".utf8)
            ).encoded()
            var madeUp = ByteBuffer(bytes: Sealer.magic + [UInt8](repeating: 7, count: 32))
            madeUp.writeImmutableBuffer(envelope)
            let queue = StoreKeys(buildID: "fixture").queue
            let client = try RESPClient(url: store.url)
            defer { Task { await client.close() } }
            _ = try await client.send(RESPCommand(
                "RPUSH", queue, envelope, madeUp, Sealer(secret: "guess").seal(envelope), ByteBuffer(string: "\u{1}\u{2}not bytes of anything")))
            // A signed job after them: the worker lives on, and only these calls are recorded.
            #expect(try await cloud.map(CountedSleep(counter: counter, milliseconds: 0), over: [10, 20, 30]) == [10, 20, 30])
            #expect(try Data(contentsOf: URL(fileURLWithPath: counter)).count == 3)
            #expect(try await client.send(RESPCommand("LLEN", queue)).int == 0)  // consumed and dropped
            #expect(try await client.send(RESPCommand("EXISTS", StoreKeys.results(job: "forged"))).int == 0)  // never answered
            #expect(workers[0].isRunning)
            await cloud.shutdown()
        }
    }

    @Test func aCloudWithASecretRunsOnItsWorkerProcesses() async throws {
        var configuration = CloudConfiguration(backend: .processes, workers: 2, workerExecutable: try fixtureWorkerPath(), buildID: "fixture")
        configuration.secret = "local secret"
        let cloud = try await Cloud.start(functions: allTestFunctions, configuration: configuration)
        #expect(try await cloud.map(CurtainTestFunctions.Square(offset: 1), over: 0..<50) == (0..<50).map { $0 * $0 + 1 })
        await cloud.shutdown()
    }

    @Test func actorMessagesAreSealedAndAnUnsignedOneIsRefused() async throws {
        var configuration = CloudConfiguration(backend: .processes, workers: 1, workerExecutable: try fixtureWorkerPath(), buildID: "fixture")
        configuration.secret = "actor secret"
        let cloud = try await Cloud.start(functions: allTestFunctions, actors: allTestActors, configuration: configuration)
        do {
            let tally = try await cloud.spawn(Tally.self)
            #expect(try await tally.add(2) == 2)
            let transport = try #require(cloud.actors.transport)
            let inbox = transport.keys.inbox(tally.id.host)
            // A release pushed without the secret (a stranger's) is refused: the actor lives on.
            let forged = ActorMessage(kind: .release, callID: 0, replyNode: "stranger", actor: tally.id.name, target: "", arguments: [])
            _ = try await transport.client.send(RESPCommand("RPUSH", inbox, try forged.encoded()))
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await tally.add(3) == 5)
            // The same release, sealed with the secret, is obeyed (so the refusal was the seal's doing).
            _ = try await transport.client.send(RESPCommand("RPUSH", inbox, Sealer(secret: "actor secret").seal(try forged.encoded())))
            try await Task.sleep(for: .milliseconds(300))
            await #expect(throws: ActorCallError.self) { _ = try await tally.add(1) }
        } catch {
            await cloud.shutdown()
            throw error
        }
        await cloud.shutdown()
    }
}
#else
@Suite("Signing off: a build without the Signing trait refuses CURTAIN_SECRET")
struct SigningOffTests {
    @Test func aSecretIsRefusedNamingTheTrait() async throws {
        #expect(!CloudConfiguration.supportsSigning)
        #expect(throws: ConfigurationError.self) { _ = try CloudConfiguration.fromEnvironment(["CURTAIN_SECRET": "s3cret"]) }
        do {
            _ = try CloudConfiguration.fromEnvironment(["CURTAIN_SECRET": "s3cret"])
        } catch {
            #expect(error.description.contains("--traits Signing") && !error.description.contains("s3cret"))
        }
        var configuration = CloudConfiguration(backend: .inprocess, workers: 1)
        configuration.secret = "s3cret"
        await #expect(throws: ConfigurationError.self) { _ = try await Cloud.start(functions: [], configuration: configuration) }
    }
}
#endif
