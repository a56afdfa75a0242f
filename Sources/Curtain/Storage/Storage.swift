/// Files for code that thinks in files, over an ``ObjectStore``: whole objects, byte ranges as a sequence
/// of chunks, lines, and "directories" (key prefixes up to a `/`).
///
/// A `Storage` is `Codable` (as its store's URL), so it can be a remote function's capture and used on the
/// worker that runs it:
///
/// ```swift
/// try await cloud.storage.write("corpus/part-1.txt", "the quick brown fox\n")
/// for try await line in cloud.storage.lines("corpus/part-1.txt") { print(line) }
/// let listing = try await cloud.storage.list("corpus")     // files and subdirectories
/// ```
public struct Storage: Codable, Sendable, Hashable {
    /// The store's URL.
    public let url: String

    /// The storage at `url` (`file:///path`, or `s3://…` with `CurtainS3`).
    ///
    /// - Throws: ``StorageError`` for a URL no registered store serves.
    public init(url: String) throws {
        self.url = try ObjectStores.open(url: url).url
    }

    /// Reads the URL and checks it opens.
    public init(from decoder: any Decoder) throws {
        let url = try decoder.singleValueContainer().decode(String.self)
        try self.init(url: url)
    }

    /// Writes the URL.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(url)
    }

    /// The store itself.
    public var store: any ObjectStore {
        get throws { try ObjectStores.open(url: url) }
    }

    /// Writes `bytes` as `key` (atomically: readers see the old object or the whole new one).
    public func write(_ key: String, _ bytes: [UInt8]) async throws {
        try await store.put(key, bytes: bytes)
    }

    /// Writes `text` as UTF-8.
    public func write(_ key: String, _ text: String) async throws {
        try await store.put(key, bytes: Array(text.utf8))
    }

    /// The whole object.
    ///
    /// - Throws: ``StorageError`` (``StorageError/Kind/notFound`` for a missing key).
    public func read(_ key: String) async throws -> [UInt8] {
        try await store.get(key, range: nil)
    }

    /// The bytes of `range` (cut at the object's end).
    public func read(_ key: String, range: Range<Int>) async throws -> [UInt8] {
        try await store.get(key, range: range)
    }

    /// The whole object as UTF-8 text.
    public func readString(_ key: String) async throws -> String {
        String(decoding: try await read(key), as: UTF8.self)
    }

    /// The object's size and date, or `nil` if it does not exist.
    public func info(_ key: String) async throws -> ObjectInfo? {
        try await store.head(key)
    }

    /// Removes `key` (a missing key is not an error).
    public func delete(_ key: String) async throws {
        try await store.delete(key)
    }

    /// Every object whose key starts with `prefix`.
    public func objects(prefix: String) async throws -> [ObjectInfo] {
        try await store.list(prefix: prefix)
    }

    /// What a "directory" holds: the objects directly in it, and the names of its subdirectories.
    public struct Listing: Sendable, Hashable {
        /// Objects directly under the directory.
        public var files: [ObjectInfo]
        /// Subdirectories (key prefixes ending in `/`), sorted.
        public var directories: [String]
    }

    /// Lists the directory `path` (`""` for the top).
    public func list(_ path: String = "") async throws -> Listing {
        let prefix = path.isEmpty || path.hasSuffix("/") ? path : path + "/"
        var files: [ObjectInfo] = []
        var directories = Set<String>()
        for object in try await store.list(prefix: prefix) {
            let rest = object.key.dropFirst(prefix.count)
            if let slash = rest.firstIndex(of: "/") {
                directories.insert(prefix + rest[..<slash] + "/")
            } else {
                files.append(object)
            }
        }
        return Listing(files: files, directories: directories.sorted())
    }

    /// The bytes of `range` of `key` (all of it for `nil`), read `chunkSize` bytes at a time.
    public func chunks(_ key: String, range: Range<Int>? = nil, chunkSize: Int = 1 << 20) -> ObjectChunks {
        ObjectChunks(storage: self, key: key, range: range, chunkSize: Swift.max(1, chunkSize))
    }

    /// The lines of `key`, without their `\n` (a last line without one is a line; a trailing `\n` ends
    /// the last line, it does not start an empty one); with `range`, the lines that start in it (read to
    /// their end), as an ``ObjectPartition`` reads them.
    public func lines(_ key: String, range: Range<Int>? = nil) -> ObjectLines {
        ObjectLines(records: ObjectRecords(storage: self, key: key, owned: range))
    }
}

/// The bytes of a range of an object, in chunks read one at a time (see ``Storage/chunks(_:range:chunkSize:)``).
public struct ObjectChunks: AsyncSequence, Sendable {
    /// A chunk of bytes.
    public typealias Element = [UInt8]
    let storage: Storage
    let key: String
    let range: Range<Int>?
    let chunkSize: Int

    /// Reads one chunk per call.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let chunks: ObjectChunks
        var next: Int
        var end: Int?

        /// The next chunk, `nil` at the end of the range.
        public mutating func next() async throws -> [UInt8]? {
            let store = try chunks.storage.store
            if end == nil {
                guard let info = try await store.head(chunks.key) else {
                    throw StorageError(.notFound, "no object '\(chunks.key)' to read")
                }
                end = Swift.min(chunks.range?.upperBound ?? info.size, info.size)
            }
            guard next < end! else { return nil }
            let upper = Swift.min(next + chunks.chunkSize, end!)
            let bytes = try await store.get(chunks.key, range: next..<upper)
            guard !bytes.isEmpty else { return nil }
            next += bytes.count
            return bytes
        }
    }

    /// Starts reading at the range's start.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(chunks: self, next: Swift.max(0, range?.lowerBound ?? 0), end: nil)
    }
}
