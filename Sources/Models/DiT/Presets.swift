/// A DiT preset.
public typealias Preset = FamilyPreset<DiTConfig>

/// Named DiT configurations: the 12 DiT presets at 256 and 512 px, and the five Cerebras Model Zoo configs.
extension FamilyPreset where Config == DiTConfig {
    /// DiT-S/B/L/XL × patch 2/4/8 at 256 px (`DiT-XL/2`) and 512 px (`DiT-XL/2-512`), original semantics.
    public static let dit: [Preset] = {
        let sizes: [(String, Int, Int, Int)] = [("S", 12, 384, 6), ("B", 12, 768, 12), ("L", 24, 1024, 16), ("XL", 28, 1152, 16)]
        var out: [Preset] = []
        for resolution in [256, 512] {
            for (size, depth, hidden, heads) in sizes {
                for patch in [2, 4, 8] {
                    var config = DiTConfig(
                        hiddenSize: hidden, depth: depth, numHeads: heads, patchSize: patch, inputSize: resolution / 8)
                    config.sourceLayout = .original
                    let name = "DiT-\(size)/\(patch)" + (resolution == 512 ? "-512" : "")
                    out.append(Preset(name: name, layout: .original, config: config, aliases: [String(name.dropFirst("DiT-".count))]))
                }
            }
        }
        return out
    }()

    /// Cerebras Model Zoo DiT configs (the Model Zoo's DiT small … 2B): patch 2, 32×32×4 latents, no learned sigma, erf GELU,
    /// ConvTranspose head, integer timesteps through a frozen table.
    public static let cerebras: [Preset] = {
        let sizes: [(String, Int, Int, Int, Int)] = [
            ("small", 384, 12, 6, 1536), ("base", 768, 12, 12, 3072), ("large", 1024, 24, 16, 4096),
            ("xlarge", 1152, 28, 16, 4608), ("2B", 2048, 30, 16, 8192),
        ]
        return sizes.map { name, hidden, depth, heads, ffn in
            var config = DiTConfig(
                hiddenSize: hidden, depth: depth, numHeads: heads, patchSize: 2, inChannels: 4, outChannels: 4,
                mlpHidden: ffn, inputSize: 32)
            config.gelu = .erf
            config.outputHead = .convTranspose
            config.timestepInput = .table
            config.sourceLayout = .cerebras
            return Preset(name: "cerebras-dit-\(name)", layout: .cerebras, config: config, aliases: ["cerebras-\(name)"])
        }
    }()

    /// Every DiT preset: `dit`, then `cerebras`.
    public static var all: [Preset] { dit + cerebras }

    /// Finds a preset by name, case-insensitively, accepting `XL/2`, `DiT-XL-2`, `dit-xl/2-512`, `cerebras-2B`.
    public static func named(_ name: String) -> Preset? { DiTFamily.preset(named: name) }

    /// The DiT preset with this hidden size, used to choose a head count (heads cannot be read from weights).
    package static func heads(forHiddenSize hidden: Int) -> Int? {
        (dit + cerebras).first { $0.config.hiddenSize == hidden }?.config.numHeads
    }
}
