import CurtainRESP

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why a Curtain configuration is unusable.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, naming the setting and the value.
    public var description: String
}

/// Where tasks run, chosen by configuration rather than by code.
public struct CloudConfiguration: Sendable, Hashable {
    /// The execution backend.
    public enum Backend: Sendable, Hashable {
        /// Tasks run in this process, through the same encode/decode path (debuggable under lldb).
        case inprocess
        /// ``CloudConfiguration/workers`` worker processes spawned from this executable, meeting the driver in
        /// an embedded store it hosts on a Unix socket. Nothing to install. The default.
        case processes
        /// Driver and workers meet in an existing store (`redis://`, `rediss://`, `unix://`); workers are this
        /// executable started anywhere with `CURTAIN_ROLE=worker CURTAIN_STORE=<url>`.
        case store(url: String)
    }

    /// The backend.
    public var backend: Backend
    /// How many worker processes the `processes` backend starts (and how many tasks `inprocess` runs at once).
    public var workers: Int
    /// The executable the `processes` backend starts as workers; `nil` means this process's own executable.
    /// Tests point it at a fixture.
    public var workerExecutable: String?
    /// The arguments the `processes` backend starts workers with; `nil` means this process's own (so the
    /// worker takes the same path through the program to its `Cloud.start`).
    public var workerArguments: [String]?
    /// Overrides the build id (normally derived from the executable) for driver and spawned workers alike.
    public var buildID: String?
    /// How many times a task whose worker process crashed is run again (thrown errors are retried only when
    /// a job asks, with ``JobOptions/retries``). A crash is charged to a task only when it was the one task
    /// its worker held; batch mates of a crashing task are re-run without charge.
    public var crashRetries: Int = 2
    /// Whether every job prints its one-line ``JobSummary`` on standard error (`CURTAIN_SUMMARY=1`).
    public var printSummaries: Bool = false
    /// Whether jobs may draw progress bars on a terminal (`CURTAIN_PROGRESS=0` turns them off).
    public var showProgress: Bool = true
    /// How long a process that hosts actors may go without renewing its heartbeat before calls to its
    /// actors fail with ``ActorCallError/Kind/hostLost`` (`CURTAIN_HEARTBEAT_MS`, 150 ms to 10 min; default
    /// 3 s). Each process renews its heartbeat three times per TTL.
    public var heartbeatTTL: Duration = .seconds(3)
    /// Where objects live (`CURTAIN_STORAGE`): `file:///path` (a directory shared by the driver and its
    /// local workers) or, with `CurtainS3`, `s3://bucket/prefix`. `nil` means
    /// `file://<temporary directory>/curtain-storage`, kept across runs.
    public var storage: String?
    /// Task inputs, captures and outputs of more bytes than this travel through ``storage`` as references
    /// instead of through the store's queues (`CURTAIN_SPILL_BYTES`; default 256 KiB), so a job's data has
    /// no fixed cap; the objects are deleted when the job ends.
    public var spillThreshold: Int = 256 * 1024
    /// A value captured or passed as input whose encoded form is larger than this (`CURTAIN_SHARE_BYTES`;
    /// default 64 KiB) is stored once under its content hash (SHA-256 with the Signing trait) and referenced from each task: above
    /// ``spillThreshold`` in ``storage``, below it in the store (expiring an hour after its last use). Each
    /// worker keeps the values it has decoded in a cache (`CURTAIN_CACHE_BYTES`, default 1 GiB, least
    /// recently used out first), so a value captured by every task of every job reaches each worker once.
    /// Binary format only.
    public var shareThreshold: Int = 64 * 1024
    /// How captures, inputs, outputs and actor arguments are written (`CURTAIN_PAYLOAD_FORMAT`: `binary`,
    /// the default, or `json` for payloads readable in the store while debugging). Workers answer in the
    /// format their task came in.
    public var payloadFormat: PayloadFormat = PayloadCodec.defaultFormat
    /// The largest task input, function value (captures) or output, in encoded bytes, and the largest queue
    /// entry a worker reads (`CURTAIN_MAX_PAYLOAD_BYTES`; default 256 MiB). A larger input or function value
    /// fails its job with an ``InputEncodingError`` before it is sent, a larger output fails its task, and a
    /// larger queue entry is refused unread, so one oversized value cannot exhaust a worker's memory.
    public var maxPayloadBytes: Int = CloudConfiguration.defaultMaxPayload
    /// How long a worker told to stop (SIGTERM, SIGINT) may take to finish the task it is running before it
    /// hands everything it holds back to the queue and exits 0 anyway (`CURTAIN_DRAIN_SECONDS`, 1 to 3600;
    /// default 25 s, inside Kubernetes' default grace period of 30 s).
    public var drainTimeout: Duration = .seconds(25)
    /// How calls to actors in other processes travel (`CURTAIN_ACTOR_PATH`: `auto`, `direct` or `store`;
    /// default ``ActorPath/auto``): over a direct connection to the actor's host, through the store, or
    /// directly whenever the host can be reached.
    public var actorPath: ActorPath = .auto
    /// The address other processes should use for this process's direct actor calls (`CURTAIN_ADVERTISE`:
    /// `host` or `host:port`), for NAT and Kubernetes pods; by default the address this process reaches the
    /// store from (127.0.0.1 for a store on a Unix socket), on a port the kernel picks. When set, the port is
    /// opened on every interface.
    public var advertise: String?
    /// Whether direct actor connections are encrypted (`CURTAIN_ACTOR_TLS`: `1`/`0`); by default (`nil`) they
    /// are when the store is reached over TLS (`rediss://`). Encrypted connections use TLS 1.2 keyed by
    /// each host's token, which callers learn from the store, so no certificates are needed; a process that
    /// encrypts calls no host over a plain connection (those calls go through the store, or fail with
    /// ``ActorPath/direct``). With a plain `redis://` store the tokens cross the network in clear, so the
    /// connections are sealed against listeners but not against someone who can also read the store's
    /// traffic: use it with a store on a trusted link. Needs the `TLS` package trait.
    public var actorTLS: Bool?
    /// Whether a task that needs a shared value some live workers hold (and others do not) is placed on
    /// one of those workers' own queues (`CURTAIN_PLACEMENT`: `1`/`0`; default on). No worker gets more
    /// than its fair share of a batch that way, and an idle worker steals from the longest own queue, so
    /// none is starved. Off, every task goes to the shared queue. Workers announce what they hold either way.
    public var placement = true
    /// Where to serve the live dashboard (`CURTAIN_DASHBOARD`: `host:port`, e.g. `127.0.0.1:8265`; port 0
    /// picks a free one); `nil` (the default) serves none. Anywhere but loopback it needs
    /// ``dashboardToken``. See ``Dashboard``.
    public var dashboard: String?
    /// The token a dashboard bound beyond loopback asks for (`CURTAIN_DASHBOARD_TOKEN`).
    public var dashboardToken: String?
    /// A lease endpoint of workers started on demand (`CURTAIN_INVOKE=http://host:port/lease`: Knative,
    /// Cloud Run, OpenFaaS running this executable with `CURTAIN_ROLE=http-worker`). With a shared store
    /// (``Backend/store(url:)``), the driver then leases about one worker per ``tasksPerLease`` tasks of
    /// backlog (``HTTPInvoker``); nothing needs to run before the first job. Several endpoints, separated
    /// by commas (workers addressed one by one), each get the next lease when they have the fewest.
    public var invoke: String?
    /// The token the lease endpoint asks for (`CURTAIN_INVOKE_TOKEN`; the workers' `CURTAIN_LEASE_TOKEN`).
    public var invokeToken: String?
    /// How long each lease may last, in seconds (`CURTAIN_LEASE_SECONDS`; default 60): keep it below the
    /// platform's request timeout. A leased worker ends sooner when it has nothing to do.
    public var leaseSeconds: Double = 60
    /// Tasks of backlog per leased worker (`CURTAIN_TASKS_PER_LEASE`; default 256).
    public var tasksPerLease = 256
    /// The most leases at once (`CURTAIN_MAX_LEASES`; default 64).
    public var maxLeases = 64
    /// Whether every job writes its timeline and report to ``storage`` when it ends (`CURTAIN_REPORT`:
    /// `1`/`0`; default off), as ``JobOptions/report`` does for one job.
    public var reports = false
    /// Whether this process bootstraps swift-metrics with a Prometheus registry and serves it at the
    /// dashboard's `/metrics` (`CURTAIN_METRICS=prometheus`; default off). Leave it off when the application
    /// bootstraps its own metrics backend (swift-metrics allows one per process); Curtain's metrics
    /// (``CurtainMetrics``) go to whichever backend is bootstrapped.
    public var prometheus = false
    /// The default of ``maxPayloadBytes``: 256 MiB.
    public static let defaultMaxPayload = 256 * 1024 * 1024
    /// When set (`CURTAIN_SECRET`), every task envelope and result is signed with HMAC-SHA256 under it, and
    /// workers run nothing unsigned or forged (nor does the driver accept such results). Give workers the
    /// same secret; local workers inherit it. Needs the `Signing` package trait; without it a cloud refuses to
    /// start with an error saying how to enable it.
    public var secret: String?

