#if CURTAIN_LIBFUZZER
/// libFuzzer's entry point (built by `Scripts/fuzz.sh` with `-sanitize=fuzzer`): checks the decoder's
/// invariants on one input and traps on a violation, which libFuzzer reports with the input.
@_cdecl("LLVMFuzzerTestOneInput")
public func curtainFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    // The split point comes from the input itself, so a crash file replays exactly.
    let split = input.isEmpty ? 0 : Int(input[input.count / 2]) % (input.count + 1)
    do {
        try DecoderChecker.check(input, split: split, byteByByte: input.count <= 512)
    } catch {
        fatalError("\(error)")
    }
    return 0
}

/// libFuzzer's driver: `int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *, size_t))`.
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// The program's entry point in the libFuzzer build.
///
/// SwiftPM links every executable's `main` to `<module>_main` (here `curtain_fuzz_main`), so instead of
/// libFuzzer's own `main` this one hands the command line to libFuzzer's driver.
@_cdecl("curtain_fuzz_main")
public func curtainFuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var argc = argc
    var argv = argv
    return llvmFuzzerRunDriver(&argc, &argv) { data, size in curtainFuzzTestOneInput(data, size) }
}
#endif
