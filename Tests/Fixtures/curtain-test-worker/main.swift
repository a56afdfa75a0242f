import Curtain
import CurtainTestFunctions

// A worker executable for the tests: started with CURTAIN_ROLE=worker, Cloud.start never returns.
let cloud = try await Cloud.start(functions: allTestFunctions)
// Started by hand (driver role), it runs one task in-process and prints the result.
print(try await cloud.run(Square(offset: 1), 6))
await cloud.shutdown()
