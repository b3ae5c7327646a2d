import DitkitTestSupport
import Reference
import Testing

/// `DITKIT_KERNELS` through the built binary: the CLI (not the library) reads it, refuses what it cannot run, and
/// `ditkit bench forward` prints the level that ran.
@Suite("DITKIT_KERNELS (CLI)")
struct KernelsCLITests {
    @Test("an unknown level is a usage error (exit 2) that lists the levels")
    func unknownLevel() throws {
        let result = try DitkitBinary.run(["params", "DiT-S/8"], environment: ["DITKIT_KERNELS": "avx3"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("DITKIT_KERNELS=avx3") && result.stderr.contains("baseline, avx2, avx512"), "\(result.stderr)")
    }

    @Test("each level: the CPU's own run and bench forward says so; the others are refused with the CPU's best level",
          arguments: KernelLevel.allCases)
    func level(_ level: KernelLevel) throws {
        let result = try DitkitBinary.run(["bench", "forward", "DiT-S/8", "--batch", "1", "--rounds", "1", "--json"],
                                          environment: ["DITKIT_KERNELS": level.description])
        if level.isSupported {
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("\"kernels\" : \"\(level)\"") || result.stdout.contains("\"kernels\": \"\(level)\""), "\(result.stdout)")
        } else {
            #expect(result.status == 2)
            #expect(result.stderr.contains("does not run the \(level) kernels") && result.stderr.contains("\(KernelLevel.best)"), "\(result.stderr)")
        }
    }
}
