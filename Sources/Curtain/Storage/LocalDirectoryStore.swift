import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An ``ObjectStore`` in a local directory (`file:///path`): the default, shared by the driver and its
/// local workers (and by hosts that mount the same file system).
///
/// The key `a/b/c` is the file `<root>/a/b/c`. A write goes to a temporary file under
/// `<root>/.curtain-partial/` and is renamed into place when complete, so an object is either absent or
/// whole, even if the writer dies. Blocking file calls run on NIO's thread pool, never on the cooperative
/// pool.
public struct LocalDirectoryStore: ObjectStore {
    /// `file://` and the root directory.
    public let url: String
    /// The root directory.
    public let root: String

    static let partial = ".curtain-partial"

    /// Opens (creating it if needed) the directory of a `file:///absolute/path` URL.
    ///
    /// - Throws: ``StorageError`` for another kind of URL, a relative path, or a directory that cannot be
    ///   created.
    public init(url: String) throws {
        guard url.hasPrefix("file://") else { throw StorageError(.configuration, "'\(url)' is not a file:// URL") }
        var path = String(url.dropFirst("file://".count))
        guard path.hasPrefix("/") else {
            throw StorageError(.configuration, "'\(url)' must name an absolute path (file:///dir/objects)")
        }
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        self.root = path
        self.url = "file://" + path
        try Self.makeDirectories(path + "/" + Self.partial)
    }

