import Synchronization

/// What an object store knows of one object.
public struct ObjectInfo: Codable, Sendable, Hashable {
    /// The object's key.
    public var key: String
    /// Its size in bytes.
    public var size: Int
    /// When it was last written, in seconds since 1970 (0 if the store does not say).
    public var modified: Double

    /// Creates a description.
    public init(key: String, size: Int, modified: Double = 0) {
        self.key = key
        self.size = size
        self.modified = modified
    }
}

/// Why an object-store operation failed.
public struct StorageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure it was.
    public enum Kind: String, Sendable, Hashable {
        /// No object has that key.
        case notFound
        /// The key is not acceptable (empty, too long, `..`, a leading `/`, a NUL byte…).
        case invalidKey
        /// A byte range outside the object, or empty where data is required.
        case invalidRange
        /// The store's URL or configuration is unusable.
        case configuration
        /// The store refused the credentials.
        case accessDenied
        /// The store could not be reached, or failed.
        case unavailable
        /// A local file-system error.
        case io
    }

    /// What kind of failure it was.
    public var kind: Kind
    /// What went wrong, naming the key or the setting.
    public var message: String

    /// Creates an error.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

/// Where objects live: a local directory (`file:///path`, the default), or an S3-compatible service
/// (`CurtainS3`). Keys are `/`-separated paths; a store is reached by its ``url`` from any process.
///
/// Writes are atomic: an object is either absent or complete (an interrupted write leaves nothing
/// visible). Reads take a byte range, so large objects are read piece by piece (see ``Storage``).
public protocol ObjectStore: Sendable {
    /// The URL that reopens this store in another process (``ObjectStores/open(url:)``).
    var url: String { get }

    /// Writes `bytes` as the object `key`, replacing any previous object.
    func put(_ key: String, bytes: [UInt8]) async throws

    /// Writes the object `key` from a sequence of chunks, for objects too large to hold in memory; nothing
    /// is visible under `key` until the sequence ended without error.
    func put<Chunks: AsyncSequence & Sendable>(_ key: String, chunks: Chunks) async throws where Chunks.Element == [UInt8]

    /// The bytes of `key` in `range` (the whole object for `nil`); a range reaching past the end is cut at
    /// the end.
    ///
    /// - Throws: ``StorageError`` (``StorageError/Kind/notFound`` for a missing key).
    func get(_ key: String, range: Range<Int>?) async throws -> [UInt8]

    /// The object's size and date, `nil` if there is no such object.
    func head(_ key: String) async throws -> ObjectInfo?

    /// Every object whose key starts with `prefix`, sorted by key.
    func list(prefix: String) async throws -> [ObjectInfo]

    /// Removes `key`; removing a missing key is not an error.
    func delete(_ key: String) async throws
}

/// Opens object stores by URL, once per URL per process.
public enum ObjectStores {
    /// Makes a store for a URL of a registered scheme.
    public typealias Factory = @Sendable (String) throws -> any ObjectStore

    private static let state = Mutex<(factories: [String: Factory], open: [String: any ObjectStore])>(
        (["file": { try LocalDirectoryStore(url: $0) }], [:]))

    /// Registers the stores of a URL scheme (`CurtainS3` registers `s3`).
    public static func register(scheme: String, _ factory: @escaping Factory) {
        state.withLock { $0.factories[scheme.lowercased()] = factory }
    }

    /// The store at `url`, opened once per process.
    ///
    /// - Throws: ``StorageError`` (``StorageError/Kind/configuration``) for an unknown scheme or a bad URL.
    public static func open(url: String) throws -> any ObjectStore {
        if let open = state.withLock({ $0.open[url] }) { return open }
        guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else {
            throw StorageError(.configuration, "'\(Abbreviation.text(url, limit: 80))' is not a storage URL (file:///path or s3://bucket/prefix)")
        }
        let scheme = url[..<colon].lowercased()
        guard let factory = state.withLock({ $0.factories[scheme] }) else {
            let known = state.withLock { $0.factories.keys.sorted().joined(separator: ", ") }
            throw StorageError(.configuration, "no object store for '\(scheme)://' URLs (known: \(known); s3 needs CurtainS3)")
        }
        let store = try factory(url)
        return state.withLock { state in
            if let raced = state.open[url] { return raced }
            state.open[url] = store
            return store
        }
    }

    /// Checks a key: 1 to 1024 UTF-8 bytes, no NUL, no leading `/`, no empty, `.` or `..` path segment.
    public static func validate(_ key: String) throws(StorageError) {
        let bytes = key.utf8
        guard !bytes.isEmpty, bytes.count <= 1024 else {
            throw StorageError(.invalidKey, "an object key must have 1 to 1024 bytes, not \(bytes.count)")
        }
        guard !bytes.contains(0) else { throw StorageError(.invalidKey, "object key '\(Abbreviation.text(key, limit: 80))' contains a NUL byte") }
        for segment in key.split(separator: "/", omittingEmptySubsequences: false) where segment.isEmpty || segment == "." || segment == ".." {
            throw StorageError(
                .invalidKey, "object key '\(Abbreviation.text(key, limit: 80))' has an empty, '.' or '..' path segment (or a leading or trailing '/')")
        }
    }
}
