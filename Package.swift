// swift-tools-version:5.10
import PackageDescription

// Numeric kernels are only fast with optimisation, SIMD for the machine's
// AVX2/FMA units, and without Swift's per-element bounds checks in the
// inner loops (those use unsafe pointers over validated shapes).
// `-target-cpu haswell` lets Swift's SIMD types use AVX2 and fused multiply-add
// (without it `addingProduct` is a libm call per lane); every x86-64 CPU from
// 2013 on, and the AMD EPYC machines Cria is measured on, have them.
#if arch(x86_64)
let cpuFlags = ["-target-cpu", "haswell"]
#else
let cpuFlags: [String] = []
#endif
let kernelFlags: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo"] + cpuFlags, .when(configuration: .release)),
]

func system(_ name: String, pkgConfig: String, apt: String) -> Target {
    .systemLibrary(name: name, pkgConfig: pkgConfig, providers: [.apt([apt])])
}

let package = Package(
    name: "Cria",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Cria", targets: ["Cria"]),
        .executable(name: "cria", targets: ["cria"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // System-library shims: module maps only, resolved through pkg-config.
        system("CBLAS", pkgConfig: "openblas", apt: "libopenblas-dev"),
        system("CLAPACKE", pkgConfig: "lapacke", apt: "liblapacke-dev"),
        system("CHDF5", pkgConfig: "hdf5-serial", apt: "libhdf5-dev"),
        system("CTurboJPEG", pkgConfig: "libturbojpeg", apt: "libturbojpeg0-dev"),
        system("CPNG", pkgConfig: "libpng", apt: "libpng-dev"),
        system("CZlib", pkgConfig: "zlib", apt: "zlib1g-dev"),

        // Corrects OpenBLAS's choice of kernels where its CPU detection falls back to SSE3 (see its header).
        .target(name: "COpenBLASCore"),
        .target(name: "CriaCore", dependencies: ["CBLAS", "COpenBLASCore"], swiftSettings: kernelFlags),
        // The depthwise kernel's clamped-input inner loop, in C (see its header for why).
        // -ffp-contract=off keeps multiply and add rounded separately, as the Swift kernels do.
        .target(name: "CDepthwise", cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off"])]),
        .target(name: "CriaKernels", dependencies: ["CriaCore", "CBLAS", "CDepthwise"], swiftSettings: kernelFlags),
        .target(name: "CriaKerasIO", dependencies: ["CriaCore", "CHDF5", "CZlib"], swiftSettings: kernelFlags),
        .target(name: "CriaModel", dependencies: ["CriaCore", "CriaKernels", "CriaKerasIO"], swiftSettings: kernelFlags),
        .target(name: "CriaData", dependencies: ["CriaCore", "CTurboJPEG", "CPNG", "CZlib"], swiftSettings: kernelFlags),
        .target(name: "CriaWeights", dependencies: ["CriaCore"]),
        // The records a run directory holds (epochs, phases, trial summaries): written by the
        // runner, read by the reports, so neither parses the other's text.
        .target(name: "CriaRecords", dependencies: ["CriaCore"]),
        .target(name: "CriaTraining", dependencies: ["CriaCore", "CriaRecords", "CriaKernels", "CriaKerasIO", "CriaModel", "CLAPACKE"], swiftSettings: kernelFlags),
        .target(name: "CriaReports", dependencies: ["CriaCore", "CriaRecords"], exclude: ["README.md"]),
        .target(name: "CriaExperiments", dependencies: ["CriaCore", "CriaRecords", "CriaKerasIO", "CriaModel", "CriaData", "CriaTraining", "CriaReports",
                                                        .product(name: "Yams", package: "Yams")]),
        // Benchmarks and profiling (`cria bench`): times the library from outside, through its public API.
        .target(name: "CriaBench", dependencies: ["CriaCore", "CriaKernels", "CriaKerasIO", "CriaModel", "CriaTraining", "CBLAS"],
                swiftSettings: kernelFlags),
        .target(name: "Cria", dependencies: ["CriaCore", "CriaKernels", "CriaKerasIO", "CriaModel", "CriaData", "CriaWeights", "CriaTraining",
                                             "CriaRecords", "CriaReports", "CriaExperiments", "CriaBench"]),
        .executableTarget(name: "cria", dependencies: [
            "Cria",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .target(name: "CriaTestSupport", dependencies: ["CriaCore"], path: "Tests/CriaTestSupport"),
        .testTarget(name: "CriaCoreTests", dependencies: ["CriaCore", "COpenBLASCore", "CBLAS", "CriaTestSupport"]),
        .testTarget(name: "CriaKernelsTests", dependencies: ["CriaKernels", "CDepthwise", "CriaTestSupport"]),
        .testTarget(name: "CriaKerasIOTests", dependencies: ["CriaKerasIO", "CriaTestSupport"]),
        .testTarget(name: "CriaModelTests", dependencies: ["CriaModel", "CriaData", "CriaBench", "CriaTestSupport"]),
        .testTarget(name: "CriaRecordsTests", dependencies: ["CriaRecords", "CriaTestSupport"]),
        .testTarget(name: "CriaReportsTests", dependencies: ["CriaReports", "CriaRecords", "CriaTestSupport"]),
        .testTarget(name: "CriaBenchTests", dependencies: ["CriaBench", "CriaTraining", "CriaTestSupport"]),
        .testTarget(name: "CriaExperimentsTests", dependencies: ["CriaExperiments", "CriaTestSupport"]),
        .testTarget(name: "CriaTrainingTests", dependencies: ["CriaTraining", "CriaTestSupport"]),
        .testTarget(name: "CriaDataTests", dependencies: ["CriaData", "CriaTestSupport"]),
        .testTarget(name: "CriaWeightsTests", dependencies: ["CriaWeights", "CriaTestSupport"]),
        .testTarget(name: "CriaCLITests", dependencies: ["CriaTestSupport"]),
    ]
)
