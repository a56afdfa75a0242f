public import Distributed

/// A distributed actor type that ``Cloud/spawn(_:on:restart:)`` may create on a worker.
///
/// Workers only create actors of types registered with `Cloud.start(functions:actors:)`, looked up by
/// ``name`` (never by the runtime's type lookup), just as they only run registered functions.
///
/// ```swift
/// distributed actor Tally: SpawnableActor {
///     var total = 0
///     init(actorSystem: CurtainActorSystem) { self.actorSystem = actorSystem }
///     distributed func add(_ n: Int) -> Int { total += n; return total }
/// }
/// ```
public protocol SpawnableActor: DistributedActor, Codable where ActorSystem == CurtainActorSystem {
    /// The stable name workers know the type by; defaults to the fully qualified type name.
    static var name: String { get }

    /// Creates the actor on the worker chosen to host it.
    init(actorSystem: CurtainActorSystem) async throws
}

extension SpawnableActor {
    /// The fully qualified type name, for example `MyApp.Tally`.
    public static var name: String { _typeName(Self.self, qualified: true) }
}

/// The actor types a process may create when asked to, by registered name.
struct ActorRegistry: Sendable {
    typealias Factory = @Sendable (CurtainActorSystem) async throws -> any DistributedActor

    private let factories: [String: Factory]

    /// The registered names, sorted.
    var names: [String] { factories.keys.sorted() }

    init(_ types: [any SpawnableActor.Type]) throws(RegistryError) {
        var factories: [String: Factory] = [:]
        for type in types {
            let name = type.name
            guard !name.isEmpty, name.utf8.count <= 200, !name.contains("\n") else {
                throw RegistryError(description: "\(type): an actor type name must have 1 to 200 characters and no newline")
            }
            guard factories[name] == nil else {
                throw RegistryError(description: "two registered actor types are named '\(name)'; override `static var name` on one of them")
            }
            factories[name] = Self.factory(for: type)
        }
        self.factories = factories
    }

    func contains(_ name: String) -> Bool { factories[name] != nil }

    func factory(named name: String) -> Factory? { factories[name] }

    private static func factory<A: SpawnableActor>(for type: A.Type) -> Factory {
        { system in try await A(actorSystem: system) }
    }
}

/// What to do when the worker hosting a spawned actor dies.
///
/// Like Ray's `max_restarts`: a restarted actor is created anew on another worker (its state starts
/// from its initializer; nothing of the old one survives), under the same id, so references held anywhere
/// keep working. Calls that were in flight when the host died fail with ``ActorCallError/Kind/hostLost``
/// unless ``retryCalls`` is set; a call that had not yet reached the dead host is sent to the new one.
public struct RestartPolicy: Sendable, Hashable {
    /// How many times the actor may be recreated; 0 never restarts it.
    public var maxRestarts: Int
    /// Whether calls in flight when the host died are sent again to the restarted actor (at-least-once:
    /// such a call may run twice, once on the dead host and once on the new one).
    public var retryCalls: Bool

    /// Creates a policy.
    public init(maxRestarts: Int, retryCalls: Bool = false) {
        self.maxRestarts = max(0, maxRestarts)
        self.retryCalls = retryCalls
    }

    /// Never restart (the default): calls after the host died fail with ``ActorCallError/Kind/hostLost``.
    public static let never = RestartPolicy(maxRestarts: 0)
}
