import Dispatch

/// 3×3 convolutions of stride 1 and padding 1 by Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray): each 2×2
/// output tile from a 4×4 input tile with 16 multiplications per input–output channel pair instead of 36, the 16
/// products batched as matrix products through the same BLAS, out (Cout × tiles) += U (Cout × Cin) · V (Cin × tiles)
/// per transform position. The transforms are exact in real arithmetic; in float32 they round differently from a
/// direct convolution (as every convolution algorithm PyTorch picks does), well inside the verifier's 1e-5.
package enum Winograd {
    /// Most floats of transformed input and products held at once (16 MiB each), whatever the image size.
    package static let bandFloats = 1 << 22

    /// Whether `g` is a convolution this path computes: 3×3, stride 1, padding 1 on every side.
    static func applies(_ g: Conv2DGeometry) -> Bool {
        g.kernel == 3 && g.stride == 1 && g.padTop == 1 && g.padLeft == 1 && g.padBottom == 1 && g.padRight == 1
    }

    /// Tile rows per band for an output `tileColumns` tiles wide.
    static func bandTileRows(_ g: Conv2DGeometry, tileRows: Int, tileColumns: Int, bandFloats: Int = bandFloats) -> Int {
        max(1, min(tileRows, bandFloats / max(1, 16 * max(g.inChannels, g.outChannels) * tileColumns)))
    }

    /// Floats of scratch: the transformed weights (16·Cout·Cin), and one band's transformed input and products.
    package static func scratchCount(_ g: Conv2DGeometry, height: Int, width: Int, bandFloats: Int = bandFloats) -> Int {
        let th = (height + 1) / 2, tw = (width + 1) / 2
        let tiles = bandTileRows(g, tileRows: th, tileColumns: tw, bandFloats: bandFloats) * tw
        return 16 * g.outChannels * g.inChannels + 16 * tiles * (g.inChannels + g.outChannels)
    }

    /// Adds the convolution of x (Cin × H × W) with `weight` (Cout, Cin, 3, 3) to `out` (Cout × H × W). With
    /// `weightsTransformed`, `scratch` already holds this weight's transform (the batch's later samples).
    package static func run(
        _ x: UnsafePointer<Float>, height h: Int, width w: Int, geometry g: Conv2DGeometry, weight: UnsafePointer<Float>,
        into out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, bandFloats: Int = bandFloats,
        weightsTransformed: Bool = false
    ) {
        let cin = g.inChannels, cout = g.outChannels
        let th = (h + 1) / 2, tw = (w + 1) / 2
        let bandRows = bandTileRows(g, tileRows: th, tileColumns: tw, bandFloats: bandFloats)
        nonisolated(unsafe) let u = scratch
        nonisolated(unsafe) let v = scratch + 16 * cout * cin
        nonisolated(unsafe) let m = v + 16 * bandRows * tw * cin
        nonisolated(unsafe) let out = out
        // U = G g Gᵀ for every (co, ci), stored as 16 matrices (Cout × Cin).
        if !weightsTransformed { Kernels.parallelRows(cout, minimumRowsPerChunk: 8) { range in
            let t = UnsafeMutablePointer<Float>.allocate(capacity: 12)  // G g: 4 × 3
            defer { t.deallocate() }
            for co in range {
                for ci in 0..<cin {
                    let k = weight + (co * cin + ci) * 9
                    for j in 0..<3 {
                        let g0 = k[j], g1 = k[3 + j], g2 = k[6 + j]
                        t[j] = g0
                        t[3 + j] = (g0 + g1 + g2) * 0.5
                        t[6 + j] = (g0 - g1 + g2) * 0.5
                        t[9 + j] = g2
                    }
                    for i in 0..<4 {
                        let a = t[3 * i], b = t[3 * i + 1], c = t[3 * i + 2]
                        let at = co * cin + ci, stride = cout * cin
                        u[(4 * i) * stride + at] = a
                        u[(4 * i + 1) * stride + at] = (a + b + c) * 0.5
                        u[(4 * i + 2) * stride + at] = (a - b + c) * 0.5
                        u[(4 * i + 3) * stride + at] = c
                    }
                }
            }
        } }
        var ty0 = 0
        while ty0 < th {
            let ty1 = min(th, ty0 + bandRows), tiles = (ty1 - ty0) * tw
            // V = Bᵀ d B for every input channel and tile of the band: 16 matrices (Cin × tiles). Per tile row, the
            // four input rows (zero outside the image) are combined along the rows first (Bᵀ, over the whole width),
            // then each tile's four columns (B): every transform position's row of V is written in order.
            let span = 2 * tw + 2  // input columns −1 … 2·tw, zero beyond the image
            Kernels.parallelRows(cin, minimumRowsPerChunk: max(1, 4096 / max(tiles, 1))) { range in
                let rows = UnsafeMutablePointer<Float>.allocate(capacity: 8 * span)  // four input rows, then Bᵀ of them
                defer { rows.deallocate() }
                let r = rows + 4 * span
                for ci in range {
                    let plane = x + ci * h * w
                    for ty in ty0..<ty1 {
                        for i in 0..<4 {
                            let y = 2 * ty - 1 + i, row = rows + i * span
                            row.update(repeating: 0, count: span)
                            if y >= 0 && y < h { (row + 1).update(from: plane + y * w, count: w) }
                        }
                        let d0 = rows, d1 = rows + span, d2 = rows + 2 * span, d3 = rows + 3 * span
                        let r0 = r, r1 = r + span, r2 = r + 2 * span, r3 = r + 3 * span
                        for j in 0..<span {
                            r0[j] = d0[j] - d2[j]
                            r1[j] = d1[j] + d2[j]
                            r2[j] = d2[j] - d1[j]
                            r3[j] = d1[j] - d3[j]
                        }
                        let base = ci * tiles + (ty - ty0) * tw
                        for i in 0..<4 {
                            let ri = r + i * span
                            let v0 = v + (4 * i) * cin * tiles + base, v1 = v0 + cin * tiles
                            let v2 = v1 + cin * tiles, v3 = v2 + cin * tiles
                            for tx in 0..<tw {
                                let a = ri[2 * tx], b = ri[2 * tx + 1], c = ri[2 * tx + 2], e = ri[2 * tx + 3]
                                v0[tx] = a - c
                                v1[tx] = b + c
                                v2[tx] = c - b
                                v3[tx] = b - e
                            }
                        }
                    }
                }
            }
            for p in 0..<16 {
                GEMM.multiply(u + p * cout * cin, v + p * cin * tiles, into: m + p * cout * tiles, m: cout, n: tiles, k: cin)
            }
            // Y = Aᵀ M A, added to the output tile (clipped at the image's edge): per tile row, the 16 products of
            // consecutive tiles are read in order.
            Kernels.parallelRows(cout, minimumRowsPerChunk: max(1, 4096 / max(tiles, 1))) { range in
                let rows = UnsafeMutablePointer<Float>.allocate(capacity: 8 * tw)  // Aᵀ M: two rows of four, per tile
                defer { rows.deallocate() }
                for co in range {
                    let plane = out + co * h * w
                    for ty in ty0..<ty1 {
                        let column = co * tiles + (ty - ty0) * tw
                        for j in 0..<4 {
                            let s0 = m + j * cout * tiles + column, s1 = s0 + 4 * cout * tiles
                            let s2 = s1 + 4 * cout * tiles, s3 = s2 + 4 * cout * tiles
                            let t0 = rows + j * tw, t1 = rows + (4 + j) * tw
                            for tx in 0..<tw {
                                t0[tx] = s0[tx] + s1[tx] + s2[tx]
                                t1[tx] = s1[tx] - s2[tx] - s3[tx]
                            }
                        }
                        for i in 0..<2 where 2 * ty + i < h {
                            let a = rows + 4 * i * tw, b = a + tw, c = b + tw, e = c + tw
                            let o = plane + (2 * ty + i) * w
                            for tx in 0..<(w / 2) {
                                o[2 * tx] += a[tx] + b[tx] + c[tx]
                                o[2 * tx + 1] += b[tx] - c[tx] - e[tx]
                            }
                            if w % 2 == 1 { o[w - 1] += a[tw - 1] + b[tw - 1] + c[tw - 1] }
                        }
                    }
                }
            }
            ty0 = ty1
        }
    }
}
