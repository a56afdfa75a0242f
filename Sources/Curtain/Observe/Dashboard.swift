public import CurtainRESP
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The live dashboard (`CURTAIN_DASHBOARD=127.0.0.1:8265`, ``CloudConfiguration/dashboard``): one
/// self-contained page (no CDN, no request leaves its origin), updated twice a second over server-sent
/// events, with the jobs and their progress, a task stream with a lane per worker, where each job's time
/// went, failed runs with their error and input, workers, queues and dead letters. Bound anywhere but
/// loopback, it asks for a token (`?token=` or `Authorization: Bearer`).
///
/// Built on NIOHTTP1, which Curtain's SwiftNIO dependency already carries, so a dashboard costs the core
/// no new package (Hummingbird would add its router, services and their build time to every program).
public final class Dashboard: Sendable {
    private let channel: any Channel
    /// The address it serves, e.g. `http://127.0.0.1:8265/` (with the token, when one is needed).
    public let url: String
    private let snapshot: DashboardSnapshot

    private init(channel: any Channel, url: String, snapshot: DashboardSnapshot) {
        self.channel = channel
        self.url = url
        self.snapshot = snapshot
    }

    /// Serves the dashboard on `address` (`host:port`; port 0 picks a free one), reading the cluster's
    /// state from the store `client` talks to (if any) and the tasks from ``TaskRecorder/shared``.
    ///
    /// On loopback without a token it answers only requests addressed to a loopback name (so a web page
    /// elsewhere cannot reach it through DNS rebinding).
    ///
    /// - Throws: ``ConfigurationError`` for an address that is not `host:port`, a token missing where one
    ///   is needed, or a token of other characters than letters, digits, `-`, `.`, `_` and `~`; the
    ///   bind's error if the port is taken.
    public static func start(address: String, token: String? = nil, client: RESPClient?) async throws -> Dashboard {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port)
        else { throw ConfigurationError(description: "CURTAIN_DASHBOARD='\(address)' is not host:port (port 0 to 65535)") }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let loopback = host == "127.0.0.1" || host == "::1" || host == "localhost"
        let token = token.flatMap { $0.isEmpty ? nil : $0 }
        guard loopback || token != nil else {
            throw ConfigurationError(
                description: "CURTAIN_DASHBOARD=\(address) is not on loopback: set CURTAIN_DASHBOARD_TOKEN so that only people with it see the cluster")
        }
        if let token {
            let allowed = token.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "~")
            }
            guard allowed, token.utf8.count >= 8 else {
                throw ConfigurationError(
                    description: "CURTAIN_DASHBOARD_TOKEN must be at least 8 letters, digits, '-', '.', '_' or '~' (it travels in the page's URL)")
            }
        }
        let snapshot = DashboardSnapshot(client: client)
        let connections = DashboardConnections()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                connections.add(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(
                        DashboardHandler(snapshot: snapshot, token: token, loopbackOnly: token == nil))
                }
            }
            .bind(host: host, port: port).get()
        let bound = channel.localAddress?.port ?? port
        let shown = host.contains(":") ? "[\(host)]" : host
        let url = "http://\(shown):\(bound)/" + (token.map { "?token=" + $0 } ?? "")
        snapshot.start(connections: connections)
        return Dashboard(channel: channel, url: url, snapshot: snapshot)
    }

    /// Stops serving: the listening socket and every open connection (event streams included).
    public func close() async {
        snapshot.stop()
        try? await channel.close()
        await snapshot.connections?.closeAll()
    }
}

/// The dashboard's open connections, closed with it.
final class DashboardConnections: Sendable {
    private let open = Mutex<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        open.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in _ = open.withLock { $0.removeValue(forKey: id) } }
    }

    func closeAll() async {
        for channel in open.withLock({ Array($0.values) }) { try? await channel.close() }
    }
}

