import CoreMetrics
import Instrumentation
import Metrics
import Prometheus
import ServiceContextModule
import Synchronization
import Tracing

/// Curtain's metrics, through swift-metrics (whatever backend the application bootstrapped; nothing
/// without one), in base units and without per-task or per-worker labels:
///
/// - `curtain_tasks_total{function,outcome}`: runs that ended, by `outcome` (`succeeded`, `failed`,
///   `retried`);
/// - `curtain_task_duration_seconds{function}` and `curtain_task_queue_wait_seconds{function}`: timers;
/// - `curtain_tasks_outstanding`: tasks submitted and not yet answered, over this process's jobs;
/// - `curtain_workers`: live workers (as the dashboard last counted them, or as started);
/// - `curtain_retries_total`, `curtain_duplicates_total`: runs sent again, answers dropped as duplicates;
/// - `curtain_actor_call_duration_seconds`: calls to actors in other processes.
///
/// `CURTAIN_METRICS=prometheus` (``CloudConfiguration/prometheus``) bootstraps swift-prometheus for the
/// process and serves the exposition at the dashboard's `/metrics`.
public enum CurtainMetrics {
    /// The registry `CURTAIN_METRICS=prometheus` bootstrapped, if it did.
    static let prometheus = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Bootstraps swift-metrics with a Prometheus registry, once per process (later calls keep the first).
    /// An application that bootstraps its own metrics backend must not ask for this too: swift-metrics
    /// allows one bootstrap per process.
    public static func bootstrapPrometheus() {
        prometheus.withLock { registry in
            guard registry == nil else { return }
            let created = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: created))
            registry = created
        }
    }

    /// The Prometheus text exposition of the bootstrapped registry, if there is one.
    static func exposition() -> String? {
        prometheus.withLock { $0?.emitToString() }
    }

    /// Changes the count of outstanding tasks over this process's jobs (a meter: increments and
    /// decrements from concurrent jobs add up in the backend, in any order).
    static func outstandingChanged(by delta: Int) {
        let meter = CoreMetrics.Meter(label: "curtain_tasks_outstanding")
        if delta > 0 { meter.increment(by: Double(delta)) } else if delta < 0 { meter.decrement(by: Double(-delta)) }
    }

    /// Records the live worker count.
    static func workers(_ count: Int) {
        CoreMetrics.Gauge(label: "curtain_workers").record(count)
    }

    /// The duration of one call to an actor in another process.
    static func actorCall(_ duration: Duration) {
        CoreMetrics.Timer(label: "curtain_actor_call_duration_seconds").recordNanoseconds(Int64(duration.microseconds) * 1000)
    }
}

/// One job's metric handles (made once per job: cheap to use per result, nothing without a backend).
struct JobMetrics {
    let succeeded: CoreMetrics.Counter
    let failed: CoreMetrics.Counter
    let retried: CoreMetrics.Counter
    let duration: CoreMetrics.Timer
    let queueWait: CoreMetrics.Timer
    let retries: CoreMetrics.Counter
    let duplicates: CoreMetrics.Counter

    init(function: String) {
        succeeded = CoreMetrics.Counter(label: "curtain_tasks_total", dimensions: [("function", function), ("outcome", "succeeded")])
        failed = CoreMetrics.Counter(label: "curtain_tasks_total", dimensions: [("function", function), ("outcome", "failed")])
        retried = CoreMetrics.Counter(label: "curtain_tasks_total", dimensions: [("function", function), ("outcome", "retried")])
        duration = CoreMetrics.Timer(label: "curtain_task_duration_seconds", dimensions: [("function", function)])
        queueWait = CoreMetrics.Timer(label: "curtain_task_queue_wait_seconds", dimensions: [("function", function)])
        retries = CoreMetrics.Counter(label: "curtain_retries_total")
        duplicates = CoreMetrics.Counter(label: "curtain_duplicates_total")
    }
}

/// Trace contexts across processes: what the tracer injects into a task envelope, and the span a worker
/// opens as its child.
enum TaskTracing {
    /// A carrier of string headers (W3C `traceparent`/`tracestate` with OpenTelemetry's propagator).
    struct Headers: Injector, Extractor {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    }

    /// A tracer used instead of the bootstrapped one within a task (tests: one process, many suites, one
    /// bootstrap allowed).
    @TaskLocal static var tracerOverride: (any Tracer)?

    static var tracer: any Tracer { tracerOverride ?? InstrumentationSystem.tracer }

    /// The job's span, started in the caller's context, and the headers its tasks carry.
    static func startJob(function: String) -> (span: any Span, headers: [String: String]) {
        let tracer = self.tracer
        let span = tracer.startSpan("curtain.job \(function)", context: ServiceContext.current ?? .topLevel, ofKind: .producer)
        var headers: [String: String] = [:]
        tracer.inject(span.context, into: &headers, using: Headers())
        return (span, headers)
    }

    /// Runs `body` in a span that is a child of the job's (when the envelope carries its context).
    static func run<T>(
        _ envelope: TaskEnvelope, _ body: () async -> T
    ) async -> T {
        guard !envelope.traceContext.isEmpty else { return await body() }
        let tracer = self.tracer
        var context = ServiceContext.topLevel
        tracer.extract(envelope.traceContext, into: &context, using: Headers())
        let span = tracer.startSpan("curtain.task \(envelope.function)", context: context, ofKind: .consumer)
        span.attributes["curtain.job"] = envelope.jobID
        span.attributes["curtain.task.index"] = Int(envelope.index)
        span.attributes["curtain.task.attempt"] = Int(envelope.attempt)
        defer { span.end() }
        return await ServiceContext.withValue(span.context) { await body() }
    }
}
