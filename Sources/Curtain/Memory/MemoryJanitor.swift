import CurtainRESP
import Synchronization

/// Keeps a cloud's shared objects from outliving it in a store that outlives the driver (a shared Redis):
/// the cloud refreshes a liveness key on its namespace, and every cloud that starts removes the objects
/// of namespaces whose liveness key has expired (their driver died without shutting down).
final class MemoryJanitor: Sendable {
    let namespace: String
    private let client: RESPClient
    private let heartbeat = Mutex<Task<Void, Never>?>(nil)
    /// How long a namespace lives without a heartbeat.
    let lifetimeMilliseconds: Int

    init(namespace: String, client: RESPClient, lifetime: Duration = .seconds(30)) {
        self.namespace = namespace
        self.client = client
        self.lifetimeMilliseconds = Int(lifetime.wholeMilliseconds)
    }

    var aliveKey: String { namespace + ":alive" }

    /// Marks the namespace alive (before the cloud hands out any handle, so no sweep can take its objects
    /// for a dead cloud's), then keeps it alive every third of the lifetime from an event loop, and sweeps
    /// the namespaces of dead clouds once, in the background.
    func start() async {
        let (client, aliveKey, lifetime, namespace) = (client, aliveKey, lifetimeMilliseconds, namespace)
        _ = try? await client.send(RESPCommand("SET", aliveKey, "1", "PX", lifetime))
        let keeper = client.backgroundExecutor()
        let task = Task(executorPreference: keeper) {
            await Self.sweep(client: client, except: namespace)
            while !Task.isCancelled {
                try? await keeper.sleep(for: .milliseconds(lifetime / 3))
                guard !Task.isCancelled else { return }
                _ = try? await client.keeper.send(RESPCommand("SET", aliveKey, "1", "PX", lifetime))
            }
        }
        heartbeat.withLock { $0 = task }
    }

    /// Stops the heartbeat and removes the liveness key.
    func stop() async {
        let task = heartbeat.withLock { task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }
        task?.cancel()
        await task?.value
        _ = try? await client.send(RESPCommand("DEL", aliveKey))
    }

    /// Deletes the keys of every non-persistent namespace without a liveness key (one pass of `SCAN`).
    static func sweep(client: RESPClient, except own: String) async {
        var verdicts: [String: Bool] = [:]  // namespace → alive
        await client.scanKeys(matching: "curtain:mem:*") { keys in
            var doomed: [String] = []
            for key in keys {
                let fields = key.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
                guard fields.count >= 3, fields[2] != "persistent" else { continue }
                let namespace = fields[0...2].joined(separator: ":")
                guard namespace != own else { continue }
                if verdicts[namespace] == nil {
                    let exists = (try? await client.send(RESPCommand("EXISTS", namespace + ":alive")).int) ?? 1
                    verdicts[namespace] = exists == 1
                }
                if verdicts[namespace] == false { doomed.append(key) }
            }
            if !doomed.isEmpty { _ = try? await client.send(RESPCommand("DEL", arguments: doomed)) }
        }
    }
}