/// The state the page shows, as JSON. While someone watches (an event stream is open, or the state was
/// asked for in the last 10 s) a background task rebuilds it twice a second, off the event loops, and
/// every stream sends that one string; the cluster's part (read from the store by SCAN) is refreshed
/// once a second then, and not at all while nobody looks.
final class DashboardSnapshot: Sendable {
    private let client: RESPClient?
    private let cluster = Mutex<String>("null")
    private let latest = Mutex<String?>(nil)
    private let task = Mutex<Task<Void, Never>?>(nil)
    private let state = Mutex<(connections: DashboardConnections?, lastAsked: ContinuousClock.Instant?)>((nil, nil))
    /// Open event streams.
    let viewers = Atomic<Int>(0)

    init(client: RESPClient?) { self.client = client }

    var connections: DashboardConnections? { state.withLock { $0.connections } }

    func start(connections: DashboardConnections) {
        state.withLock { $0.connections = connections }
        let refresh = Task { [self] in
            var tick = 0
            while !Task.isCancelled {
                if watched {
                    if tick % 2 == 0, let client, let status = try? await ClusterStatus.read(from: client, deadLetterLimit: 50) {
                        CurtainMetrics.workers(status.workers.count)
                        let extras = (try? await Self.actorsAndObjects(client)) ?? #""spawned":[],"objects":[]"#
                        var text = Self.clusterJSON(status)
                        text.removeLast()
                        text += "," + extras + "}"
                        cluster.withLock { $0 = text }
                    }
                    // Built on NIO's thread pool, not the cooperative pool a program's tasks may be holding.
                    if let text = try? await NIOThreadPool.singleton.runIfActive({ [self] in json() }) {
                        latest.withLock { $0 = text }
                    }
                    tick += 1
                }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        task.withLock { $0 = refresh }
    }

    func stop() { task.withLock { $0?.cancel() } }

    /// Whether anyone looks now.
    private var watched: Bool {
        if viewers.load(ordering: .relaxed) > 0 { return true }
        guard let asked = state.withLock({ $0.lastAsked }) else { return false }
        return ContinuousClock.now - asked < .seconds(10)
    }

    /// The latest state for an event stream (built by the background task), if there is one yet.
    var current: String? { latest.withLock { $0 } }

    /// The state now, for a request (and the background task keeps it fresh for a while).
    func asked() -> String {
        state.withLock { $0.lastAsked = ContinuousClock.now }
        return json()
    }

    /// The whole state: jobs, the task stream of the last 60 s, failures, and the cluster.
    func json(recorder: TaskRecorder = .shared) -> String {
        let now = StoreClock.now()
        var out = #"{"now":\#(now),"dropped":\#(recorder.dropped),"jobs":["#
        let tallies = recorder.tallies().suffix(20)
        out += tallies.map { t in
            let elapsed = Double(max(1, (t.ended ?? now) - t.began)) / 1e6
            let rate = Double(t.done) / elapsed
            let eta = t.ended == nil && rate > 0 && t.submitted > t.done ? Double(t.submitted - t.done) / rate : 0
            return #"{"job":"# + JSON.string(t.job) + #","function":"# + JSON.string(t.function)
                + #","began":\#(t.began),"ended":\#(t.ended ?? 0),"submitted":\#(t.submitted),"done":\#(t.done)"#
                + #","failed":\#(t.failedRuns),"runs":\#(t.runs),"workers":\#(t.workers.count),"eta":\#(Format.fixed(eta, digits: 1))"#
                + #","where":{"encode":\#(t.encodeMicros),"queue wait":\#(t.queueWait.sum),"run":\#(t.runTime.sum),"result wait":\#(t.resultWait.sum),"decode":\#(t.decodeMicros)}}"#
        }.joined(separator: ",")
        out += "],"
        // The task stream: the runs of the last 60 s, a lane per worker, and this process's calls to actors
        // in other processes, a lane per actor (bands beyond 2,000 of them), from the first of them on (so a
        // short job fills the width).
        let window = now - 60_000_000
        let recent = recorder.recent(since: window, limit: 50_000)
        let calls = recorder.recentActorCalls(since: window, limit: 50_000)
        let starts = [recent.lazy.filter { $0.started > 0 }.map(\.started).min(), calls.lazy.map(\.started).min()].compactMap { $0 }
        let first = starts.min() ?? window
        let since = max(window, first - max(1000, (now - first) / 50))
        /// A slice in a lane: start and end (µs), whether it succeeded, and its label (JSON).
        typealias Slice = (start: Int64, end: Int64, ok: Bool, label: String)
        var lanes: [String: (kind: String, slices: [Slice])] = [:]
        for r in recent where r.started > 0 {
            lanes[r.worker, default: ("worker", [])].slices.append((r.started, r.ended, r.succeeded, String(r.index)))
        }
        for c in calls {
            lanes["→ " + c.actor, default: ("actor", [])].slices.append((c.started, c.ended, c.succeeded, JSON.string(c.method)))
        }
        let bands = recent.count + calls.count > 2000
        out += #""stream":{"from":\#(since),"to":\#(now),"bands":\#(bands),"workers":["#
        out += lanes.keys.sorted { (lanes[$0]!.kind == "worker" ? 0 : 1, $0) < (lanes[$1]!.kind == "worker" ? 0 : 1, $1) }.map { name in
            let (kind, slices) = lanes[name]!
            var body = #"{"worker":"# + JSON.string(name) + #","kind":"\#(kind)","runs":["#
            if bands {
                // 120 columns: the busy fraction of each.
                let span = max(1, (now - since + 119) / 120)
                var busy = [Int64](repeating: 0, count: 120)
                for r in slices {
                    // Each slice's overlap with each column it covers, in whole microseconds, clamped to the window.
                    let from = min(max(r.start - since, 0), 120 * span)
                    let to = min(max(r.end - since, from), 120 * span)
                    guard to > from else { continue }
                    for column in Int(from / span)...min(119, Int((to - 1) / span)) {
                        let lo = max(from, Int64(column) * span)
                        let hi = min(to, Int64(column + 1) * span)
                        if hi > lo { busy[column] += hi - lo }
                    }
                }
                body += busy.map { Format.fixed(min(1, Double($0) / Double(span)), digits: 2) }.joined(separator: ",")
            } else {
                body += slices.map { r in "[\(r.start),\(max(r.end, r.start + 1)),\(r.ok ? 1 : 0),\(r.label)]" }.joined(separator: ",")
            }
            return body + "]}"
        }.joined(separator: ",")
        out += "]},"
        // Failed runs, newest first (50).
        var failures: [TaskRecord] = []
        for t in tallies.reversed() where failures.count < 50 { failures += recorder.failures(job: t.job).suffix(50 - failures.count).reversed() }
        out += #""failures":["# + failures.map(Self.failureJSON).joined(separator: ",") + "],"
        out += #""calls":["# + recorder.actorCalls().prefix(200).map { a in
            var one = #"{"actor":"# + JSON.string(a.actor)
            one += #","host":"# + JSON.string(a.host)
            one += #","calls":\#(a.calls),"failures":\#(a.failures),"p50_us":\#(a.latency.quantile(0.5)),"p99_us":\#(a.latency.quantile(0.99))}"#
            return one
        }.joined(separator: ",") + "],"
        out += #""cluster":"# + cluster.withLock { $0 } + "}"
        return out
    }

    /// The actors spawned in the cluster (their records: type, host, restarts left) and the largest shared
    /// objects (`MEMORY USAGE`), as JSON members.
    static func actorsAndObjects(_ client: RESPClient) async throws -> String {
        let actorKeys = Array(try await client.allKeys(matching: "curtain:{*}:actor:*").prefix(500))
        let records = actorKeys.isEmpty ? [] : try await client.pipeline(actorKeys.map { RESPCommand("HMGET", $0, "type", "host", "restarts") })
        var spawned: [String] = []
        for (key, reply) in zip(actorKeys, records) {
            let fields = (reply.array ?? []).map(\.string)
            guard fields.count == 3, let host = fields[1] else { continue }
            let name = key.split(separator: "}:actor:", maxSplits: 1).last.map(String.init) ?? key
            var one = #"{"name":"# + JSON.string(name)
            one += #","type":"# + JSON.string(fields[0] ?? "")
            one += #","host":"# + JSON.string(host)
            one += #","restarts_left":\#(Int(fields[2] ?? "") ?? 0)}"#
            spawned.append(one)
        }
        let objectKeys = Array(try await client.allKeys(matching: "curtain:mem:*").prefix(2000))
        var objects: [(key: String, type: String, bytes: Int)] = []
        if !objectKeys.isEmpty {
            var commands: [RESPCommand] = []
            for key in objectKeys {
                commands.append(RESPCommand("TYPE", key))
                commands.append(RESPCommand("MEMORY", "USAGE", key))
            }
            let replies = try await client.pipeline(commands)
            for (n, key) in objectKeys.enumerated() {
                guard let type = replies[2 * n].string, type != "none" else { continue }
                objects.append((key, type, replies[2 * n + 1].int ?? 0))
            }
        }
        objects.sort { $0.bytes > $1.bytes }
        let listed = objects.prefix(100).map { o in
            #"{"key":"# + JSON.string(o.key) + #","type":"# + JSON.string(o.type) + #","bytes":\#(o.bytes)}"#
        }
        return #""spawned":["# + spawned.joined(separator: ",") + #"],"objects":["# + listed.joined(separator: ",") + "]"
    }

    static func failureJSON(_ f: TaskRecord) -> String {
        var out = #"{"job":"# + JSON.string(f.job)
        out += #","function":"# + JSON.string(f.function)
        out += #","index":\#(f.index),"attempt":\#(f.attempt),"worker":"# + JSON.string(f.worker)
        out += #","kind":"# + JSON.string(f.failureKind ?? "")
        out += #","error":"# + JSON.string(f.failure ?? "")
        out += #","input":"# + JSON.string(f.input ?? "")
        return out + "}"
    }

    static func clusterJSON(_ status: ClusterStatus) -> String {
        let nowMs = Int(StoreClock.now() / 1000)
        var workers: [String] = []
        for w in status.workers {
            var one = #"{"id":"# + JSON.string(w.id)
            one += #","host":"# + JSON.string(w.host)
            one += #","build":"# + JSON.string(w.build)
            one += #","pid":\#(w.pid),"tasks":\#(w.tasksDone),"beat_age_ms":\#(max(0, nowMs - w.lastBeat))"#
            one += #","in_flight":\#(w.inFlight),"rss":\#(w.rssBytes ?? 0)}"#
            workers.append(one)
        }
        var queues: [String] = []
        for q in status.queues {
            var one = #"{"build":"# + JSON.string(q.build)
            one += #","key":"# + JSON.string(q.key)
            one += #","depth":\#(q.depth),"placed":\#(q.placed)}"#
            queues.append(one)
        }
        var dead: [String] = []
        for d in status.deadLetters.suffix(50) {
            var one = #"{"job":"# + JSON.string(d.job)
            one += #","function":"# + JSON.string(d.function)
            one += #","worker":"# + JSON.string(d.worker)
            one += #","reason":"# + JSON.string(d.reason)
            one += #","index":\#(d.index),"attempts":\#(d.attempts),"at":\#(d.at)}"#
            dead.append(one)
        }
        var jobs: [String] = []
        for j in status.jobs {
            var one = #"{"job":"# + JSON.string(j.id)
            one += #","function":"# + JSON.string(j.function)
            one += #","driver":"# + JSON.string(j.driver)
            one += #","submitted":\#(j.submitted),"done":\#(j.completed + j.failed),"failed":\#(j.failed),"began":\#(j.started * 1000)}"#
            jobs.append(one)
        }
        var out = #"{"workers":["# + workers.joined(separator: ",")
        out += #"],"queues":["# + queues.joined(separator: ",")
        out += #"],"dead":["# + dead.joined(separator: ",")
        out += #"],"jobs":["# + jobs.joined(separator: ",")
        return out + "]}"
    }
}

/// Answers the dashboard's requests: the page, the state as JSON, the state as server-sent events, a
/// job's trace and report.
final class DashboardHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let snapshot: DashboardSnapshot
    private let token: String?
    /// Whether requests must name a loopback host (a dashboard without a token, on loopback).
    private let loopbackOnly: Bool
    private var head: HTTPRequestHead?
    private var ticker: RepeatedTask?
    /// The request's HTTP version and whether the connection stays open after the response.
    private var version = HTTPVersion.http1_1
    private var keepAlive = true
    /// The state an event stream sent last (an unchanged state is not sent again).
    private var lastSent: String?

