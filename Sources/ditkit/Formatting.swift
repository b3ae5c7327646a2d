import Tensors

/// Left-aligned text columns, two spaces apart (numbers spelled by `NumberFormat`).
enum TextTable {
    /// `rows` (under `header`, if given) in columns as wide as their widest cell; the columns in `rightAligned`
    /// are padded on the left, the last column of a row is not padded, and no line ends in spaces.
    static func render(_ rows: [[String]], header: [String]? = nil, rightAligned: Set<Int> = []) -> String {
        let all = (header.map { [$0] } ?? []) + rows
        guard let columns = all.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for row in all { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var lines: [String] = []
        for row in all {
            var line = ""
            for (i, cell) in row.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                let isLast = i == row.count - 1
                line += rightAligned.contains(i) ? pad + cell : (isLast ? cell : cell + pad)
                if !isLast { line += "  " }
            }
            while line.last == " " { line.removeLast() }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// A tensor shape as PyTorch prints a list: [1, 16, 32].
    static func shape(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
}

/// Gflops, times and ratios as the CLI prints them: two decimals, or three significant digits where two decimals
/// would hide a tiny model's figure (0.0123, not 0.01).
func decimalText(_ value: Double) -> String {
    NumberFormat.fixedOrSignificant(value, fractionDigits: 2, significantDigits: 3)
}
