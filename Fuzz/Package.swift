// swift-tools-version: 6.0
import PackageDescription

/// libFuzzer targets for the parsers that read input from outside: the order validator
/// (JSON from any producer) and the Kafka wire protocol's request handling (frames from any
/// socket). Built apart from the product with `swift build --sanitize=fuzzer
/// --sanitize=address` (`make fuzz`, and a bounded run in `make test`: `scripts/fuzz.sh`),
/// which instruments every module; the seed corpora are in Fuzz/Corpus, and every crash
/// found becomes a regression test in the main package's suites.
let libFuzzerEntry: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "fulfillment-fuzz",
    dependencies: [.package(name: "fulfillment", path: "..")],
    targets: [
        .executableTarget(
            name: "FuzzOrderValidator", dependencies: [.product(name: "SagaDomain", package: "fulfillment")], swiftSettings: libFuzzerEntry),
        .executableTarget(
            name: "FuzzWireRequests",
            dependencies: [.product(name: "KafkaWire", package: "fulfillment"), .product(name: "Broker", package: "fulfillment")],
            swiftSettings: libFuzzerEntry),
    ],
    swiftLanguageModes: [.v6]
)
