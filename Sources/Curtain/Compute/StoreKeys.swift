/// The store keys of Curtain's task dispatch; the build id is part of every queue name, so a worker built
/// from other code never sees another build's tasks.
struct StoreKeys: Sendable {
    /// The build id of this executable.
    let buildID: String

    /// The list of task envelopes waiting for a worker of this build.
    var queue: String { "curtain:{\(buildID)}:queue" }

    /// A worker's own queue: tasks a driver placed there because the worker holds the shared value they
    /// need most. The worker takes from it before the shared ``queue``; an idle worker steals from its tail.
    func ownQueue(worker: String) -> String { "curtain:{\(buildID)}:queue:\(worker)" }

    /// The workers that keep the shared value of hash `hex` decoded in their cache (each adds itself when
    /// it caches the value and removes itself when it evicts it; the set expires an hour after the last
    /// addition, as the value itself does in the store).
    func holders(_ hex: String) -> String { "curtain:{\(buildID)}:held:\(hex)" }

    /// The workers whose own queues drivers have pushed to: where idle workers look for tasks to steal, and
    /// reapers for the queues of dead workers to hand back.
    var placed: String { "curtain:{\(buildID)}:placed" }

    /// The list of envelopes a worker has taken and not yet finished (moved there atomically by LMOVE, so a
    /// dead worker's tasks can be put back).
    func inflight(worker: String) -> String { "curtain:{\(buildID)}:inflight:\(worker)" }

    /// Where each worker of this build announces, once, that it is connected and about to take tasks (the
    /// `processes` backend's supervisor times cold starts by it; the entries expire after a minute).
    var ready: String { "curtain:{\(buildID)}:ready" }

    /// A worker's heartbeat (a hash: host, pid, tasks done, last beat), expiring after the heartbeat TTL
    /// unless renewed: while it exists the worker's in-flight tasks are its own.
    func worker(_ id: String) -> String { "curtain:{\(buildID)}:worker:\(id)" }

    /// The set of this build's workers that keep a heartbeat (each adds itself with every beat; reapers
    /// remove those whose heartbeat lapsed), so reapers find them without scanning the keyspace.
    var workers: String { "curtain:{\(buildID)}:workers" }

    /// The latest 1,000 tasks given up on (JSON ``DeadLetter``s).
    var deadLetters: String { "curtain:{\(buildID)}:dead" }

    /// A running job's record (``JobRecord``), for `curtain status`.
    func job(_ id: String) -> String { "curtain:{\(buildID)}:job:\(id)" }

    /// The owner lease of a named job (the driver running it).
    func owner(_ name: String) -> String { "curtain:{\(buildID)}:owner:\(name)" }

    /// The list a job's results are pushed to.
    static func results(job: String) -> String { "curtain:job:\(job):results" }

    /// The results a named job's driver has taken, kept until the job ends (for a driver that reattaches).
    static func received(job: String) -> String { "curtain:job:\(job):received" }

    /// Present once a job is cancelled or over: workers skip its remaining tasks.
    static func cancelled(job: String) -> String { "curtain:job:\(job):cancelled" }
}
