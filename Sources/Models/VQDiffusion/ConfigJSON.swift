import Checkpoints
import Tensors

/// Reads the fields of a VQ-Diffusion family's `ditkit.config` JSON: every error names the origin, the field, the
/// value found and what was expected; unknown keys are refused.
struct ConfigJSONReader {
    let json: JSONValue
    let origin: String

    init(_ json: JSONValue, origin: String, family: String, known: Set<String>) throws {
        self.json = json
        self.origin = origin
        guard let pairs = json.objectValue else { throw Self.fail(origin, "expected a JSON object, found \(json.serialized().prefix(60))") }
        if let unknown = pairs.first(where: { !known.contains($0.0) && $0.0 != "family" && $0.0 != "source_layout" }) {
            throw Self.fail(origin, "unknown field \(unknown.0)")
        }
        guard json["family"]?.stringValue == family else {
            throw Self.fail(origin, "family \(json["family"]?.serialized() ?? "(missing)") is not \(family)")
        }
    }

    static func fail(_ origin: String, _ problem: String) -> ModelError { ModelError.invalidConfig(origin: origin, problems: [problem]) }
    func fail(_ problem: String) -> ModelError { Self.fail(origin, problem) }

    func int(_ key: String, default fallback: Int? = nil) throws -> Int {
        guard let value = json[key] else {
            if let fallback { return fallback }
            throw fail("field \(key) is missing")
        }
        guard let v = value.intValue else { throw fail("field \(key) = \(value.serialized().prefix(40)) is not an integer") }
        return v
    }

    func ints(_ key: String) throws -> [Int] {
        guard let value = json[key] else { throw fail("field \(key) is missing") }
        guard let items = value.arrayValue, items.count <= 64 else { throw fail("field \(key) = \(value.serialized().prefix(40)) is not an array of at most 64 integers") }
        return try items.map { item in
            guard let v = item.intValue else { throw fail("field \(key) holds \(item.serialized().prefix(40)), not an integer") }
            return v
        }
    }

    func bools(_ key: String) throws -> [Bool] {
        guard let value = json[key] else { throw fail("field \(key) is missing") }
        guard let items = value.arrayValue, items.count <= 64 else { throw fail("field \(key) = \(value.serialized().prefix(40)) is not an array of at most 64 booleans") }
        return try items.map { item in
            guard let v = item.boolValue else { throw fail("field \(key) holds \(item.serialized().prefix(40)), not true or false") }
            return v
        }
    }

    func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let value = json[key] else { return fallback }
        guard let v = value.boolValue else { throw fail("field \(key) = \(value.serialized().prefix(40)) is not true or false") }
        return v
    }

    func number(_ key: String, in object: JSONValue? = nil, default fallback: Double) throws -> Double {
        guard let value = (object ?? json)[key] else { return fallback }
        guard let v = value.doubleValue else { throw fail("field \(key) = \(value.serialized().prefix(40)) is not a number") }
        return v
    }

    func choice<T: RawRepresentable>(_ key: String, default fallback: T) throws -> T where T.RawValue == String {
        guard let value = json[key] else { return fallback }
        guard let text = value.stringValue, let v = T(rawValue: text) else {
            throw fail("field \(key) = \(value.serialized().prefix(40)) is not one of the allowed strings")
        }
        return v
    }

    /// The nested object `key` (absent: empty), refusing keys outside `known`.
    func object(_ key: String, known: Set<String>) throws -> JSONValue {
        let value = json[key] ?? .object([])
        guard let pairs = value.objectValue else { throw fail("field \(key) is not an object") }
        if let unknown = pairs.first(where: { !known.contains($0.0) }) { throw fail("unknown field \(key).\(unknown.0)") }
        return value
    }

    func sourceLayout(allowed: [String]) throws -> Layout? {
        guard let value = json["source_layout"] else { return nil }
        guard let text = value.stringValue, allowed.contains(text) else {
            throw fail("field source_layout = \(value.serialized().prefix(40)) is not " + allowed.joined(separator: ", "))
        }
        return Layout(text)
    }
}

/// One numeric config field with its allowed range, as `schemas/model-config.schema.json` states it.
struct ConfigRange<C>: Sendable {
    let key: String
    let minimum: Double
    let maximum: Double
    let exclusiveMinimum: Bool
    let value: @Sendable (C) -> Double

    init(_ key: String, _ minimum: Double, _ maximum: Double, exclusive: Bool = false, _ value: @escaping @Sendable (C) -> Double) {
        self.key = key
        self.minimum = minimum
        self.maximum = maximum
        self.exclusiveMinimum = exclusive
        self.value = value
    }

    func problem(_ config: C, name: (String) -> String) -> String? {
        let v = value(config)
        let inside = (exclusiveMinimum ? v > minimum : v >= minimum) && v <= maximum
        if inside { return nil }
        let allowed = exclusiveMinimum
            ? "> \(NumberFormat.shortest(minimum)) and ≤ \(NumberFormat.shortest(maximum))"
            : "\(NumberFormat.shortest(minimum))…\(NumberFormat.shortest(maximum))"
        return "\(name(key)) = \(NumberFormat.shortest(v)) is outside \(allowed)"
    }
}

/// Limits shared by the VQ-Diffusion configs (the same as DiT's: products of a few sizes cannot overflow before they
/// are checked).
enum VQLimits {
    /// Largest size any field may take (2^20).
    static let maxSize = 1 << 20
    /// Most blocks or levels a config may declare.
    static let maxDepth = 4096
    /// Most elements one tensor or one sample's activation matrix may hold (2^40).
    static let maxElements = 1 << 40
}
