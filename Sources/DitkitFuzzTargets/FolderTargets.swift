import Checkpoints
import Tensors

/// Targets whose input becomes the JSON files of a folder, or a folder's weights.
enum FolderTargets {
    /// The line between the parts of a `diffusers` input.
    static let separator: [UInt8] = Array("\n@@\n".utf8)

    /// The committed shards (original layout, three files) the index part may name.
    static let shardNames = ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"]

    /// `pipeline/` with `model_index.json` (part 1) and `transformer/` holding `config.json` (part 2),
    /// `diffusion_pytorch_model.safetensors.index.json` (part 3) and the committed shards. A missing or empty part
    /// is an absent file. Opened as a pipeline, as a component folder and as an index file; refused when all three refuse.
    static func diffusers(_ input: [UInt8]) throws {
        let parts = split(input, separator: separator, maxParts: 3)
        let files = ["pipeline/model_index.json", "pipeline/transformer/config.json",
                     "pipeline/transformer/diffusion_pytorch_model.safetensors.index.json"]
        for shard in shardNames where !FileSystem.exists(Scratch.path("pipeline/transformer/" + shard)) {
            Scratch.store("pipeline/transformer/" + shard, Scratch.fixture("checkpoints/original/tiny-dit-sharded/" + shard))
        }
        for (i, file) in files.enumerated() {
            if i < parts.count && !parts[i].isEmpty { Scratch.store(file, parts[i]) } else { Scratch.remove(file) }
        }
        var firstError: Error?
        var opened = false
        for path in ["pipeline", "pipeline/transformer", files[2]] {
            do {
                try Exercise.checkpoint(try Checkpoint.open(Scratch.path(path)))
                opened = true
            } catch {
                firstError = firstError ?? error
            }
        }
        if !opened, let firstError { throw firstError }
    }

    /// Storage elements a listed tensor may really have; a tensor claiming more is a view with zero strides over
    /// one element, which is how a small hostile file claims a huge shape.
    static let maxRealElements = 1 << 14

    /// A listing: lines `name dtype d0 d1 …` (dtype as ditkit spells it: f32, bf16, …), optionally after a first line
    /// holding `config.json`. Written as `diffusion_pytorch_model.bin` (torch.save zip) in a component folder with
    /// that config, or alone without one, then opened and exercised like a checkpoint.
    static func listing(_ input: [UInt8]) throws {
        var lines = String(decoding: input, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
        var config: String?
        if let first = lines.first, first.hasPrefix("{") {
            config = String(first)
            lines.removeFirst()
        }
        var tensors: [(name: String, dtype: DType, shape: [Int], strides: [Int], storageElements: Int)] = []
        var storageElements: [DType: Int] = [:]
        for line in lines {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let dtype = DType(rawValue: String(fields[1])),
                TorchZip.storageClasses.contains(where: { $0.dtype == dtype })
            else { continue }
            let shape = fields.dropFirst(2).compactMap { Int($0) }
            var elements = 1
            var fits = true
            for d in shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow, d >= 0, product <= maxRealElements else { fits = false; break }
                elements = product
            }
            let real = fits ? elements : 1
            let strides = fits ? TensorGeometry.contiguousStrides(shape) : [Int](repeating: 0, count: shape.count)
            storageElements[dtype] = max(storageElements[dtype] ?? 1, real)
            tensors.append((String(fields[0]), dtype, shape, strides, 0))
        }
        tensors = tensors.map { ($0.name, $0.dtype, $0.shape, $0.strides, storageElements[$0.dtype]!) }
        let storages = storageElements.sorted { $0.key.rawValue < $1.key.rawValue }.map {
            (key: TorchZip.storageKey($0.key), bytes: $0.value * $0.key.size)
        }
        let archive = TorchZip.archive(pickle: TorchZip.stateDictPickle(tensors), storages: storages)
        let weights = Scratch.store("listing/diffusion_pytorch_model.bin", archive)
        if let config {
            Scratch.store("listing/config.json", Array(config.utf8))
            try Exercise.checkpoint(try Checkpoint.open(Scratch.path("listing")))
        } else {
            Scratch.remove("listing/config.json")
            try Exercise.checkpoint(try Checkpoint.open(weights))
        }
    }

    /// `bytes` cut at each `separator`, into at most `maxParts` parts (the last keeps any further separators).
    static func split(_ bytes: [UInt8], separator: [UInt8], maxParts: Int) -> [[UInt8]] {
        var parts: [[UInt8]] = []
        var start = 0
        var i = 0
        while i + separator.count <= bytes.count && parts.count < maxParts - 1 {
            if bytes[i..<(i + separator.count)].elementsEqual(separator) {
                parts.append(Array(bytes[start..<i]))
                i += separator.count
                start = i
            } else {
                i += 1
            }
        }
        parts.append(Array(bytes[start...]))
        return parts
    }
}
