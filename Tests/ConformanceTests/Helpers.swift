import CurtainRESP
import CurtainTestSupport
import Testing

/// Asserts that `body` fails with a server error whose message starts with `prefix`.
func expectServerError(
    _ prefix: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
) async {
    do {
        try await body()
        Issue.record("expected a server error starting with '\(prefix)', got success", sourceLocation: sourceLocation)
    } catch let RESPError.server(message) {
        #expect(message.hasPrefix(prefix), "server error '\(message)' should start with '\(prefix)'", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a server error starting with '\(prefix)', got \(error)", sourceLocation: sourceLocation)
    }
}

extension RESPClient {
    /// Sends whitespace-free words as one command: `try await c.cmd("SET", "k", "v")`.
    func cmd(_ words: String...) async throws -> RESPValue {
        try await send(RESPCommand(words: words))
    }
}

extension RESPConnection {
    /// Sends whitespace-free words as one command.
    func cmd(_ words: String...) async throws -> RESPValue {
        try await send(RESPCommand(words: words))
    }
}

/// Both servers, for `@Test(arguments:)`.
let allStores = StoreKind.allCases
