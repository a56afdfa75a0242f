public import Curtain

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether `marker` was absent (creating it): true once per marker file, across processes.
func firstTime(_ marker: String) -> Bool {
    guard access(marker, F_OK) != 0 else { return false }
    let fd = open(marker, O_CREAT | O_WRONLY, 0o644)
    if fd >= 0 { close(fd) }
    return true
}

/// Writes "<pid> <fence>" to `report` at once (through a temporary file and a rename), for a test waiting to
/// learn who holds a lock.
func reportHolder(_ lease: LockLease, to report: String) {
    let text = "\(getpid()) \(lease.fence)"
    let fd = open(report + ".tmp", O_CREAT | O_WRONLY | O_TRUNC, 0o644)
    if fd >= 0 {
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        rename(report + ".tmp", report)
    }
}

/// `x² + offset`: the plainest remote function, with one capture.
public struct Square: RemoteFunction {
    /// Added to every square (a capture).
    public var offset: Int
    /// Creates the function.
    public init(offset: Int) { self.offset = offset }
    /// `x * x + offset`.
    public func callAsFunction(_ x: Int) async throws -> Int { x * x + offset }
}

/// Throws for every input.
public struct AlwaysThrows: RemoteFunction {
    /// The error it throws.
    public struct Refused: Error, CustomStringConvertible {
        /// The refused input.
        public var value: String
        /// `refused <value>`.
        public var description: String { "refused \(value)" }
    }
    /// Creates the function.
    public init() {}
    /// Always throws ``Refused``.
    public func callAsFunction(_ input: String) async throws -> Int { throw Refused(value: input) }
}

/// Reports the process it ran in, to prove tasks left the driver.
public struct WhereAmI: RemoteFunction {
    /// Creates the function.
    public init() {}
    /// The worker's process id.
    public func callAsFunction(_ input: Int) async throws -> Int32 { getpid() }
}

/// Exits its process the first time it runs for a given marker file, succeeds afterwards.
public struct CrashOnce: RemoteFunction {
    /// A file that records that the crash happened.
    public var marker: String
    /// Creates the function.
    public init(marker: String) { self.marker = marker }
    /// Exits with status 3 if the marker is absent (creating it), else returns `x`.
    public func callAsFunction(_ x: Int) async throws -> Int {
        if firstTime(marker) { exit(3) }
        return x
    }
}

/// Kills its own process with SIGKILL, every time.
public struct AlwaysCrashes: RemoteFunction {
    /// Creates the function.
    public init() {}
    /// Never returns.
    public func callAsFunction(_ x: Int) async throws -> Int {
        kill(getpid(), SIGKILL)
        return x
    }
}

/// Sleeps a little, then squares: slow enough for a test to kill a worker mid-job.
public struct SlowSquare: RemoteFunction {
    /// Milliseconds per call.
    public var milliseconds: Int
    /// Creates the function.
    public init(milliseconds: Int) { self.milliseconds = milliseconds }
    /// `x * x`, after a pause.
    public func callAsFunction(_ x: Int) async throws -> Int {
        try await Task.sleep(for: .milliseconds(milliseconds))
        return x * x
    }
}

/// Appends one byte to a file per call (a side channel that counts calls across processes), then pauses.
public struct CountedSleep: RemoteFunction {
    /// The file that counts calls.
    public var counter: String
    /// Milliseconds per call.
    public var milliseconds: Int
    /// Creates the function.
    public init(counter: String, milliseconds: Int) {
        self.counter = counter
        self.milliseconds = milliseconds
    }
    /// Records the call, sleeps, returns `x`.
    public func callAsFunction(_ x: Int) async throws -> Int {
        let fd = open(counter, O_CREAT | O_WRONLY | O_APPEND, 0o644)
        if fd >= 0 {
            var byte: UInt8 = 1
            _ = write(fd, &byte, 1)
            close(fd)
        }
        try await Task.sleep(for: .milliseconds(milliseconds))
        return x
    }
}

/// Throws the first time it runs for a given marker file, succeeds afterwards (for retries of thrown errors).
public struct FailsOnce: RemoteFunction {
    /// The error of the first run.
    public struct FirstTime: Error, CustomStringConvertible {
        /// `not yet`.
        public var description: String { "not yet" }
    }
    /// A file that records that the failure happened.
    public var marker: String
    /// Creates the function.
    public init(marker: String) { self.marker = marker }
    /// Throws ``FirstTime`` if the marker is absent (creating it), else returns `x`.
    public func callAsFunction(_ x: Int) async throws -> Int {
        if firstTime(marker) { throw FirstTime() }
        return x
    }
}

/// Busy-waits without ever checking for cancellation: a function a timeout cannot stop cooperatively.
public struct Spin: RemoteFunction {
    /// How long to spin, in milliseconds.
    public var milliseconds: Int
    /// Creates the function.
    public init(milliseconds: Int) { self.milliseconds = milliseconds }
    /// Spins, then returns `x`.
    public func callAsFunction(_ x: Int) async throws -> Int {
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(milliseconds)
        while clock.now < end {}
        return x
    }
}