    init(snapshot: DashboardSnapshot, token: String?, loopbackOnly: Bool) {
        self.snapshot = snapshot
        self.token = token
        self.loopbackOnly = loopbackOnly
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let ticker {
            ticker.cancel()
            snapshot.viewers.subtract(1, ordering: .relaxed)
        }
        ticker = nil
        context.fireChannelInactive()
    }

    /// Equal in time independent of where they differ.
    static func same(_ a: Substring, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<min(x.count, y.count) { difference |= x[i] ^ y[i] }
        return difference == 0
    }

    /// Whether a `Host` header names this machine's loopback (with any port).
    static func isLoopbackHost(_ host: String?) -> Bool {
        guard let host else { return false }
        let name: Substring
        if host.hasPrefix("[") {
            name = host.split(separator: "]", maxSplits: 1).first.map { $0.dropFirst() } ?? ""
        } else {
            name = host.split(separator: ":", maxSplits: 1).first ?? ""
        }
        return name == "127.0.0.1" || name == "localhost" || name == "::1"
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        version = head.version
        keepAlive = head.isKeepAlive
        let (path, query) = Self.split(head.uri)
        if let token {
            let bearer = head.headers.first(name: "authorization").map { $0.hasPrefix("Bearer ") && Self.same($0.dropFirst(7), token) } ?? false
            guard bearer || query["token"].map({ Self.same($0[...], token) }) == true else {
                return send(context, status: .unauthorized, type: "text/plain; charset=utf-8", body: "a token is needed: ?token=… or Authorization: Bearer …\n")
            }
        } else if loopbackOnly, !Self.isLoopbackHost(head.headers.first(name: "host")) {
            return send(context, status: .forbidden, type: "text/plain; charset=utf-8",
                        body: "this dashboard answers requests for 127.0.0.1, localhost or [::1] only\n")
        }
        guard head.method == .GET else {
            return send(context, status: .methodNotAllowed, type: "text/plain; charset=utf-8", body: "only GET\n")
        }
        switch path {
        case "/", "/index.html":
            send(context, status: .ok, type: "text/html; charset=utf-8", body: DashboardPage.html, page: true)
        case "/api/state":
            let snapshot = self.snapshot
            offLoop(context) { (.ok, "application/json", snapshot.asked()) }
        case "/events":
            startEvents(context)
        case "/metrics":
            // The Prometheus exposition, when this process bootstrapped it (CURTAIN_METRICS=prometheus).
            guard let text = CurtainMetrics.exposition() else {
                return send(context, status: .notFound, type: "text/plain; charset=utf-8",
                            body: "no Prometheus registry here: start the driver with CURTAIN_METRICS=prometheus\n")
            }
            send(context, status: .ok, type: "text/plain; version=0.0.4; charset=utf-8", body: text)
        default:
            if path == "/api/actor-trace" {
                // Every call to an actor the ring holds, as a trace of its own.
                offLoop(context) {
                    let recorder = TaskRecorder.shared
                    return (.ok, "application/json", TimelineExport.chromeTrace(
                        [], calls: recorder.allActorCalls(), title: "actor calls", dropped: recorder.droppedActorCalls))
                }
            } else if path.hasPrefix("/api/trace/") {
                let job = String(path.dropFirst("/api/trace/".count))
                offLoop(context) {
                    let recorder = TaskRecorder.shared
                    guard let tally = recorder.tally(job: job) else { return (.notFound, "text/plain; charset=utf-8", "no job \(job) here\n") }
                    let records = recorder.records(job: job)
                    let calls = recorder.actorCalls(from: tally.began, to: tally.ended ?? StoreClock.now())
                    return (.ok, "application/json", TimelineExport.chromeTrace(
                        records, calls: calls, title: job, dropped: tally.runs - records.count))
                }
            } else if path.hasPrefix("/api/report/") {
                let job = String(path.dropFirst("/api/report/".count))
                offLoop(context) {
                    let recorder = TaskRecorder.shared
                    guard let tally = recorder.tally(job: job) else { return (.notFound, "text/plain; charset=utf-8", "no job \(job) here\n") }
                    let records = recorder.records(job: job)
                    return (.ok, "text/html; charset=utf-8", TimelineExport.html(
                        records: records, tally: tally, failures: recorder.failures(job: job), title: "\(tally.function) · job \(job)",
                        dropped: tally.runs - records.count, beyondMemory: recorder.failuresBeyondMemory(job: job)))
                }
            } else {
                send(context, status: .notFound, type: "text/plain; charset=utf-8", body: "nothing at \(path)\n")
            }
        }
    }