    /// Creates a configuration; `workers` defaults to the number of active processor cores.
    public init(
        backend: Backend = .processes, workers: Int? = nil, workerExecutable: String? = nil, buildID: String? = nil
    ) {
        self.backend = backend
        self.workers = workers ?? ProcessInfo.processInfo.activeProcessorCount
        self.workerExecutable = workerExecutable
        self.buildID = buildID
    }

    /// Reads `CURTAIN_BACKEND` (`inprocess`, `processes`, or a `redis://`, `rediss://` or `unix://` URL),
    /// `CURTAIN_WORKERS` (a positive integer), `CURTAIN_BUILD_ID`, `CURTAIN_HEARTBEAT_MS`, `CURTAIN_STORAGE`,
    /// `CURTAIN_SPILL_BYTES`, `CURTAIN_SHARE_BYTES`, `CURTAIN_PAYLOAD_FORMAT`, `CURTAIN_MAX_PAYLOAD_BYTES`, `CURTAIN_DRAIN_SECONDS`, `CURTAIN_ACTOR_PATH`, `CURTAIN_ADVERTISE`, `CURTAIN_ACTOR_TLS`, `CURTAIN_PLACEMENT`, `CURTAIN_REPORT`, `CURTAIN_DASHBOARD`, `CURTAIN_DASHBOARD_TOKEN`, `CURTAIN_METRICS`, `CURTAIN_SECRET`, `CURTAIN_SUMMARY` and `CURTAIN_PROGRESS` (`1`/`0`, `true`/`false`, `yes`/`no`); unset variables keep
    /// the defaults.
    ///
    /// - Throws: ``ConfigurationError`` naming the variable and the bad value.
    public static func fromEnvironment(_ environment: [String: String]? = nil) throws(ConfigurationError) -> CloudConfiguration {
        let environment = environment ?? ProcessInfo.processInfo.environment
        var configuration = CloudConfiguration()
        if let value = environment["CURTAIN_BACKEND"], !value.isEmpty {
            switch value.lowercased() {
            case "inprocess", "in-process": configuration.backend = .inprocess
            case "processes", "local": configuration.backend = .processes
            default:
                guard value.hasPrefix("redis://") || value.hasPrefix("rediss://") || value.hasPrefix("unix://") else {
                    throw ConfigurationError(
                        description: "CURTAIN_BACKEND='\(value)' is not inprocess, processes, or a redis://, rediss:// or unix:// URL")
                }
                configuration.backend = .store(url: value)
            }
        }
        if let value = environment["CURTAIN_WORKERS"], !value.isEmpty {
            guard let n = Int(value), n >= 1, n <= 4096 else {
                throw ConfigurationError(description: "CURTAIN_WORKERS='\(value)' is not an integer from 1 to 4096")
            }
            configuration.workers = n
        }
        if let value = environment["CURTAIN_BUILD_ID"], !value.isEmpty {
            configuration.buildID = value
        }
        if let ttl = try heartbeatTTL(in: environment) { configuration.heartbeatTTL = ttl }
        if let value = environment["CURTAIN_STORAGE"], !value.isEmpty { configuration.storage = value }
        if let threshold = try spillThreshold(in: environment) { configuration.spillThreshold = threshold }
        if let value = environment["CURTAIN_SHARE_BYTES"], !value.isEmpty {
            guard let bytes = Int(value), bytes >= 1024 else {
                throw ConfigurationError(description: "CURTAIN_SHARE_BYTES='\(value)' is not an integer of at least 1024")
            }
            configuration.shareThreshold = bytes
        }
        if let value = environment["CURTAIN_PAYLOAD_FORMAT"], !value.isEmpty {
            guard let format = PayloadFormat(rawValue: value.lowercased()) else {
                throw ConfigurationError(description: "CURTAIN_PAYLOAD_FORMAT='\(value)' is neither binary nor json")
            }
            configuration.payloadFormat = format
        }
        if let value = environment["CURTAIN_MAX_PAYLOAD_BYTES"], !value.isEmpty {
            guard let bytes = Int(value), bytes >= 1024 else {
                throw ConfigurationError(description: "CURTAIN_MAX_PAYLOAD_BYTES='\(value)' is not an integer of at least 1024")
            }
            configuration.maxPayloadBytes = bytes
        }
        if let value = environment["CURTAIN_DRAIN_SECONDS"], !value.isEmpty {
            guard let seconds = Int(value), seconds >= 1, seconds <= 3600 else {
                throw ConfigurationError(description: "CURTAIN_DRAIN_SECONDS='\(value)' is not an integer from 1 to 3600")
            }
            configuration.drainTimeout = .seconds(seconds)
        }
        if let value = environment["CURTAIN_ACTOR_PATH"], !value.isEmpty {
            guard let path = ActorPath(rawValue: value.lowercased()) else {
                throw ConfigurationError(description: "CURTAIN_ACTOR_PATH='\(value)' is not auto, direct or store")
            }
            configuration.actorPath = path
        }
        if let value = environment["CURTAIN_ADVERTISE"], !value.isEmpty {
            guard DirectPeer.advertised(value) != nil else {
                throw ConfigurationError(description: "CURTAIN_ADVERTISE='\(value)' is not host or host:port (port 1 to 65535)")
            }
            configuration.advertise = value
        }
        configuration.actorTLS = try flag("CURTAIN_ACTOR_TLS", in: environment)
        configuration.placement = try flag("CURTAIN_PLACEMENT", in: environment) ?? true
        configuration.reports = try flag("CURTAIN_REPORT", in: environment) ?? false
        if let value = environment["CURTAIN_DASHBOARD"], !value.isEmpty { configuration.dashboard = value }
        if let value = environment["CURTAIN_METRICS"], !value.isEmpty {
            guard value.lowercased() == "prometheus" else {
                throw ConfigurationError(description: "CURTAIN_METRICS='\(value)' is not 'prometheus' (the one exporter built in)")
            }
            configuration.prometheus = true
        }
        if let value = environment["CURTAIN_DASHBOARD_TOKEN"], !value.isEmpty { configuration.dashboardToken = value }
        if let value = environment["CURTAIN_INVOKE"], !value.isEmpty {
            do {
                for url in value.split(separator: ",", omittingEmptySubsequences: false) { _ = try HTTPInvoker(url: String(url)) }
            } catch {
                throw ConfigurationError(description: "CURTAIN_INVOKE: \(error)")
            }
            configuration.invoke = value
        }
        if let value = environment["CURTAIN_INVOKE_TOKEN"], !value.isEmpty { configuration.invokeToken = value }
        if let value = environment["CURTAIN_LEASE_SECONDS"], !value.isEmpty {
            guard let seconds = Double(value), seconds >= 2, seconds <= 3600 else {
                throw ConfigurationError(description: "CURTAIN_LEASE_SECONDS='\(value)' is not a number of seconds from 2 to 3600")
            }
            configuration.leaseSeconds = seconds
        }
        func integer(_ name: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
            guard let value = environment[name], !value.isEmpty else { return nil }
            guard let number = Int(value), range.contains(number) else {
                throw ConfigurationError(description: "\(name)='\(value)' is not an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
        if let number = try integer("CURTAIN_TASKS_PER_LEASE", in: 1...1_000_000) { configuration.tasksPerLease = number }
        if let number = try integer("CURTAIN_MAX_LEASES", in: 1...10_000) { configuration.maxLeases = number }
        if let secret = environment["CURTAIN_SECRET"], !secret.isEmpty {
            configuration.secret = secret
        }
        try configuration.checkTraits()
        configuration.printSummaries = try flag("CURTAIN_SUMMARY", in: environment) ?? false
        configuration.showProgress = try flag("CURTAIN_PROGRESS", in: environment) ?? true
        return configuration
    }

    /// Whether this build can sign (it was built with Curtain's `Signing` package trait).
    public static var supportsSigning: Bool {
        #if Signing
        true
        #else
        false
        #endif
    }

    /// Refuses a setting this build of Curtain was compiled without (a secret without the `Signing` trait),
    /// saying exactly how to turn the trait on.
    func checkTraits() throws(ConfigurationError) {
        if secret != nil, !Self.supportsSigning {
            throw ConfigurationError(
                description: "CURTAIN_SECRET is set, and " + RESPConfiguration.traitOff("Signing", keeping: "swift-crypto", name: "signing"))
        }
        if actorTLS == true, !DirectTLS.available {
            throw ConfigurationError(description: "CURTAIN_ACTOR_TLS is on, and " + DirectTLS.traitMissing)
        }
    }

    /// `CURTAIN_SPILL_BYTES`, if set.
    static func spillThreshold(in environment: [String: String]) throws(ConfigurationError) -> Int? {
        guard let value = environment["CURTAIN_SPILL_BYTES"], !value.isEmpty else { return nil }
        guard let bytes = Int(value), bytes >= 1 else {
            throw ConfigurationError(description: "CURTAIN_SPILL_BYTES='\(value)' is not a positive integer")
        }
        return bytes
    }

    /// The storage URL used when none is configured: a directory kept across runs.
    public static var defaultStorage: String {
        "file://" + FileManager.default.temporaryDirectory.appendingPathComponent("curtain-storage").path
    }

    /// `CURTAIN_HEARTBEAT_MS`, if set.
    static func heartbeatTTL(in environment: [String: String]) throws(ConfigurationError) -> Duration? {
        guard let value = environment["CURTAIN_HEARTBEAT_MS"], !value.isEmpty else { return nil }
        guard let ms = Int(value), ms >= 150, ms <= 600_000 else {
            throw ConfigurationError(description: "CURTAIN_HEARTBEAT_MS='\(value)' is not an integer from 150 to 600000")
        }
        return .milliseconds(ms)
    }

    private static func flag(_ name: String, in environment: [String: String]) throws(ConfigurationError) -> Bool? {
        guard let value = environment[name], !value.isEmpty else { return nil }
        switch value.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigurationError(description: "\(name)='\(value)' is not 1/0, true/false, yes/no or on/off")
        }
    }
}
