// swift-tools-version: 6.0
import PackageDescription

// Module graph (README, "Using the library"): ditkit → Verification → Reference → Models → Checkpoints → Tensors.
// CDitkitZip wraps libzip and zlib for Checkpoints, CDitkitLZ4 liblz4 (the LZ4 blocks of Cerebras .mdl files); CDitkitBLAS wraps OpenBLAS for Reference only; CDitkitKernels holds Reference's
// kernels (C, each function compiled for its instruction-set level and chosen at run time). The manifest never looks at
// the building machine and sets no unsafe flags: a binary built anywhere runs on any CPU of its architecture.
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
            name: "CDitkitZip", pkgConfig: "libzip",
            providers: [.apt(["libzip-dev"]), .brew(["libzip"])]),
        .systemLibrary(name: "CDitkitSystem"),
        .systemLibrary(
            name: "CDitkitLZ4", pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"]), .brew(["lz4"])]),
        .systemLibrary(
            name: "CDitkitBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .target(name: "Tensors", dependencies: ["CDitkitSystem"]),
        .target(name: "Checkpoints", dependencies: ["Tensors", "CDitkitZip", "CDitkitLZ4", "CDitkitSystem"]),
        .target(name: "Models", dependencies: ["Checkpoints"]),
        .target(name: "CDitkitKernels"),
        .target(name: "Reference", dependencies: ["Models", "CDitkitBLAS", "CDitkitKernels"]),
        .target(name: "Verification", dependencies: ["Reference"]),
        .executableTarget(
            name: "ditkit",
            dependencies: [
                "Checkpoints", "Models", "Tensors", "Reference", "Verification",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .target(name: "DitkitTestSupport", dependencies: ["Checkpoints"], path: "Sources/DitkitTestSupport"),
        // Fuzzing (fuzz/README.md): the targets as a library, and one program that is a libFuzzer binary when
        // scripts/fuzz builds it with -sanitize=fuzzer,address -D DITKIT_LIBFUZZER and a replayer otherwise.
        .systemLibrary(name: "CDitkitFuzz"),
        .target(name: "DitkitFuzzTargets", dependencies: ["Checkpoints", "Models", "Reference", "Verification", "Tensors"]),
        .executableTarget(name: "DitkitFuzz", dependencies: ["DitkitFuzzTargets", "CDitkitFuzz"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "DitkitTestSupport"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "DitkitTestSupport", "CDitkitZip"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "DitkitTestSupport"]),
        .testTarget(name: "ReferenceTests", dependencies: ["Reference", "Verification", "DitkitTestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["Checkpoints", "Models", "DitkitTestSupport"]),
        .testTarget(name: "FuzzRegressionTests", dependencies: ["DitkitFuzzTargets", "Checkpoints", "Tensors", "DitkitTestSupport"]),
    ]
)
