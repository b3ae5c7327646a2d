import Checkpoints
import DitkitTestSupport
import Foundation
import Models
import Reference
import Tensors
import Testing

/// The benchmark entry of `scripts/bench-vqvae` (not a test: it does nothing unless DITKIT_VQVAE_BENCH names a
/// diffusers `vqvae/` folder). Loads the folder's weights by canonical name, then serves decode requests: for each
/// line read from the FIFO DITKIT_VQVAE_BENCH_IN (`decode N` or `quit`) it decodes N random 32×32 token grids (or
/// the config's latent side) once and writes `ms <milliseconds>` to the FIFO DITKIT_VQVAE_BENCH_OUT — the decode
/// alone (codebook lookup, post-quant conv, decoder), timed in-process on the monotonic clock.
@Suite("VQ-VAE benchmark entry")
struct VQVAEBenchEntry {
    @Test("serves scripts/bench-vqvae when DITKIT_VQVAE_BENCH is set")
    func serve() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let folder = environment["DITKIT_VQVAE_BENCH"], let inPath = environment["DITKIT_VQVAE_BENCH_IN"],
            let outPath = environment["DITKIT_VQVAE_BENCH_OUT"]
        else { return }
        OpenBLASThreads.shortenSpinWait()
        let checkpoint = try Checkpoint.open(folder + "/diffusion_pytorch_model.safetensors")
        let json = try JSONParser.parse(try String(contentsOfFile: folder + "/config.json", encoding: .utf8))
        let side = Int(environment["DITKIT_VQVAE_BENCH_TOKENS"] ?? "32") ?? 32
        let levels = json["block_out_channels"]?.arrayValue?.count ?? 1
        let config = try VQVAEFixtureTests.config(json, sampleSize: side << (levels - 1))
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        for t in checkpoint.tensors { tensors[t.name] = (t.shape, try t.float32()) }
        let weights = try VQVAEWeights(config: config) { tensors[$0] }
        tensors = [:]
        let kernels = try environment["DITKIT_KERNELS"].flatMap(KernelLevel.init(name:)).map { try KernelChoice(level: $0) } ?? .automatic
        let forward = VQVAEForward(weights: weights, kernels: kernels)
        let workspace = VQVAEWorkspace()
        guard let input = FileHandle(forReadingAtPath: inPath), let output = FileHandle(forWritingAtPath: outPath) else { return }
        output.write("ready \(kernels)\n".data(using: .utf8)!)
        var pending = Data()
        func line() -> String? {
            while true {
                if let newline = pending.firstIndex(of: 10) {
                    let text = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending = Data(pending[(newline + 1)...])
                    return text
                }
                let chunk = input.availableData
                if chunk.isEmpty { return nil }
                pending += chunk
            }
        }
        while let command = line(), command.hasPrefix("decode") {
            let batch = Int(command.split(separator: " ").last ?? "1") ?? 1
            let inputs = VQVAEInputs.make(config: config, batch: batch, seed: 1)
            let start = DispatchTime.now().uptimeNanoseconds
            let image = forward.decode(inputs, workspace: workspace)
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            output.write("ms \(ms) \(image[0])\n".data(using: .utf8)!)
        }
    }
}
