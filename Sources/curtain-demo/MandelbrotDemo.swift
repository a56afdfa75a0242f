import ArgumentParser
import Curtain
import CurtainExamples

/// `curtain-demo mandelbrot`: a Mandelbrot image rendered row by row, locally in a TaskGroup and as a
/// Curtain map with one task per row, with the time ratio and whether the images are identical.
struct MandelbrotDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mandelbrot",
        abstract: "Mandelbrot rows: a plain Swift TaskGroup (the local baseline) vs cloud.map over the rows.",
        discussion: """
            Each row is one task returning its pixels' escape counts as [UInt16]. The default iteration cap \
            makes a row about 2.5 ms of compute in a release build. The Curtain time excludes the cloud's \
            start-up (workers are started and connected before either run is timed) and includes everything \
            else: encoding, transfer through the store, decoding of every row.
            """
    )

    @Option(help: "Pixels per row.")
    var width: Int = 1_600

    @Option(help: "Rows (one task each).")
    var height: Int = 1_200

    @Option(help: "The iteration cap (at most 65535): the count of the set's points.")
    var iterations: Int = MandelbrotRow.defaultMaxIterations

    @Flag(help: "Print one JSON line instead of text.")
    var json = false

    @OptionGroup var cloudOptions: CloudOptions

    func validate() throws {
        guard width >= 1, height >= 1 else { throw ValidationError("--width and --height must be at least 1") }
        guard (1...Int(UInt16.max)).contains(iterations) else { throw ValidationError("--iterations must be from 1 to 65535") }
    }

    func run() async throws {
        // In a worker process this call never returns.
        let cloud = try await Cloud.start(functions: [MandelbrotRow.self], configuration: try cloudOptions.configuration())
        // Neither run is charged the workers' start-up: they start before the baseline, not during it.
        try await cloud.waitForWorkers()
        let render = MandelbrotRow(width: width, height: height, maxIterations: iterations)
        let clock = ContinuousClock()

        var start = clock.now
        let local = await MandelbrotRow.localImage(render)
        let localSeconds = seconds(clock.now - start)

        let log = SummaryLog()
        start = clock.now
        let remote = try await cloud.map(render, over: 0..<height, options: log.options(print: cloudOptions.summary))
        let curtainSeconds = seconds(clock.now - start)
        await cloud.shutdown()

        let identical = local == remote
        let inSet = local.reduce(0) { total, row in total + row.lazy.filter { Int($0) == iterations }.count }
        let backend = PiDemo.describe(cloud.configuration)
        let workers = cloud.configuration.workers
        let ratio = localSeconds / curtainSeconds
        let (p50, p99) = (log.taskP50Milliseconds, log.taskP99Milliseconds)
        if json {
            print(
                "{\"width\":\(width),\"height\":\(height),\"iterations\":\(iterations),\"rows\":\(height),\"tasks\":\(height),\"in_set\":\(inSet),\"backend\":\"\(backend)\",\"workers\":\(workers),\"local_s\":\(round4(localSeconds)),\"curtain_s\":\(round4(curtainSeconds)),\"ratio\":\(round4(ratio)),\"identical\":\(identical),\"task_p50_ms\":\(round4(p50)),\"task_p99_ms\":\(round4(p99)),\"tasks_per_s\":\(round4(Double(height) / curtainSeconds))}")
        } else {
            print("Mandelbrot \(width) × \(height), at most \(iterations) iterations, \(inSet) pixels in the set, \(backend)")
            print("local TaskGroup:      \(round4(localSeconds)) s")
            print("Curtain map of rows:  \(round4(curtainSeconds)) s   \(height) tasks, task p50 \(round4(p50)) ms, p99 \(round4(p99)) ms")
            print("ratio local/curtain:  \(round4(ratio))   images identical: \(identical)")
        }
        guard identical else { throw ValidationError("the images differ") }
    }
}
