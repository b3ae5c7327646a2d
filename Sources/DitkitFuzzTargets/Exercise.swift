import Checkpoints
import Models

/// What the CLI does with a checkpoint once it is open, minus the terminal and the output files: `inspect`
/// (report and JSON), `params` (counts of the inferred config), and `convert` to every layout with the tensors
/// streamed into a sink that only counts, for conversions of at most `convertBudget` bytes (a larger one is
/// legitimate work proportional to what the file declares, not a finding; the hostile-file tests bound it).
enum Exercise {
    static let convertBudget = 16 << 20

    /// Runs the steps in order; the first error ends the run.
    static func checkpoint(_ checkpoint: Checkpoint) throws {
        let report = InspectReport(checkpoint)
        _ = report.json.serialized(pretty: true)
        _ = (checkpoint.storageSummary, checkpoint.tensorBytes, checkpoint.elementCount)
        // Heads cannot be read from weights: the committed tiny models (hidden 32) need the `--heads 2` their
        // users would pass.
        let view = try (try? ModelView<DiTFamily>.open(checkpoint)) ?? ModelView<DiTFamily>.open(checkpoint, options: ModelOptions(heads: 2))
        try model(view)
    }

    /// `params` and `convert` of a model read out of a checkpoint.
    static func model(_ view: ModelView<DiTFamily>) throws {
        _ = ParameterCount(config: view.config, layout: view.layout)
        for target in DiTFamily.targets {
            // A layout that cannot hold this model says so: a refusal, not a finding.
            guard let plan = try? view.plan(to: target), plan.byteCount <= convertBudget else { continue }
            let sink = CountingSink()
            for output in plan.outputs { try output.produce(sink) }
        }
    }
}
