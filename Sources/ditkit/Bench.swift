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
            Weights are synthetic (ditkit synth's, in memory). Forward and floor runs are interleaved; medians are \
            reported, with their ratio: everything outside the matrix products (norms, GELU, softmax, modulation, \
            embeddings) is the difference. DITKIT_KERNELS=baseline|avx2|avx512 forces the kernel level; the one that ran \
            is printed.
            """)

    @Argument(help: "Preset, e.g. DiT-XL/2.")
    var preset: String

    @Option(name: .long, help: "Batch size.")
    var batch: Int = 2

    @Option(name: .long, help: "Timed rounds (after one warm-up).")
    var rounds: Int = 5

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func validate() throws {
        guard Preset.named(preset) != nil else { throw ValidationError("unknown preset '\(preset)' (see `ditkit params`)") }
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
        let chosen = Preset.named(preset)!
        let kernels = Ditkit.kernels
        try ForwardCost(config: chosen.config, batch: batch, tracing: false, kernels: kernels).check()
        let canonical = Dictionary(Synthetic.canonicalOutputs(chosen.config, seed: 0).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let forward = DiTForward(weights: try DiTWeights(config: chosen.config, tensors: canonical), kernels: kernels)
        let inputs = DiTInputs.make(config: chosen.config, batch: batch, seed: 0)
        let shapes = forward.gemmShapes(batch: batch)
        var scratch: [Float] = []
        let workspace = Workspace()  // reused across passes, as a sampling loop would
        _ = forward.run(inputs, workspace: workspace)
        forward.runGEMMFloor(batch: batch, scratch: &scratch)
        var forwardTimes: [Double] = [], floorTimes: [Double] = []
        for _ in 0..<rounds {
            var start = BenchForward.now()
            _ = forward.run(inputs, workspace: workspace)
            forwardTimes.append(BenchForward.now() - start)
            start = BenchForward.now()
            forward.runGEMMFloor(batch: batch, scratch: &scratch)
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
