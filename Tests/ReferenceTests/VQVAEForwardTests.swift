import Checkpoints
import DitkitTestSupport
import Foundation
import Models
import Reference
import Tensors
import Testing
import Verification

/// The VQ-VAE reference forward: each shared kernel (convolutions as GEMMs with every padding, GroupNorm with swish,
/// nearest ×2) against float64 definitions and bit-identical across kernel levels; the whole decoder and encoder
/// against a float64 direct implementation at every level; diffusers' traces layer by layer; and verification of a
/// corrupted conversion.
@Suite("VQ-VAE forward")
struct VQVAEForwardTests {
    static let levels = KernelLevel.allCases.filter(\.isSupported)
    static let choices: [KernelChoice] = levels.map { try! KernelChoice(level: $0) } + (GEMM.avx512Available ? [.blas] : [])

    /// Two levels (the lower one with attention), one ResNet per encoder level, 16×16 images, 8×8 tokens.
    static func tiny(groups: Int = 8) -> VQVAEConfig {
        var c = VQVAEConfig(blockOutChannels: [16, 32], levelAttention: [false, true], layersPerBlock: 1, latentChannels: 8,
                            numCodes: 40, embedDim: 4, sampleSize: 16)
        c.normGroups = groups
        return c
    }

    /// Random weights of `config` by canonical name: convolutions and projections uniform with variance 1/fan-in,
    /// norms' γ near 1 and β near 0, the codebook uniform in [−1, 1).
    static func weights(_ config: VQVAEConfig, seed: UInt64) -> [String: (shape: [Int], values: [Float])] {
        var out: [String: (shape: [Int], values: [Float])] = [:]
        for (k, (name, shape)) in VQVAEWeights.tensorShapes(config).enumerated() {
            let u = TestValues.uniform(shape.reduce(1, *), seed: seed &+ UInt64(k) &* 7919)
            let fanIn = shape.count >= 2 ? shape.dropFirst().reduce(1, *) : 1
            let values: [Float]
            if name.hasPrefix("quantize.") { values = u }
            else if name.contains("norm") && name.hasSuffix(".weight") { values = u.map { 1 + 0.2 * $0 } }
            else if shape.count == 1 { values = u.map { 0.1 * $0 } }
            else { values = u.map { $0 * Float((3.0 / Double(fanIn)).squareRoot()) } }
            out[name] = (shape, values)
        }
        return out
    }

    static func load(_ config: VQVAEConfig, _ tensors: [String: (shape: [Int], values: [Float])]) throws -> VQVAEWeights {
        try VQVAEWeights(config: config) { tensors[$0] }
    }

