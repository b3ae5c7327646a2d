import ArgumentParser
import Checkpoints
import Models
import Reference


/// `ditkit bench forward PRESET`: the forward time beside the GEMM floor, measured with the same BLAS in one run.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks.", subcommands: [BenchForward.self])
}

struct BenchForward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Time the reference forward pass of a preset beside its GEMM floor (the same matrix products alone).",
        discussion: """
            Weights are synthetic (ditkit synth's, written to a temporary canonical file and read in place). Forward \
            and floor runs are interleaved; medians are reported, with their ratio: everything outside the matrix \
            products (norms, activations, softmax, modulation, embeddings) is the difference. \
            DITKIT_KERNELS=baseline|avx2|avx512 forces the kernel level; the one that ran is printed.
            """)

    @Argument(help: "Preset of any runnable family, e.g. DiT-XL/2 or ITHQ.")
    var preset: String

    @Option(name: .long, help: "Batch size.")
    var batch: Int = 2

    @Option(name: .long, help: "Timed rounds (after one warm-up).")
    var rounds: Int = 5

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func validate() throws {
        guard ModelFamilies.preset(named: preset) != nil else { throw ValidationError("unknown preset '\(preset)' (see `ditkit params`)") }
        guard batch >= 1, rounds >= 1 else { throw ValidationError("--batch and --rounds must be at least 1") }
    }

    static func now() -> Double {
        Platform.monotonicSeconds()
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    func run() throws {
        let chosen = ModelFamilies.preset(named: preset)!
        guard let family = ModelFamilies.named(chosen.familyName) as? any RunnableFamily.Type else {
            throw ValidationError("the \(chosen.familyName) family has no reference forward to benchmark")
        }
        try bench(family, chosen.name)
    }

    func bench<F: RunnableFamily>(_ family: F.Type, _ name: String) throws {
        let chosen = F.preset(named: name)!
        let kernels = Ditkit.kernels
        try F.checkBudget(chosen.config, batch: batch, tracing: false, kernels: kernels,
                          memoryBudget: ForwardCost.defaultMemoryBudget, workBudget: ForwardCost.defaultWorkBudget)
        // Synthetic weights through a canonical file, read in place as a real checkpoint is.
        let base = (Platform.environment("TMPDIR").flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp") + "/ditkit-bench"
        let folder = try FileSystem.temporaryDirectory(beside: base)
        defer { FileSystem.removeTree(folder) }
        let path = folder + "/weights.safetensors"
        try Exporter.write(
            try ConversionPlan<F>.make(canonical: Synthetic.canonicalOutputs(chosen.config, seed: 0), sources: [:], config: chosen.config,
                                      to: .canonical, options: ConversionOptions()),
            to: path)
        let view = try ModelView<F>.open(try Checkpoint.open(path))
        let weights = try F.loadWeights(view)
        let semantics = view.config
        var storages: [String: Float32Storage] = [:]
        for (canonical, source) in view.sources {
            if case .tensor(let t) = source, let storage = t.mappedFloat32Storage() { storages[canonical] = storage }
        }
        let inputs = F.makeInputs(InputSpec(batch: batch, seed: 0), config: chosen.config)
        let shapes = F.gemmShapes(chosen.config, batch: batch)
        guard !shapes.isEmpty else {
            throw ValidationError("the \(F.name) forward lists no matrix products for a GEMM floor, so it has no `bench forward` (see the benchmark scripts in README)")
        }
        var scratch: [Float] = []
        let workspace = Workspace()  // reused across passes, as a sampling loop would
        func floor() { GEMMFloor.run(shapes, weight: { storages[$0]?.baseAddress }, kernels: kernels, scratch: &scratch) }
        _ = F.run(weights, semantics: semantics, inputs: inputs, kernels: kernels, workspace: workspace)
        floor()
        var forwardTimes: [Double] = [], floorTimes: [Double] = []
        for _ in 0..<rounds {
            var start = BenchForward.now()
            _ = F.run(weights, semantics: semantics, inputs: inputs, kernels: kernels, workspace: workspace)
            forwardTimes.append(BenchForward.now() - start)
            start = BenchForward.now()
            floor()
            floorTimes.append(BenchForward.now() - start)
        }
        let forwardMs = BenchForward.median(forwardTimes) * 1000, floorMs = BenchForward.median(floorTimes) * 1000
        let flops = 2 * Double(shapes.reduce(0) { $0 + $1.multiplyAdds })
        if json {
            print(JSONValue.object([
                ("preset", .string(chosen.name)), ("batch", .int(batch)), ("rounds", .int(rounds)),
                ("kernels", .string(kernels.description)), ("best_kernels", .string(KernelLevel.best.description)),
                ("forward_ms", .double(forwardMs)), ("gemm_floor_ms", .double(floorMs)), ("ratio", .double(forwardMs / floorMs)),
                ("gemm_gflop", .double(flops / 1e9)), ("floor_gflops_per_s", .double(flops / 1e9 / (floorMs / 1000))),
                ("forward_runs_ms", .array(forwardTimes.map { .double($0 * 1000) })), ("floor_runs_ms", .array(floorTimes.map { .double($0 * 1000) })),
            ]).serialized(pretty: true))
        } else {
            print("\(chosen.name), batch \(batch), \(rounds) interleaved rounds (medians)")
            print("kernels     \(kernels)\(kernels.level == .best ? "" : " (forced; this CPU runs up to \(KernelLevel.best))")")
            print("forward     \(formatMs(forwardMs))")
            print("GEMM floor  \(formatMs(floorMs))  (\(decimalText(flops / 1e9)) GFLOP of matrix products, \(decimalText(flops / 1e9 / (floorMs / 1000))) GFLOP/s)")
            print("ratio       \(decimalText(forwardMs / floorMs))× the floor")
        }
    }

    func formatMs(_ ms: Double) -> String { decimalText(ms) + " ms" }
}
