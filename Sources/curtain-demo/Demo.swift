import ArgumentParser

/// `curtain-demo`: runnable examples that are also Curtain's experiments.
@main
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curtain-demo",
        abstract: "Curtain's examples; each compares a local baseline with the same work through Curtain.",
        subcommands: [PiDemo.self, SGDDemo.self, ActorsDemo.self, WordCountDemo.self, ClusterDemo.self, MandelbrotDemo.self, KMeansDemo.self]
    )
}