/// Exits its process whenever the input is `bad`; returns other inputs unchanged (to show a crash is
/// charged to its own task and not to the tasks batched with it).
public struct CrashOn: RemoteFunction {
    /// The input that crashes.
    public var bad: Int
    /// Creates the function.
    public init(bad: Int) { self.bad = bad }
    /// `x`, or an exit with status 4.
    public func callAsFunction(_ x: Int) async throws -> Int {
        if x == bad { exit(4) }
        return x
    }
}

/// Increments shared objects `times` times each: a counter, a dictionary entry, a value (optimistic
/// updates), and a plain value under a lock (read, then write: only mutual exclusion keeps it exact).
public struct Bump: RemoteFunction {
    /// Incremented with `add`.
    public var counter: SharedCounter
    /// Entry "hits" incremented with `update`.
    public var dictionary: SharedDictionary<String, Int>
    /// Incremented with `update`.
    public var value: SharedValue<Int>
    /// Incremented by load + store while holding `lock`.
    public var guarded: SharedValue<Int>
    /// Guards `guarded`.
    public var lock: SharedLock
    /// Incremented inside `withLock`.
    public var mutex: SharedMutex<Int>
    /// Creates the function.
    public init(
        counter: SharedCounter, dictionary: SharedDictionary<String, Int>, value: SharedValue<Int>,
        guarded: SharedValue<Int>, lock: SharedLock, mutex: SharedMutex<Int>
    ) {
        self.counter = counter
        self.dictionary = dictionary
        self.value = value
        self.guarded = guarded
        self.lock = lock
        self.mutex = mutex
    }
    /// Does `times` rounds; returns `times`.
    public func callAsFunction(_ times: Int) async throws -> Int {
        for _ in 0..<times {
            try await counter.add(1)
            try await dictionary.update("hits") { $0 = ($0 ?? 0) + 1 }
            try await value.update { $0 = ($0 ?? 0) + 1 }
            try await mutex.withLock(timeout: .seconds(30)) { $0 += 1 }
            try await lock.withLock(timeout: .seconds(30)) { _ in
                let seen = try await guarded.load() ?? 0
                try await guarded.store(seen + 1)
            }
        }
        return times
    }
}

/// Takes a lock, writes "<pid> <fence>" to a file, then holds the lock until its process is killed.
public struct HoldLock: RemoteFunction {
    /// The lock to hold.
    public var lock: SharedLock
    /// Where to write the process id and fencing token once the lock is held.
    public var report: String
    /// Creates the function.
    public init(lock: SharedLock, report: String) {
        self.lock = lock
        self.report = report
    }
    /// Never returns normally (sleeps a minute holding the lock).
    public func callAsFunction(_ x: Int) async throws -> Int {
        let lease = try await lock.acquire(timeout: .seconds(30))
        reportHolder(lease, to: report)
        try await Task.sleep(for: .seconds(60))
        return x
    }
}

/// The failure of ``GatedSquare``'s held-back input while its last gate is closed.
public struct NotYet: Error, CustomStringConvertible {
    /// Creates the error.
    public init() {}
    /// `the last gate is closed`.
    public var description: String { "the last gate is closed" }
}

/// Waits until a gate file exists, then pauses and squares: tasks a test can find in flight for as long as it
/// needs (however loaded the machine), then let go.
public struct GatedSquare: RemoteFunction {
    /// The file whose existence opens the gate.
    public var gate: String
    /// Milliseconds of pause once the gate is open.
    public var milliseconds: Int
    /// An input held back until a second gate opens, so that a job is surely still running until the test
    /// opens it: while the gate is closed it fails with ``NotYet`` (give the job retries), which keeps no
    /// worker busy and so holds up no other task.
    public var holdBack: Int?
    /// The second gate, for `holdBack`.
    public var lastGate: String?
    /// Creates the function.
    public init(gate: String, milliseconds: Int = 0, holdBack: Int? = nil, lastGate: String? = nil) {
        self.gate = gate
        self.milliseconds = milliseconds
        self.holdBack = holdBack
        self.lastGate = lastGate
    }
    /// `x * x`, once the gate (and for `holdBack`, the last gate) is open.
    public func callAsFunction(_ x: Int) async throws -> Int {
        while access(gate, F_OK) != 0 { try await Task.sleep(for: .milliseconds(10)) }
        if x == holdBack, let lastGate, access(lastGate, F_OK) != 0 {
            try await Task.sleep(for: .milliseconds(20))
            throw NotYet()
        }
        if milliseconds > 0 { try await Task.sleep(for: .milliseconds(milliseconds)) }
        return x * x
    }
}

