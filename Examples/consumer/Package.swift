// swift-tools-version: 6.0
import PackageDescription

// A package that depends on ditkit the way any other would (by path here, so CI checks the working tree), and uses
// only its library API. `scripts/test` builds and runs it; it has its own .build.
let package = Package(
    name: "ditkit-consumer",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "ditkit", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "DitkitConsumer",
            dependencies: [
                .product(name: "Checkpoints", package: "ditkit"),
                .product(name: "Models", package: "ditkit"),
                .product(name: "Reference", package: "ditkit"),
                .product(name: "Verification", package: "ditkit"),
            ]),
    ]
)
