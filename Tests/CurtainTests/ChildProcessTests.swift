@testable import Curtain
import CurtainTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Child processes")
struct ChildProcessTests {
    @Test func aWorkerGetsNoDescriptorOfItsStarterButItsStandardStreams() async throws {
        // A socket without close-on-exec, as SwiftNIO opens its connections and listeners.
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(socketFD > 2)
        defer { close(socketFD) }
        #expect(fcntl(socketFD, F_GETFD) & FD_CLOEXEC == 0)
        let listing = temporaryPath("curtain-child-fds")
        defer { try? FileManager.default.removeItem(atPath: listing) }
        // The shell lists its own descriptors (ls runs as its child, so `$$` is the spawned process).
        let child = try ChildProcess(
            executable: "/bin/sh", arguments: ["-c", "ls /proc/$$/fd > '\(listing).part' && mv '\(listing).part' '\(listing)'"],
            environment: ["PATH": "/usr/bin:/bin"])
        while child.isRunning { try await Task.sleep(for: .milliseconds(5)) }
        #expect(child.termination == .exited(0))
        let descriptors = try String(contentsOfFile: listing, encoding: .utf8).split(whereSeparator: \.isNewline).compactMap { Int32($0) }
        // Its standard streams (and the listing's file) only: not the socket, nor anything else of this process.
        #expect(descriptors.contains(0) && descriptors.contains(1) && descriptors.contains(2))
        #expect(!descriptors.contains(socketFD), "the child inherited descriptor \(socketFD): \(descriptors)")
        #expect(descriptors.filter { $0 > 2 }.count <= 2, "the child holds \(descriptors)")
    }
}
