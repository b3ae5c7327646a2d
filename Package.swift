// swift-tools-version: 6.0
import PackageDescription

#if canImport(Glibc)
import Glibc
#endif

/// The reference forward's element-wise kernels (exp, GELU, softmax, LayerNorm) run about 1.8× faster with AVX2 and
/// FMA. They are enabled only when the machine building ditkit has them (so the binary always runs where it was
/// built); `DITKIT_PORTABLE=1` builds for baseline x86-64.
let hostHasAVX2AndFMA: Bool = {
    #if os(Linux) && arch(x86_64)
    guard Context.environment["DITKIT_PORTABLE"] == nil, let file = fopen("/proc/cpuinfo", "r") else { return false }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 8192)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("flags") { return text.contains(" avx2") && text.contains(" fma") }
    }
    return false
    #else
    return false
    #endif
}()
let referenceSettings: [SwiftSetting] = hostHasAVX2AndFMA ? [.unsafeFlags(["-target-cpu", "haswell"])] : []

// Module graph (see DESIGN.md): ditkit → Verification → Reference → Models → Checkpoints → Tensors.
// CZip wraps libzip for Checkpoints; CBLAS wraps OpenBLAS for Reference only; CKernels holds Reference's AVX-512
// kernels (C, compiled per function for AVX-512 and chosen at run time).
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
        .systemLibrary(name: "CSystem"),
        .systemLibrary(
            name: "CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .target(name: "Tensors", dependencies: ["CSystem"]),
        .target(name: "Checkpoints", dependencies: ["Tensors", "CZip"]),
        .target(name: "Models", dependencies: ["Checkpoints"]),
        .target(name: "CKernels"),
        .target(name: "Reference", dependencies: ["Models", "CBLAS", "CKernels"], swiftSettings: referenceSettings),
        .target(name: "Verification", dependencies: ["Reference"]),
        .executableTarget(
            name: "ditkit",
            dependencies: [
                "Checkpoints", "Models", "Tensors", "Reference", "Verification",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .target(name: "TestSupport", dependencies: ["Checkpoints"], path: "Sources/TestSupport"),
        // Fuzzing (fuzz/README.md): the targets as a library, and one program that is a libFuzzer binary when
        // scripts/fuzz builds it with -sanitize=fuzzer,address -D DITKIT_LIBFUZZER and a replayer otherwise.
        .systemLibrary(name: "CDitkitFuzz"),
        .target(name: "DitkitFuzzTargets", dependencies: ["Checkpoints", "Models", "Reference", "Verification", "Tensors"]),
        .executableTarget(name: "DitkitFuzz", dependencies: ["DitkitFuzzTargets", "CDitkitFuzz"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "TestSupport"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "TestSupport", "CZip"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "TestSupport"]),
        .testTarget(name: "ReferenceTests", dependencies: ["Reference", "Verification", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["Checkpoints", "Models", "TestSupport"]),
        .testTarget(name: "FuzzRegressionTests", dependencies: ["DitkitFuzzTargets", "Checkpoints", "Tensors", "TestSupport"]),
    ]
)
