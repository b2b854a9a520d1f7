//! [`format_decimal`]: a number as exact decimal text with a fixed number of places, rounded half
//! to even on the number's exact binary value, the same bytes as the JavaScript, Python and C SDKs'
//! `formatDecimal` / `format_decimal` / `telemetry_decimal_format` (all four are tested against
//! `guest-sdk/decimal-cases.tsv`).
//! Use it for fractional output values (averages, ratios) so one job prints the same result in
//! every language. Dependency-free, so the host's tests compile it too.

/// `x` with exactly `places` digits after the point, from its exact value rounded half to even:
/// `format_decimal(2982.8125, 3)` is `"2982.812"`, `format_decimal(0.125, 2)` is `"0.12"`, never
/// an exponent (`1e21` with 2 places is `"1000000000000000000000.00"`). A result that rounds to
/// zero has no sign (`-0.001` → `"0.00"`). Not-a-number is `"NaN"`, infinities `"inf"`, `"-inf"`.
pub fn format_decimal(x: f64, places: usize) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's fixed-precision formatting is exact and rounds ties to even.
    let text = format!("{x:.places$}");
    match text.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::format_decimal;

    #[test]
    fn the_shared_table_of_tricky_values() {
        let table = include_str!("../../decimal-cases.tsv");
        let mut checked = 0;
        for line in table
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let cols: Vec<&str> = line.split('\t').collect();
            let (x, places) = (cols[0].parse::<f64>().unwrap(), cols[1].parse().unwrap());
            assert_eq!(format_decimal(x, places), cols[2], "{line}");
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} cases");
        assert_eq!(format_decimal(f64::NAN, 2), "NaN");
        assert_eq!(format_decimal(f64::NEG_INFINITY, 2), "-inf");
    }
}
