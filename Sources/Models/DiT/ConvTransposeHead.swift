import Checkpoints
import Tensors

/// Cerebras' ConvTranspose2d head (kernel = stride = p) read as the canonical linear head: the same function as a
/// linear (p²·C, D) head whose bias repeats over the p² patch positions. Weight (D, C, p, p) ↔ linear row
/// (pi·p + qi)·C + c; bias (C) ↔ p² repeats.
enum ConvTransposeHead: TensorTransform {
    case weight(String)
    case bias(String)

    var sourceNames: [String] {
        switch self {
        case .weight(let name), .bias(let name): return [name]
        }
    }

    func sourceShapes(canonicalShape: [Int], config: any FamilyConfig) -> [[Int]] {
        let c = config as! DiTConfig
        switch self {
        case .weight: return [[c.hiddenSize, c.outChannels, c.patchSize, c.patchSize]]
        case .bias: return [[c.outChannels]]
        }
    }

    func canonicalShape(sourceShapes: [[Int]]) -> [Int]? {
        guard case .weight = self, sourceShapes.count == 1, sourceShapes[0].count == 4 else { return nil }
        let s = sourceShapes[0]
        guard s[2] == s[3], let rows = try? checkedElementCount([s[2], s[3], s[1]]) else { return nil }
        return [rows, s[0]]
    }

    func canonical(from sources: [TensorInfo], name: String, shape: [Int], dtype: DType) -> OutputTensor {
        switch self {
        case .weight:
            let w = sources[0]
            // Wt (D, C, p, p) → W (p²·C, D) with W[(pi·p+qi)·C + c, d] = Wt[d, c, pi, qi].
            return OutputTensor(name: name, dtype: dtype, shape: shape) { sink in
                let (d, c, p) = (w.shape[0], w.shape[1], w.shape[2])
                let size = dtype.size
                let source = try w.contiguousBytes()
                var out = [UInt8](repeating: 0, count: source.count)
                for pi in 0..<p { for qi in 0..<p { for ch in 0..<c {
                    let row = (pi * p + qi) * c + ch
                    for col in 0..<d {
                        let from = (((col * c + ch) * p + pi) * p + qi) * size
                        let to = (row * d + col) * size
                        for b in 0..<size { out[to + b] = source[from + b] }
                    }
                } } }
                try sink.write(out)
            }
        case .bias:
            let b = sources[0]
            let positions = b.elementCount > 0 ? shape[0] / b.elementCount : 0
            return OutputTensor(name: name, dtype: dtype, shape: shape) { sink in
                let bytes = try b.contiguousBytes()
                for _ in 0..<positions { try sink.write(bytes) }
            }
        }
    }

    func sources(from linear: OutputTensor, config: any FamilyConfig) throws -> [OutputTensor] {
        let config = config as! DiTConfig
        let (d, c, p) = (config.hiddenSize, config.inChannels, config.patchSize)
        // The canonical head may predict more channels (learned sigma) than the written one keeps.
        let cout = linear.shape[0] / max(p * p, 1)
        let dtype = linear.dtype
        let size = dtype.size
        switch self {
        case .weight(let name):
            // Canonical linear head weight (p²·Cout, D) → ConvTranspose weight (D, C, p, p), sigma rows dropped.
            return [OutputTensor(name: name, dtype: dtype, shape: [d, c, p, p]) { sink in
                let source = try linear.contiguousBytes()
                var out = [UInt8](repeating: 0, count: d * c * p * p * size)
                for col in 0..<d { for ch in 0..<c { for pi in 0..<p { for qi in 0..<p {
                    let from = (((pi * p + qi) * cout + ch) * d + col) * size
                    let to = (((col * c + ch) * p + pi) * p + qi) * size
                    for b in 0..<size { out[to + b] = source[from + b] }
                } } } }
                try sink.write(out)
            }]
        case .bias(let name):
            // Canonical linear head bias (p²·Cout) → ConvTranspose bias (C); every patch position must agree.
            let bytes = try linear.contiguousBytes()
            var first = [UInt8](repeating: 0, count: c * size)
            var differing: [Int] = []
            for position in 0..<(p * p) {
                for ch in 0..<c {
                    let at = (position * cout + ch) * size
                    let value = Array(bytes[at..<(at + size)])
                    if position == 0 { first.replaceSubrange((ch * size)..<((ch + 1) * size), with: value) }
                    else if value != Array(first[(ch * size)..<((ch + 1) * size)]) { differing.append(ch) }
                }
            }
            guard differing.isEmpty else {
                throw ModelError.lossy(
                    "final.linear.bias differs across the \(p * p) patch positions (channels \(Set(differing).sorted())): a "
                        + "ConvTranspose head holds one bias per channel, so the Cerebras layout cannot hold this model exactly")
            }
            let perChannel = first
            return [OutputTensor(name: name, dtype: dtype, shape: [c]) { sink in try sink.write(perChannel) }]
        }
    }
}
