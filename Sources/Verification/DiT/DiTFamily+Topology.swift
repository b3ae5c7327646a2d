import Models
import Reference

extension DiTFamily: TraceTopology {
    /// Two chains: the embeddings (`t_embed` and `y_embed`, each from its input, feeding `cond`) and the token stream
    /// (`patch_embed` → `blocks.0` → … → `final` → `output`). The conditioning that every block reads is not a
    /// feeder: a block's added error is the growth of the token stream's error, and the embeddings chain shows what
    /// the conditioning brings.
    public static func link(of layer: String, among names: [String]) -> LayerLink? {
        switch layer {
        case "t_embed", "y_embed": return LayerLink(series: "embeddings", feeders: [])
        case "cond": return LayerLink(series: "embeddings", feeders: ["t_embed", "y_embed"])
        case "patch_embed": return LayerLink(series: "blocks", feeders: [])
        case "final":
            let last = names.compactMap { $0.hasPrefix("blocks.") ? Int($0.dropFirst("blocks.".count)) : nil }.max()
            return LayerLink(series: "blocks", feeders: [last.map { "blocks.\($0)" } ?? "patch_embed"])
        case "output": return LayerLink(series: "blocks", feeders: ["final"])
        default:
            guard layer.hasPrefix("blocks."), let i = Int(layer.dropFirst("blocks.".count)) else { return nil }
            return LayerLink(series: "blocks", feeders: [i == 0 ? "patch_embed" : "blocks.\(i - 1)"])
        }
    }
}
