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
}
