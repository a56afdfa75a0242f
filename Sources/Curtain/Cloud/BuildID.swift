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
    /// The build id of this process's executable.
    static func current() -> String { of(path: executablePath()) }

    /// The build id of the executable at `path` (what a worker started from it computes for itself).
    ///
    /// On Linux it is the ELF `NT_GNU_BUILD_ID` note the linker writes (a hash of the linked content): the
    /// same on every host the binary is copied to, different after any change to the code, and read from
    /// a few kilobytes of the file, so start-up stays cheap. Without one (another platform, or a binary
    /// linked without build ids) it falls back to a hash of the file's size, modification time and inode,
    /// which differs after any rebuild but also between copies: set `CURTAIN_BUILD_ID` then.
    static func of(path: String) -> String {
        if let note = gnuBuildID(path: path) { return String(note.prefix(16)) }
        return fileIdentity(path: path)
    }

    /// The hex of the ELF GNU build-id note of a 64-bit little-endian executable, if it has one.
    static func gnuBuildID(path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        func read(_ count: Int, at offset: Int) -> [UInt8]? {
            guard count > 0, count <= 1 << 20 else { return nil }
            var bytes = [UInt8](repeating: 0, count: count)
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            return n == count ? bytes : nil
        }
        func integer(_ bytes: [UInt8], _ at: Int, _ size: Int) -> Int {
            var value = 0
            for i in (0..<size).reversed() { value = value << 8 | Int(bytes[at + i]) }
            return value
        }
        // ELF magic, 64-bit, little-endian.
        guard let header = read(64, at: 0), header[0] == 0x7F, header[1] == 0x45, header[2] == 0x4C, header[3] == 0x46,
            header[4] == 2, header[5] == 1
        else { return nil }
        let (programHeaders, entrySize, count) = (integer(header, 0x20, 8), integer(header, 0x36, 2), integer(header, 0x38, 2))
        guard entrySize >= 56, count > 0, count < 256, let table = read(entrySize * count, at: programHeaders) else { return nil }
        for index in 0..<count {
            let entry = index * entrySize
            guard integer(table, entry, 4) == 4 else { continue }  // PT_NOTE
            guard let notes = read(integer(table, entry + 32, 8), at: integer(table, entry + 8, 8)) else { continue }
            var at = 0
            while at + 12 <= notes.count {
                let (nameSize, descSize, type) = (integer(notes, at, 4), integer(notes, at + 4, 4), integer(notes, at + 8, 4))
                let name = at + 12
                let desc = name + (nameSize + 3) / 4 * 4
                let next = desc + (descSize + 3) / 4 * 4
                guard next <= notes.count else { break }
                if type == 3, nameSize == 4, notes[name..<name + 3] == [0x47, 0x4E, 0x55], descSize > 0 {  // NT_GNU_BUILD_ID, "GNU"
                    let hex = notes[desc..<desc + descSize].map { byte in
                        let digits = String(byte, radix: 16)
                        return digits.count == 1 ? "0" + digits : digits
                    }
                    return hex.joined()
                }
                at = next
            }
        }
        return nil
    }

    /// A hash of the file's size, modification time and inode.
    static func fileIdentity(path: String) -> String {
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
