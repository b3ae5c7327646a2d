import Checkpoints
import Tensors

/// Deterministic random weights for any config of any family, streamed in chunks (a 2B model never sits in memory).
///
/// Weights are uniform with the variance of a fan-in-scaled normal (std 1/√fan_in), biases and embedding tables
/// uniform with std 0.02, so activations stay finite and non-trivial. Frozen tables are the real ones
/// (`ModelFamily.recomputedTable`); a family builds the tensors that must have structure itself
/// (`ModelFamily.synthesized`).
public enum Synthetic {
    /// Synthetic canonical tensors of `config` in canonical order; the same `seed` gives the same bytes. Tables are the
    /// recomputed ones, and the optional tensors are those ``ModelFamily/synthesizedOptional(_:)`` includes.
    public static func canonicalOutputs<C: FamilyConfig>(_ config: C, seed: UInt64) -> [OutputTensor] {
        let include = C.Family.synthesizedOptional(config)
        return C.Family.canonicalTensors(config, includeOptional: include).enumerated().map { index, entry in
            let (name, spec) = entry
            let shape = spec.shape(config)
            let tensorSeed = seed &+ UInt64(index) &* SplitMix64.golden
            if let table = C.Family.recomputedTable(spec.template, config: config) { return Synthetic.table(name, shape, table) }
            if let custom = C.Family.synthesized(name, shape: shape, config: config, seed: tensorSeed) { return custom }
            let isBias = name.hasSuffix(".bias") || name.hasSuffix(".table")
            let fanIn = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
            let std = isBias ? 0.02 : 1 / Double(fanIn).squareRoot()
            return random(name, shape, std: Float(std), seed: tensorSeed)
        }
    }

    /// A float32 table as a producer.
    public static func table(_ name: String, _ shape: [Int], _ values: [Float]) -> OutputTensor {
        OutputTensor(name: name, dtype: .f32, shape: shape) { sink in try values.withUnsafeBytes { try sink.write($0) } }
    }

    /// Uniform in ±std·√3 from a splitmix64 stream, written 64 Ki values at a time.
    public static func random(_ name: String, _ shape: [Int], std: Float, seed: UInt64) -> OutputTensor {
        let count = shape.reduce(1, *)
        return OutputTensor(name: name, dtype: .f32, shape: shape) { sink in
            var generator = SplitMix64(state: seed)
            let half = std * Float(3.0.squareRoot())  // uniform on ±half has standard deviation std
            let scale = 2 * half / Float(1 << 24)
            var chunk = [Float](repeating: 0, count: 1 << 16)
            var done = 0
            while done < count {
                let n = min(chunk.count, count - done)
                for i in 0..<n { chunk[i] = Float(generator.next() >> 40) * scale - half }
                try chunk.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[0..<(n * 4)])) }
                done += n
            }
        }
    }
}
