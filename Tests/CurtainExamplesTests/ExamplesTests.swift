import Curtain
import CurtainExamples
import CurtainTestSupport
import Foundation
import Testing

/// `curtain-demo`, built next to the test bundle: it doubles as the examples' worker executable.
func demoPath() throws -> String {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for directory in [bundle, bundle.deletingLastPathComponent()] {
        let candidate = directory.appendingPathComponent("curtain-demo").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw TestStoreError(description: "curtain-demo is not built next to \(bundle.path); run swift build --build-tests")
}

/// Two worker processes started as `curtain-demo <subcommand>`, so they register what that demo registers.
func demoWorkers(_ subcommand: String) throws -> CloudConfiguration {
    var configuration = CloudConfiguration(backend: .processes, workers: 2, workerExecutable: try demoPath(), buildID: "examples-\(subcommand)")
    configuration.workerArguments = [subcommand]
    configuration.showProgress = false
    return configuration
}

@Suite("Mandelbrot: rows of an image, locally and on workers")
struct MandelbrotTests {
    @Test func escapeCountsOfKnownPoints() {
        #expect(MandelbrotRow.escapeCount(real: 0.5, imaginary: 0, maxIterations: 100) == 5)  // 0, .5, .75, 1.0625, 1.63, 3.15
        #expect(MandelbrotRow.escapeCount(real: -2.5, imaginary: 0, maxIterations: 100) == 1)  // |c| > 2
        #expect(MandelbrotRow.escapeCount(real: 0, imaginary: 0, maxIterations: 100) == 100)
        #expect(MandelbrotRow.escapeCount(real: -1, imaginary: 0, maxIterations: 100) == 100)  // the 2-cycle 0, -1
        #expect(MandelbrotRow.escapeCount(real: 0, imaginary: 1, maxIterations: 100) == 100)  // 0, i, -1+i, -i, -1+i, …
        #expect(MandelbrotRow.escapeCount(real: 0, imaginary: 1, maxIterations: 70_000) == UInt16.max)
    }

    /// The middle row of an odd-height image of the whole set lies on the real axis: it crosses the main
    /// cardioid and the period-2 bulb (every pixel there reaches the cap) and leaves the set on both sides.
    @Test func theMiddleRowCrossesTheMainCardioid() async throws {
        let render = MandelbrotRow(width: 351, height: 263, maxIterations: 400)
        let middle = render.height / 2
        let row = try await render(middle)
        #expect(row.count == render.width)
        var (inside, far, escaping) = (0, 0, 0)
        for (column, count) in row.enumerated() {
            let (x, y) = render.point(column: column, row: middle)
            #expect(abs(y) < 1e-12)
            let q = (x - 0.25) * (x - 0.25) + y * y
            let inCardioid = q * (q + (x - 0.25)) < y * y / 4 - 0.005
            let inBulb = (x + 1) * (x + 1) + y * y < 1.0 / 16 - 0.005
            if inCardioid || inBulb {
                inside += 1
                #expect(count == 400, "c = \(x) is inside the set but escaped after \(count)")
            } else if x * x + y * y > 4 {
                far += 1
                #expect(count == 1, "|c| > 2 at c = \(x) yet \(count) iterations")
            } else if x >= 0.3 {
                escaping += 1
                #expect(count > 1 && count < 400, "c = \(x) on the real axis beyond 1/4 escapes, not \(count)")
            }
        }
        #expect(inside > 100 && far > 20 && escaping > 30, "too few pixels checked: \(inside) inside, \(far) far, \(escaping) escaping")
        // The cardioid's cusp at 1/4: the last pixel at the cap is just below it.
        let lastInSet = row.lastIndex(of: 400).map { render.point(column: $0, row: middle).real } ?? -9
        #expect(lastInSet > 0.2 && lastInSet <= 0.25)
        await #expect(throws: RowOutOfRange.self) { try await render(render.height) }
    }

    @Test func rowsThroughCurtainEqualTheLocalImage() async throws {
        let render = MandelbrotRow(width: 240, height: 90, maxIterations: 300)
        let local = await MandelbrotRow.localImage(render)
        #expect(local.count == 90 && local.allSatisfy { $0.count == 240 })
        let cloud = try await Cloud.start(functions: [MandelbrotRow.self], configuration: try demoWorkers("mandelbrot"))
        do {
            let remote = try await cloud.map(render, over: 0..<render.height)
            #expect(remote == local)
            #expect(local.joined().contains(300) && local.joined().contains(1))
        } catch {
            await cloud.shutdown()
            throw error
        }
        await cloud.shutdown()
    }
}

@Suite("k-means: a captured point set and shared accumulators, locally and on workers")
struct KMeansTests {
    @Test func convergesToTheGeneratingCentres() async throws {
        let data = KMeansData.generate(count: 40_000, k: 8, dimensions: 2, seed: 1)
        #expect(data.count == 40_000 && data.k == 8 && data.points.count == 80_000)
        let initial = data.initialCentroids(k: 8)
        #expect(initial.count == 16)
        // Farthest-first picks outlying points: a start worth improving on.
        #expect(data.largestCentreError(initial) > 0.5)
        let result = await KMeans.runLocally(data: data, initial: initial, rounds: 10, slices: 8)
        // 5,000 points per cluster of σ = 1: each mean is within a few hundredths of its centre.
        #expect(data.largestCentreError(result.centroids) < 0.1, "centroids \(result.centroids)")
        #expect(result.counts.reduce(0, +) == 40_000)
        #expect(result.counts.allSatisfy { abs($0 - 5_000) < 500 }, "counts \(result.counts)")
        // The same data from the same seed, another data set from another.
        #expect(KMeansData.generate(count: 40_000, k: 8, seed: 1) == data)
        #expect(KMeansData.generate(count: 40_000, k: 8, seed: 2) != data)
    }

    @Test func slicesCoverEveryPointOnce() {
        for (count, slices) in [(0, 8), (7, 8), (8, 8), (40_001, 8), (10, 3)] {
            let ranges = (0..<slices).map { KMeans.sliceRange($0, of: count, slices: slices) }
            #expect(ranges.first?.lowerBound == 0 && ranges.last?.upperBound == count)
            #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        }
    }

    @Test func roundsThroughCurtainEqualTheLocalRunBitForBit() async throws {
        let data = KMeansData.generate(count: 12_000, k: 8, dimensions: 2, seed: 5)
        let initial = data.initialCentroids(k: 8)
        let local = await KMeans.runLocally(data: data, initial: initial, rounds: 10, slices: 8)
        let cloud = try await Cloud.start(functions: [KMeansStep.self], configuration: try demoWorkers("kmeans"))
        do {
            let remote = try await KMeans.run(on: cloud, data: data, initial: initial, rounds: 10, slices: 8)
            #expect(remote.isIdentical(to: local), "local \(local.centroids) vs Curtain \(remote.centroids)")
            #expect(data.largestCentreError(remote.centroids) < 0.2)
        } catch {
            await cloud.shutdown()
            throw error
        }
        await cloud.shutdown()
    }
}

@Suite("curtain-demo mandelbrot and kmeans --json")
struct ExampleDemoTests {
    /// Runs `curtain-demo` with `arguments` and returns its one JSON object.
    func demoJSON(_ arguments: [String]) async throws -> [String: Any] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try demoPath())
        process.arguments = arguments + ["--json", "--backend", "processes", "--workers", "2"]
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "CURTAIN_ROLE")
        environment["CURTAIN_PROGRESS"] = "0"
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let bytes = try await runBlocking { output.fileHandleForReading.readDataToEndOfFile() }
        await waitForExit(process)
        #expect(process.terminationStatus == 0)
        let object = try JSONSerialization.jsonObject(with: bytes) as? [String: Any]
        return try #require(object, "not one JSON object: \(String(decoding: bytes, as: UTF8.self))")
    }

    @Test func mandelbrotPrintsItsFiguresAndAnIdenticalImage() async throws {
        let json = try await demoJSON(["mandelbrot", "--width", "64", "--height", "24", "--iterations", "200"])
        #expect(json["identical"] as? Bool == true)
        #expect(json["rows"] as? Int == 24 && json["workers"] as? Int == 2 && json["backend"] as? String == "processes(2)")
        for key in ["local_s", "curtain_s", "ratio", "task_p50_ms"] { #expect((json[key] as? Double ?? -1) > 0, "\(key)") }
    }

    @Test func kmeansPrintsItsFiguresAndIdenticalCentroids() async throws {
        let json = try await demoJSON(["kmeans", "--points", "4000", "--rounds", "3", "--k", "4"])
        #expect(json["identical"] as? Bool == true)
        #expect(json["points"] as? Int == 4000 && json["rounds"] as? Int == 3 && json["tasks"] as? Int == 24)
        #expect(json["workers"] as? Int == 2 && json["backend"] as? String == "processes(2)")
        for key in ["local_s", "curtain_s", "ratio", "task_p50_ms"] { #expect((json[key] as? Double ?? -1) > 0, "\(key)") }
    }
}
