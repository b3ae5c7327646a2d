import Checkpoints

/// A validator for the subset of JSON Schema (2020-12) that ditkit's schemas use: `type` (string or list),
/// `properties`, `required`, `additionalProperties` (bool or schema), `items`, `enum`, `const`, `minimum`,
/// `maximum`, `exclusiveMinimum`, `minItems`, `maxItems`, `$ref` to `#/$defs/…`, `anyOf`, `oneOf`. Unknown keywords fail loudly so a schema
/// cannot silently use something this validator ignores.
public struct SchemaValidator: Sendable {
    public let schema: JSONValue
    static let known: Set<String> = [
        "$schema", "$id", "$defs", "$comment", "title", "description", "type", "properties", "required",
        "additionalProperties", "items", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "minItems", "maxItems", "$ref", "anyOf", "oneOf",
        "examples", "default", "pattern",
    ]

    public init(schema: JSONValue) { self.schema = schema }

    /// Problems found, as "path: message" lines; empty when `value` is valid.
    public func validate(_ value: JSONValue) -> [String] {
        var problems: [String] = []
        check(value, against: schema, at: "$", problems: &problems)
        return problems
    }

    private func resolve(_ ref: String) -> JSONValue? {
        guard ref.hasPrefix("#/$defs/") else { return nil }
        return schema["$defs"]?[String(ref.dropFirst("#/$defs/".count))]
    }

    private func typeName(_ value: JSONValue) -> [String] {
        switch value {
        case .null: return ["null"]
        case .bool: return ["boolean"]
        case .int: return ["integer", "number"]
        case .double(let d): return d.rounded() == d ? ["number", "integer"] : ["number"]
        case .string: return ["string"]
        case .array: return ["array"]
        case .object: return ["object"]
        }
    }

    private func check(_ value: JSONValue, against schema: JSONValue, at path: String, problems: inout [String]) {
        if case .bool(let allowed) = schema {
            if !allowed { problems.append("\(path): not allowed") }
            return
        }
        guard case .object(let keywords) = schema else { problems.append("\(path): schema is not an object"); return }
        for (key, _) in keywords where !SchemaValidator.known.contains(key) {
            problems.append("\(path): schema keyword \(key) is not supported by the test validator")
        }
        if let ref = schema["$ref"]?.stringValue {
            guard let target = resolve(ref) else { problems.append("\(path): unresolved $ref \(ref)"); return }
            check(value, against: target, at: path, problems: &problems)
        }
        if let type = schema["type"] {
            let allowed = type.arrayValue?.compactMap(\.stringValue) ?? [type.stringValue ?? ""]
            if Set(allowed).isDisjoint(with: typeName(value)) {
                problems.append("\(path): type \(typeName(value)[0]), expected \(allowed.joined(separator: " or "))")
                return
            }
        }
        if let options = schema["enum"]?.arrayValue, !options.contains(value) {
            problems.append("\(path): \(value) is not one of \(JSONValue.array(options))")
        }
        if let constant = schema["const"], constant != value { problems.append("\(path): \(value) ≠ \(constant)") }
        if let minimum = schema["minimum"]?.doubleValue, let number = value.doubleValue, number < minimum {
            problems.append("\(path): \(number) < minimum \(minimum)")
        }
        if let maximum = schema["maximum"]?.doubleValue, let number = value.doubleValue, number > maximum {
            problems.append("\(path): \(number) > maximum \(maximum)")
        }
        if let bound = schema["exclusiveMinimum"]?.doubleValue, let number = value.doubleValue, number <= bound {
            problems.append("\(path): \(number) ≤ exclusive minimum \(bound)")
        }
        if let anyOf = schema["anyOf"]?.arrayValue {
            let passing = anyOf.filter { option in var p: [String] = []; check(value, against: option, at: path, problems: &p); return p.isEmpty }
            if passing.isEmpty { problems.append("\(path): matches none of anyOf") }
        }
        if let oneOf = schema["oneOf"]?.arrayValue {
            let passing = oneOf.filter { option in var p: [String] = []; check(value, against: option, at: path, problems: &p); return p.isEmpty }
            if passing.count != 1 { problems.append("\(path): matches \(passing.count) of oneOf, expected 1") }
        }
        if case .object(let pairs) = value {
            let properties = schema["properties"]?.objectValue ?? []
            for name in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where !pairs.contains(where: { $0.0 == name }) {
                problems.append("\(path): missing required property \(name)")
            }
            for (name, item) in pairs {
                if let sub = properties.first(where: { $0.0 == name })?.1 {
                    check(item, against: sub, at: "\(path).\(name)", problems: &problems)
                } else if let additional = schema["additionalProperties"] {
                    check(item, against: additional, at: "\(path).\(name)", problems: &problems)
                }
            }
        }
        if case .array(let items) = value {
            if let minItems = schema["minItems"]?.intValue, items.count < minItems { problems.append("\(path): fewer than \(minItems) items") }
            if let maxItems = schema["maxItems"]?.intValue, items.count > maxItems { problems.append("\(path): more than \(maxItems) items") }
            if let itemSchema = schema["items"] {
                for (i, item) in items.enumerated() { check(item, against: itemSchema, at: "\(path)[\(i)]", problems: &problems) }
            }
        }
    }
}
