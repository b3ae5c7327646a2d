import CDitkitKernels
import Dispatch

/// GroupNorm of NCHW float32 activations, optionally followed by swish (the ResNet blocks' `norm → SiLU`), in
/// ditkit's C kernels: one group at a time, groups split over the cores.
///
/// PyTorch's CPU kernel takes each group's mean and variance with a vectorised Welford pass in float32; here they are
/// summed in float64 in a fixed order (16 interleaved float32 lanes flushed into float64 every 1024 values, a
/// two-pass variance), which is as accurate or more and gives the same bits at every kernel level. The output is
/// PyTorch's `x·s + (β − s·mean)` with s = γ·rstd, rstd = 1/√(var + eps) in float32.
public enum GroupNorm {
    /// Normalises `batch` samples of `channels` planes of `spatial` values (out may be x) in `groups` groups with
    /// `eps`, per-channel `gamma` and `beta`, then swish when `swish`.
    public static func run(
        _ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, batch: Int, channels: Int, spatial: Int, groups: Int,
        eps: Float, gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, swish: Bool, level: KernelLevel = .best
    ) {
        let perGroup = channels / groups, total = batch * groups, block = perGroup * spatial
        nonisolated(unsafe) let x = x, out = out, gamma = gamma, beta = beta
        let chunks = min(Kernels.cores, total, max(1, total * block / 16384))
        DispatchQueue.concurrentPerform(iterations: max(chunks, 1)) { c in
            for index in (total * c / max(chunks, 1))..<(total * (c + 1) / max(chunks, 1)) {
                let g = index % groups, offset = index * block
                ditkit_group_norm(x + offset, out + offset, perGroup, spatial, eps, gamma.map { $0 + g * perGroup },
                                  beta.map { $0 + g * perGroup }, swish ? 1 : 0, level.c)
            }
        }
    }

    /// Swish x / (1 + e^(−x)) in place with ditkit's exp (the same bits at every level).
    public static func swish(_ x: UnsafeMutablePointer<Float>, count: Int, level: KernelLevel = .best) {
        nonisolated(unsafe) let x = x
        Kernels.parallelRows(count, minimumRowsPerChunk: 65536) { range in
            ditkit_swish(x + range.lowerBound, range.count, level.c)
        }
    }
}
