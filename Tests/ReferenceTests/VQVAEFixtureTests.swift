import Checkpoints
import DitkitTestSupport
import Foundation
import Models
import Reference
import Tensors
import Testing
import Verification

/// The VQ-VAE forward against traces made by the real code (diffusers' `VQModel`, the original `PatchVQGAN`) on the
/// fixture weights (diffusers' `save_pretrained` output, read by canonical name: the names are diffusers' own), and
/// verification of corrupted weights.
@Suite("VQ-VAE forward against real traces")
struct VQVAEFixtureTests {
    static let weightsPath = Fixtures.path("vq-diffusion/diffusers/vqvae/diffusion_pytorch_model.safetensors")
    static let configPath = Fixtures.path("vq-diffusion/diffusers/vqvae/config.json")
    static let traces = ["vq-diffusion/traces/vqvae-diffusers.safetensors", "vq-diffusion/traces/vqvae-original.safetensors"]

    /// The config of diffusers' `config.json` (`VQModel`): attention per level from the block types.
    static func config(_ json: JSONValue, sampleSize: Int) throws -> VQVAEConfig {
        let channels = json["block_out_channels"]?.arrayValue?.compactMap(\.intValue) ?? []
        let types = json["down_block_types"]?.arrayValue?.compactMap(\.stringValue) ?? []
        var c = VQVAEConfig(
            inChannels: json["in_channels"]?.intValue ?? 3, outChannels: json["out_channels"]?.intValue ?? 3, blockOutChannels: channels,
            levelAttention: types.map { $0.hasPrefix("Attn") }, layersPerBlock: json["layers_per_block"]?.intValue ?? 1,
            latentChannels: json["latent_channels"]?.intValue ?? 3, numCodes: json["num_vq_embeddings"]?.intValue ?? 256,
            embedDim: json["vq_embed_dim"]?.intValue ?? json["latent_channels"]?.intValue ?? 3, sampleSize: sampleSize)
        c.normGroups = json["norm_num_groups"]?.intValue ?? 32
        c.midAttention = json["mid_block_add_attention"].map { $0 == .bool(true) } ?? true
        try c.validate(origin: "config.json")
        return c
    }

    static func load() throws -> (VQVAEConfig, [String: (shape: [Int], values: [Float])], Checkpoint)? {
        guard FileManager.default.fileExists(atPath: weightsPath) else { return nil }
        let checkpoint = try Checkpoint.open(weightsPath)
        let json = try JSONParser.parse(try String(contentsOfFile: configPath, encoding: .utf8))
        let config = try config(json, sampleSize: json["sample_size"]?.intValue ?? 32)
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        for t in checkpoint.tensors { tensors[t.name] = (t.shape, try t.float32()) }
        return (config, tensors, checkpoint)
    }

    static func trace(_ path: String) throws -> Trace {
        let file = try Checkpoint.open(path), trace = Trace()
        for name in VQVAEFamily.traceOrder(file.tensors.map(\.name)) {
            let t = file.tensor(named: name)!
            trace.append(name, t.shape, try t.float32())
        }
        return trace
    }

    @Test("every layer of diffusers' and the original's traces (rel ≤ 1e-5) at every kernel level")
    func layerByLayer() throws {
        guard let (config, tensors, _) = try Self.load() else {
            print("VQ-VAE fixture test: skipped, \(Self.weightsPath) is not there yet")
            return
        }
        let weights = try VQVAEWeights(config: config) { tensors[$0] }
        for relative in Self.traces {
            guard FileManager.default.fileExists(atPath: Fixtures.path(relative)) else { print("skipped \(relative): not there"); continue }
            let reference = try Self.trace(Fixtures.path(relative))
            let inputs = try VQVAEFamily.inputs(fromTrace: reference).get()
            #expect(inputs.problems(for: config).isEmpty)
            for choice in VQVAEForwardTests.choices {
                let trace = Trace()
                _ = VQVAEFamily.run(weights, semantics: config, inputs: inputs, kernels: choice, trace: trace)
                var compared = 0, worst = 0.0
                for layer in trace.layers {
                    guard let want = reference.layer(layer.name) else { continue }
                    #expect(want.shape == layer.shape, "\(relative): \(layer.name) \(want.shape) vs \(layer.shape)")
                    let rel = ErrorStatistics(layer.values, want.values).relativeL2
                    #expect(rel <= 1e-5, "\(relative): \(layer.name) at \(choice): rel \(rel)")
                    worst = max(worst, rel)
                    compared += 1
                }
                #expect(compared >= 12, "\(relative): only \(compared) layers compared")
                print("VQ-VAE \(relative) at \(choice): \(compared) layers, worst rel L2 \(worst)")
            }
        }
    }

    @Test("a VQ-VAE trace written and read back through TraceFile: the batch from input.tokens' first axis, inputs and shapes checked")
    func traceFile() throws {
        let config = VQVAEForwardTests.tiny(), tensors = VQVAEForwardTests.weights(config, seed: 5)
        let inputs = VQVAEFamily.makeInputs(InputSpec(batch: 3, seed: 4), config: config)
        let trace = Trace()
        _ = VQVAEFamily.run(try VQVAEWeights(config: config) { tensors[$0] }, semantics: config, inputs: inputs, kernels: .automatic, trace: trace)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ditkit-vqvae-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/trace.safetensors"
        try TraceFile.write(trace, to: path, metadata: [("format", "pt"), ("ditkit.config", config.json.serialized())], overwrite: false)
        let (read, metadata, readInputs) = try TraceFile.load(path, for: config)
        #expect(read.layers.map(\.name) == trace.layers.map(\.name))
        #expect(readInputs.batch == 3 && readInputs.tokens == inputs.tokens && readInputs.image == inputs.image)
        #expect(VQVAEFamily.traceConfig(metadata, like: config)?.json == config.json)
        // A token grid of the wrong rank is refused by name.
        let flat = Trace()
        for layer in trace.layers { flat.append(layer.name, layer.name == "input.tokens" ? [3, 64] : layer.shape, layer.values) }
        try TraceFile.write(flat, to: directory + "/flat.safetensors", metadata: [("format", "pt")], overwrite: false)
        #expect(throws: ModelError.self) { try TraceFile.load(directory + "/flat.safetensors", for: config) }
        do { _ = try TraceFile.load(directory + "/flat.safetensors", for: config) } catch {
            #expect("\(error)".contains("input.tokens has shape [3, 64], expected (N, …) of rank 3"))
        }
    }

