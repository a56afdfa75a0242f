public import Distributed

/// Records a distributed call's arguments for ``CurtainActorSystem``: each is encoded as it is recorded
/// (integers and booleans directly, other values as JSON), so nothing but bytes crosses the store.
public struct CurtainInvocationEncoder: DistributedTargetInvocationEncoder {
    /// Arguments must be `Codable`.
    public typealias SerializationRequirement = Codable

    var arguments: [[UInt8]] = []
    var hasGenerics = false

    init() {}

    /// Generic distributed methods are refused when the call is made: their type arguments would have to
    /// be looked up by name on the host.
    public mutating func recordGenericSubstitution<T>(_ type: T.Type) throws {
        hasGenerics = true
    }

    /// Encodes one argument.
    public mutating func recordArgument<Value: Codable>(_ argument: RemoteCallArgument<Value>) throws {
        do {
            arguments.append(try PayloadCodec.encodePayload(argument.value).bytes)
        } catch {
            throw ActorCallError(
                kind: .transport, actor: "", method: "",
                message: "cannot encode argument \(argument.effectiveLabel) of type \(Value.self): \(error)")
        }
    }

    /// Nothing to record: errors travel as their type name and description.
    public mutating func recordErrorType<E: Error>(_ type: E.Type) throws {}

    /// Nothing to record: the caller knows the type it decodes.
    public mutating func recordReturnType<R: Codable>(_ type: R.Type) throws {}

    /// Nothing to finish.
    public mutating func doneRecording() throws {}
}

/// Hands a received call's arguments to the Distributed runtime, decoding each as the method expects
/// (with the host's actor system in the decoder, so actor references among them resolve).
public struct CurtainInvocationDecoder: DistributedTargetInvocationDecoder {
    /// Arguments must be `Codable`.
    public typealias SerializationRequirement = Codable

    let arguments: [[UInt8]]
    let system: CurtainActorSystem
    var next = 0

    init(arguments: [[UInt8]], system: CurtainActorSystem) {
        self.arguments = arguments
        self.system = system
    }

    /// None: generic distributed methods are refused by the caller.
    public mutating func decodeGenericSubstitutions() throws -> [any Any.Type] { [] }

    /// Decodes the next argument.
    ///
    /// - Throws: ``ActorCallError`` (``ActorCallError/Kind/badCall``) when arguments run out or one does not
    ///   decode as `Argument`.
    public mutating func decodeNextArgument<Argument: Codable>() throws -> Argument {
        guard next < arguments.count else {
            throw ActorCallError(kind: .badCall, actor: "", method: "", message: "the call has only \(arguments.count) arguments")
        }
        defer { next += 1 }
        do {
            return try PayloadCodec.decodePayload(Argument.self, from: arguments[next], actorSystem: system)
        } catch {
            throw ActorCallError(
                kind: .badCall, actor: "", method: "",
                message: "argument \(next) does not decode as \(Argument.self): \(error)")
        }
    }

    /// Not recorded.
    public mutating func decodeErrorType() throws -> (any Any.Type)? { nil }

    /// Not recorded.
    public mutating func decodeReturnType() throws -> (any Any.Type)? { nil }
}

/// Turns the outcome of a call executed on its host into the reply sent back to the caller.
public struct CurtainResultHandler: DistributedTargetInvocationResultHandler {
    /// Results must be `Codable`.
    public typealias SerializationRequirement = Codable

    let callID: UInt64
    let send: @Sendable (ActorReply) async -> Void

    /// Encodes the returned value.
    public func onReturn<Success: Codable>(value: Success) async throws {
        do {
            await send(ActorReply(callID: callID, status: .value, payload: try PayloadCodec.encodePayload(value).bytes))
        } catch {
            await send(ActorReply(
                callID: callID, status: .badCall, errorType: String(reflecting: type(of: error)),
                payload: Array("cannot encode the result of type \(Success.self): \(error)".utf8)))
        }
    }

    /// Answers a method that returns nothing.
    public func onReturnVoid() async throws {
        await send(ActorReply(callID: callID, status: .void))
    }

    /// Sends the error's type and description.
    public func onThrow<Err: Error>(error: Err) async throws {
        await send(ActorReply(
            callID: callID, status: .thrown, errorType: String(reflecting: type(of: error as any Error)),
            payload: Array(String(describing: error).utf8)))
    }
}
