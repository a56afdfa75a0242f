extension Cloud {
    /// Runs `function` once per partition of the objects under `prefix`: each object is cut into byte
    /// ranges of `chunkSize`, and each task reads the records (lines) that start in its range (see
    /// ``ObjectPartition``), so no record is split between tasks, lost, or read twice.
    ///
    /// ```swift
    /// struct CountWords: RemoteFunction {
    ///     func callAsFunction(_ part: ObjectPartition) async throws -> Int {
    ///         var words = 0
    ///         for try await line in part.lines { words += line.split(separator: " ").count }
    ///         return words
    ///     }
    /// }
    /// let counts = try await cloud.map(CountWords(), overObjects: "corpus/", chunkSize: 64 << 20)
    /// ```
    ///
    /// - Parameters:
    ///   - storage: where the objects are; `nil` for ``storage``.
    ///   - chunkSize: bytes per task, at least 1.
    /// - Throws: ``StorageError`` if the objects cannot be listed; ``ConfigurationError`` for a chunk size
    ///   below 1; as ``map(_:over:options:)`` otherwise.
    public func map<F: RemoteFunction>(
        _ function: F, overObjects prefix: String, in storage: Storage? = nil, chunkSize: Int, options: JobOptions = JobOptions()
    ) async throws -> [F.Output] where F.Input == ObjectPartition {
        guard chunkSize >= 1 else { throw ConfigurationError(description: "chunkSize must be at least 1 byte, not \(chunkSize)") }
        let storage = storage ?? self.storage
        let objects = try await storage.objects(prefix: prefix)
        return try await map(function, over: ObjectPartition.split(objects, in: storage, chunkSize: chunkSize), options: options)
    }
}
