/// Why a call to a distributed actor of a ``CurtainActorSystem`` failed.
///
/// Every failure names the actor and the method, so that an error surfacing far from its cause still says
/// where it came from.
public struct ActorCallError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure it was.
    public enum Kind: String, Sendable, Hashable {
        /// The method threw; ``errorType`` and ``message`` describe what it threw.
        case thrown
        /// The process hosting the actor stopped answering for longer than the heartbeat TTL (it died, or
        /// was cut off). Whether the method ran is unknown, unless ``message`` says it never reached the
        /// host.
        case hostLost
        /// No actor of that id lives on its host (never spawned, released, or its job ended).
        case unknownActor
        /// The host could not run the call: the actor has no such distributed method (another build), or
        /// an argument could not be decoded there.
        case badCall
        /// The call could not be sent, or its reply could not be read (an argument or the result could not
        /// be encoded or decoded, the store is unreachable).
        case transport
        /// No worker could host a spawned actor.
        case placement
    }

    /// What kind of failure it was.
    public var kind: Kind
    /// The actor called, as `Type(id)`.
    public var actor: String
    /// The method called, or the spawn.
    public var method: String
    /// For ``Kind/thrown``, the Swift type of the remote error; empty otherwise.
    public var errorType: String
    /// What went wrong.
    public var message: String

    /// Creates an error.
    public init(kind: Kind, actor: String, method: String, errorType: String = "", message: String) {
        self.kind = kind
        self.actor = actor
        self.method = method
        self.errorType = errorType
        self.message = message
    }

    /// One line: the actor, the method and what happened.
    public var description: String {
        switch kind {
        case .thrown: "\(actor).\(method) threw \(errorType): \(message)"
        case .hostLost: "\(actor).\(method) failed: its host is gone (\(message))"
        case .unknownActor: "\(actor).\(method) failed: no such actor (\(message))"
        case .badCall: "\(actor).\(method) could not run: \(message)"
        case .transport: "\(actor).\(method) failed: \(message)"
        case .placement: "\(actor).\(method) failed: \(message)"
        }
    }
}
