import ArgumentParser

/// The operator's command-line tool: `curtain store`, `curtain status`, `curtain workers`.
@main
struct CurtainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curtain",
        abstract: "Operate Curtain: run the embedded store, launch workers, inspect a cluster.",
        subcommands: [StoreCommand.self, StatusCommand.self, WorkersCommand.self, DashboardCommand.self, ReportCommand.self]
    )
}
