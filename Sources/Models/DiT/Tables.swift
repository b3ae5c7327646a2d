/// Tables a DiT recomputes rather than learns, computed as the reference code does (float64, then float32).
package enum Tables {
    /// The original DiT's 2-D sin-cos position table (T, D) for a `grid`×`grid` token grid (`get_2d_sincos_pos_embed`):
    /// the first D/2 dims encode the column, the second D/2 the row; each half is [sin, cos] over D/4 frequencies
    /// 1/10000^(k/(D/4)); token = row·grid + col.
    package static func positionTable(hidden: Int, grid: Int) -> [Float] {
        let quarter = hidden / 4
        var out = [Float](repeating: 0, count: grid * grid * hidden)
        var omega = [Double](repeating: 0, count: quarter)
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

    /// Cerebras' frozen timestep table (steps, dim): for integer t the sinusoid [cos | sin] with frequencies
    /// exp(−ln(maxPeriod)·k/(dim/2 − shift)).
    package static func timestepTable(steps: Int = 1000, dim: Int = 256, maxPeriod: Double = 10000, shift: Int = 0) -> [Float] {
        let half = dim / 2
        var out = [Float](repeating: 0, count: steps * dim)
        for t in 0..<steps {
            for k in 0..<half {
                let angle = Double(t) * LibM.exp(-LibM.log(maxPeriod) * Double(k) / Double(half - shift))
                out[t * dim + k] = Float(LibM.cos(angle))
                out[t * dim + half + k] = Float(LibM.sin(angle))
            }
        }
        return out
    }

    /// sqrt(ᾱ_t) and sqrt(1 − ᾱ_t) for DiT's linear β schedule (1e-4 … 0.02 over `steps`).
    package static func diffusionSchedule(steps: Int = 1000) -> (sqrtAlphasCumprod: [Float], sqrtOneMinus: [Float]) {
        var cumulative = 1.0
        var a = [Float](), b = [Float]()
        for i in 0..<steps {
            let beta = 1e-4 + (0.02 - 1e-4) * Double(i) / Double(steps - 1)
            cumulative *= 1 - beta
            a.append(Float(cumulative.squareRoot()))
            b.append(Float((1 - cumulative).squareRoot()))
        }
        return (a, b)
    }
}
