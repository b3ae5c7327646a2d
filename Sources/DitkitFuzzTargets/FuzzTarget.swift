import Checkpoints

/// The coverage-guided fuzz targets (fuzz/README.md). Each turns one input into what a user could hand ditkit and
/// calls the library entry points the CLI calls on it. A thrown error is a correct answer; a trap, a hang or
/// unbounded memory is a finding.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A safetensors file: header length, JSON header, offsets, then everything `inspect` and `convert` do.
    case safetensors
    /// A zip file: the central directory parsed from memory, then opened as a torch.save archive.
    case zip
    /// A pickle: run by the machine alone (default and strict), then as `archive/data.pkl` of a torch.save zip
    /// whose storage entries match the persistent ids it asks for (the torch host and the flattener).
    case pickle
    /// A legacy torch.save file (the magic number is put in front when the input lacks it).
    case legacy
    /// diffusers JSON: `model_index.json`, `transformer/config.json` and a sharded index, separated by a line
    /// `@@`, opened as a pipeline, a component and an index beside committed tiny shards.
    case diffusers
    /// A tensor listing (`name dtype d0 d1 …` per line, optionally a first line of `config.json`) written as a
    /// torch.save file of views that claim those shapes: layout detection, `ModelView<DiTFamily>` and config inference.
    case listing
    /// `ditkit.config` JSON in a canonical safetensors file: `DiTConfig`, the canonical mapping and, for small
    /// configs, synthetic weights and a forward pass.
    case canonical
    /// A trace file: the trace reader, then what `verify --against` does with it on a tiny committed model.
    case trace
    /// An HDF5 file: ditkit's own reader (superblock, group tree, attributes), then every dataset read.
    case hdf5

    /// One line for listings.
    public var summary: String {
        switch self {
        case .safetensors: return "safetensors file → header checks, inspect, convert plans"
        case .zip: return "zip file → central directory, torch.save archive"
        case .pickle: return "pickle → machine (default, strict), torch host and flattener inside a zip"
        case .legacy: return "legacy torch.save file"
        case .diffusers: return "model_index.json @@ config.json @@ sharded index → pipeline, component, index"
        case .listing: return "tensor listing (+ config.json) → layout detection, ModelView<DiTFamily>, config inference"
        case .canonical: return "ditkit.config JSON → DiTConfig, canonical mapping, forward of small configs"
        case .trace: return "trace safetensors → trace reader, verify --against checks and forward"
        case .hdf5: return "HDF5 file → superblock, group tree, attributes, every dataset streamed"
        }
    }

    /// What an input came to: opened (and exercised) or refused with the error's text.
    public enum Outcome: Sendable, Equatable {
        case accepted
        case refused(String)
    }

    /// Runs one input. Never throws: a refusal is an outcome; only a trap, a hang or a blown memory bound fails.
    @discardableResult
    public func run(_ input: [UInt8]) -> Outcome {
        do {
            switch self {
            case .safetensors: try CheckpointTargets.safetensors(input)
            case .zip: try CheckpointTargets.zip(input)
            case .pickle: try CheckpointTargets.pickle(input)
            case .legacy: try CheckpointTargets.legacy(input)
            case .diffusers: try FolderTargets.diffusers(input)
            case .listing: try FolderTargets.listing(input)
            case .canonical: try ModelTargets.canonical(input)
            case .trace: try ModelTargets.trace(input)
            case .hdf5: try HDF5Targets.hdf5(input)
            }
            return .accepted
        } catch {
            return .refused("\(error)")
        }
    }
}
