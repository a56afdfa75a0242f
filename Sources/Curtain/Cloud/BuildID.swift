#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The identity of the running executable's code, part of every queue name and envelope so that a worker
/// built from other code never takes a job's tasks.
enum BuildID {
    /// A hash of the executable's size, modification time and inode: cheap to compute at start-up (no need
    /// to read a large binary) and different after any rebuild or replacement of the file.
    static func current() -> String { of(path: executablePath()) }

    /// The build id of the executable at `path` (what a worker started from it computes for itself).
    static func of(path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return "unknown-\(path.utf8.count)" }
        #if canImport(Darwin)
        let mtime = Int64(info.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(info.st_mtimespec.tv_nsec)
        #else
        let mtime = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        #endif
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for part in [UInt64(info.st_size), UInt64(bitPattern: mtime), UInt64(info.st_ino)] {
            for shift in stride(from: 0, to: 64, by: 8) {
                hash ^= (part >> UInt64(shift)) & 0xFF
                hash = hash &* 0x100_0000_01b3
            }
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// This process's executable.
    static func executablePath() -> String {
        #if os(Linux)
        return "/proc/self/exe"
        #else
        return CommandLine.arguments.first ?? ""
        #endif
    }
}
