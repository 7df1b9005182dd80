/// Python's `repr(float)`, the text Keras's CSVLogger writes for each metric.
///
/// Swift's `description` already gives the shortest round-tripping digits, but
/// switches to exponent notation at different points (`1e+15` where Python
/// writes `1000000000000000.0`). Reusing Swift's digits and applying Python's
/// layout rule makes Cria's metrics.csv byte-identical to Keras's for the
/// same values.
enum PythonFloat {
    static func repr(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }
        let sign = value < 0 ? "-" : ""
        let (digits, decimalPoint) = shortestDigits(abs(value))
        // CPython's float_repr_style "short", format code 'r': exponent form
        // when the decimal point falls 4+ places before the digits or after the 16th.
        if decimalPoint <= -4 || decimalPoint > 16 {
            let exponent = decimalPoint - 1
            let mantissa = digits.count > 1 ? "\(digits.first!).\(digits.dropFirst())" : digits
            let exponentText = String(abs(exponent))
            return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + (exponentText.count < 2 ? "0" : "") + exponentText
        }
        if decimalPoint <= 0 {
            return sign + "0." + String(repeating: "0", count: -decimalPoint) + digits
        }
        if decimalPoint >= digits.count {
            return sign + digits + String(repeating: "0", count: decimalPoint - digits.count) + ".0"
        }
        let split = digits.index(digits.startIndex, offsetBy: decimalPoint)
        return sign + digits[..<split] + "." + digits[split...]
    }

    /// The significant digits d1d2... and the position p with value = 0.d1d2... × 10^p.
    static func shortestDigits(_ value: Double) -> (String, Int) {
        let text = value.description
        let parts = text.lowercased().split(separator: "e", maxSplits: 1)
        let mantissa = String(parts[0])
        let exponent = parts.count > 1 ? Int(parts[1].replacingOccurrences(of: "+", with: ""))! : 0
        let integerPart = mantissa.split(separator: ".", omittingEmptySubsequences: false)[0]
        var digits = mantissa.replacingOccurrences(of: ".", with: "")
        var decimalPoint = integerPart.count + exponent
        while digits.first == "0" {
            digits.removeFirst()
            decimalPoint -= 1
        }
        while digits.last == "0" { digits.removeLast() }
        return (digits.isEmpty ? "0" : digits, decimalPoint)
    }
}
