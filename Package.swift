// swift-tools-version: 6.0
import PackageDescription

/// Release builds optimise across module boundaries: the worker runtime is generic over its
/// handler and the hot paths cross Broker, Workers and Dispatcher (measured: ~10% more
/// orders/s end to end).
let optimized: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]

let package = Package(
    name: "fulfillment",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fulfillment", targets: ["fulfillment"]),
        /// For the fuzz targets (Fuzz/Package.swift), built apart with libFuzzer.
        .library(name: "Messaging", targets: ["Messaging"]),
        .library(name: "Broker", targets: ["Broker"]),
        .library(name: "SagaDomain", targets: ["SagaDomain"]),
        .library(name: "KafkaWire", targets: ["KafkaWire"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
    ],
    targets: [
        /// librdkafka, the system library (Debian: librdkafka-dev), with its mock cluster.
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"]), .brew(["librdkafka"])]
        ),
        /// CRC-32C with the CPU's instruction (SSE 4.2 / ARMv8 CRC); Broker falls back to tables.
        .target(name: "CCRC32C"),
        /// Marks the poison-record journals when the process dies of a crash signal.
        .target(name: "CCrashMarks"),
        /// The one way blocking calls (fsyncing transactions, librdkafka calls that wait) run:
        /// on threads of their own, off Swift's cooperative pool.
        .target(name: "IOThreads", swiftSettings: optimized),
        /// The messaging abstraction every other module talks to (`MessageBroker`,
        /// `GroupConsumer`, records, topics, errors): no C library, no transport.
        /// Every metric of the product in one place (names, help, labels, buckets), the
        /// handles services record through (swift-metrics), and the reading back of an
        /// exposition into values. No backend: the process chooses one at start.
        .target(
            name: "FulfillmentMetrics",
            dependencies: [.product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: optimized
        ),
        .target(
            name: "Messaging",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: optimized
        ),
        /// The embedded broker: partitioned, disk-persistent logs in Kafka's record-batch
        /// format, consumer groups and delayed topics, behind `MessageBroker`, on one machine.
        .target(
            name: "Broker",
            dependencies: [
                "Messaging",
                "CCRC32C",
                "FulfillmentMetrics",
                "IOThreads",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: optimized
        ),
        /// The client of a Kafka cluster over librdkafka, behind `MessageBroker`, and
        /// librdkafka's mock cluster.
        .target(
            name: "KafkaClient",
            dependencies: [
                "Messaging",
                "CRdKafka",
                "IOThreads",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: optimized
        ),
        /// The Kafka wire protocol in front of the embedded broker (SwiftNIO): kcat and other
        /// Kafka clients produce and fetch over it.
        .target(
            name: "KafkaWire",
            dependencies: [
                "Messaging", "Broker", "FulfillmentMetrics",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: optimized
        ),
        /// Who may use the Kafka listener: TLS (swift-nio-ssl), SASL PLAIN and SCRAM over a
        /// users file (swift-crypto), apart from KafkaWire so the wire protocol and its fuzz
        /// targets link no TLS or crypto library.
        .target(
            name: "WireSecurity",
            dependencies: [
                "KafkaWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: optimized
        ),
        /// The saga's shared domain: the order and its validation, steps, topic names,
        /// headers, retry/timeout policy and the YAML configuration.
        .target(
            name: "SagaDomain",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: optimized
        ),
        /// Step Functions definitions in and out: the ASL parser (statelint-style problems with
        /// JSON paths), import onto our saga configuration, export, and the compensation-gap lint.
        .target(name: "StepFunctions", dependencies: ["SagaDomain"], swiftSettings: optimized),
        /// SQLite, the system library (Debian: libsqlite3-dev).
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]
        ),
        /// libpq, PostgreSQL's client library (Debian: libpq-dev).
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"]), .brew(["libpq"])]
        ),
        /// The stores' database connection: a durable SQLite file (WAL, prepared-statement
        /// cache) or a PostgreSQL schema, with the same statements and transactions.
        .target(name: "StoreDatabase", dependencies: ["CSQLite", "CLibPQ"], swiftSettings: optimized),
        /// How every consumer of the saga runs: the worker runtime (consume -> idempotent
        /// handle -> publish -> commit, retries, timeouts, heartbeats, dead letters), the batch
        /// consume loop of the dispatcher's services, the saga's message shapes, poison-record
        /// quarantine, and the counters.
        .target(
            name: "SagaRuntime",
            dependencies: [
                "Messaging", "SagaDomain", "StoreDatabase", "IOThreads", "CCrashMarks", "FulfillmentMetrics",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: optimized
        ),
        /// The step services (payment with a simulated gateway, inventory, shipping,
        /// notification, compensation) with their stores.
        .target(
            name: "Workers",
            dependencies: [
                "Messaging", "SagaDomain", "StoreDatabase", "IOThreads", "SagaRuntime", "FulfillmentMetrics",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: optimized
        ),
        /// Order intake and priority routing, the saga tracker (state and history), the
        /// stuck-order watchdog, DLT-driven compensation, redrive and stats.
        .target(
            name: "Dispatcher",
            dependencies: [
                "Messaging", "SagaDomain", "StoreDatabase", "IOThreads", "SagaRuntime", "FulfillmentMetrics", "Alerting",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: optimized
        ),
        /// The alerts: thresholds from the configuration as Prometheus rules (PromQL) and as an
        /// in-process evaluator over the same metrics, and the Alertmanager-format webhook.
        .target(
            name: "Alerting",
            dependencies: [
                "SagaDomain", "FulfillmentMetrics",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: optimized
        ),
        /// The operator listener (Hummingbird): health, readiness, Prometheus metrics, the
        /// admin API and the web console, one `Service` per process.
        .target(
            name: "OperatorHTTP",
            dependencies: [
                "Messaging", "SagaDomain", "IOThreads", "StoreDatabase", "SagaRuntime", "Dispatcher", "FulfillmentMetrics", "Alerting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Console")],
            swiftSettings: optimized
        ),
        /// The saga assembled: topic layout, the services of each role, the load generator,
        /// `run` with its summary, and the conservation check over every store.
        .target(
            name: "SagaAssembly",
            dependencies: [
                "Messaging", "Broker", "KafkaClient", "KafkaWire", "SagaDomain", "StoreDatabase", "IOThreads", "SagaRuntime", "Workers", "Dispatcher",
                "FulfillmentMetrics", "Alerting", "OperatorHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: optimized
        ),
        /// The benchmark commands' engines: the embedded broker, the librdkafka producer, the
        /// order parser against Foundation's decoders. Each prints figures (and JSON).
        .target(
            name: "Benchmarks",
            dependencies: ["Messaging", "Broker", "KafkaClient", "SagaDomain", "StoreDatabase", "Dispatcher", "SagaAssembly", .product(name: "Logging", package: "swift-log")],
            swiftSettings: optimized
        ),
        /// The `fulfillment` executable: argument parsing only, everything else is library code.
        .executableTarget(
            name: "fulfillment",
            dependencies: [
                "Messaging", "Broker", "KafkaClient", "KafkaWire", "SagaDomain", "StoreDatabase", "SagaRuntime", "Workers", "Dispatcher", "SagaAssembly", "Benchmarks",
                "FulfillmentMetrics", "Alerting", "OperatorHTTP", "StepFunctions", "WireSecurity",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: optimized,
            /// mimalloc (Debian `libmimalloc-dev`) replaces glibc's malloc in the whole process:
            /// with glibc's, `run --orders 100000` spent about a sixth of its CPU in malloc,
            /// free, arena locks and `malloc_consolidate` (docs/performance.md, "The allocator").
            linkerSettings: [.linkedLibrary("mimalloc", .when(platforms: [.linux]))]
        ),
        .testTarget(name: "BrokerTests", dependencies: ["Messaging", "Broker", "KafkaClient", "TestSupport"]),
        .testTarget(name: "SagaDomainTests", dependencies: ["SagaDomain"]),
        .testTarget(name: "AlertingTests", dependencies: ["Alerting", "FulfillmentMetrics", "SagaDomain"]),
        .testTarget(name: "StepFunctionsTests", dependencies: ["StepFunctions", "SagaDomain", "TestSupport"]),
        .testTarget(name: "KafkaWireTests", dependencies: ["KafkaWire", "Messaging", "Broker", "TestSupport", .product(name: "NIOCore", package: "swift-nio")], exclude: ["Clients"]),
        .testTarget(name: "WireSecurityTests", dependencies: ["WireSecurity", "KafkaWire"]),
        .testTarget(name: "CommandLineTests", dependencies: ["fulfillment", "TestSupport", .product(name: "Yams", package: "Yams")]),
        /// What several test targets share: fresh store locations of both backends, the built
        /// `fulfillment` executable.
        .target(name: "TestSupport", dependencies: ["StoreDatabase", "Broker", .product(name: "Logging", package: "swift-log")], path: "Tests/TestSupport"),
        .testTarget(name: "StoreDatabaseTests", dependencies: ["StoreDatabase", "TestSupport"]),
        .testTarget(name: "IOThreadsTests", dependencies: ["IOThreads"]),
        .testTarget(name: "DispatcherTests", dependencies: [
            "Dispatcher", "SagaRuntime", "Broker", "Messaging", "SagaDomain", "FulfillmentMetrics", "TestSupport",
            .product(name: "MetricsTestKit", package: "swift-metrics"),
        ]),
        .testTarget(name: "SagaRuntimeTests", dependencies: ["SagaRuntime", "Messaging", "Broker", "SagaDomain", "StoreDatabase", "TestSupport"]),
        .testTarget(name: "WorkersTests", dependencies: ["SagaRuntime", "Workers", "Messaging", "Broker", "SagaDomain", "StoreDatabase", "TestSupport"]),
        .testTarget(
            name: "SagaAssemblyTests",
            dependencies: [
                "SagaAssembly", "Dispatcher", "SagaRuntime", "Workers", "Messaging", "Broker", "KafkaClient", "SagaDomain", "StoreDatabase", "TestSupport",
                "OperatorHTTP", "FulfillmentMetrics",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Console"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
