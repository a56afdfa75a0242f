@testable import Curtain
import Testing

struct Square: RemoteFunction {
    var offset: Int
    func callAsFunction(_ x: Int) async throws -> Int { x * x + offset }
}

struct Fails: RemoteFunction {
    struct Refused: Error, CustomStringConvertible {
        var value: String
        var description: String { "refused \(value)" }
    }
    func callAsFunction(_ input: String) async throws -> Int { throw Refused(value: input) }
}

struct Renamed: RemoteFunction {
    static var name: String { "geometry.square" }
    func callAsFunction(_ x: Double) async throws -> Double { x * x }
}

struct BadName: RemoteFunction {
    static var name: String { "has space" }
    func callAsFunction(_ x: Int) async throws -> Int { x }
}

struct Square2: RemoteFunction {
    static var name: String { "Square" }
    func callAsFunction(_ x: Int) async throws -> Int { x }
}

enum Geometry {
    struct Scale<Unit: Codable & Sendable>: RemoteFunction {
        func callAsFunction(_ x: Int) async throws -> Int { x }
    }
}

@Suite("Function registry")
struct FunctionRegistryTests {
    /// Names are on the wire: the default is what `String(describing:)` (functions) and
    /// `String(reflecting:)` (actors) gave for the type, asked of the runtime more cheaply.
    @Test func defaultNamesAreTheTypesPrintedNames() {
        #expect(Square.name == String(describing: Square.self))
        #expect(Square.name == "Square")
        #expect(Fails.name == String(describing: Fails.self))
        #expect(Geometry.Scale<Double>.name == String(describing: Geometry.Scale<Double>.self))
        #expect(Geometry.Scale<Double>.name == "Scale<Double>")
        #expect(Renamed.name == "geometry.square")
        #expect(Counterfeit.name == String(reflecting: Counterfeit.self))
        #expect(Counterfeit.name == "CurtainTests.Counterfeit")
    }

    @Test func runsAFunctionThroughEncodeAndDecode() async throws {
        let registry = try FunctionRegistry([Square.self, Fails.self, Renamed.self])
        #expect(registry.names == ["Fails", "Square", "geometry.square"])
        let result = (await registry.run(
            "Square", function: try PayloadCodec.encode(Square(offset: 1)), input: try PayloadCodec.encode(7))).0
        let output = try PayloadCodec.decode(Int.self, from: try result.get())
        #expect(output == 50)
        let renamed = (await registry.run("geometry.square", function: try PayloadCodec.encode(Renamed()), input: try PayloadCodec.encode(1.5))).0
        #expect(try PayloadCodec.decode(Double.self, from: try renamed.get()) == 2.25)
    }

    @Test func aThrownErrorKeepsItsTypeAndMessage() async throws {
        let registry = try FunctionRegistry([Fails.self])
        let result = (await registry.run("Fails", function: try PayloadCodec.encode(Fails()), input: try PayloadCodec.encode("x"))).0
        guard case .failure(let failure) = result else {
            Issue.record("expected a failure")
            return
        }
        #expect(failure.kind == .thrown)
        #expect(failure.errorType.hasSuffix("Fails.Refused"))
        #expect(failure.message == "refused x")
    }

    @Test func unknownNamesAndBadPayloadsAreRefusedWithReasons() async throws {
        let registry = try FunctionRegistry([Square.self])
        guard case .failure(let unknown) = (await registry.run("Nope", function: [], input: [])).0 else {
            Issue.record("an unknown function must fail")
            return
        }
        #expect(unknown.kind == .unknownFunction)
        #expect(unknown.message.contains("'Nope'"))
        #expect(unknown.message.contains("Square"))
        guard case .failure(let badInput) = (await registry.run(
            "Square", function: try PayloadCodec.encode(Square(offset: 0)), input: Array("\"seven\"".utf8))).0
        else {
            Issue.record("a wrongly typed input must fail")
            return
        }
        #expect(badInput.kind == .decoding)
        #expect(badInput.message.contains("input of Square"))
        guard case .failure(let badCaptures) = (await registry.run("Square", function: [0xFF, 0x00], input: Array("1".utf8))).0 else {
            Issue.record("garbage captures must fail")
            return
        }
        #expect(badCaptures.kind == .decoding)
        #expect(badCaptures.message.contains("captures of Square"))
    }

    @Test func invalidAndDuplicateNamesAreRejected() {
        #expect(throws: RegistryError.self) { _ = try FunctionRegistry([BadName.self]) }
        do {
            _ = try FunctionRegistry([Square.self, Square2.self])
            Issue.record("duplicate names must be rejected")
        } catch {
            #expect(error.description.contains("'Square'"))
        }
    }
}
