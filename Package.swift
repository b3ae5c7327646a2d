// swift-tools-version: 6.0
import PackageDescription

// Module graph (see DESIGN.md): ditkit → Verification → Reference → Models → Checkpoints → Tensors.
// CZip wraps libzip for Checkpoints; CBLAS wraps OpenBLAS for Reference only.
let package = Package(
    name: "ditkit",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ditkit", targets: ["ditkit"]),
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "Checkpoints", targets: ["Checkpoints"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Reference", targets: ["Reference"]),
        .library(name: "Verification", targets: ["Verification"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CZip", pkgConfig: "libzip",
            providers: [.apt(["libzip-dev"]), .brew(["libzip"])]),
        .systemLibrary(
            name: "CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .target(name: "Tensors"),
        .target(name: "Checkpoints", dependencies: ["Tensors", "CZip"]),
        .target(name: "Models", dependencies: ["Checkpoints"]),
        .target(name: "Reference", dependencies: ["Models", "CBLAS"]),
        .target(name: "Verification", dependencies: ["Reference"]),
        .executableTarget(
            name: "ditkit",
            dependencies: [
                "Checkpoints", "Models", "Tensors", "Reference", "Verification",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .target(name: "TestSupport", dependencies: ["Checkpoints"], path: "Sources/TestSupport"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "TestSupport"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "TestSupport", "CZip"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "TestSupport"]),
        .testTarget(name: "ReferenceTests", dependencies: ["Reference", "Verification", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["Checkpoints", "Models", "TestSupport"]),
    ]
)