/// Takes a lock with a short lease, writes "<pid> <fence>" to a file, then keeps every thread of its process
/// that user code can reach busy for a while: a spinner on each thread of the cooperative pool and one on each
/// event loop of the store client. Then it creates `<report>.done` and releases the lock (a lease lost
/// meanwhile makes the release, and so the task, throw); it returns the fence and whether the lease was still
/// held at the end (1 or 0).
public struct HoldLockWhileSpinning: RemoteFunction {
    /// The lock to hold.
    public var lock: SharedLock
    /// Where to write the process id and fencing token once the lock is held.
    public var report: String
    /// How long every thread spins.
    public var milliseconds: Int
    /// Creates the function.
    public init(lock: SharedLock, report: String, milliseconds: Int) {
        self.lock = lock
        self.report = report
        self.milliseconds = milliseconds
    }
    /// `[fence, held at the end ? 1 : 0]`.
    public func callAsFunction(_ x: Int) async throws -> [Int] {
        let lease = try await lock.acquire(timeout: .seconds(60))
        reportHolder(lease, to: report)
        let cores = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let spin = { @Sendable (milliseconds: Int) in
            let clock = ContinuousClock()
            let end = clock.now + .milliseconds(milliseconds)
            while clock.now < end {}
        }
        let milliseconds = self.milliseconds
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<cores { group.addTask { spin(milliseconds) } }
            // The store client's event loops too (a long critical section or actor method runs there).
            for _ in 0..<2 { group.addTask { try await lock.withAffinity { spin(milliseconds) } } }
            try await group.waitForAll()
        }
        let held = lease.isHeld
        // Said before the release: a test that gets the lock after this file exists got it from the release.
        let done = open(report + ".done", O_CREAT | O_WRONLY, 0o644)
        if done >= 0 { close(done) }
        try await lease.release()
        return [lease.fence, held ? 1 : 0]
    }
}

/// Pulls a shared array, writes `1000` elements starting at its input (element `i` = `i`), pushes them back.
public struct FillSlice: RemoteFunction {
    /// The array to fill.
    public var array: SharedArray<Double>
    /// Creates the function.
    public init(array: SharedArray<Double>) { self.array = array }
    /// Returns how many elements it changed.
    public func callAsFunction(_ start: Int) async throws -> Int {
        var local = try await array.pull()
        for i in start..<(start + 1000) { local[i] = Double(i) }
        try await array.push(&local)
        return 1000
    }
}

/// Adds 1 to a few elements (across chunks) of an array through an asynchronous replica, once per round.
public struct AddThroughReplica: RemoteFunction {
    /// The elements changed.
    public static let indices = [0, 65_535, 65_536, 139_999]
    /// The array.
    public var array: SharedArray<Double>
    /// Creates the function.
    public init(array: SharedArray<Double>) { self.array = array }
    /// Does `rounds` rounds; returns `rounds`.
    public func callAsFunction(_ rounds: Int) async throws -> Int {
        let replica = try await array.replica(.asynchronous(updates: 3, interval: .milliseconds(5)))
        for _ in 0..<rounds {
            for i in Self.indices { replica[i] += 1 }
            try await replica.sync()
        }
        try await replica.finish()
        return rounds
    }
}

/// Every function the fixture worker registers.
public let allTestFunctions: [any RemoteFunction.Type] = [
    Square.self, AlwaysThrows.self, WhereAmI.self, CrashOnce.self, AlwaysCrashes.self, SlowSquare.self,
    CountedSleep.self, FailsOnce.self, Spin.self, CrashOn.self, Bump.self, HoldLock.self, FillSlice.self,
    AddThroughReplica.self, FeedTally.self, PartitionLines.self, SpillProbe.self, GatedSquare.self,
    HoldLockWhileSpinning.self, CapturedElement.self, __curtain_placedSquare.self, __curtain_halveEven.self,
    PartitionSum.self, SlowOddRefused.self,
]

/// Reads one element of a captured array (large captures are shared by hash).
public struct CapturedElement: RemoteFunction {
    /// The captured values.
    public var values: [Double]
    /// Creates the function.
    public init(values: [Double]) { self.values = values }
    /// `values[index % count]`.
    public func callAsFunction(_ index: Int) async throws -> Double { values[index % values.count] }
}

/// Sums one partition (a large input: shared by hash, so a worker that has it cached needs nothing more).
public struct PartitionSum: RemoteFunction {
    /// Creates the function.
    public init() {}
    /// The sum of the partition's values.
    public func callAsFunction(_ partition: [Double]) async throws -> Double { partition.reduce(0, +) }
}

/// Why ``SlowOddRefused`` refused an input.
public struct OddRefusal: Error, CustomStringConvertible {
    /// The input.
    public var value: Int
    /// `odd input N refused`.
    public var description: String { "odd input \(value) refused" }
}

/// Sleeps, then returns even inputs and throws ``OddRefusal`` for odd ones (a job with slow and failing
/// tasks, for the dashboard and report tests).
public struct SlowOddRefused: RemoteFunction {
    /// Milliseconds per call.
    public var milliseconds: Int
    /// Creates the function.
    public init(milliseconds: Int) { self.milliseconds = milliseconds }
    /// `x`, after a pause, if it is even.
    public func callAsFunction(_ x: Int) async throws -> Int {
        try await Task.sleep(for: .milliseconds(milliseconds))
        if x % 2 == 1 { throw OddRefusal(value: x) }
        return x
    }
}
