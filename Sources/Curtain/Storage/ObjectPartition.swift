/// A byte range of an object handed to one task by ``Cloud/map(_:overObjects:in:chunkSize:options:)``.
///
/// A partition owns the records (lines, ended by `\n`) that *start* within its range: it skips a record
/// cut by its start (the previous partition owns it) and reads past its end to finish its last record.
/// So partitions of any size, down to one byte, together read every record of the object exactly once.
public struct ObjectPartition: Codable, Sendable, Hashable {
    /// Where the object lives.
    public var storage: Storage
    /// The object's key.
    public var key: String
    /// The bytes whose records this partition owns.
    public var range: Range<Int>

    /// Creates a partition.
    public init(storage: Storage, key: String, range: Range<Int>) {
        self.storage = storage
        self.key = key
        self.range = range
    }

    /// The partition's records as bytes, without their `\n`.
    public var records: ObjectRecords { ObjectRecords(storage: storage, key: key, owned: range) }

    /// The partition's records as text.
    public var lines: ObjectLines { ObjectLines(records: records) }

    /// Splits every object into ranges of `chunkSize` bytes (the last one of each shorter); empty objects
    /// get none.
    public static func split(_ objects: [ObjectInfo], in storage: Storage, chunkSize: Int) -> [ObjectPartition] {
        var partitions: [ObjectPartition] = []
        for object in objects {
            var start = 0
            while start < object.size {
                let end = Swift.min(object.size, start + chunkSize)
                partitions.append(ObjectPartition(storage: storage, key: object.key, range: start..<end))
                start = end
            }
        }
        return partitions
    }
}

/// Records (lines without their `\n`) of an object, or of a partition's range of it, as byte slices.
public struct ObjectRecords: AsyncSequence, Sendable {
    /// A record's bytes.
    public typealias Element = ArraySlice<UInt8>
    let storage: Storage
    let key: String
    /// The range whose records are read; `nil` for the whole object.
    let owned: Range<Int>?
    /// Bytes read per store request.
    var chunkSize = 1 << 20

    /// Reads chunks as needed and cuts them at `\n`.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let records: ObjectRecords
        var buffer: [UInt8] = []
        /// The object offset of `buffer[0]`.
        var bufferStart = 0
        /// The index in `buffer` where the next record starts.
        var cursor = 0
        var size = 0
        var end = 0
        var started = false
        var done = false

        /// Appends the next chunk (dropping what was consumed); false at the end of the object.
        private mutating func fill() async throws -> Bool {
            let from = bufferStart + buffer.count
            guard from < size else { return false }
            let bytes = try await records.storage.store.get(records.key, range: from..<Swift.min(from + records.chunkSize, size))
            guard !bytes.isEmpty else { return false }
            if cursor > 0 {
                buffer.removeFirst(cursor)
                bufferStart += cursor
                cursor = 0
            }
            buffer += bytes
            return true
        }

        private mutating func start() async throws {
            started = true
            guard let info = try await records.storage.store.head(records.key) else {
                throw StorageError(.notFound, "no object '\(records.key)' to read")
            }
            size = info.size
            let lower = Swift.max(0, records.owned?.lowerBound ?? 0)
            end = Swift.min(records.owned?.upperBound ?? size, size)
            guard lower < end else {
                done = true
                return
            }
            guard lower > 0 else { return }
            // The record cut by our start belongs to the previous range: skip to just after the first `\n`
            // at or after lower − 1 (at once, if the byte before our start is a `\n`).
            bufferStart = lower - 1
            while true {
                guard try await fill() else {
                    done = true
                    return
                }
                if let newline = buffer[cursor...].firstIndex(of: UInt8(ascii: "\n")) {
                    cursor = newline + 1
                    return
                }
                cursor = buffer.count
            }
        }

        /// The next record, `nil` when none starts in the range.
        public mutating func next() async throws -> ArraySlice<UInt8>? {
            if !started { try await start() }
            guard !done, bufferStart + cursor < end else { return nil }
            var searched = cursor
            while true {
                if let newline = buffer[searched...].firstIndex(of: UInt8(ascii: "\n")) {
                    defer { cursor = newline + 1 }
                    return buffer[cursor..<newline]
                }
                // Searched to the end; fill() drops the `cursor` bytes before the record, if any.
                searched = buffer.count - cursor
                guard try await fill() else {
                    // The object's last record, without a `\n`.
                    done = true
                    defer { cursor = buffer.count }
                    return buffer[cursor...]
                }
            }
        }
    }

    /// Starts at the range's first record.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(records: self) }
}

/// Records as UTF-8 text (see ``ObjectRecords``).
public struct ObjectLines: AsyncSequence, Sendable {
    /// A line, without its `\n`.
    public typealias Element = String
    let records: ObjectRecords

    /// Decodes each record.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var records: ObjectRecords.AsyncIterator

        /// The next line.
        public mutating func next() async throws -> String? {
            try await records.next().map { String(decoding: $0, as: UTF8.self) }
        }
    }

    /// Starts at the first line.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(records: records.makeAsyncIterator()) }
}
