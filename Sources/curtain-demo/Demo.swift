import ArgumentParser
import Curtain
import CurtainExamples
import Dispatch

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `curtain-demo`: runnable examples that are also Curtain's experiments.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curtain-demo",
        abstract: "Curtain's examples; each compares a local baseline with the same work through Curtain.",
        subcommands: [PiDemo.self, SGDDemo.self, ActorsDemo.self, WordCountDemo.self, ClusterDemo.self, MandelbrotDemo.self, KMeansDemo.self]
    )

    /// Every function any demo runs remotely: what a worker of this program serves.
    static let workerFunctions: [any RemoteFunction.Type] = [
        CountHits.self, Noop.self, TwoTierSGD.self, NaiveRemoteSGD.self, Trainer.self, CountWords.self, FillSlot.self,
        ClusterMark.self, KMeansStep.self, MandelbrotRow.self,
    ]
}

/// The program's entry.
///
/// Two choices keep an idle worker small (19.5–19.7 MB resident against 21.5 MB, `curtain-bench memory`):
/// - A worker process becomes one before the command line is parsed. It serves every demo's functions and
///   actors, and the parser, the help text and the demos' own code are never touched.
/// - The entry is synchronous and parks the main thread until the command ends. An `async` main hands its
///   thread to `dispatch_main`, which ends it with `pthread_exit`: a forced unwind that loads libgcc_s and
///   walks the unwind tables of every frame, about 0.6 MB that stay resident for the process's life.
@main
enum DemoEntry {
    static func main() {
        let done = DispatchSemaphore(value: 0)
        // Detached: the top level of `main` is on the main actor, whose queue nothing drains here.
        Task.detached {
            if Cloud.isWorkerProcess {
                do {
                    // Never returns in a worker.
                    _ = try await Cloud.start(functions: Demo.workerFunctions, actors: [ParameterServer.self, ClusterProbe.self])
                } catch {
                    Demo.exit(withError: error)
                }
            }
            await Demo.main()
            done.signal()
        }
        done.wait()
    }
}
