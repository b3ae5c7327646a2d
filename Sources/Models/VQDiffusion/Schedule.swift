import Checkpoints

/// The diffusion schedule of microsoft/VQ-Diffusion (`alpha_schedule` in `diffusion_transformer.py`, the
/// `alpha1` init every released config uses), computed as the original computes it: numpy float64 for the
/// cumulative tables, torch float64 for the logs, then rounded to float32 (`.float()`) as its buffers are stored.
/// `steps` diffusion steps T; `codes` N (the VQ-VAE's codebook size: the number of classes less the mask token).
public struct VQDiffusionSchedule: Sendable, Equatable {
    /// The eight buffers the original registers, in its order; the first three and `log_1_min_ct` have T entries,
    /// the cumulative ones T + 1 (their last entry is the fully-masked state after the last step).
    public static let bufferNames = [
        "log_at", "log_bt", "log_ct", "log_cumprod_at", "log_cumprod_bt", "log_cumprod_ct", "log_1_min_ct", "log_1_min_cumprod_ct",
    ]
    /// The training statistics the original registers beside the schedule (zeros at first, then a loss history).
    public static let statisticsNames = ["Lt_history", "Lt_count"]

    /// Diffusion steps T.
    public let steps: Int
    /// Codes N.
    public let codes: Int
    /// The buffers by name, as float32.
    public let buffers: [String: [Float]]

    /// The schedule for `steps` ≥ 2 steps and `codes` ≥ 1 codes, with the original's defaults
    /// ᾱ₁ = 0.99999, ᾱ_T = 0.000009, γ̄₁ = 0.000009, γ̄_T = 0.99999.
    public init(steps: Int, codes: Int) {
        self.steps = steps
        self.codes = codes
        let t = steps, n = Double(codes)
        let (att1, attT, ctt1, cttT) = (0.99999, 0.000009, 0.000009, 0.99999)
        // att = arange(T)/(T-1)*(att_T - att_1) + att_1, then [1] in front; the same for ctt with [0].
        var att = [1.0] + (0..<t).map { Double($0) / Double(t - 1) * (attT - att1) + att1 }
        var ctt = [0.0] + (0..<t).map { Double($0) / Double(t - 1) * (cttT - ctt1) + ctt1 }
        let at = (0..<t).map { att[$0 + 1] / att[$0] }
        let oneMinusCtt = ctt.map { 1 - $0 }
        let ct = (0..<t).map { 1 - oneMinusCtt[$0 + 1] / oneMinusCtt[$0] }
        let bt = (0..<t).map { (1 - at[$0] - ct[$0]) / n }
        att = Array(att.dropFirst()) + [1]
        ctt = Array(ctt.dropFirst()) + [0]
        let btt = (0...t).map { (1 - att[$0] - ctt[$0]) / n }
        func logs(_ x: [Double]) -> [Double] { x.map { LibM.log($0) } }
        func log1MinA(_ a: [Double]) -> [Double] { a.map { LibM.log(1 - LibM.exp($0) + 1e-40) } }
        let logCt = logs(ct), logCumprodCt = logs(ctt)
        let tables: [(String, [Double])] = [
            ("log_at", logs(at)), ("log_bt", logs(bt)), ("log_ct", logCt), ("log_cumprod_at", logs(att)),
            ("log_cumprod_bt", logs(btt)), ("log_cumprod_ct", logCumprodCt), ("log_1_min_ct", log1MinA(logCt)),
            ("log_1_min_cumprod_ct", log1MinA(logCumprodCt)),
        ]
        buffers = Dictionary(uniqueKeysWithValues: tables.map { ($0.0, $0.1.map { Float($0) }) })
    }

    /// What the values are, for notes.
    public var basis: String { "the alpha1 schedule of microsoft/VQ-Diffusion for \(steps) steps and \(codes) codes" }
}

extension VQDiffusionFamily {
    /// The original solver checkpoint's tensors beside the transformer: the eight schedule buffers (recomputable),
    /// `Lt_history` and `Lt_count` (training statistics), the OpenAI-CLIP text tower `condition_emb.*` (a text
    /// encoder), and the VQ-VAE quantizer's EMA state (`quantize.cluster_size`, `quantize.embedding_avg`).
    public static func extraTensorRole(_ name: String) -> ExtraTensorRole? {
        let last = String(name.split(separator: ".").last ?? "")
        if VQDiffusionSchedule.bufferNames.contains(last) {
            return ExtraTensorRole(kind: .table, description: "VQ-Diffusion schedule buffer", family: Self.name, table: last)
        }
        if VQDiffusionSchedule.statisticsNames.contains(last) {
            return ExtraTensorRole(kind: .statistics, description: "VQ-Diffusion training statistics (Lt_history, Lt_count)", family: Self.name)
        }
        if name.hasPrefix("condition_emb.") || name.contains(".condition_emb.") {
            return ExtraTensorRole(kind: .textEncoder, description: "OpenAI CLIP text tower (condition_emb)", family: Self.name)
        }
        if name.hasSuffix("quantize.cluster_size") || name.hasSuffix("quantize.embedding_avg") {
            return ExtraTensorRole(kind: .componentState, description: "VQ-VAE quantizer EMA state", family: Self.name)
        }
        if name.hasPrefix("content_codec.") || name.contains(".content_codec.") {
            return ExtraTensorRole(kind: .componentState, description: "VQ-VAE (content_codec) not read as a model", family: Self.name)
        }
        return nil
    }

    /// The schedule buffer `table` for the config's diffusion steps and codes.
    public static func extraTable(_ table: String, config: VQDiffusionConfig) -> (values: [Float], basis: String)? {
        guard config.diffusionSteps >= 2, config.codes >= 1, config.diffusionSteps <= 1 << 20 else { return nil }
        let schedule = VQDiffusionSchedule(steps: config.diffusionSteps, codes: config.codes)
        return schedule.buffers[table].map { ($0, schedule.basis) }
    }
}

extension VQDiffusionFamily {
    /// The pipeline's `scheduler/`: diffusers' `VQDiffusionScheduler` with this model's codes + mask and steps (diffusers'
    /// own conversion script leaves the steps at its default 100 whatever the model's).
    public static func pipelineFiles(_ config: VQDiffusionConfig) -> [(folder: String, className: String, file: String, json: JSONValue)] {
        let json = JSONValue.object([
            ("_class_name", .string("VQDiffusionScheduler")), ("_diffusers_version", .string("0.42.1")),
            ("alpha_cum_end", .double(0.000009)), ("alpha_cum_start", .double(0.99999)), ("gamma_cum_end", .double(0.99999)),
            ("gamma_cum_start", .double(0.000009)), ("num_train_timesteps", .int(config.diffusionSteps)), ("num_vec_classes", .int(config.codes + 1)),
        ])
        return [("scheduler", "VQDiffusionScheduler", "scheduler_config.json", json)]
    }
}
