/// Where a batch of tasks goes when some of them need shared values that live workers already hold: each
/// such task goes to the own queue of one of its value's holders, the others to the shared queue.
///
/// A task is placed by the largest shared value it references (the one whose transfer it would cost). A
/// value held by every live worker places nothing (any worker has it at hand, so the shared queue's
/// balancing is kept); otherwise the task goes to the holder with the fewest tasks waiting, and no worker
/// is given more than its fair share of the batch (`ceil(tasks / live workers)`), so the others are not
/// starved: what a holder cannot take goes to the shared queue, and an idle worker steals from the
/// longest own queue.
struct Placement {
    /// A live worker that holds at least one of the batch's values.
    struct Target: Sendable, Hashable {
        var worker: String
        /// Its loop's connection id (`CLIENT UNBLOCK` wakes it), if it announced one.
        var connection: Int?
        /// Tasks already waiting on its own queue.
        var waiting: Int
        /// Tasks of this batch given to it.
        var assigned = 0
    }

    /// The workers a task may go to.
    var targets: [Target]
    /// For each task of the batch: the index of its target, or `nil` for the shared queue.
    var assignments: [Int?]

    /// Assigns each task of a batch, by the hash of the value it needs most (`near`), given who holds each
    /// value (indices into `targets`, live workers only) and how many workers are live.
    init(near: [[UInt8]?], holders: [[UInt8]: [Int]], targets: [Target], liveWorkers: Int) {
        self.targets = targets
        let placeable = near.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
        let share = (placeable + max(1, liveWorkers) - 1) / max(1, liveWorkers)
        assignments = []
        assignments.reserveCapacity(near.count)
        for hash in near {
            guard let hash, let candidates = holders[hash], !candidates.isEmpty, candidates.count < liveWorkers else {
                assignments.append(nil)
                continue
            }
            let open = candidates.filter { self.targets[$0].assigned < share }
            guard let best = open.min(by: { self.load($0) < self.load($1) }) else {
                assignments.append(nil)
                continue
            }
            self.targets[best].assigned += 1
            assignments.append(best)
        }
    }

    private func load(_ index: Int) -> Int { targets[index].waiting + targets[index].assigned }

    /// Whether any task goes to an own queue.
    var placesAny: Bool { assignments.contains { $0 != nil } }

    /// The hash of the largest value among `shared` (the one a task should be placed near), if any.
    static func nearest(_ shared: [SharedBlob], _ more: [SharedBlob] = []) -> [UInt8]? {
        var best: SharedRef?
        for blob in shared where best.map({ blob.ref.length > $0.length }) ?? true { best = blob.ref }
        for blob in more where best.map({ blob.ref.length > $0.length }) ?? true { best = blob.ref }
        return best?.hash
    }
}
