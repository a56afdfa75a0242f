public import NIOCore

/// A Swift concurrency `TaskExecutor` that runs jobs on a NIO event loop.
///
/// Code that talks to one connection in a tight request/reply loop pays two thread hops per call when it runs
/// on the global executor (caller → event loop → caller). Running it on the connection's own event loop
/// removes both:
///
/// ```swift
/// let connection = try await RESPConnection.connect(configuration: config)
/// try await withTaskExecutorPreference(connection.taskExecutor) {
///     for key in keys { _ = try await connection.send("GET", key) }   // no thread hops
/// }
/// ```
///
/// Work that blocks or computes for long must not run here: it would stall every connection on that loop.
public final class EventLoopTaskExecutor: TaskExecutor, Sendable {
    /// The event loop that runs the jobs.
    public let eventLoop: any EventLoop

    /// Creates an executor for `eventLoop`.
    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Runs `job` on the event loop.
    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        eventLoop.execute {
            unowned.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }

    /// Suspends the calling task for `duration`, woken by this event loop's own timer.
    ///
    /// `Task.sleep` is woken through the global executor: on Linux its timer fires on a thread of the
    /// cooperative pool, so while CPU-bound tasks hold every thread of that pool a sleeping task is not woken,
    /// even one that prefers this executor. Periodic work that must keep its schedule whatever user code does
    /// (lease renewals, heartbeats) sleeps here instead: from a task that prefers this executor, it never needs
    /// the pool.
    ///
    /// - Throws: `CancellationError` if the task is cancelled first.
    public func sleep(for duration: Duration) async throws {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = max(0, seconds) &* 1_000_000_000 &+ max(0, attoseconds / 1_000_000_000)
        let scheduled = eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {}
        do {
            try await withTaskCancellationHandler {
                try await scheduled.futureResult.get()
            } onCancel: {
                scheduled.cancel()
            }
        } catch {
            throw CancellationError()
        }
    }
}
