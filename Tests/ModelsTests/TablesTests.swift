import Checkpoints
import Foundation
import Models
import Tensors
import DitkitTestSupport
import Testing

/// The frozen tables as their source code computes them, against tables made by the real libraries
/// (`fixtures/generate/tables.py`: PyTorch float32 with the Model Zoo's formula, numpy float64 for the position table
/// and the schedule), and the conversions that depend on them.
@Suite("frozen tables as their source computes them")
struct TablesTests {
    static let tableFile = "tables/tables.safetensors"
    static let timestepName = "model.model.timestep_embedding_layer.timestep_embedding"

    /// A table from `fixtures/tables/tables.safetensors`.
    static func real(_ name: String) throws -> [Float] {
        let checkpoint = try Checkpoint.open(Fixtures.path(tableFile))
        return try #require(checkpoint.tensors.first { $0.name == name }).float32()
    }

    struct Case: CustomStringConvertible, Sendable {
        let fixture: String
        let ulps: Int
        let compute: @Sendable () -> [Float]
        var angles: (@Sendable () -> [Float])? = nil
        var description: String { "\(fixture) within \(ulps) ulps" }
    }

    // Measured on x86_64 Linux (glibc) against torch 2.15 / numpy 2.4: the numpy tables are bit-identical; the
    // timestep table is within 1 ulp (cos/sin rounding).
    static let cases: [Case] = [
        Case(fixture: "timestep_embedding", ulps: 1, compute: { Tables.timestepTable() }, angles: { Tables.timestepAngles() }),
        Case(fixture: "pos_embed_32_4", ulps: 0) { Tables.positionTable(hidden: 32, grid: 4) },
        Case(fixture: "pos_embed_128_16", ulps: 0) { Tables.positionTable(hidden: 128, grid: 16) },
        Case(fixture: "sqrt_alphas_cumprod", ulps: 0) { Tables.diffusionSchedule().sqrtAlphasCumprod },
        Case(fixture: "sqrt_one_minus_alphas_cumprod", ulps: 0) { Tables.diffusionSchedule().sqrtOneMinus },
    ]

    @Test("each recomputed table equals the one the real library computes", arguments: cases)
    func equalsReal(_ c: Case) throws {
        let real = try Self.real(c.fixture), ours = c.compute()
        #expect(real.count == ours.count)
        let difference = TableDifference(ours, real, dtype: .f32, angles: c.angles?())
        #expect(difference.ulps <= c.ulps, "\(c.fixture): max |Δ| \(difference.maxAbs), \(difference.ulps) ulps")
        #expect(difference.ulps <= TableDifference.equalWithinUlps)
    }

    @Test("the timestep table is within 1 ulp of each value, and cosf/sinf match torch at least as well as a Double cos rounded")
    func timestepValues() throws {
        let real = try Self.real("timestep_embedding"), ours = Tables.timestepTable(), angles = Tables.timestepAngles()
        #expect(TableDifference(ours, real, dtype: .f32).ulps <= 1)
        var rounded = ours
        for i in rounded.indices {
            let a = Double(angles[i])
            rounded[i] = Float((i % 256) < 128 ? Foundation.cos(a) : Foundation.sin(a))
        }
        let viaFloat = zip(ours, real).filter { $0 != $1 }.count, viaDouble = zip(rounded, real).filter { $0 != $1 }.count
        #expect(viaFloat <= viaDouble, "cosf/sinf: \(viaFloat) entries differ from torch; Double cos rounded: \(viaDouble)")
    }

    @Test("the float64 timestep table ditkit computed before is NOT the Model Zoo's: 5.6e-5 apart, hundreds of ulps of the value")
    func float64TableDiffers() throws {
        let difference = TableDifference(Self.float64TimestepTable(), try Self.real("timestep_embedding"), dtype: .f32)
        #expect(abs(difference.maxAbs - 5.58e-5) < 0.1e-5, "max |Δ| \(difference.maxAbs)")
        #expect(difference.ulps > 100)
    }

    @Test("ulps are counted in the stored dtype, at the larger magnitude; NaN against a number is not comparable")
    func ulpCounting() {
        #expect(TableDifference([1], [1], dtype: .f32) == TableDifference([2], [2], dtype: .bf16))
        #expect(TableDifference([1 + 3 * Float.ulpOfOne], [1], dtype: .f32).ulps == 3)
        #expect(TableDifference([1.0078125], [1], dtype: .bf16).ulps == 1)
        #expect(TableDifference([0.5 + 0x1p-24 * 2], [0.5], dtype: .f32).ulps == 2)
        #expect(TableDifference([.nan], [1], dtype: .f32).ulps == Int.max)
        #expect(TableDifference([.nan], [.nan], dtype: .f32).ulps == 0)
    }

    /// The timestep table in float64, rounded once (ditkit's table before).
    static func float64TimestepTable() -> [Float] {
        var out = [Float](repeating: 0, count: 1000 * 256)
        for t in 0..<1000 {
            for k in 0..<128 {
                let angle = Double(t) * Foundation.exp(-Foundation.log(10000.0) * Double(k) / 128)
                out[t * 256 + k] = Float(Foundation.cos(angle))
                out[t * 256 + 128 + k] = Float(Foundation.sin(angle))
            }
        }
        return out
    }

