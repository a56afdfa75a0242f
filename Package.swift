// swift-tools-version: 6.1
import CompilerPluginSupport
import PackageDescription

let strictSwift: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// How curtain-demo, the program every worker of the demo and the tests runs, links the Swift runtime on
/// Linux: statically, so a worker does not load and relocate a dozen shared libraries (libswiftCore and
/// FoundationEssentials' symbol tables alone were 2-3 MB of each worker's resident memory). An idle worker
/// is 17.5 MB this way against 19.5-20.2 MB linked dynamically (ARCHITECTURE.md, "An idle worker's memory").
/// The modules are compiled as usual, against the shared SDK, which does not name Foundation's two C
/// helper libraries for the linker, so they are named here. lld, shipped with the toolchain, links it
/// (gold warns about a `mktemp` inside Foundation's static library). A user's program does the same with
/// these settings on its executable target, or with `swift build --static-swift-stdlib`.
/// `CURTAIN_DYNAMIC_RUNTIME=1` links it dynamically instead (a toolchain without the static SDK or lld).
let staticSwiftRuntime: [LinkerSetting] =
    Context.environment["CURTAIN_DYNAMIC_RUNTIME"] == "1"
    ? []
    : [
        .unsafeFlags(
            ["-static-stdlib", "-l_FoundationCShims", "-l_FoundationCollections", "-use-ld=lld"],
            .when(platforms: [.linux]))
    ]

