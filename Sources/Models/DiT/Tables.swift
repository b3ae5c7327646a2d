/// Tables a DiT recomputes rather than learns, each computed with the arithmetic of the code that makes it
/// (REFERENCE §1–3): the position table and the diffusion schedule in numpy float64 then cast to float32; the
/// timestep table in PyTorch float32, step by step.
package enum Tables {
    /// The original DiT's 2-D sin-cos position table (T, D) for a `grid`×`grid` token grid (`get_2d_sincos_pos_embed`,
    /// numpy float64 cast to float32): the first D/2 dims encode the column, the second D/2 the row; each half is
    /// [sin, cos] over D/4 frequencies 1/10000^(k/(D/4)); token = row·grid + col. diffusers recomputes the same table
    /// bit for bit; the Cerebras Model Zoo stores it.
    package static func positionTable(hidden: Int, grid: Int) -> [Float] {
        let quarter = hidden / 4
        var out = [Float](repeating: 0, count: grid * grid * hidden)
        var omega = [Double](repeating: 0, count: quarter)
        // numpy: omega = arange(D/4) / (D/4); omega = 1 / 10000**omega.
        for k in 0..<quarter { omega[k] = 1 / LibM.pow(10000, Double(k) / Double(quarter)) }
        for row in 0..<grid {
            for col in 0..<grid {
                let base = (row * grid + col) * hidden
                for k in 0..<quarter {
                    let w = Double(col) * omega[k], h = Double(row) * omega[k]
                    out[base + k] = Float(LibM.sin(w))
                    out[base + quarter + k] = Float(LibM.cos(w))
                    out[base + 2 * quarter + k] = Float(LibM.sin(h))
                    out[base + 3 * quarter + k] = Float(LibM.cos(h))
                }
            }
        }
        return out
    }

    /// The frozen timestep table (steps, dim) as the Cerebras Model Zoo computes it, in PyTorch float32 (the same
    /// arithmetic as facebookresearch's on-the-fly `timestep_embedding`): freqs = exp(−ln(maxPeriod)·k/(dim/2 − shift))
    /// with every step rounded to float32, a = Float(t)·freqs rounded to float32 BEFORE cos/sin, row t = [cos a | sin a].
    /// cos/sin/exp are the single-precision libm functions (`cosf`, `sinf`, `expf`), with the frequencies PyTorch's exp
    /// rounds the other way (`torchExpRoundsUp`): against PyTorch 2.15's CPU table every entry agrees within 1 ulp
    /// (TablesTests measures it); a float64 table differs by up to 5.6e-5 at t ≈ 979.
    package static func timestepTable(steps: Int = 1000, dim: Int = 256, maxPeriod: Double = 10000, shift: Int = 0) -> [Float] {
        let angles = timestepAngles(steps: steps, dim: dim, maxPeriod: maxPeriod, shift: shift)
        let half = dim / 2
        var out = [Float](repeating: 0, count: steps * dim)
        for t in 0..<steps {
            for k in 0..<half {
                let angle = angles[t * dim + k]
                out[t * dim + k] = LibM.cos(angle)
                out[t * dim + half + k] = LibM.sin(angle)
            }
        }
        return out
    }

    /// The float32 angle of each timestep-table entry (steps, dim): a = Float(t)·freqs[k] for both the cos and the sin
    /// half, freqs as `timestepTable` computes them.
    package static func timestepAngles(steps: Int = 1000, dim: Int = 256, maxPeriod: Double = 10000, shift: Int = 0) -> [Float] {
        let half = dim / 2
        // torch: `-math.log(max_period) * arange(half, float32) / (half - shift)`: the Python scalar enters a float32 op as float32.
        let negativeLog = Float(-LibM.log(maxPeriod)), divisor = Float(half - shift)
        var freqs = [Float](repeating: 0, count: half)
        for k in 0..<half {
            let scaled: Float = Float(k) * negativeLog
            let exponent: Float = scaled / divisor
            freqs[k] = LibM.exp(exponent)
        }
        if maxPeriod == 10000, shift == 0, let upward = torchExpRoundsUp[half] {
            for k in upward where k < half { freqs[k] = freqs[k].nextUp }
        }
        var out = [Float](repeating: 0, count: steps * dim)
        for t in 0..<steps {
            for k in 0..<half {
                let angle: Float = Float(t) * freqs[k]
                out[t * dim + k] = angle
                out[t * dim + half + k] = angle
            }
        }
        return out
    }

    /// The frequencies PyTorch's float32 `exp` (its vectorised CPU kernel) rounds one ulp above the correctly rounded
    /// exp, keyed by the number of frequencies (max period 10000, no shift): each exact value lies within 0.02 ulp of a
    /// rounding midpoint. Measured with PyTorch 2.15 on x86_64 (`fixtures/generate/tables.py` writes the real table;
    /// TablesTests checks the whole table against it); with them the recomputed table equals a real Model Zoo table
    /// within libm's cos/sin rounding, without them two columns differ by one ulp of their angle.
    static let torchExpRoundsUp: [Int: [Int]] = [32: [3], 64: [6, 53], 128: [12, 106], 256: [24, 212]]

    /// sqrt(ᾱ_t) and sqrt(1 − ᾱ_t) for DiT's linear β schedule, as the source computes it in numpy float64 then casts to
    /// float32: betas = `np.linspace(1e-4·1000/T, 0.02·1000/T, T)` (numpy's arithmetic: step = (stop − start)/(T − 1),
    /// β_i = i·step + start with two roundings, the last one exactly stop), ᾱ = cumprod(1 − β) left to right.
    package static func diffusionSchedule(steps: Int = 1000) -> (sqrtAlphasCumprod: [Float], sqrtOneMinus: [Float]) {
        let scale = 1000 / Double(steps)
        let start = scale * 1e-4, stop = scale * 0.02
        var cumulative = 1.0
        var a = [Float](), b = [Float]()
        a.reserveCapacity(steps)
        b.reserveCapacity(steps)
        for i in 0..<steps {
            let beta = linspace(start, stop, count: steps, index: i)
            let alpha: Double = 1 - beta
            cumulative *= alpha
            a.append(Float(cumulative.squareRoot()))
            let oneMinus: Double = 1 - cumulative
            b.append(Float(oneMinus.squareRoot()))
        }
        return (a, b)
    }

    /// Element `index` of numpy's `linspace(start, stop, count)` (endpoint included), with numpy's roundings.
    static func linspace(_ start: Double, _ stop: Double, count: Int, index: Int) -> Double {
        guard count > 1 else { return start }
        if index == count - 1 { return stop }
        let step: Double = (stop - start) / Double(count - 1)
        let scaled: Double = Double(index) * step
        return scaled + start
    }
}
