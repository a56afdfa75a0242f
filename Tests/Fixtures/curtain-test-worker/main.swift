import Curtain
import CurtainTestFunctions
import Foundation

// A worker executable for the tests: started with CURTAIN_ROLE=worker, Cloud.start never returns.
let cloud = try await Cloud.start(functions: allTestFunctions, actors: allTestActors)
// With CURTAIN_FIXTURE_PROGRESS=1 it runs a job of about a second with the default options and exits: a
// test runs it under a pseudo-terminal and through a pipe to see the progress bar drawn only on the first.
if ProcessInfo.processInfo.environment["CURTAIN_FIXTURE_PROGRESS"] == "1" {
    let outputs = try await cloud.map(SlowSquare(milliseconds: 10), over: 0..<200)
    print("sum:\(outputs.reduce(0, +))")
    await cloud.shutdown()
    exit(0)
}
// Started as a driver, it runs a few tasks on its workers and prints their process ids; with
// CURTAIN_FIXTURE_HOLD=1 it then waits forever (a test kills it with SIGKILL).
let pids = Set(try await cloud.map(WhereAmI(), over: 0..<20)).sorted()
print("workers:" + pids.map(String.init).joined(separator: ","))
fflush(nil)  // all streams: the test reads this line through a pipe
if ProcessInfo.processInfo.environment["CURTAIN_FIXTURE_HOLD"] == "1" {
    while true { try await Task.sleep(for: .seconds(60)) }
}
await cloud.shutdown()
