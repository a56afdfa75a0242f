/// The identity of a distributed actor of a ``CurtainActorSystem``: the node (process) that hosts it and a
/// name unique across the cluster.
///
/// It is `Codable` as one string, `"<name>@<host>"`, so actor references (which encode as their id) are
/// small in arguments, results and remote functions' captures. An actor restarted on another worker keeps
/// its name; calls then find its new host (see ``RestartPolicy``).
public struct CurtainActorID: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The node hosting the actor: a worker's id, or a driver's.
    public var host: String
    /// The actor's name, unique across the cluster.
    public var name: String

    /// Creates an id.
    public init(host: String, name: String) {
        self.host = host
        self.name = name
    }

    /// `"<name>@<host>"`.
    public var description: String { "\(name)@\(host)" }

    /// Reads `"<name>@<host>"`.
    ///
    /// - Throws: `DecodingError.dataCorrupted` for a string without `@`, or with an empty part.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let at = text.firstIndex(of: "@"), at != text.startIndex, text.index(after: at) != text.endIndex else {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: decoder.codingPath, debugDescription: "'\(Abbreviation.text(text, limit: 80))' is not an actor id (name@host)"))
        }
        self.init(host: String(text[text.index(after: at)...]), name: String(text[..<at]))
    }

    /// Writes `"<name>@<host>"`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
