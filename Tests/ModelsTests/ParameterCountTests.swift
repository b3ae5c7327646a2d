import Models
import Testing

@Suite("parameter and FLOP counts")
struct ParameterCountTests {
    @Test("DiT-XL/2: total, trainable, Gflops and the diffusers layout total")
    func xl2() throws {
        let xl = try #require(Preset.named("DiT-XL/2"))
        let original = ParameterCount(config: xl.config, layout: .original)
        #expect(original.total == 675_129_632)
        #expect(original.trainable == 674_834_720)
        #expect((original.gflops * 100).rounded() / 100 == 118.64)
        #expect(ParameterCount(config: xl.config, layout: .diffusers).total == 749_826_464)
        #expect(DiTFamily.sourceTensors(.original, config: xl.config).count == 292)
        #expect(DiTFamily.sourceTensors(.diffusers, config: xl.config).count == 538)
    }

    @Test("the paper's Gflops for all 12 presets at 256 px (for B/4 this count gives 5.566, the paper prints 5.56)",
          arguments: [("S/8", 0.36), ("S/4", 1.41), ("S/2", 6.06), ("B/8", 1.42), ("B/4", 5.5664), ("B/2", 23.01),
                      ("L/8", 5.01), ("L/4", 19.70), ("L/2", 80.71), ("XL/8", 7.39), ("XL/4", 29.05), ("XL/2", 118.64)])
    func paperGflops(_ c: (String, Double)) throws {
        let preset = try #require(Preset.named("DiT-" + c.0))
        let gflops = ParameterCount(config: preset.config, layout: .original).gflops
        #expect(abs(gflops - c.1) < 0.0051, "\(c.0): \(gflops)")
    }

    @Test("trainable parameter formula N(18D²+15D) + 3D² + (1262+12p²)D + 8p² for every preset", arguments: Preset.dit)
    func formula(_ preset: Preset) {
        let c = preset.config
        let (n, d, p) = (c.depth, c.hiddenSize, c.patchSize)
        let expected = n * (18 * d * d + 15 * d) + 3 * d * d + (1262 + 12 * p * p) * d + 8 * p * p
        let count = ParameterCount(config: c, layout: .original)
        #expect(count.trainable == expected)
        #expect(count.frozen == c.tokens * d)
    }

    @Test("Cerebras configs: trainable and frozen counts (Cerebras Model Zoo)", arguments: [
        ("small", 32_858_884), ("base", 130_303_492), ("large", 457_824_260), ("xlarge", 674_816_260), ("2B", 2_281_078_788),
    ])
    func cerebras(_ c: (String, Int)) throws {
        let preset = try #require(Preset.named("cerebras-dit-" + c.0))
        let count = ParameterCount(config: preset.config, layout: .cerebras)
        #expect(count.trainable == c.1)
        #expect(count.frozen == preset.config.tokens * preset.config.hiddenSize + 258_000)
        #expect(DiTFamily.sourceTensors(.cerebras, config: preset.config).count == 24 * preset.config.depth + 17)
    }

    @Test("preset names are found however they are spelled")
    func names() {
        #expect(Preset.named("XL/2")?.name == "DiT-XL/2")
        #expect(Preset.named("dit-xl-2-512")?.config.inputSize == 64)
        #expect(Preset.named("cerebras-2B")?.config.hiddenSize == 2048)
        #expect(Preset.named("DiT-M/2") == nil)
        #expect(Preset.dit.count == 24 && Preset.cerebras.count == 5)
    }
}