let package = Package(
    name: "Curtain",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Curtain", targets: ["Curtain"]),
        .library(name: "CurtainRESP", targets: ["CurtainRESP"]),
        .library(name: "CurtainStore", targets: ["CurtainStore"]),
        .library(name: "CurtainS3", targets: ["CurtainS3"]),
        // `@Remote` (and everything of Curtain): its own product, so that only programs that use the macro
        // pay for building swift-syntax.
        .library(name: "CurtainRemote", targets: ["CurtainRemote"]),
        .executable(name: "curtain", targets: ["curtain"]),
        .executable(name: "curtain-bench", targets: ["curtain-bench"]),
        .executable(name: "curtain-demo", targets: ["curtain-demo"]),
    ],
    // Package traits (SE-0450): the default build leaves out both copies of BoringSSL (swift-nio-ssl's and
    // swift-crypto's), which were most of a first build's time. A cluster that needs them turns them on:
    // `swift build --traits TLS,Signing`, or `traits: ["TLS", "Signing"]` on the `.package` line of Curtain.
    traits: [
        .trait(name: "TLS", description: "rediss:// stores: TLS to Redis with swift-nio-ssl."),
        .trait(
            name: "Signing",
            description: "CURTAIN_SECRET: HMAC-SHA256 seals on tasks, results and actor messages, and SHA-256 content hashes, with swift-crypto."
        ),
        .default(enabledTraits: []),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.30.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        // async-http-client only in CurtainS3 (the core stays free of an HTTP client); swift-crypto for
        // SigV4 there and, with the Signing trait, for the HMAC of envelopes in the core. swift-nio-ssl only
        // with the TLS trait.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
        // A worker's graceful drain on SIGTERM (ServiceGroup; no Foundation).
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // Metrics and traces through the ecosystem's APIs (small API packages; an application chooses the
        // backend), and a Prometheus exposition of the metrics for the dashboard's /metrics.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        // The `@Remote` macro's implementation (only CurtainRemote and its tests build it).
        .package(url: "https://github.com/swiftlang/swift-syntax.git", "600.0.0"..<"604.0.0"),
    ],
    targets: [
        // RESP2/RESP3 codec and the async NIO client. Knows nothing of Curtain.
        .target(
            name: "CurtainRESP",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(traits: ["TLS"])),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        // The embedded store: an in-memory RESP server with Redis 7 semantics.
        .target(
            name: "CurtainStore",
            dependencies: [
                "CurtainRESP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        // The public library: remote functions (and, as later issues land, workers, shared memory, actors,
        // storage). Lean on purpose: the wire client and the embedded store, nothing heavier.
        // The bounds of the `curtain_remote` section where `@Remote` places its records (a few lines of C:
        // the linker's __start_/__stop_ symbols, weak so that a program without records still links).
        .target(name: "CCurtainRecords"),
        .target(
            name: "Curtain",
            dependencies: [
                "CCurtainRecords",
                "CurtainRESP",
                "CurtainStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),  // NIOThreadPool for blocking file I/O
                // The dashboard's HTTP server (CURTAIN_DASHBOARD): part of swift-nio, no new package.
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "DequeModule", package: "swift-collections"),
                // HMAC-SHA256 of envelopes (CURTAIN_SECRET) and SHA-256 content hashes, with the Signing trait.
                .product(name: "Crypto", package: "swift-crypto", condition: .when(traits: ["Signing"])),
                // TLS on direct actor connections (a pre-shared key per host), with the TLS trait.
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(traits: ["TLS"])),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),  // a worker's drain on SIGTERM
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        // An S3-compatible object store (AWS, MinIO, Ceph, R2, moto): SigV4, multipart, retries.
        .target(
            name: "CurtainS3",
            dependencies: [
                "Curtain",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),
        // `@Remote`'s expansion: the function as a value, its section record, and its `$`-twin.
        .macro(
            name: "CurtainMacros",
            dependencies: [
                .product(name: "SwiftSyntax", package: "swift-syntax"),
                .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
                .product(name: "SwiftCompilerPlugin", package: "swift-syntax"),
                .product(name: "SwiftDiagnostics", package: "swift-syntax"),
            ],
            swiftSettings: strictSwift
        ),
        // `import CurtainRemote`: the macro's declaration, and Curtain re-exported.
        .target(
            name: "CurtainRemote",
            dependencies: ["Curtain", "CurtainMacros"],
            swiftSettings: strictSwift
        ),
        // Remote functions shared by the demo and the benchmarks (Monte Carlo π, the no-op task).
        .target(
            name: "CurtainExamples",
            dependencies: ["Curtain"],
            swiftSettings: strictSwift
        ),
        // The operator CLI.
        .executableTarget(
            name: "curtain",
            dependencies: [
                "Curtain",
                "CurtainRESP",
                "CurtainStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        // Runnable examples that are also the experiments: pi (more to come).
        .executableTarget(
            name: "curtain-demo",
            dependencies: [
                "Curtain",
                "CurtainExamples",
                "CurtainRESP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift,
            linkerSettings: staticSwiftRuntime
        ),
        // End-to-end benchmarks printing ratios against local baselines.
        .executableTarget(
            name: "curtain-bench",
            dependencies: [
                "Curtain",
                "CurtainExamples",
                "CurtainRESP",
                "CurtainStore",
                "CurtainTestSupport",  // starts redis-server on a free port, finds Redis' tools
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift
        ),
        // Robustness: feeds random and malformed RESP to the decoder and the embedded store
        // (a seeded generator by default; libFuzzer via Scripts/fuzz.sh).
        .executableTarget(
            name: "curtain-fuzz",
            dependencies: [
                "CurtainRESP",
                "CurtainTestFunctions",  // the payload decoder's fuzz (types and generator shared with the tests)
                "CurtainStore",
                "CurtainTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),
        // Test harness shared by every test target that needs a store: real redis-server + embedded store.
        .target(
            name: "CurtainTestSupport",
            dependencies: [
                "CurtainRESP",
                "CurtainStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),
        // Test fixtures: remote functions shared by the tests (driver side) and a worker executable.
        .target(
            name: "CurtainTestFunctions",
            dependencies: ["Curtain"],
            path: "Tests/Fixtures/CurtainTestFunctions",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "curtain-test-worker",
            dependencies: ["Curtain", "CurtainTestFunctions"],
            path: "Tests/Fixtures/curtain-test-worker",
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "CurtainTests",
            dependencies: [
                "Curtain", "CurtainTestSupport", "CurtainTestFunctions",
                "CurtainS3",  // the Lambda invoker, end to end against the Lambda substitute
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "CurtainMacrosTests",
            dependencies: [
                "CurtainMacros",
                .product(name: "SwiftSyntaxMacrosGenericTestSupport", package: "swift-syntax"),
            ],
            swiftSettings: strictSwift
        ),
        // `@Remote` compiled for real on each kind of declaration, run on an in-process cloud.
        .testTarget(
            name: "CurtainRemoteTests",
            dependencies: ["CurtainRemote"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "CurtainS3Tests",
            dependencies: [
                "CurtainS3", "Curtain", "CurtainTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "CurtainRESPTests",
            dependencies: ["CurtainRESP", "CurtainTestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "CurtainStoreTests",
            dependencies: ["CurtainStore", "CurtainRESP", "CurtainTestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "ConformanceTests",
            dependencies: [
                "CurtainRESP", "CurtainStore", "CurtainTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(traits: ["TLS"])),
            ],
            swiftSettings: strictSwift
        ),
        // The examples against their local baselines (curtain-demo mandelbrot and kmeans), on worker processes
        // started from curtain-demo itself, which registers the examples' functions.
        .testTarget(
            name: "CurtainExamplesTests",
            dependencies: ["Curtain", "CurtainExamples", "CurtainTestSupport"],
            swiftSettings: strictSwift
        ),
    ],
    swiftLanguageModes: [.v6]
)

// The porting suite (Scripts/port-diff.sh): each pair is a plain single-machine program and its Curtain
// version, a few changed lines apart.
let portingPairs = ["mandelbrot", "kmeans", "bank", "wordcount", "inventory", "pipeline"]
for pair in portingPairs {
    package.targets += [
        .executableTarget(name: "port-\(pair)-plain", path: "Examples/Porting/\(pair)/plain", swiftSettings: strictSwift),
        .executableTarget(
            name: "port-\(pair)", dependencies: ["CurtainRemote"], path: "Examples/Porting/\(pair)/curtain",
            swiftSettings: strictSwift),
    ]
}
