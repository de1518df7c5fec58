// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "fulfillment",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fulfillment", targets: ["fulfillment"]),
        .library(name: "Broker", targets: ["Broker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        /// The messaging abstraction every other module talks to, and the embedded,
        /// disk-persistent log broker that implements it on one machine.
        .target(
            name: "Broker",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        /// The `fulfillment` executable: argument parsing only, everything else is library code.
        .executableTarget(
            name: "fulfillment",
            dependencies: [
                "Broker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "BrokerTests",
            dependencies: ["Broker"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
