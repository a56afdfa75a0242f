import ArgumentParser
import Curtain
import CurtainExamples
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `curtain-demo actors`: a parameter server (a distributed actor) fed by trainers (remote functions),
/// first in this process with the actor on a local actor system and the trainers as local tasks, then
/// through Curtain with the actor on a worker and the trainers as remote functions on workers.
struct ActorsDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "actors",
        abstract: "A parameter-server actor fed by trainers: local actor and tasks vs the same code on Curtain's workers.")

    @Option(help: "Weights of the linear model.")
    var dimensions: Int = 1_000

    @Option(help: "Samples in the synthetic dataset.")
    var samples: Int = 200_000

    @Option(help: "Samples per mini-batch (each trainer step computes one gradient, then calls the server once).")
    var batch: Int = 200

    @Option(help: "Steps per trainer.")
    var steps: Int = 1_000

    @Option(help: "Trainers (defaults to the number of workers).")
    var trainers: Int?

    @Option(help: "Learning rate.")
    var rate: Double = 0.02

    @Option(help: "The dataset's seed.")
    var seed: UInt64 = 11

    @Flag(help: "Print one JSON line instead of text.")
    var json = false

    func validate() throws {
        guard dimensions >= 1, samples >= 1, batch >= 1, batch <= samples, steps >= 1, (trainers ?? 1) >= 1, rate > 0 else {
            throw ValidationError("every count must be positive, the batch at most the samples, the rate above 0")
        }
    }

    func run() async throws {
        // In a worker process this call never returns.
        let cloud = try await Cloud.start(functions: [Trainer.self], actors: [ParameterServer.self])
        try await cloud.waitForWorkers()
        let problem = DenseRegression(dimensions: dimensions, samples: samples, seed: seed)
        let count = trainers ?? max(1, cloud.configuration.workers)
        let clock = ContinuousClock()
        let (batch, steps, dimensions, rate) = (self.batch, self.steps, self.dimensions, self.rate)

        // Local: the same actor on a local actor system, the same trainers as tasks of this process.
        let localSystem = CurtainActorSystem()
        let localServer = ParameterServer(actorSystem: localSystem)
        try await localServer.configure(dimensions: dimensions, rate: rate)
        var start = clock.now
        try await withThrowingTaskGroup(of: Int.self) { group in
            for shard in 0..<count {
                group.addTask { try await Trainer(server: localServer, problem: problem, batch: batch, steps: steps)(shard) }
            }
            for try await _ in group {}
        }
        let localSeconds = seconds(clock.now - start)
        let localLoss = problem.loss(try await localServer.pull())
        let localUpdates = try await localServer.applied()

        // Curtain: the actor on a worker, the trainers as remote functions on workers.
        let server = try await cloud.spawn(ParameterServer.self)
        try await server.configure(dimensions: dimensions, rate: rate)
        start = clock.now
        _ = try await cloud.map(Trainer(server: server, problem: problem, batch: batch, steps: steps), over: 0..<count)
        let curtainSeconds = seconds(clock.now - start)
        let curtainLoss = problem.loss(try await server.pull())
        let curtainUpdates = try await server.applied()
        let host = server.id.host
        await cloud.shutdown()

        guard localUpdates == count * steps, curtainUpdates == count * steps else {
            throw ValidationError("updates lost: \(localUpdates) local, \(curtainUpdates) through Curtain, expected \(count * steps)")
        }
        let backend = PiDemo.describe(cloud.configuration)
        let ratio = localSeconds / curtainSeconds
        if json {
            print(
                "{\"trainers\":\(count),\"steps\":\(steps),\"batch\":\(batch),\"dimensions\":\(dimensions),\"backend\":\"\(backend)\",\"local_s\":\(round4(localSeconds)),\"local_loss\":\(localLoss),\"curtain_s\":\(round4(curtainSeconds)),\"curtain_loss\":\(curtainLoss),\"updates\":\(curtainUpdates),\"calls_per_s\":\(round4(Double(curtainUpdates) / curtainSeconds)),\"ratio\":\(round4(ratio))}")
        } else {
            print("parameter server, \(count) trainers × \(steps) steps of \(batch) samples, \(dimensions) weights, \(backend)")
            print("local actor + tasks:     \(round4(localSeconds)) s   loss \(localLoss)   \(localUpdates) updates")
            print("Curtain (actor on \(host)): \(round4(curtainSeconds)) s   loss \(curtainLoss)   \(curtainUpdates) updates   \(Int(Double(curtainUpdates) / curtainSeconds)) calls/s")
            print("ratio local/curtain:     \(round4(ratio))")
        }
    }
}