    static func relativeL2(_ a: [Float], _ b: [Double]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += (Double(x) - y) * (Double(x) - y); den += y * y }
        return (num / max(den, 1e-300)).squareRoot()
    }

    // MARK: kernels

    @Test("convolutions as GEMMs equal float64 sums: 3×3 pad 1, 1×1, stride 2 with (0, 1, 0, 1) padding, bands, accumulation")
    func convolution() {
        let cases: [(Conv2DGeometry, Int, Int)] = [
            (Conv2DGeometry(inChannels: 3, outChannels: 5, kernel: 3, padding: 1), 7, 9),
            (Conv2DGeometry(inChannels: 4, outChannels: 6, kernel: 1), 5, 5),
            (Conv2DGeometry(inChannels: 3, outChannels: 4, kernel: 3, stride: 2, padTop: 0, padLeft: 0, padBottom: 1, padRight: 1), 8, 6),
            (Conv2DGeometry(inChannels: 300, outChannels: 3, kernel: 3, padding: 1), 40, 70),  // several bands
        ]
        for (g, h, w) in cases {
            let batch = 2, ho = g.outputHeight(h), wo = g.outputWidth(w)
            let x = TestValues.uniform(batch * g.inChannels * h * w, seed: 1)
            let weight = TestValues.uniform(g.outChannels * g.patchSize, seed: 2), bias = TestValues.uniform(g.outChannels, seed: 3)
            let residual = TestValues.uniform(batch * g.outChannels * ho * wo, seed: 4)
            var expected = [Double](repeating: 0, count: residual.count)
            for b in 0..<batch { for o in 0..<g.outChannels { for r in 0..<ho { for cc in 0..<wo {
                var sum = Double(bias[o])
                for i in 0..<g.inChannels { for ky in 0..<g.kernel { for kx in 0..<g.kernel {
                    let y = r * g.stride + ky - g.padTop, xx = cc * g.stride + kx - g.padLeft
                    guard y >= 0, y < h, xx >= 0, xx < w else { continue }
                    sum += Double(weight[((o * g.inChannels + i) * g.kernel + ky) * g.kernel + kx]) * Double(x[((b * g.inChannels + i) * h + y) * w + xx])
                } } }
                expected[((b * g.outChannels + o) * ho + r) * wo + cc] = sum
            } } } }
            var bits: [[UInt32]] = []
            for level in Self.levels {
                var out = [Float](repeating: .nan, count: residual.count), summed = residual
                var scratch = [Float](repeating: 0, count: max(1, Convolution.scratchCount(g, height: h, width: w)))
                Convolution.run(x, batch: batch, height: h, width: w, geometry: g, weight: weight, bias: bias, into: &out, scratch: &scratch, level: level)
                Convolution.run(x, batch: batch, height: h, width: w, geometry: g, weight: weight, bias: bias, into: &summed, accumulate: true,
                                scratch: &scratch, level: level)
                #expect(Self.relativeL2(out, expected) < 1e-6, "\(g) at \(level)")
                #expect(Self.relativeL2(summed, zip(expected, residual).map { $0 + Double($1) }) < 1e-6, "\(g) accumulated at \(level)")
                bits.append(out.map(\.bitPattern) + summed.map(\.bitPattern))
            }
            #expect(Set(bits).count == 1, "\(g) differs across levels")
        }
    }

    @Test("Winograd F(2×2, 3×3) in bands of tile rows equals the single-band result and float64, odd sizes included")
    func winogradBands() {
        let g = Conv2DGeometry(inChannels: 5, outChannels: 7, kernel: 3, padding: 1)
        for (h, w) in [(9, 11), (10, 6), (1, 1), (2, 3)] {
            let x = TestValues.uniform(g.inChannels * h * w, seed: 5), weight = TestValues.uniform(g.outChannels * g.patchSize, seed: 6)
            var expected = [Double](repeating: 0, count: g.outChannels * h * w)
            for o in 0..<g.outChannels { for r in 0..<h { for c in 0..<w {
                var sum = 0.0
                for i in 0..<g.inChannels { for ky in 0..<3 { for kx in 0..<3 {
                    let y = r + ky - 1, xx = c + kx - 1
                    guard y >= 0, y < h, xx >= 0, xx < w else { continue }
                    sum += Double(weight[((o * g.inChannels + i) * 3 + ky) * 3 + kx]) * Double(x[(i * h + y) * w + xx])
                } } }
                expected[(o * h + r) * w + c] = sum
            } } }
            var outputs: [[Float]] = []
            // One tile row per band (the smallest band) and the whole image in one band.
            for band in [1, 1 << 22] {
                var out = [Float](repeating: 0, count: expected.count)
                var scratch = [Float](repeating: .nan, count: Winograd.scratchCount(g, height: h, width: w, bandFloats: band))
                x.withUnsafeBufferPointer { xp in weight.withUnsafeBufferPointer { wp in out.withUnsafeMutableBufferPointer { op in
                    scratch.withUnsafeMutableBufferPointer { sp in
                        Winograd.run(xp.baseAddress!, height: h, width: w, geometry: g, weight: wp.baseAddress!, into: op.baseAddress!,
                                     scratch: sp.baseAddress!, bandFloats: band)
                    }
                } } }
                #expect(Self.relativeL2(out, expected) < 1e-6, "\(h)×\(w), band \(band)")
                outputs.append(out)
            }
            #expect(outputs[0] == outputs[1], "\(h)×\(w): bands change the result")
        }
    }

    @Test("GroupNorm (with and without swish) equals float64 and gives the same bits at every level; swish and ×2 upsampling too")
    func groupNorm() {
        for (channels, spatial, groups) in [(32, 9, 8), (64, 1031, 32), (6, 4, 3), (8, 3000, 2)] {
            let batch = 2
            let x = TestValues.uniform(batch * channels * spatial, seed: 5).map { 3 + 2 * $0 }  // an offset mean
            let gamma = TestValues.uniform(channels, seed: 6), beta = TestValues.uniform(channels, seed: 7)
            var expected = [Double](repeating: 0, count: x.count)
            let per = channels / groups
            for b in 0..<batch { for g in 0..<groups {
                let start = (b * channels + g * per) * spatial, values = x[start..<(start + per * spatial)].map(Double.init)
                let mean = values.reduce(0, +) / Double(values.count)
                let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
                for (k, v) in values.enumerated() {
                    let c = g * per + k / spatial
                    expected[start + k] = (v - mean) / (variance + 1e-6).squareRoot() * Double(gamma[c]) + Double(beta[c])
                }
            } }
            var bits: [[UInt32]] = []
            for level in Self.levels {
                for swish in [false, true] {
                    var out = [Float](repeating: 0, count: x.count)
                    GroupNorm.run(x, into: &out, batch: batch, channels: channels, spatial: spatial, groups: groups, eps: 1e-6,
                                  gamma: gamma, beta: beta, swish: swish, level: level)
                    let want = swish ? expected.map { $0 / (1 + Foundation.exp(-$0)) } : expected
                    #expect(Self.relativeL2(out, want) < 1e-6, "\(channels)×\(spatial), \(groups) groups, swish \(swish) at \(level)")
                    if swish { bits.append(out.map(\.bitPattern)) }
                }
            }
            #expect(Set(bits).count == 1, "GroupNorm + swish differs across levels for \(channels)×\(spatial)")
        }
        let values = TestValues.uniform(1000, seed: 8).map { 20 * $0 }
        var swished: [[UInt32]] = []
        for level in Self.levels {
            var y = values
            GroupNorm.swish(&y, count: y.count, level: level)
            #expect(Self.relativeL2(y, values.map { Double($0) / (1 + Foundation.exp(-Double($0))) }) < 1e-6)
            swished.append(y.map(\.bitPattern))
            var up = [Float](repeating: 0, count: 4 * 6 * 20)
            Convolution.upsampleNearest2(values, into: &up, planes: 4, height: 5, width: 6, level: level)
            #expect((0..<up.count).allSatisfy { i in
                let p = i / 120, r = (i % 120) / 12, c = i % 12
                return up[i] == values[p * 30 + (r / 2) * 6 + c / 2]
            }, "nearest ×2 at \(level)")
        }
        #expect(Set(swished).count == 1, "swish differs across levels")
    }

    // MARK: the whole forward against a float64 direct implementation

    /// A direct float64 VQ-VAE (loops, no GEMM): the function of diffusers' `VQModel`, written from its definition.
    struct Direct {
        let c: VQVAEConfig
        let w: [String: (shape: [Int], values: [Float])]
        struct A { var v: [Double]; var c: Int; var h: Int; var w: Int }

        func p(_ name: String) -> [Double] { w[name]!.values.map(Double.init) }

        func conv(_ x: A, _ name: String, stride: Int = 1, pads: (Int, Int, Int, Int)? = nil) -> A {
            let shape = w[name + ".weight"]!.shape, weight = p(name + ".weight"), bias = p(name + ".bias")
            let cout = shape[0], k = shape.count == 4 ? shape[2] : 1
            let (pt, pl, pb, pr) = pads ?? (k / 2, k / 2, k / 2, k / 2)
            let ho = (x.h + pt + pb - k) / stride + 1, wo = (x.w + pl + pr - k) / stride + 1
            var out = A(v: [Double](repeating: 0, count: cout * ho * wo), c: cout, h: ho, w: wo)
            for o in 0..<cout { for r in 0..<ho { for col in 0..<wo {
                var sum = bias[o]
                for i in 0..<x.c { for ky in 0..<k { for kx in 0..<k {
                    let y = r * stride + ky - pt, xx = col * stride + kx - pl
                    if y >= 0, y < x.h, xx >= 0, xx < x.w { sum += weight[((o * x.c + i) * k + ky) * k + kx] * x.v[(i * x.h + y) * x.w + xx] }
                } } }
                out.v[(o * ho + r) * wo + col] = sum
            } } }
            return out
        }

        func norm(_ x: A, _ name: String, swish: Bool) -> A {
            let gamma = p(name + ".weight"), beta = p(name + ".bias"), per = x.c / c.normGroups, s = x.h * x.w
            var out = x
            for g in 0..<c.normGroups {
                let range = (g * per * s)..<((g + 1) * per * s)
                let mean = x.v[range].reduce(0, +) / Double(range.count)
                let variance = x.v[range].map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(range.count)
                for i in range {
                    let y = (x.v[i] - mean) / (variance + c.normEps).squareRoot() * gamma[i / s] + beta[i / s]
                    out.v[i] = swish ? y / (1 + Foundation.exp(-y)) : y
                }
            }
            return out
        }

        func resnet(_ x: A, _ name: String) -> A {
            var h = conv(norm(x, name + ".norm1", swish: true), name + ".conv1")
            h = conv(norm(h, name + ".norm2", swish: true), name + ".conv2")
            let shortcut = w[name + ".conv_shortcut.weight"] != nil ? conv(x, name + ".conv_shortcut") : x
            h.v = zip(h.v, shortcut.v).map(+)
            return h
        }

        func attention(_ x: A, _ name: String) -> A {
            let n = norm(x, name + ".group_norm", swish: false), t = x.h * x.w, ch = x.c
            func project(_ input: [Double], _ layer: String) -> [Double] {  // (t × C) rows
                let weight = p(layer + ".weight"), bias = p(layer + ".bias")
                return (0..<(t * ch)).map { idx in
                    let (tok, o) = (idx / ch, idx % ch)
                    return (0..<ch).reduce(bias[o]) { $0 + weight[o * ch + $1] * input[tok * ch + $1] }
                }
            }
            let rows = (0..<(t * ch)).map { n.v[($0 % ch) * t + $0 / ch] }
            let q = project(rows, name + ".to_q"), k = project(rows, name + ".to_k"), v = project(rows, name + ".to_v")
            var attended = [Double](repeating: 0, count: t * ch)
            for i in 0..<t {
                var scores = (0..<t).map { j in (0..<ch).reduce(0.0) { $0 + q[i * ch + $1] * k[j * ch + $1] } / Double(ch).squareRoot() }
                let m = scores.max()!
                scores = scores.map { Foundation.exp($0 - m) }
                let total = scores.reduce(0, +)
                for j in 0..<t { for cc in 0..<ch { attended[i * ch + cc] += scores[j] / total * v[j * ch + cc] } }
            }
            let projected = project(attended, name + ".to_out.0")
            var out = x
            for i in 0..<(t * ch) { out.v[(i % ch) * t + i / ch] += projected[i] }
            return out
        }

        func upsample(_ x: A) -> A {
            var out = A(v: [Double](repeating: 0, count: x.c * 4 * x.h * x.w), c: x.c, h: 2 * x.h, w: 2 * x.w)
            for i in 0..<out.v.count {
                let (ch, r, col) = (i / (out.h * out.w), (i / out.w) % out.h, i % out.w)
                out.v[i] = x.v[(ch * x.h + r / 2) * x.w + col / 2]
            }
            return out
        }

        func mid(_ x: A, _ name: String) -> A {
            var x = resnet(x, name + ".resnets.0")
            if c.midAttention { x = attention(x, name + ".attentions.0") }
            return resnet(x, name + ".resnets.1")
        }

        /// The decoder's and encoder's layers for one sample, by trace name.
        func run(tokens: [Int], side: Int, image: [Float]) -> [String: [Double]] {
            var layers: [String: [Double]] = [:]
            let book = p("quantize.embedding.weight"), e = c.embedDim, depth = c.depth
            var x = A(v: (0..<(e * side * side)).map { i in book[tokens[i % (side * side)] * e + i / (side * side)] }, c: e, h: side, w: side)
            layers["quantized"] = x.v
            x = conv(x, "post_quant_conv"); layers["post_quant_conv"] = x.v
            x = conv(x, "decoder.conv_in"); layers["decoder.conv_in"] = x.v
            x = mid(x, "decoder.mid_block"); layers["decoder.mid"] = x.v
            for k in 0..<depth {
                for j in 0...c.layersPerBlock {
                    x = resnet(x, "decoder.up_blocks.\(k).resnets.\(j)")
                    if c.levelAttention[depth - 1 - k] { x = attention(x, "decoder.up_blocks.\(k).attentions.\(j)") }
                }
                if k < depth - 1 { x = conv(upsample(x), "decoder.up_blocks.\(k).upsamplers.0.conv") }
                layers["decoder.up.\(k)"] = x.v
            }
            x = conv(norm(x, "decoder.conv_norm_out", swish: true), "decoder.conv_out"); layers["output"] = x.v
            x = A(v: image.map(Double.init), c: c.inChannels, h: c.sampleSize, w: c.sampleSize)
            x = conv(x, "encoder.conv_in"); layers["encoder.conv_in"] = x.v
            for i in 0..<depth {
                for j in 0..<c.layersPerBlock {
                    x = resnet(x, "encoder.down_blocks.\(i).resnets.\(j)")
                    if c.levelAttention[i] { x = attention(x, "encoder.down_blocks.\(i).attentions.\(j)") }
                }
                if i < depth - 1 { x = conv(x, "encoder.down_blocks.\(i).downsamplers.0.conv", stride: 2, pads: (0, 0, 1, 1)) }
                layers["encoder.down.\(i)"] = x.v
            }
            x = mid(x, "encoder.mid_block"); layers["encoder.mid"] = x.v
            x = conv(norm(x, "encoder.conv_norm_out", swish: true), "encoder.conv_out"); layers["encoder.conv_out"] = x.v
            x = conv(x, "quant_conv"); layers["quant_conv"] = x.v
            return layers
        }
    }

    @Test("decoder and encoder equal a float64 direct implementation layer by layer (rel ≤ 1e-5) at every kernel level",
          arguments: [8, 16])
    func againstFloat64(groups: Int) throws {
        let config = Self.tiny(groups: groups), tensors = Self.weights(config, seed: 11)
        let weights = try Self.load(config, tensors)
        let inputs = VQVAEFamily.makeInputs(InputSpec(batch: 2, seed: 3), config: config)
        #expect(inputs.problems(for: config).isEmpty)
        let direct = Direct(c: config, w: tensors)
        let side = config.latentSize, pixels = config.inChannels * config.sampleSize * config.sampleSize
        let samples = (0..<2).map { b in
            direct.run(tokens: Array(inputs.tokens[(b * side * side)..<((b + 1) * side * side)]), side: side,
                       image: Array(inputs.image[(b * pixels)..<((b + 1) * pixels)]))
        }
        for choice in Self.choices {
            let trace = Trace()
            let output = VQVAEFamily.run(weights, semantics: config, inputs: inputs, kernels: choice, trace: trace)
            #expect(output == trace.layer("output")?.values)
            var compared = 0
            for layer in trace.layers where !layer.name.hasPrefix("input.") {
                let want = samples[0][layer.name]! + samples[1][layer.name]!
                #expect(layer.shape == VQVAEFamily.traceShape(layer.name, config: config, batch: 2), "\(layer.name)")
                let rel = Self.relativeL2(layer.values, want)
                #expect(rel <= 1e-5, "\(layer.name) at \(choice): rel \(rel)")
                compared += 1
            }
            #expect(compared == 13)
            #expect(VQVAEFamily.traceOrder(trace.layers.map(\.name).shuffled()) == trace.layers.map(\.name))
        }
    }

    @Test("the trace format: inputs read back, shapes, the batch layer, gemm shapes and the budget")
    func traceFormat() throws {
        let config = Self.tiny()
        let inputs = VQVAEInputs.make(config: config, batch: 3, seed: 9)
        let trace = Trace()
        trace.append("input.tokens", [3, 8, 8], inputs.tokens.map(Float.init))
        trace.append("input.image", [3, 3, 16, 16], inputs.image)
        let read = try VQVAEFamily.inputs(fromTrace: trace).get()
        #expect(read.tokens == inputs.tokens && read.image == inputs.image && read.batch == 3)
        #expect(inputs.image.allSatisfy { abs($0) <= 1 } && inputs.tokens.allSatisfy { (0..<40).contains($0) })
        var bad = inputs
        bad.tokens[5] = 40
        #expect(bad.problems(for: config) == ["input.tokens[5] = 40 is outside the codebook (0…39)"])
        #expect(VQVAEFamily.traceShape("decoder.up.0", config: config, batch: 1) == [1, 32, 16, 16])
        #expect(VQVAEFamily.traceShape("decoder.up.1", config: config, batch: 1) == [1, 16, 16, 16])
        #expect(VQVAEFamily.traceShape("encoder.down.0", config: config, batch: 1) == [1, 16, 8, 8])
        #expect(VQVAEFamily.traceShape("encoder.down.2", config: config, batch: 1) == nil)
        // ITHQ: 32×32 tokens, 256×256 images.
        let ithq = VQVAEConfig(blockOutChannels: [64, 128, 256, 512], levelAttention: [false, false, false, true], layersPerBlock: 2,
                               latentChannels: 256, numCodes: 4096, embedDim: 128, sampleSize: 256)
        #expect(VQVAEWeights.tensorShapes(ithq).count == 303)  // every tensor of diffusers' VQModel (REFERENCE §4)
        #expect(VQVAEWeights.tensorShapes(ithq).map { $0.shape.reduce(1, *) }.reduce(0, +) == 64_009_667)
        // The forward's own count (its budget) and the family's (params' Gflops) agree: the codebook distances of
        // encoding are the family's only extra term.
        let codebook = ithq.latentSize * ithq.latentSize * ithq.numCodes * ithq.embedDim
        #expect(VQVAEFamily.decoderMultiplyAdds(ithq) + VQVAEFamily.encoderMultiplyAdds(ithq) + codebook == VQVAEFamily.multiplyAdds(ithq))
        #expect(throws: ModelError.self) { try VQVAEFamily.checkBudget(ithq, batch: 1000, tracing: true, kernels: .automatic, memoryBudget: 1e9, workBudget: 1e13) }
        try VQVAEFamily.checkBudget(ithq, batch: 1, tracing: true, kernels: .automatic, memoryBudget: 4e9, workBudget: 1e13)
    }
}
