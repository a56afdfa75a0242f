import CurtainRemote
import Testing

// `@Remote` on each kind of declaration it supports, compiled for real and run on an in-process cloud.

/// A top-level function.
@Remote
func scaled(_ values: [Double], by factor: Double = 2) -> [Double] { values.map { $0 * factor } }

/// A throwing top-level function returning nothing.
@Remote
func check(_ value: Int) throws {
    if value < 0 { throw NegativeValue() }
}

struct NegativeValue: Error {}

enum Geometry {
    /// A static function.
    @Remote
    static func area(width: Double, height: Double) async throws -> Double { width * height }
}

/// A model whose method runs remotely with its `self`.
struct Model: Codable, Sendable {
    var weights: [Double]

    @Remote
    func predict(_ x: [Double]) -> Double { zip(weights, x).reduce(0) { $0 + $1.0 * $1.1 } }
}

/// Registered by its record only.
@Remote
struct Triple: RemoteFunction {
    func callAsFunction(_ x: Int) async throws -> Int { 3 * x }
}

@Suite("@Remote, compiled: functions, static functions, methods, registered types")
struct RemoteMacroUseTests {
    @Test func everyKindRunsLocallyOutsideACloudAndRemotelyInside() async throws {
        let model = Model(weights: [1, 2, 3])
        // Outside any cloud: the plain functions, run here.
        #expect(await $scaled([1, 2]) == [2, 4])
        #expect(await model.$predict([1, 1, 1]) == 6)

        let cloud = try await Cloud.start(
            functions: RemoteRecords.functions, configuration: CloudConfiguration(backend: .inprocess, workers: 2))
        try await cloud.withAmbient {
            #expect(await $scaled([1, 2], by: 3) == [3, 6])
            #expect(try await Geometry.$area(width: 2, height: 4) == 8)
            #expect(await model.$predict([1, 0, 1]) == 4)
            try await $check(1)
            await #expect(throws: RemoteTaskError.self) { try await $check(-1) }
            #expect(try await cloud.run(Triple(), 5) == 15)
            // Concurrent calls, each with its own arguments.
            let sums = await withTaskGroup(of: Double.self) { group in
                for i in 0..<200 { group.addTask { await $scaled([Double(i)], by: 1)[0] } }
                var sum = 0.0
                for await x in group { sum += x }
                return sum
            }
            #expect(sums == Double(199 * 200 / 2))
        }
        await cloud.shutdown()
        let names = Set(RemoteRecords.functions.map { $0.name })
        #expect(names.isSuperset(of: [
            "CurtainRemoteTests.scaled", "CurtainRemoteTests.check", "CurtainRemoteTests.Geometry.area",
            "CurtainRemoteTests.Model.predict", "Triple",
        ]))
    }
}
