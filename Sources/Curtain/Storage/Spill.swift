/// How task payloads are written and where large ones go, and above what size.
struct SpillSettings: Sendable {
    var storage: Storage
    /// Payloads of more bytes than this travel as references to objects.
    var threshold: Int
    /// Payloads of more bytes than this are refused (``CloudConfiguration/maxPayloadBytes``).
    var maxPayload: Int = CloudConfiguration.defaultMaxPayload
    /// The format of captures and inputs (a worker answers in the format of its task's captures).
    var format: PayloadFormat = PayloadCodec.defaultFormat
    /// Captures and inputs above this many bytes are shared by hash (``CloudConfiguration/shareThreshold``).
    var shareAbove: Int = 64 * 1024
    /// Where the driver puts shared values (`nil` on a worker).
    var shelf: SharedValueShelf?
    /// Where a worker fetches shared values.
    var place: SharedValuePlace?

    /// How captures and inputs are encoded: shared by hash above ``shareAbove`` (in ``storage`` above
    /// ``threshold``, in the store below it).
    var inputSettings: PayloadCodec.Settings {
        PayloadCodec.Settings(format: format, shareAbove: shareAbove, objectStore: (threshold, storage.url), shareRoot: true)
    }

    /// The message for a payload over ``maxPayload``.
    func overLimit(_ count: Int) -> String? {
        count > maxPayload ? "\(count) bytes, over the limit of \(maxPayload) (CURTAIN_MAX_PAYLOAD_BYTES)" : nil
    }
}

/// Large task inputs, captures and outputs travel by reference: the payload is written as an object under
/// `curtain-spill/<job>/`, and the envelope or result carries `0xFE`, the store's URL, `\n` and the key.
/// No JSON text and no raw numeric array (`0xFF`) starts with `0xFE`. A job deletes its spilled objects
/// when it ends.
enum Spill {
    static let marker: UInt8 = 0xFE

    static func prefix(job: String) -> String { "curtain-spill/\(job)/" }

    static func isReference(_ bytes: [UInt8]) -> Bool { bytes.first == marker }

    /// Writes `bytes` as `key` in `storage` and returns the reference that replaces them.
    static func store(_ bytes: [UInt8], as key: String, in storage: Storage) async throws -> [UInt8] {
        try await storage.write(key, bytes)
        return [marker] + Array((storage.url + "\n" + key).utf8)
    }

    /// The payload a reference points to (or `bytes` themselves if they are no reference).
    ///
    /// - Throws: ``StorageError`` naming the object if it cannot be read.
    static func resolve(_ bytes: [UInt8]) async throws -> [UInt8] {
        guard isReference(bytes) else { return bytes }
        let text = String(decoding: bytes.dropFirst(), as: UTF8.self)
        guard let newline = text.firstIndex(of: "\n") else {
            throw StorageError(.invalidKey, "a malformed spill reference: '\(Abbreviation.text(text, limit: 80))'")
        }
        let (url, key) = (String(text[..<newline]), String(text[text.index(after: newline)...]))
        do {
            return try await Storage(url: url).read(key)
        } catch let error as StorageError {
            throw StorageError(error.kind, "the spilled payload \(key) at \(url) cannot be read: \(error.message)")
        }
    }

    /// Deletes what a job spilled (best effort: a store that is gone leaves it to its own expiry rules).
    static func clean(job: String, in storage: Storage) async {
        guard let objects = try? await storage.objects(prefix: prefix(job: job)) else { return }
        for object in objects { try? await storage.delete(object.key) }
    }
}
