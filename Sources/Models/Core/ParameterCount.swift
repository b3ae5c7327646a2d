import Tensors

/// Parameter and FLOP counts of a config in a layout.
public struct ParameterCount: Sendable, Equatable {
    /// Numbers the layout stores (saturating at `Int.max`).
    public let total: Int
    /// Numbers of trained tensors (frozen tables excluded).
    public let trainable: Int
    /// Numbers of frozen tables (`total` − `trainable`).
    public var frozen: Int { total - trainable }
    /// Multiply-adds of one forward pass at the config's input size, in units of 10^9 (the DiT paper's "Gflops").
    public let gflops: Double

    /// Counts the tensors `layout` stores for `config` (per-block copies included; recomputed tables the layout does
    /// not store excluded). Totals saturate at `Int.max`.
    public init<C: FamilyConfig>(config: C, layout: Layout) {
        let tensors = layout == .canonical
            ? C.Family.canonicalTensors(config).map { SourceTensor(name: $0.name, shape: $0.spec.shape(config), trainable: $0.spec.trainable) }
            : C.Family.sourceTensors(layout, config: config)
        var total = 0, trainable = 0
        for t in tensors {
            let n = (try? checkedElementCount(t.shape)) ?? Int.max
            total = Checked.saturatingAdd(total, n)
            if t.trainable { trainable = Checked.saturatingAdd(trainable, n) }
        }
        self.total = total
        self.trainable = trainable
        gflops = Double(C.Family.multiplyAdds(config)) / 1e9
    }

    /// Multiply-adds per sample of a config's family (saturating at `Int.max`).
    public static func multiplyAdds<C: FamilyConfig>(_ config: C) -> Int { C.Family.multiplyAdds(config) }
}
