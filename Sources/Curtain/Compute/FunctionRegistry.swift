/// Why a set of functions cannot form a registry.
public struct RegistryError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, naming the function.
    public var description: String
}

/// How one task ended on the side that ran it, as it travels back to the caller.
public struct RemoteFailure: Error, Codable, Sendable, Hashable {
    /// What kind of failure it was.
    public enum Kind: String, Codable, Sendable {
        /// The function threw.
        case thrown
        /// The function's captures or its input could not be decoded on the worker.
        case decoding
        /// The function's output could not be encoded.
        case encoding
        /// The worker has no function of that name (another build, or a missing registration).
        case unknownFunction
        /// The envelope itself was malformed.
        case badEnvelope
        /// The worker process died while running the task (signal, `exit`, OOM kill), on every attempt.
        case crashed
        /// The function ran longer than its job's per-task timeout.
        case timedOut
        /// A value the task's payload shares by hash could not be fetched (expired or evicted from the
        /// store): the caller puts it back and sends the task again.
        case missingSharedValue
    }

    /// What kind of failure it was.
    public var kind: Kind
    /// The Swift type of the error, for example `MyModule.ValidationError`.
    public var errorType: String
    /// The error's description.
    public var message: String

    /// Creates a failure record.
    public init(kind: Kind, errorType: String, message: String) {
        self.kind = kind
        self.errorType = errorType
        self.message = message
    }
}

/// The functions a process may run, looked up by their stable names.
///
/// Built once at start-up from an explicit list; a name that is not in it is refused (never resolved
/// through the runtime's type lookup), so a worker only ever runs code that was compiled into it and
/// registered on purpose.
public struct FunctionRegistry: Sendable {
    /// Runs one call from encoded captures and input to encoded output.
    typealias Runner = @Sendable (_ function: [UInt8], _ input: [UInt8], _ spill: SpillContext?) async -> (Result<[UInt8], RemoteFailure>, SharedUse)

    /// Where a task's large output goes: the spill settings and the task's name in its job.
    struct SpillContext: Sendable {
        var settings: SpillSettings
        var jobID: String
        var index: UInt64
        var attempt: UInt16

        var outputKey: String { Spill.prefix(job: jobID) + "out-\(index)-\(attempt)" }
    }

    private let runners: [String: Runner]

    /// The registered names, sorted.
    public var names: [String] { runners.keys.sorted() }

    /// Builds a registry.
    ///
    /// - Throws: ``RegistryError`` for an invalid name or two functions sharing a name.
    public init(_ functions: [any RemoteFunction.Type]) throws(RegistryError) {
        var runners: [String: Runner] = [:]
        for type in functions {
            let name = type.name
            try Self.validate(name: name, type: type)
            if runners[name] != nil {
                throw RegistryError(
                    description: "two registered functions are named '\(name)'; override `static var name` on one of them")
            }
            runners[name] = Self.runner(for: type)
        }
        self.runners = runners
    }

    /// Whether a function of this name is registered.
    public func contains(_ name: String) -> Bool { runners[name] != nil }

    /// Runs the function `name` with encoded captures and input, returning the encoded output or why not.
    func run(_ name: String, function: [UInt8], input: [UInt8], spill: SpillContext? = nil) async -> (Result<[UInt8], RemoteFailure>, SharedUse) {
        guard let runner = runners[name] else {
            return (.failure(RemoteFailure(
                kind: .unknownFunction, errorType: "Curtain.FunctionRegistry",
                message: "no function named '\(Abbreviation.text(name, limit: 80))' is registered here (registered: \(names.joined(separator: ", ")))")), SharedUse())
        }
        return await runner(function, input, spill)
    }

    private static func validate(name: String, type: any RemoteFunction.Type) throws(RegistryError) {
        guard !name.isEmpty, name.utf8.count <= 200 else {
            throw RegistryError(description: "\(type): a function name must have 1 to 200 characters, not \(name.utf8.count)")
        }
        let allowed = name.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: ".")
                || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        }
        guard allowed else {
            throw RegistryError(
                description: "\(type): function name '\(name)' may only use ASCII letters, digits, '.', '_' and '-'")
        }
    }

    private static func runner<F: RemoteFunction>(for type: F.Type) -> Runner {
        { functionBytes, inputBytes, spill in
            var use = SharedUse()
            func failed(_ kind: RemoteFailure.Kind, _ error: any Error, _ message: String) -> (Result<[UInt8], RemoteFailure>, SharedUse) {
                (.failure(RemoteFailure(kind: kind, errorType: String(reflecting: Swift.type(of: error)), message: message)), use)
            }
            let function: F
            let input: F.Input
            let captures: [UInt8]
            let argument: [UInt8]
            let shared: TaskSharedValues?
            do {
                captures = try await Spill.resolve(functionBytes)
                argument = try await Spill.resolve(inputBytes)
                // Values shared by hash: from this process's cache, else fetched (once per process).
                shared = try await TaskSharedValues.prepare([captures, argument], from: spill?.settings.place)
                use = shared?.use ?? use
            } catch let missing as SharedValueMissing {
                return failed(.missingSharedValue, missing, "cannot run \(F.name): \(missing)")
            } catch {
                return failed(.decoding, error, "cannot read the payloads of \(F.name): \(error)")
            }
            do {
                function = try PayloadCodec.decodePayload(F.self, from: captures, shared: shared)
            } catch {
                return failed(.decoding, error, "cannot decode the captures of \(F.name): \(error)")
            }
            do {
                input = try PayloadCodec.decodePayload(F.Input.self, from: argument, shared: shared)
            } catch {
                return failed(.decoding, error, "cannot decode the input of \(F.name) as \(F.Input.self): \(error)")
            }
            let output: F.Output
            do {
                output = try await function(input)
            } catch {
                return (.failure(RemoteFailure(
                    kind: .thrown, errorType: String(reflecting: Swift.type(of: error)), message: String(describing: error))), use)
            }
            let encoded: [UInt8]
            do {
                // Answered in the format the task came in.
                let format: PayloadFormat = captures.first == PayloadWire.marker ? .binary : .json
                encoded = try PayloadCodec.encodePayload(output, settings: PayloadCodec.Settings(format: format)).bytes
            } catch {
                return failed(.encoding, error, "cannot encode the output of \(F.name): \(error)")
            }
            if let spill, let over = spill.settings.overLimit(encoded.count) {
                return (.failure(RemoteFailure(
                    kind: .encoding, errorType: "Curtain.PayloadLimit", message: "the output of \(F.name) is \(over)")), use)
            }
            guard let spill, encoded.count > spill.settings.threshold else { return (.success(encoded), use) }
            do {
                return (.success(try await Spill.store(encoded, as: spill.outputKey, in: spill.settings.storage)), use)
            } catch {
                return failed(.encoding, error, "cannot spill the \(encoded.count)-byte output of \(F.name) to \(spill.settings.storage.url): \(error)")
            }
        }
    }
}

/// Shortens text for error messages.
enum Abbreviation {
    /// `text`, cut to `limit` characters with an ellipsis and the full length when longer.
    static func text(_ text: String, limit: Int = 120) -> String {
        guard text.count > limit else { return text }
        return String(text.prefix(limit)) + "… (\(text.utf8.count) bytes)"
    }

    /// Encoded bytes as text for an error message (JSON payloads are readable as is).
    static func bytes(_ bytes: [UInt8], limit: Int = 120) -> String {
        text(String(decoding: bytes.prefix(limit * 4), as: UTF8.self), limit: limit)
    }
}
