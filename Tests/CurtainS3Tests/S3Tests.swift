import Curtain
@testable import CurtainS3
import CurtainTestSupport
import Foundation
import Testing

/// A moto_server (an S3 imitation from PyPI, installed by Scripts/test.sh into .venv-s3) on a free port.
final class MotoServer: Sendable {
    let process: Process
    let endpoint: String

    static func executable() throws -> String {
        if let path = ProcessInfo.processInfo.environment["CURTAIN_MOTO_SERVER"] { return path }
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent(".venv-s3/bin/moto_server").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        throw TestStoreError(description: "moto_server is not installed; run Scripts/test.sh, which installs it into .venv-s3")
    }

    static func python() throws -> String {
        URL(fileURLWithPath: try executable()).deletingLastPathComponent().appendingPathComponent("python").path
    }

    /// Starts a server on a free port and waits until it accepts connections (on another port if it
    /// lost a race for that one); with `authenticated`, every request after the first three must be
    /// signed with keys moto's IAM issued (see ``issueKeys()``), and moto checks the signatures.
    init(authenticated: Bool = false) async throws {
        var environment = ProcessInfo.processInfo.environment
        if authenticated { environment["INITIAL_NO_AUTH_ACTION_COUNT"] = "3" }
        for _ in 0..<5 {
            let port = try TestPorts.next()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try Self.executable())
            process.arguments = ["-H", "127.0.0.1", "-p", String(port)]
            process.environment = environment
            process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            let deadline = ContinuousClock.now + .seconds(30)
            while process.isRunning && ContinuousClock.now < deadline {
                if Self.accepts(port: port) {
                    self.process = process
                    self.endpoint = "http://127.0.0.1:\(port)"
                    return
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            await terminate(process)
        }
        throw TestStoreError(description: "moto_server did not start (5 tries)")
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port` (a non-blocking probe would be
    /// overkill: loopback connects or is refused at once).
    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    func stop() async { await terminate(process) }

    /// Runs `script` with the venv's Python and `argument`, returning what it printed (both streams).
    static func runPython(_ script: String, _ argument: String) async throws -> String {
        try await runBlocking {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try MotoServer.python())
            process.arguments = ["-c", script, argument]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// Creates an IAM user allowed everything and returns its access key and secret (the three
    /// unauthenticated actions of an authenticated server).
    func issueKeys() async throws -> (String, String) {
        let script = """
            import boto3, sys, time, urllib.request
            from botocore.config import Config
            # Wait until moto answers its own API (not an AWS action: the three unauthenticated ones are
            # kept for the calls below).
            deadline = time.time() + 60
            while True:
                try:
                    urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=5).read()
                    break
                except Exception:
                    if time.time() > deadline: raise
                    time.sleep(0.2)
            iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                               aws_access_key_id="x", aws_secret_access_key="x",
                               config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2}))
            iam.create_user(UserName="curtain")
            iam.put_user_policy(UserName="curtain", PolicyName="all", PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}')
            key = iam.create_access_key(UserName="curtain")["AccessKey"]
            print(key["AccessKeyId"], key["SecretAccessKey"])
            """
        let output = try await Self.runPython(script, endpoint)
        let parts = output.split(separator: "\n").last?.split(whereSeparator: \.isWhitespace) ?? []
        guard parts.count == 2 else { throw TestStoreError(description: "moto issued no keys: \(output)") }
        return (String(parts[0]), String(parts[1]))
    }

    /// A store on a fresh bucket of this server, created once the server answers.
    func store(bucket: String = "b\(UUID().uuidString.prefix(8).lowercased())", prefix: String = "") async throws -> S3ObjectStore {
        var configuration = try S3Configuration(
            bucket: bucket, keyPrefix: prefix, region: "us-east-1", endpoint: endpoint, accessKey: "testing", secretKey: "testing")
        configuration.multipartThreshold = 5 << 20
        configuration.partSize = 5 << 20
        let store = S3ObjectStore(configuration: configuration)
        for attempt in 0..<200 {
            do {
                try await store.createBucket()
                return store
            } catch let error as StorageError where error.kind == .unavailable && attempt < 199 {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        throw TestStoreError(description: "moto_server did not answer")
    }
}

func withMoto(authenticated: Bool = false, _ body: (MotoServer) async throws -> Void) async throws {
    let moto = try await MotoServer(authenticated: authenticated)
    do {
        try await body(moto)
    } catch {
        await moto.stop()
        throw error
    }
    await moto.stop()
}

/// Chunks of `size` bytes, `count` of them, then an error if `fail`.
struct Chunks: AsyncSequence, Sendable {
    typealias Element = [UInt8]
    let count: Int
    let size: Int
    let fail: Bool
    struct Died: Error {}
    struct AsyncIterator: AsyncIteratorProtocol {
        var sent = 0
        let chunks: Chunks
        mutating func next() async throws -> [UInt8]? {
            guard sent < chunks.count else {
                if chunks.fail { throw Died() }
                return nil
            }
            sent += 1
            return [UInt8](repeating: UInt8(sent % 251), count: chunks.size)
        }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(chunks: self) }
}

@Suite("SigV4: AWS's published examples")
struct SigV4Tests {
    let signer = SigV4Signer(
        accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1")

    func signature(_ headers: [(String, String)]) -> String {
        let authorization = headers.first { $0.0 == "Authorization" }!.1
        return String(authorization.split(separator: "=").last!)
    }

    @Test func getObjectWithARange() {
        let headers = signer.sign(
            method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/test.txt", query: [], headers: [("Range", "bytes=0-9")],
            payloadHash: SigV4Signer.emptyPayloadHash, amzDate: "20130524T000000Z")
        #expect(signature(headers) == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(headers.first { $0.0 == "Authorization" }!.1.contains("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"))
    }

    @Test func putObjectWithAPayload() {
        let payload = Array("Welcome to Amazon S3.".utf8)
        #expect(SigV4Signer.hash(payload) == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let headers = signer.sign(
            method: "PUT", host: "examplebucket.s3.amazonaws.com", path: "/test$file.text", query: [],
            headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            payloadHash: SigV4Signer.hash(payload), amzDate: "20130524T000000Z")
        #expect(signature(headers) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test func listObjectsWithAQuery() {
        let headers = signer.sign(
            method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/", query: [("max-keys", "2"), ("prefix", "J")], headers: [],
            payloadHash: SigV4Signer.emptyPayloadHash, amzDate: "20130524T000000Z")
        #expect(signature(headers) == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func encodingAndURLs() throws {
        #expect(SigV4Signer.encode("a b/c~d") == "a%20b%2Fc~d")
        let configuration = try S3Configuration(
            url: "s3://my-bucket/base/dir?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A9000",
            environment: ["AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"])
        #expect(configuration.keyPrefix == "base/dir/")
        #expect(configuration.pathStyle)
        #expect(configuration.location(of: "x/y.txt") == ("127.0.0.1:9000", "/my-bucket/base/dir/x/y.txt"))
        let aws = try S3Configuration(url: "s3://my-bucket", environment: ["AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-west-1"])
        #expect(!aws.pathStyle)
        #expect(aws.location(of: "k") == ("my-bucket.s3.eu-west-1.amazonaws.com", "/k"))
        #expect(throws: StorageError.self) { try S3Configuration(url: "s3://my-bucket", environment: [:]) }  // no credentials
        #expect(throws: StorageError.self) { try S3Configuration(url: "s3://Bad_Bucket", environment: ["AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"]) }
        #expect(throws: StorageError.self) { try S3Configuration(url: "s3://bucket?colour=red", environment: ["AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"]) }
        #expect(HTTPDate.parse("Wed, 21 Oct 2015 07:28:00 GMT") == 1_445_412_480)
        #expect(HTTPDate.parse("2015-10-21T07:28:00.000Z") == 1_445_412_480)
    }
}

// Serialized: one moto_server at a time (each is a Python process of ~100 MB starting up).
@Suite("S3: the object store against a real S3 server (moto)", .serialized)
struct S3StoreTests {
    @Test func objectsAreWrittenReadListedAndDeleted() async throws {
        try await withMoto { moto in
            let store = try await moto.store(prefix: "base")
            try await store.put("a/one.txt", bytes: Array("hello\nworld\n".utf8))
            try await store.put("a/b/two.bin", bytes: [0, 1, 2, 255])
            try await store.put("empty", bytes: [])
            try await store.put("odd/a b+c%d~é.txt", bytes: [7])
            #expect(try await store.get("odd/a b+c%d~é.txt", range: nil) == [7])
            #expect(try await store.list(prefix: "odd/").map(\.key) == ["odd/a b+c%d~é.txt"])
            try await store.delete("odd/a b+c%d~é.txt")
            #expect(try await store.get("a/one.txt", range: nil) == Array("hello\nworld\n".utf8))
            #expect(try await store.get("a/one.txt", range: 6..<11) == Array("world".utf8))
            #expect(try await store.get("a/one.txt", range: 10..<100) == Array("d\n".utf8))
            #expect(try await store.get("a/one.txt", range: 50..<60) == [])
            #expect(try await store.get("empty", range: nil) == [])
            #expect(try await store.head("a/b/two.bin")?.size == 4)
            #expect(try await store.head("a/b/two.bin")!.modified > 1_700_000_000)
            #expect(try await store.head("missing") == nil)
            #expect(try await store.list(prefix: "a/").map(\.key) == ["a/b/two.bin", "a/one.txt"])
            #expect(try await store.list(prefix: "").map(\.key) == ["a/b/two.bin", "a/one.txt", "empty"])
            try await store.delete("a/one.txt")
            try await store.delete("a/one.txt")
            #expect(try await store.head("a/one.txt") == nil)
            do {
                _ = try await store.get("a/one.txt", range: nil)
                Issue.record("expected notFound")
            } catch let error as StorageError {
                #expect(error.kind == .notFound)
                #expect(error.message.contains("a/one.txt"))
            }
            // Listing pages through more than 1,000 objects.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<1_005 {
                    group.addTask { try await store.put("many/\(String(format: "%05d", i))", bytes: [UInt8(i % 256)]) }
                    if i % 16 == 15 { try await group.next() }
                }
                try await group.waitForAll()
            }
            let many = try await store.list(prefix: "many/")
            #expect(many.count == 1_005)
            #expect(many.first?.key == "many/00000" && many.last?.key == "many/01004")
        }
    }

    @Test func largeObjectsGoUpInPartsAndAFailedUploadLeavesNothing() async throws {
        try await withMoto { moto in
            let store = try await moto.store()
            // 12 MiB in 1 MiB chunks: three parts of 5, 5 and 2 MiB.
            try await store.put("big", chunks: Chunks(count: 12, size: 1 << 20, fail: false))
            let back = try await store.get("big", range: nil)
            #expect(back.count == 12 << 20)
            #expect(back[0] == 1 && back[(1 << 20) * 11] == 12)
            #expect(try await store.get("big", range: (5 << 20)..<((5 << 20) + 4)) == [6, 6, 6, 6])
            // Small objects written from chunks are one PUT.
            try await store.put("small", chunks: Chunks(count: 3, size: 10, fail: false))
            #expect(try await store.head("small")?.size == 30)
            // An upload that dies after two parts were sent: no object, old or partial, appears.
            try await store.put("old", bytes: Array("old".utf8))
            await #expect(throws: Chunks.Died.self) { try await store.put("old", chunks: Chunks(count: 11, size: 1 << 20, fail: true)) }
            await #expect(throws: Chunks.Died.self) { try await store.put("never", chunks: Chunks(count: 11, size: 1 << 20, fail: true)) }
            #expect(try await store.get("old", range: nil) == Array("old".utf8))
            #expect(try await store.head("never") == nil)
            #expect(try await store.list(prefix: "").map(\.key) == ["big", "old", "small"])
            // …and no upload is left open (moto, like S3, would keep its parts).
            let open = try await store.request(.GET, key: nil, query: [("uploads", "")], expect: [200])
            #expect(ListingParser.elements("Upload", in: String(decoding: open.body, as: UTF8.self)).isEmpty)
        }
    }

    @Test func aBadEndpointAndAMissingBucketAreClearErrors() async throws {
        let port = try TestPorts.next()
        var configuration = try S3Configuration(
            bucket: "nowhere", region: "us-east-1", endpoint: "http://127.0.0.1:\(port)", accessKey: "k", secretKey: "s")
        configuration.attempts = 2
        do {
            _ = try await S3ObjectStore(configuration: configuration).get("x", range: nil)
            Issue.record("expected an error")
        } catch let error as StorageError {
            #expect(error.kind == .unavailable)
            #expect(error.message.contains("cannot reach http://127.0.0.1:\(port)"))
        }
        try await withMoto { moto in
            _ = try await moto.store(bucket: "exists")
            var missing = try S3Configuration(
                bucket: "no-such-bucket", region: "us-east-1", endpoint: moto.endpoint, accessKey: "testing", secretKey: "testing")
            missing.attempts = 1
            do {
                _ = try await S3ObjectStore(configuration: missing).get("x", range: nil)
                Issue.record("expected an error")
            } catch let error as StorageError {
                #expect(error.kind == .configuration)
                #expect(error.message.contains("no-such-bucket"))
            }
        }
    }

    @Test func signaturesAreAcceptedByAVerifyingServerAndBadCredentialsRefused() async throws {
        try await withMoto(authenticated: true) { moto in
            let (key, secret) = try await moto.issueKeys()
            func store(_ key: String, _ secret: String) throws -> S3ObjectStore {
                var configuration = try S3Configuration(
                    bucket: "guarded", region: "us-east-1", endpoint: moto.endpoint, accessKey: key, secretKey: secret)
                configuration.attempts = 1
                return S3ObjectStore(configuration: configuration)
            }
            // moto recomputes every signature: these only succeed if ours are right, query and ranges too.
            let good = try store(key, secret)
            try await good.createBucket()
            // (Plain keys and prefixes here: moto's own check rejects keys with spaces or '+', and list
            // prefixes with '/', even from boto3; such keys round-trip on the unauthenticated server below.)
            try await good.put("dir/a.txt", bytes: Array("signed".utf8))
            #expect(try await good.get("dir/a.txt", range: 1..<4) == Array("ign".utf8))
            #expect(try await good.list(prefix: "di").map(\.key) == ["dir/a.txt"])
            for (badKey, badSecret, code) in [(key, "wrong-secret", "SignatureDoesNotMatch"), ("AKIANOBODY", secret, "InvalidAccessKeyId")] {
                do {
                    _ = try await store(badKey, badSecret).get("dir/a.txt", range: nil)
                    Issue.record("\(code): expected an error")
                } catch let error as StorageError {
                    #expect(error.kind == .accessDenied)
                    #expect(error.message.contains(code))
                    #expect(error.message.contains(badKey))
                }
            }
            #expect(try await good.get("dir/a.txt", range: nil) == Array("signed".utf8))  // untouched
        }
    }

    @Test func curtainAndBoto3ReadEachOthersObjects() async throws {
        try await withMoto { moto in
            let store = try await moto.store(bucket: "shared", prefix: "p")
            let payload = (0..<300_000).map { UInt8($0 % 251) }
            try await store.put("from-curtain/data.bin", bytes: payload)
            try await store.put("from-curtain/big.bin", chunks: Chunks(count: 12, size: 1 << 20, fail: false))
            let script = """
                import boto3, hashlib, sys
                s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
                data = s3.get_object(Bucket="shared", Key="p/from-curtain/data.bin")["Body"].read()
                assert data == bytes(i % 251 for i in range(300000)), "data.bin differs"
                big = s3.get_object(Bucket="shared", Key="p/from-curtain/big.bin")["Body"].read()
                assert len(big) == 12 << 20 and big[0] == 1 and big[-1] == 12, "big.bin differs"
                s3.put_object(Bucket="shared", Key="p/from-boto/hello.txt", Body=b"hello from boto3\\n")
                print("ok")
                """
            let output = try await MotoServer.runPython(script, moto.endpoint)
            #expect(output.hasSuffix("ok\n"), "\(output)")
            #expect(try await store.get("from-boto/hello.txt", range: nil) == Array("hello from boto3\n".utf8))
            #expect(try await store.list(prefix: "").map(\.key) == ["from-boto/hello.txt", "from-curtain/big.bin", "from-curtain/data.bin"])
        }
    }

    @Test func storageOpensS3URLsOnceRegistered() async throws {
        try await withMoto { moto in
            _ = try await moto.store(bucket: "by-url")
            // Credentials given, not set with `setenv`: changing the environment while other tests start
            // processes crashed Foundation's `Process.run` (it copies `environ`).
            S3ObjectStore.register(environment: ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"])
            let storage = try Storage(url: "s3://by-url/files?endpoint=\(moto.endpoint)")
            try await storage.write("notes/a.txt", "one\ntwo\nthree")
            var lines: [String] = []
            for try await line in storage.lines("notes/a.txt") { lines.append(line) }
            #expect(lines == ["one", "two", "three"])
            #expect(try await storage.list("notes").files.map(\.key) == ["notes/a.txt"])
        }
    }
}
