import Reference
import Testing

@Suite("GEMM through OpenBLAS")
struct GEMMTests {
    @Test("row-major products, with and without transposes")
    func products() {
        let a: [Float] = [1, 2, 3, 4, 5, 6]  // 2×3
        let b: [Float] = [7, 8, 9, 10, 11, 12]  // 3×2
        var c = [Float](repeating: 0, count: 4)
        GEMM.multiply(a, b, into: &c, m: 2, n: 2, k: 3)
        #expect(c == [58, 64, 139, 154])
        // A·Bᵀ with B given as 2×3 (n×k)
        let bt: [Float] = [7, 9, 11, 8, 10, 12]
        GEMM.multiply(a, bt, into: &c, m: 2, n: 2, k: 3, transposeB: true)
        #expect(c == [58, 64, 139, 154])
    }
}
