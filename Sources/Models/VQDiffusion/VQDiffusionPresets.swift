/// Named VQ-Diffusion configurations: the published ITHQ model and tiny ones for tests.
public enum VQDiffusionPresets {
    /// ITHQ (microsoft/VQ-Diffusion's improved model, `microsoft/vq-diffusion-ithq`): 36 blocks, D 1408, 16 heads of 88,
    /// CLIP ViT-B/32 text context 77×512, 4096 codes + mask, 32×32 latent tokens, 100 diffusion steps; published in
    /// the original layout (original semantics).
    public static let ithq: FamilyPreset<VQDiffusionConfig> = {
        var config = VQDiffusionConfig(depth: 36, hiddenSize: 1408, numHeads: 16).withOriginalSemantics()
        config.sourceLayout = .original
        return FamilyPreset(name: "vq-diffusion-ithq", layout: .original, config: config, aliases: ["ITHQ", "vq-diffusion"])
    }()

    /// A tiny model of the fixture's sizes (`fixtures/vq-diffusion/`: 2 blocks, D 32, 4 heads of 8, context 77×512,
    /// 32 codes + mask, 4×4 latent, 10 steps), in the original layout.
    public static let tiny: FamilyPreset<VQDiffusionConfig> = {
        var config = VQDiffusionConfig(
            depth: 2, hiddenSize: 32, numHeads: 4, contextDim: 512, contextLength: 77, codes: 32, height: 4, width: 4,
            diffusionSteps: 10).withOriginalSemantics()
        config.sourceLayout = .original
        return FamilyPreset(name: "vq-diffusion-tiny", layout: .original, config: config)
    }()

    /// The tiny model with diffusers' numerics, in the diffusers layout.
    public static let tinyDiffusers: FamilyPreset<VQDiffusionConfig> = {
        var config = tiny.config.withDiffusersSemantics()
        config.sourceLayout = .diffusers
        return FamilyPreset(name: "vq-diffusion-tiny-diffusers", layout: .diffusers, config: config)
    }()

    /// Every VQ-Diffusion transformer preset.
    public static var all: [FamilyPreset<VQDiffusionConfig>] { [ithq, tiny, tinyDiffusers] }

    /// The head count of the preset with hidden size `hidden` (heads cannot be read from the original's weights).
    static func heads(forHiddenSize hidden: Int) -> Int? {
        all.first { $0.config.hiddenSize == hidden }?.config.numHeads
    }
}
