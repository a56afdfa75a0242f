public import Curtain

/// A rectangle of the complex plane: what an image of ``MandelbrotRow`` shows.
public struct ComplexWindow: Codable, Sendable, Hashable {
    /// The real part at the left edge of the image.
    public var realMin: Double
    /// The real part at the right edge of the image.
    public var realMax: Double
    /// The imaginary part at the bottom edge of the image.
    public var imaginaryMin: Double
    /// The imaginary part at the top edge of the image.
    public var imaginaryMax: Double

    /// Creates a window; each minimum should be below its maximum.
    public init(realMin: Double, realMax: Double, imaginaryMin: Double, imaginaryMax: Double) {
        self.realMin = realMin
        self.realMax = realMax
        self.imaginaryMin = imaginaryMin
        self.imaginaryMax = imaginaryMax
    }

    /// The whole Mandelbrot set: [-2.5, 1] × [-1.3125, 1.3125], a 4:3 window (so 1,600 × 1,200 pixels are
    /// square), symmetric about the real axis.
    public static let wholeSet = ComplexWindow(realMin: -2.5, realMax: 1, imaginaryMin: -1.3125, imaginaryMax: 1.3125)
}

/// A row index outside the image was asked of a ``MandelbrotRow``.
public struct RowOutOfRange: Error, Sendable, Hashable, CustomStringConvertible {
    /// The row asked for.
    public var row: Int
    /// The image's height (valid rows are `0..<height`).
    public var height: Int

    /// Creates the error.
    public init(row: Int, height: Int) {
        self.row = row
        self.height = height
    }

    /// The row and the valid range.
    public var description: String { "row \(row) is outside the image's rows 0..<\(height)" }
}

/// One row of a Mandelbrot image: the escape count of each pixel.
///
/// A remote function whose captures are the image's geometry (size, iteration cap, window) and whose input
/// is a row index (0 is the top row). Pixel `(x, y)` samples the centre of its cell of the window; its count
/// is the number of steps `z ← z² + c` from `z = 0` taken before `|z|² > 4`, at most ``maxIterations``
/// (points of the set reach the cap). The arithmetic is plain `Double` code in a fixed order, so a row is
/// bit-for-bit the same in this process and on any worker of the same build.
///
/// ```swift
/// let render = MandelbrotRow(width: 1_600, height: 1_200, maxIterations: 5_000)
/// let image = try await cloud.map(render, over: 0..<render.height)       // 1,200 rows of 1,600 counts
/// ```
public struct MandelbrotRow: RemoteFunction {
    /// Pixels per row.
    public var width: Int
    /// Rows in the image.
    public var height: Int
    /// The iteration cap, at most `UInt16.max`: the count of every point of the set.
    public var maxIterations: Int
    /// The part of the complex plane the image shows.
    public var window: ComplexWindow

    /// The iteration cap that makes a 1,600-pixel row of ``ComplexWindow/wholeSet`` about 2.5 ms of
    /// optimized code (the mean over 1,200 rows: 2.49 ms with `swiftc -O` on the 2-core machine this was
    /// measured on; a release build of the package gives 1.5 s for the 1,200 rows on 2 cores). A debug
    /// build is about ten times slower.
    public static let defaultMaxIterations = 2_800

    /// Creates the function for an image of `width` × `height` pixels of `window`.
    ///
    /// `maxIterations` is clamped to `1...UInt16.max` when rows are computed.
    public init(width: Int, height: Int, maxIterations: Int, window: ComplexWindow = .wholeSet) {
        self.width = width
        self.height = height
        self.maxIterations = maxIterations
        self.window = window
    }

    /// The escape counts of row `row`, left to right.
    ///
    /// - Throws: ``RowOutOfRange`` when `row` is not in `0..<height`.
    public func callAsFunction(_ row: Int) async throws -> [UInt16] {
        guard (0..<height).contains(row) else { throw RowOutOfRange(row: row, height: height) }
        return counts(row: row)
    }

    /// The escape counts of row `row` (in `0..<height`), computed here: what a task returns.
    public func counts(row: Int) -> [UInt16] {
        let cap = min(max(maxIterations, 1), Int(UInt16.max))
        let imaginary = point(column: 0, row: row).imaginary
        return (0..<max(width, 0)).map { column in
            Self.escapeCount(real: point(column: column, row: row).real, imaginary: imaginary, maxIterations: cap)
        }
    }

    /// The point of the plane that pixel (`column`, `row`) samples: the centre of its cell of ``window``.
    public func point(column: Int, row: Int) -> (real: Double, imaginary: Double) {
        let dx = (window.realMax - window.realMin) / Double(width)
        let dy = (window.imaginaryMax - window.imaginaryMin) / Double(height)
        return (window.realMin + (Double(column) + 0.5) * dx, window.imaginaryMax - (Double(row) + 0.5) * dy)
    }

    /// The number of steps `z ← z² + c` from `z = 0` with `|z|² ≤ 4` before each, at most `maxIterations`
    /// (clamped to `UInt16.max`): 1 for `|c| > 2`, `maxIterations` for a point of the set, 5 for `c = 0.5`.
    @inlinable
    public static func escapeCount(real: Double, imaginary: Double, maxIterations: Int) -> UInt16 {
        let cap = min(maxIterations, Int(UInt16.max))
        var zr = 0.0
        var zi = 0.0
        var n = 0
        while n < cap {
            let zr2 = zr * zr
            let zi2 = zi * zi
            if zr2 + zi2 > 4 { break }
            zi = 2 * zr * zi + imaginary
            zr = zr2 - zi2 + real
            n += 1
        }
        return UInt16(truncatingIfNeeded: n)
    }

    /// The local baseline: every row of `function`'s image computed with the same code in a plain Swift
    /// `TaskGroup` in this process (one child task per row, as `cloud.map` makes one task per row).
    ///
    /// - Returns: the rows in order, equal to `cloud.map(function, over: 0..<function.height)`.
    public static func localImage(_ function: MandelbrotRow) async -> [[UInt16]] {
        await withTaskGroup(of: (Int, [UInt16]).self) { group in
            for row in 0..<max(function.height, 0) {
                group.addTask { (row, function.counts(row: row)) }
            }
            var rows = [[UInt16]](repeating: [], count: max(function.height, 0))
            for await (row, counts) in group { rows[row] = counts }
            return rows
        }
    }
}