    /// Builds a response on NIO's thread pool (exports of 100,000 runs take a while; neither the event
    /// loop nor Swift's cooperative pool, which a program's tasks may be holding, waits for it), then
    /// sends it from the loop.
    private func offLoop(
        _ context: ChannelHandlerContext, _ build: @escaping @Sendable () -> (HTTPResponseStatus, String, String)
    ) {
        let loop = context.eventLoop
        let bound = NIOLoopBound((context, self), eventLoop: loop)
        NIOThreadPool.singleton.runIfActive(eventLoop: loop, build).whenSuccess { response in
            let (context, handler) = bound.value
            guard context.channel.isActive else { return }
            handler.send(context, status: response.0, type: response.1, body: response.2)
        }
    }

    private func send(_ context: ChannelHandlerContext, status: HTTPResponseStatus, type: String, body: String, page: Bool = false) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: type)
        headers.add(name: "content-length", value: String(body.utf8.count))
        headers.add(name: "cache-control", value: "no-store")
        headers.add(name: "x-content-type-options", value: "nosniff")
        headers.add(name: "referrer-policy", value: "no-referrer")
        // Nothing loads from elsewhere; only the page runs its (inline) script, and nothing may frame it.
        let script = page ? "script-src 'unsafe-inline'; connect-src 'self'" : "script-src 'none'"
        headers.add(
            name: "content-security-policy",
            value: "default-src 'none'; \(script); style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// Server-sent events: the latest state every half second (the one string the background task built
    /// for every viewer), skipped while the client is not reading.
    private func startEvents(_ context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/event-stream")
        headers.add(name: "cache-control", value: "no-store")
        headers.add(name: "x-content-type-options", value: "nosniff")
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .ok, headers: headers))), promise: nil)
        let snapshot = self.snapshot
        snapshot.viewers.add(1, ordering: .relaxed)
        let loop = context.eventLoop
        let bound = NIOLoopBound((context, self), eventLoop: loop)
        ticker = loop.scheduleRepeatedTask(initialDelay: .milliseconds(50), delay: .milliseconds(500)) { _ in
            let (context, handler) = bound.value
            guard context.channel.isActive, context.channel.isWritable, let state = snapshot.current, state != handler.lastSent else { return }
            handler.lastSent = state
            context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "data: " + state + "\n\n")))), promise: nil)
        }
    }

    /// `%XX` escapes (and `+`) decoded; a malformed escape is kept as it is.
    static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2,
                let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The path and the query's parameters of a request URI.
    static func split(_ uri: String) -> (String, [String: String]) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, [:]) }
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { query[String(parts[0])] = percentDecoded(parts[1]) }
        }
        return (String(uri[..<mark]), query)
    }
}
