// A task group over a pure function: the rows of a Mandelbrot image, one child task per row.

/// The escape iterations of each pixel of row `y`.
func row(_ y: Int, width: Int, height: Int) -> [UInt16] {
    var pixels = [UInt16](repeating: 0, count: width)
    let ci = Double(y) / Double(height) * 2.4 - 1.2
    for x in 0..<width {
        let cr = Double(x) / Double(width) * 3.2 - 2.2
        var (zr, zi, n) = (0.0, 0.0, 0)
        while n < 1_000 && zr * zr + zi * zi <= 4 {
            (zr, zi) = (zr * zr - zi * zi + cr, 2 * zr * zi + ci)
            n += 1
        }
        pixels[x] = UInt16(n)
    }
    return pixels
}

@main
struct Mandelbrot {
    static func main() async {
        let (width, height) = (320, 240)
        let image = await withTaskGroup(of: (Int, [UInt16]).self) { group in
            for y in 0..<height {
                group.addTask { (y, row(y, width: width, height: height)) }
            }
            var image = [[UInt16]](repeating: [], count: height)
            for await (y, pixels) in group { image[y] = pixels }
            return image
        }
        let inside = image.joined().filter { $0 == 1_000 }.count
        let checksum = image.joined().reduce(UInt64(0)) { $0 &* 31 &+ UInt64($1) }
        print("mandelbrot \(width)x\(height): \(inside) pixels inside, checksum \(checksum)")
    }
}