    @Test("verification: swapped decoder ResNets are caught at their first layer and blamed on the weights; GroupNorm eps and groups are named")
    func corrupted() throws {
        let config = VQVAEForwardTests.tiny(), tensors = VQVAEForwardTests.weights(config, seed: 21)
        // Up level 0's two ResNets (same widths, 32 → 32) swapped, as a reversed-order mapping would do.
        var swapped = tensors
        for (name, value) in tensors where name.hasPrefix("decoder.up_blocks.0.resnets.0.") {
            let other = name.replacingOccurrences(of: "resnets.0.", with: "resnets.1.")
            swapped[name] = tensors[other]
            swapped[other] = value
        }
        let inputs = VQVAEFamily.makeInputs(InputSpec(batch: 1, seed: 2), config: config)
        let good = Trace(), bad = Trace()
        _ = VQVAEFamily.run(try VQVAEWeights(config: config) { tensors[$0] }, semantics: config, inputs: inputs, kernels: .automatic, trace: good)
        _ = VQVAEFamily.run(try VQVAEWeights(config: config) { swapped[$0] }, semantics: config, inputs: inputs, kernels: .automatic, trace: bad)
        let report = VerificationReport.compare(
            good, bad, tolerance: Tolerance(rtol: 1e-5, atol: 0), family: VQVAEFamily.self, configA: config, configB: config,
            semanticsA: config, semanticsB: config, labelA: "a", labelB: "b")
        #expect(report.firstDivergence == "decoder.up.0")
        #expect(report.likelyCauses.first?.hasPrefix(VerificationReport.weightsDiffer) == true)
        #expect(report.layers.first { $0.name == "decoder.mid" }?.passed == true)
        #expect(report.layers.first { $0.name == "encoder.down.0" }?.passed == true)  // the encoder chain is untouched
        // Up blocks 0 and last swapped where the shapes allow (two levels of the same width): a reversed index mapping.
        var same = config
        same.blockOutChannels = [16, 16]
        same.levelAttention = [true, true]
        let sameTensors = VQVAEForwardTests.weights(same, seed: 22)
        var reversed = sameTensors
        for (name, value) in sameTensors where name.hasPrefix("decoder.up_blocks.0.") && !name.contains("upsamplers") {
            let other = name.replacingOccurrences(of: "up_blocks.0.", with: "up_blocks.1.")
            reversed[name] = sameTensors[other]
            reversed[other] = value
        }
        #expect(reversed.count == sameTensors.count && reversed.keys.contains("decoder.up_blocks.1.attentions.1.to_q.weight"))
        let sameInputs = VQVAEFamily.makeInputs(InputSpec(batch: 1, seed: 3), config: same)
        let straight = Trace(), swappedLevels = Trace()
        _ = VQVAEFamily.run(try VQVAEWeights(config: same) { sameTensors[$0] }, semantics: same, inputs: sameInputs, kernels: .automatic, trace: straight)
        _ = VQVAEFamily.run(try VQVAEWeights(config: same) { reversed[$0] }, semantics: same, inputs: sameInputs, kernels: .automatic, trace: swappedLevels)
        let levels = VerificationReport.compare(
            straight, swappedLevels, tolerance: Tolerance(rtol: 1e-5, atol: 0), family: VQVAEFamily.self, configA: same, configB: same,
            semanticsA: same, semanticsB: same, labelA: "a", labelB: "b")
        #expect(levels.firstDivergence == "decoder.up.0")
        #expect(levels.likelyCauses.first?.contains("the weights themselves differ at decoder.up.0") == true)
        // Different numerics are named where the first GroupNorm runs.
        var other = config
        other.normEps = 1e-5
        other.normGroups = 4
        let numeric = Trace()
        _ = VQVAEFamily.run(try VQVAEWeights(config: config) { tensors[$0] }, semantics: other, inputs: inputs, kernels: .automatic, trace: numeric)
        let second = VerificationReport.compare(
            good, numeric, tolerance: Tolerance(rtol: 1e-5, atol: 0), family: VQVAEFamily.self, configA: config, configB: other,
            semanticsA: config, semanticsB: other, labelA: "a", labelB: "b")
        #expect(second.firstDivergence == "decoder.mid")
        #expect(second.likelyCauses.contains("decoder: GroupNorm eps 1e-6 vs 1e-5"))
        #expect(second.likelyCauses.contains("decoder: GroupNorm groups 8 vs 4"))
        #expect(second.likelyCauses.contains { $0.hasPrefix("encoder: GroupNorm eps") && $0.hasSuffix("(also)") })
        #expect(VQVAEFamily.withNumerics(config, of: other).normGroups == 4)
        #expect(VQVAEFamily.semantics(.original, of: config)?.json == config.json)
    }
}
