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
// CDitkitZip wraps libzip and zlib for Checkpoints; CDitkitBLAS wraps OpenBLAS for Reference only; CDitkitKernels holds Reference's AVX-512
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
            name: "CDitkitZip", pkgConfig: "libzip",
            providers: [.apt(["libzip-dev"]), .brew(["libzip"])]),
        .systemLibrary(name: "CDitkitSystem"),
        .systemLibrary(
            name: "CDitkitBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .target(name: "Tensors", dependencies: ["CDitkitSystem"]),
        .target(name: "Checkpoints", dependencies: ["Tensors", "CDitkitZip", "CDitkitSystem"]),
        .target(name: "Models", dependencies: ["Checkpoints"]),
        .target(name: "CDitkitKernels"),
        .target(name: "Reference", dependencies: ["Models", "CDitkitBLAS", "CDitkitKernels"], swiftSettings: referenceSettings),
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