    /// Creates `path` and its missing parents.
    static func makeDirectories(_ path: String) throws {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw StorageError(.io, "cannot create directory \(current): \(String(cString: strerror(errno)))")
            }
        }
    }

    private func path(_ key: String) throws -> String {
        try ObjectStores.validate(key)
        guard !key.hasPrefix(Self.partial) else {
            throw StorageError(.invalidKey, "object keys may not start with \(Self.partial) (it holds writes in progress)")
        }
        return root + "/" + key
    }

    private static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }

    /// Writes the whole object at once.
    public func put(_ key: String, bytes: [UInt8]) async throws {
        let target = try path(key)
        try await Self.run { [root] in
            let (fd, temporary) = try Self.openPartial(root: root)
            do {
                try Self.writeAll(fd, bytes[...])
                try Self.finish(fd, temporary: temporary, target: target, key: key)
            } catch {
                close(fd)
                unlink(temporary)
                throw error
            }
        }
    }

    /// Writes the object from chunks; nothing appears under `key` unless all of them were written.
    public func put<Chunks: AsyncSequence & Sendable>(_ key: String, chunks: Chunks) async throws where Chunks.Element == [UInt8] {
        let target = try path(key)
        let (fd, temporary) = try await Self.run { [root] in try Self.openPartial(root: root) }
        do {
            for try await chunk in chunks {
                try await Self.run { try Self.writeAll(fd, chunk[...]) }
            }
            try await Self.run { try Self.finish(fd, temporary: temporary, target: target, key: key) }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
    }

    /// Reads `range` of the object (all of it for `nil`).
    public func get(_ key: String, range: Range<Int>?) async throws -> [UInt8] {
        let file = try path(key)
        return try await Self.run {
            let fd = open(file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw Self.error(errno, key: key, doing: "read") }
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw Self.error(errno, key: key, doing: "read") }
            let size = Int(info.st_size)
            let wanted = range ?? 0..<size
            guard wanted.lowerBound >= 0 else { throw StorageError(.invalidRange, "range \(wanted) of \(key) starts before 0") }
            let lower = min(wanted.lowerBound, size)
            let count = min(wanted.upperBound, size) - lower
            guard count > 0 else { return [] }
            return try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                var done = 0
                while done < count {
                    let n = pread(fd, buffer.baseAddress! + done, count - done, off_t(lower + done))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw Self.error(errno, key: key, doing: "read")
                    }
                    if n == 0 { break }  // shortened meanwhile
                    done += n
                }
                initialized = done
            }
        }
    }

    /// The object's size and modification time.
    public func head(_ key: String) async throws -> ObjectInfo? {
        let file = try path(key)
        return try await Self.run {
            var info = stat()
            guard stat(file, &info) == 0 else {
                if errno == ENOENT || errno == ENOTDIR { return nil }
                throw Self.error(errno, key: key, doing: "inspect")
            }
            guard (info.st_mode & S_IFMT) == S_IFREG else { return nil }
            return ObjectInfo(key: key, size: Int(info.st_size), modified: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
        }
    }

    /// Walks the directories under the prefix's directory part and keeps the files whose key starts with it.
    public func list(prefix: String) async throws -> [ObjectInfo] {
        let root = self.root
        return try await Self.run {
            // Start from the deepest directory the prefix names in full.
            let directoryPart = prefix.lastIndex(of: "/").map { String(prefix[...$0]) } ?? ""
            var found: [ObjectInfo] = []
            try Self.walk(root: root, relative: String(directoryPart.dropLast(directoryPart.isEmpty ? 0 : 1)), prefix: prefix, into: &found)
            return found.sorted { $0.key < $1.key }
        }
    }

    private static func walk(root: String, relative: String, prefix: String, into found: inout [ObjectInfo]) throws {
        let directory = relative.isEmpty ? root : root + "/" + relative
        guard let handle = opendir(directory) else {
            if errno == ENOENT || errno == ENOTDIR { return }
            throw error(errno, key: relative, doing: "list")
        }
        defer { closedir(handle) }
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." || (relative.isEmpty && name == partial) { continue }
            let key = relative.isEmpty ? name : relative + "/" + name
            var info = stat()
            guard lstat(directory + "/" + name, &info) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                // Descend only where keys under it can still match the prefix.
                if prefix.hasPrefix(key + "/") || (key + "/").hasPrefix(prefix) {
                    try walk(root: root, relative: key, prefix: prefix, into: &found)
                }
            } else if (info.st_mode & S_IFMT) == S_IFREG && key.hasPrefix(prefix) {
                found.append(ObjectInfo(key: key, size: Int(info.st_size), modified: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9))
            }
        }
    }

    /// Removes the object (nothing if it is missing).
    public func delete(_ key: String) async throws {
        let file = try path(key)
        try await Self.run {
            guard unlink(file) == 0 || errno == ENOENT || errno == ENOTDIR else { throw Self.error(errno, key: key, doing: "delete") }
        }
    }

    // MARK: Files

    private static func openPartial(root: String) throws -> (Int32, String) {
        var template = Array((root + "/" + partial + "/write-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        guard fd >= 0 else { throw StorageError(.io, "cannot create a file in \(root)/\(partial): \(String(cString: strerror(errno)))") }
        return (fd, String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    private static func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) throws {
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw StorageError(.io, "cannot write: \(String(cString: strerror(errno)))")
                }
                done += n
            }
        }
    }

    private static func finish(_ fd: Int32, temporary: String, target: String, key: String) throws {
        guard close(fd) == 0 else { throw StorageError(.io, "cannot write \(key): \(String(cString: strerror(errno)))") }
        if let slash = target.lastIndex(of: "/") { try makeDirectories(String(target[..<slash])) }
        guard rename(temporary, target) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw StorageError(.io, "cannot store \(key): \(reason)")
        }
    }

    private static func error(_ code: Int32, key: String, doing what: String) -> StorageError {
        switch code {
        case ENOENT, ENOTDIR: StorageError(.notFound, "no object '\(key)' to \(what)")
        case EISDIR: StorageError(.notFound, "'\(key)' is a directory of objects, not an object")
        case EACCES, EPERM: StorageError(.accessDenied, "cannot \(what) '\(key)': permission denied")
        default: StorageError(.io, "cannot \(what) '\(key)': \(String(cString: strerror(code)))")
        }
    }
}