    /// The tiny Cerebras fixture rewritten as safetensors with its timestep table replaced by `table` (f32 or bf16).
    static func cerebras(withTimestepTable table: [Float], bf16: Bool = false, in dir: TemporaryDirectory) throws -> String {
        let source = try Checkpoint.open(Fixtures.path("checkpoints/cerebras/tiny-cerebras\(bf16 ? "-bf16" : "").pt"))
        let entries: [OutputTensor] = source.tensors.map { tensor in
            guard tensor.name == timestepName else { return OutputTensor(name: tensor.name, tensor: tensor) }
            let replaced = OutputTensor(name: tensor.name, dtype: .f32, shape: tensor.shape) { sink in
                try table.withUnsafeBytes { try sink.write($0) }
            }
            return bf16 ? replaced.casting(to: .bf16) : replaced
        }
        let path = dir.file("cerebras.safetensors")
        try SafetensorsWriter.write(entries, to: path, overwrite: true)
        return path
    }

    @Test("a Cerebras checkpoint holding the Model Zoo's float32 table converts to the original layout without --drop",
          arguments: [false, true])
    func modelZooTableConverts(bf16: Bool) throws {
        let dir = TemporaryDirectory()
        let path = try Self.cerebras(withTimestepTable: try Self.real("timestep_embedding"), bf16: bf16, in: dir)
        let plan = try Convert.run(try Convert.open(path), to: .original, dir.file("o.pt"))
        let note = try #require(plan.notes.first { $0.contains("t_embed.table") })
        #expect(note.contains("nothing is lost"), "\(note)")
        // The committed fixture holds the same table (make_fixtures.py writes it with the Model Zoo's formula).
        let fixture = try Checkpoint.open(Fixtures.path("checkpoints/cerebras/tiny-cerebras.pt"))
        let stored = try #require(fixture.tensors.first { $0.name == Self.timestepName }).float32()
        #expect(TableDifference(stored, try Self.real("timestep_embedding"), dtype: .f32).ulps == 0)
    }

    @Test("a timestep table that really differs (one entry moved, or diffusers' shifted frequencies) is refused, naming the tensor, max |Δ| and ulps")
    func differentTableRefused() throws {
        let dir = TemporaryDirectory()
        var moved = try Self.real("timestep_embedding")
        moved[979 * 256 + 5] += 1e-3
        for table in [moved, Tables.timestepTable(shift: 1)] {
            let path = try Self.cerebras(withTimestepTable: table, in: dir)
            #expect { try Convert.open(path).plan(to: .original) } throws: { error in
                guard case ModelError.tableDiffers(let tensor, .original, let maxAbs, let ulps, .f32) = error else { return false }
                let text = "\(error)"
                return tensor == "t_embed.table" && maxAbs >= 1e-3 && ulps > TableDifference.equalWithinUlps
                    && text.contains("t_embed.table") && text.contains("ulps of f32") && text.contains("max |Δ|")
            }
            // Dropping it is still the caller's choice.
            let plan = try Convert.open(path).plan(to: .original, options: ConversionOptions(drop: ["t_embed.table"]))
            #expect(plan.notes.contains { $0.contains("dropped t_embed.table") })
        }
    }

    @Test("a table within a few ulps (cos/sin rounding) is equal, and the note says by how many ulps")
    func fewUlpsIsEqual() throws {
        let dir = TemporaryDirectory()
        let plan = try Convert.open(try Self.cerebras(withTimestepTable: try Self.real("timestep_embedding"), in: dir)).plan(to: .original)
        #expect(plan.notes.contains { $0.contains("t_embed.table") && $0.contains("within 1 ulp of f32 (cos/sin rounding, counted in ulps of each angle") })
    }

    @Test("end to end: synth --to cerebras writes the float32 table; convert refuses a table that differs, naming it, and advises --drop")
    func endToEnd() throws {
        let dir = TemporaryDirectory()
        let synth = try DitkitBinary.run(["synth", "cerebras-dit-small", "--to", "cerebras", "-o", dir.file("c.pt")])
        #expect(synth.status == 0, "\(synth.stderr)")
        let written = try Checkpoint.open(dir.file("c.pt"))
        let table = try #require(written.tensors.first { $0.name == Self.timestepName }).float32()
        #expect(TableDifference(table, try Self.real("timestep_embedding"), dtype: .f32).ulps <= 1)

        var moved = try Self.real("timestep_embedding")
        moved[979 * 256 + 5] += 1e-3
        let path = try Self.cerebras(withTimestepTable: moved, in: dir)
        let refused = try DitkitBinary.run(["convert", path, "--to", "original", "-o", dir.file("o.pt"), "--heads", "2"])
        #expect(refused.status == 3, "\(refused.stderr)")
        #expect(refused.stderr.contains("t_embed.table") && refused.stderr.contains("ulps of f32") && refused.stderr.contains("--drop t_embed.table"),
                "\(refused.stderr)")
    }
}
