import ArgumentParser

/// The operator's command-line tool: `curtain store`, and more as the toolkit grows.
@main
struct CurtainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curtain",
        abstract: "Operate Curtain: run the embedded store.",
        subcommands: [StoreCommand.self]
    )
}
