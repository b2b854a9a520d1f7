//! Bar charts of job results as self-contained SVG.
//!
//! A job's output is sorted `key<TAB>value` lines; [`parse_rows`] reads them as `(key, number)` pairs
//! (or says which line is not a number) and [`bar_chart`] draws them: one horizontal bar per key,
//! largest first, the top [`ChartOptions::top`] keys and an "other" bar summing the rest. The SVG needs
//! no fonts, scripts or styles from elsewhere, escapes every label for XML, and carries a `<title>` and
//! `<desc>` for screen readers. Each bar is a `<rect class="bar">` with `data-key` and `data-value`
//! (the "other" bar has `class="bar other"` and `data-keys`, the number of keys it sums).
//!
//! Sums only mean something for additive values such as counts, so a total and an "other" bar are
//! drawn only when every value is a whole number. A result with a fractional value (an average, a
//! ratio, a percentile) is taken as non-additive: its subtitle gives no total, and keys beyond
//! the top ones are left out (and said to be) rather than summed.

use std::fmt::Write;

/// Why a result cannot be charted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotChartable {
    /// A line without the tab between key and value.
    #[error("line {line} has no tab; charts are drawn from `key<TAB>number` lines")]
    NoTab {
        /// The 1-based line number.
        line: usize,
    },
    /// A value that is not a finite number.
    #[error("the value of key '{key}' (line {line}) is '{value}', not a number; only results whose values are all numbers can be charted")]
    NotANumber {
        /// The 1-based line number.
        line: usize,
        /// The line's key.
        key: String,
        /// The value that is not a number.
        value: String,
    },
    /// The stored result could not be read.
    #[error("the stored result could not be read: {0}")]
    Unreadable(String),
}

/// Reads a job's output (`key<TAB>value` lines) as `(key, value)` pairs; every value must be a
/// finite number (`12`, `-3.5`, `1e6`, surrounding spaces allowed).
pub fn parse_rows(output: &[u8]) -> Result<Vec<(String, f64)>, NotChartable> {
    read_rows(output)
}

/// [`parse_rows`] from a reader, one line at a time (the result file is never held whole).
pub fn read_rows(mut reader: impl std::io::BufRead) -> Result<Vec<(String, f64)>, NotChartable> {
    let mut rows = Vec::new();
    let mut bytes = Vec::new();
    for line_no in 1.. {
        bytes.clear();
        let read = reader.read_until(b'\n', &mut bytes);
        if read.map_err(|e| NotChartable::Unreadable(e.to_string()))? == 0 {
            break;
        }
        let mut raw = &bytes[..];
        if let Some(rest) = raw.strip_suffix(b"\n") {
            raw = rest.strip_suffix(b"\r").unwrap_or(rest);
        }
        let line = String::from_utf8_lossy(raw);
        let (key, value) = line
            .split_once('\t')
            .ok_or(NotChartable::NoTab { line: line_no })?;
        match value.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => rows.push((key.to_string(), v)),
            _ => {
                return Err(NotChartable::NotANumber {
                    line: line_no,
                    key: fit(key, 80),
                    value: fit(value, 80),
                })
            }
        }
    }
    Ok(rows)
}

/// How a chart is drawn.
#[derive(Debug, Clone, Copy)]
pub struct ChartOptions {
    /// Bars for at most this many keys; when more are left than one, they are summed in one
    /// "other" bar.
    pub top: usize,
    /// Width of the picture in pixels (the height follows from the number of bars).
    pub width: u32,
}

impl Default for ChartOptions {
    fn default() -> Self {
        ChartOptions {
            top: 30,
            width: 760,
        }
    }
}

/// The largest `top` accepted from a request (more bars would not be readable anyway).
pub const MAX_TOP: usize = 500;

const PAD: f64 = 16.0;
const TITLE_Y: f64 = 26.0;
const SUBTITLE_Y: f64 = 46.0;
const FIRST_ROW_Y: f64 = 62.0;
const ROW: f64 = 22.0;
const BAR: f64 = 15.0;
const BAR_COLOR: &str = "#4e79a7";
const OTHER_COLOR: &str = "#a0a0a0";

/// One drawn bar.
struct Bar<'a> {
    label: &'a str,
    value: f64,
    /// `Some(n)` for the "other" bar summing `n` keys.
    other: Option<usize>,
}

/// Draws `rows` as a horizontal bar chart titled `title` (see the module doc). Rows with a
/// non-finite value are left out ([`parse_rows`] never returns them).
pub fn bar_chart(rows: &[(String, f64)], title: &str, opts: &ChartOptions) -> String {
    let mut sorted: Vec<&(String, f64)> = rows.iter().filter(|(_, v)| v.is_finite()).collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let top = opts.top.max(1);
    let shown = if sorted.len() > top + 1 {
        top
    } else {
        sorted.len()
    };
    let mut bars: Vec<Bar> = sorted[..shown]
        .iter()
        .map(|(k, v)| Bar {
            label: k,
            value: *v,
            other: None,
        })
        .collect();
    let rest = &sorted[shown..];
    let additive = sorted.iter().all(|(_, v)| v.fract() == 0.0);
    if !rest.is_empty() && additive {
        bars.push(Bar {
            label: "other",
            value: rest.iter().map(|(_, v)| v).sum(),
            other: Some(rest.len()),
        });
    }
    let total: f64 = sorted.iter().map(|(_, v)| v).sum();

    let width = f64::from(opts.width.max(320));
    let height = FIRST_ROW_Y + ROW * bars.len().max(1) as f64 + PAD;
    let subtitle = subtitle(sorted.len(), additive.then_some(total), rest.len());
    let desc = match bars.first() {
        None => "The result is empty.".to_string(),
        Some(b) => format!(
            "Horizontal bar chart of {} keys, largest first; the largest is {} with {}.",
            sorted.len(),
            b.label,
            format_number(b.value)
        ),
    };

    let mut svg = String::with_capacity(600 + bars.len() * 400);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-labelledby="chart-title chart-desc" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" font-size="12">"#,
        w = width,
        h = height
    );
    let _ = write!(svg, r#"<title id="chart-title">{}</title>"#, escape(title));
    let _ = write!(
        svg,
        r#"<desc id="chart-desc">{} {}</desc>"#,
        escape(&subtitle),
        escape(&desc)
    );
    let _ = write!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = write!(
        svg,
        r##"<text x="{PAD}" y="{TITLE_Y}" font-size="16" font-weight="bold" fill="#222222">{}</text>"##,
        escape(&fit_width(title, (width - 2.0 * PAD) / TITLE_SCALE))
    );
    let _ = write!(
        svg,
        r##"<text x="{PAD}" y="{SUBTITLE_Y}" fill="#666666">{}</text>"##,
        escape(&subtitle)
    );
    if bars.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{PAD}" y="{}" fill="#666666">No rows to chart.</text>"##,
            FIRST_ROW_Y + BAR
        );
        svg.push_str("</svg>\n");
        return svg;
    }

    // Columns: labels (right-aligned), values of negative bars, bars, values of the others.
    let widest =
        |texts: &mut dyn Iterator<Item = String>| texts.map(|t| text_width(&t)).fold(0.0, f64::max);
    let label_w = widest(&mut bars.iter().map(Bar::display_label)).clamp(30.0, width * 0.4);
    let values_w = |negative: bool| {
        let w = widest(
            &mut bars
                .iter()
                .filter(|b| (b.value < 0.0) == negative)
                .map(|b| format_number(b.value)),
        );
        if w > 0.0 {
            w + 8.0
        } else {
            0.0
        }
    };
    let label_x = PAD + label_w;
    let plot_x = label_x + 8.0 + values_w(true);
    let plot_w = (width - PAD - values_w(false) - plot_x).max(40.0);
    let lo = bars.iter().map(|b| b.value).fold(0.0_f64, f64::min);
    let hi = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x_of = |v: f64| plot_x + (v - lo) / span * plot_w;
    let zero = x_of(0.0);

    for (i, bar) in bars.iter().enumerate() {
        let y = FIRST_ROW_Y + ROW * i as f64;
        let end = x_of(bar.value);
        let (x, w) = (zero.min(end), (end - zero).abs());
        let value = format_number(bar.value);
        let label = bar.display_label();
        svg.push_str(r#"<g class="row">"#);
        let _ = write!(svg, "<title>{}: {}</title>", escape(&label), escape(&value));
        let _ = write!(
            svg,
            r##"<text class="label" x="{lx:.1}" y="{ty:.1}" text-anchor="end" fill="#222222">{}</text>"##,
            escape(&fit_width(&label, label_w)),
            lx = label_x,
            ty = y + BAR - 3.0
        );
        let (class, color, data) = match bar.other {
            None => (
                "bar",
                BAR_COLOR,
                format!(r#"data-key="{}""#, escape(bar.label)),
            ),
            Some(n) => ("bar other", OTHER_COLOR, format!(r#"data-keys="{n}""#)),
        };
        let _ = write!(
            svg,
            r#"<rect class="{class}" {data} data-value="{v}" x="{x:.2}" y="{y:.1}" width="{w:.2}" height="{BAR}" fill="{color}"/>"#,
            v = bar.value
        );
        // Value labels sit beyond the bar's end: right of positive bars, left of negative ones.
        let (vx, anchor) = if bar.value < 0.0 {
            (end - 4.0, "end")
        } else {
            (end + 4.0, "start")
        };
        let _ = write!(
            svg,
            r##"<text class="value" x="{vx:.1}" y="{ty:.1}" text-anchor="{anchor}" fill="#444444">{}</text>"##,
            escape(&value),
            ty = y + BAR - 3.0
        );
        svg.push_str("</g>");
    }
    if lo < 0.0 {
        let _ = write!(
            svg,
            r##"<line x1="{zero:.2}" x2="{zero:.2}" y1="{}" y2="{}" stroke="#222222" stroke-width="1"/>"##,
            FIRST_ROW_Y - 3.0,
            height - PAD + 3.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

impl Bar<'_> {
    fn display_label(&self) -> String {
        match self.other {
            None => self.label.to_string(),
            Some(n) => format!("other ({n} keys)"),
        }
    }
}

/// "N keys, total T" (with `total` only for additive values), and what happened to the keys
/// beyond the top ones.
fn subtitle(keys: usize, total: Option<f64>, folded: usize) -> String {
    let mut s = format!("{keys} {}", if keys == 1 { "key" } else { "keys" });
    match total {
        Some(total) => {
            let _ = write!(s, ", total {}", format_number(total));
            if folded > 0 {
                let _ = write!(s, "; the {folded} smallest summed as \"other\"");
            }
        }
        None => {
            s.push_str(", not all whole numbers: no total");
            if folded > 0 {
                let _ = write!(s, "; the {folded} smallest not shown");
            }
        }
    }
    s
}

/// A number for people: integers with thousands separators (`1,234,567`), others rounded to
/// what is readable (`12.35`, `0.00123`), huge ones in scientific notation (`1.2e18`).
pub fn format_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e15 {
        return format!("{v:.2e}");
    }
    if v.fract() == 0.0 || a >= 1000.0 {
        let digits = format!("{:.0}", a);
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
        if v < 0.0 && digits != "0" {
            out.push('-');
        }
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        return out;
    }
    let decimals = if a >= 1.0 {
        2
    } else {
        (2 - a.log10().floor() as i32).clamp(2, 12) as usize
    };
    let s = format!("{v:.decimals$}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// How wide 12 px text is drawn, estimated per character from DejaVu Sans (the widest common
/// sans-serif face; others draw narrower, so the estimate errs on the side of room).
fn text_width(s: &str) -> f64 {
    s.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | 'I' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | ' ' => 3.8,
            'm' | 'w' | 'M' | 'W' | '%' | '@' => 11.0,
            'A'..='Z' => 8.8,
            c if c.is_ascii() => 7.6,
            _ => 12.0,
        })
        .sum()
}

/// A 16 px bold title is about this much wider than 12 px text.
const TITLE_SCALE: f64 = 1.45;

/// `s` cut to fit `max_px` of 12 px text, ending in `…` when cut.
fn fit_width(s: &str, max_px: f64) -> String {
    if text_width(s) <= max_px {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = text_width("…");
    for c in s.chars() {
        used += text_width(c.encode_utf8(&mut [0; 4]));
        if used > max_px {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// `s` cut to at most `max` characters, ending in `…` when cut.
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Text safe inside XML content and double- or single-quoted attributes; characters XML 1.0
/// does not allow (most control characters) become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The SVG reader of the integration tests, for the unit tests below.
#[cfg(test)]
#[path = "../tests/all/chart_support/mod.rs"]
mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::read_chart;
    use super::*;

    /// A bar as read back from the SVG: (data-key or "other", data-value, width).
    type ReadBar = (String, f64, f64);

    /// Parses the whole SVG (failing on any XML error) and returns its bars and label texts.
    fn read(svg: &str) -> (Vec<ReadBar>, Vec<String>) {
        let (bars, labels) = read_chart(svg);
        let bars = bars
            .into_iter()
            .map(|b| (b.key.unwrap_or_else(|| "other".into()), b.value, b.width))
            .collect();
        (bars, labels)
    }

    fn rows(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn parses_numeric_results_and_names_the_first_bad_line() {
        assert_eq!(
            parse_rows(b"a\t1\nb\t-2.5\nc\t 1e3 \n").unwrap(),
            rows(&[("a", 1.0), ("b", -2.5), ("c", 1000.0)])
        );
        assert_eq!(parse_rows(b"").unwrap(), vec![]);
        let err = parse_rows(b"20150528\t1\n20150529\trecords=2 duplicates=1\n").unwrap_err();
        assert_eq!(
            err,
            NotChartable::NotANumber {
                line: 2,
                key: "20150529".into(),
                value: "records=2 duplicates=1".into()
            }
        );
        assert!(err.to_string().contains("not a number"), "{err}");
        assert_eq!(
            parse_rows(b"a\t1\nno tab here\n").unwrap_err(),
            NotChartable::NoTab { line: 2 }
        );
        for bad in ["NaN", "inf", "", "{\"sum\":1}"] {
            assert!(
                parse_rows(format!("k\t{bad}\n").as_bytes()).is_err(),
                "{bad:?} was charted"
            );
        }
    }

    #[test]
    fn labels_and_title_are_escaped() {
        let hostile = r#"<script>&"x"'</script>"#;
        let svg = bar_chart(
            &rows(&[(hostile, 3.0), ("ctl\u{1}char", 1.0)]),
            "a < b & \"c\"",
            &ChartOptions::default(),
        );
        assert!(!svg.contains("<script"), "{svg}");
        assert!(
            svg.contains("&lt;script&gt;&amp;&quot;x&quot;&apos;&lt;/script&gt;"),
            "{svg}"
        );
        assert!(
            svg.contains("<title id=\"chart-title\">a &lt; b &amp; &quot;c&quot;</title>"),
            "{svg}"
        );
        let (bars, labels) = read(&svg);
        assert_eq!(bars[0].0, hostile);
        assert_eq!(labels[0], hostile);
        assert_eq!(bars[1].0, "ctl\u{FFFD}char");
    }

    #[test]
    fn empty_result_is_a_valid_picture_saying_so() {
        let svg = bar_chart(&[], "empty", &ChartOptions::default());
        let (bars, _) = read(&svg);
        assert!(bars.is_empty());
        assert!(svg.contains("No rows to chart."));
        assert!(svg.contains("0 keys, total 0"));
    }

    #[test]
    fn one_row_fills_the_plot() {
        let svg = bar_chart(&rows(&[("only", 42.0)]), "one", &ChartOptions::default());
        let (bars, labels) = read(&svg);
        assert_eq!(bars.len(), 1);
        assert_eq!((bars[0].0.as_str(), bars[0].1), ("only", 42.0));
        assert!(
            bars[0].2 > 200.0,
            "a lone bar spans the plot: {}",
            bars[0].2
        );
        assert_eq!(labels, ["only"]);
        assert!(svg.contains(">42</text>"));
    }

    #[test]
    fn many_rows_keep_the_top_ones_and_sum_the_rest_as_other() {
        let many: Vec<(String, f64)> = (1..=100)
            .map(|i| (format!("key{i:03}"), i as f64))
            .collect();
        let svg = bar_chart(
            &many,
            "many",
            &ChartOptions {
                top: 10,
                ..Default::default()
            },
        );
        let (bars, labels) = read(&svg);
        assert_eq!(bars.len(), 11);
        let keys: Vec<&str> = bars.iter().map(|b| b.0.as_str()).collect();
        assert_eq!(
            keys[..10],
            [
                "key100", "key099", "key098", "key097", "key096", "key095", "key094", "key093",
                "key092", "key091"
            ]
        );
        assert_eq!(bars[10].0, "other");
        assert_eq!(bars[10].1, (1..=90).sum::<i32>() as f64);
        assert_eq!(labels[10], "other (90 keys)");
        assert!(
            svg.contains("100 keys, total 5,050; the 90 smallest summed as"),
            "{svg}"
        );
        // Widths follow the values (the other bar is the largest here).
        for pair in bars[..10].windows(2) {
            assert!(pair[0].2 > pair[1].2, "{pair:?}");
        }
        assert!(bars[10].2 > bars[0].2);
        // One key more than `top` is drawn rather than folded into an "other" of one.
        let (bars, _) = read(&bar_chart(
            &many[..11],
            "11",
            &ChartOptions {
                top: 10,
                ..Default::default()
            },
        ));
        assert_eq!(bars.len(), 11);
        assert!(bars.iter().all(|b| b.0 != "other"));
    }

    #[test]
    fn averages_get_no_total_and_no_other_bar() {
        let means: Vec<(String, f64)> = (1..=12)
            .map(|i| (format!("channel{i:02}"), 2982.8125 + f64::from(i)))
            .collect();
        let svg = bar_chart(
            &means,
            "mean uptime",
            &ChartOptions {
                top: 10,
                ..Default::default()
            },
        );
        let (bars, _) = read(&svg);
        assert_eq!(bars.len(), 10);
        assert!(bars.iter().all(|b| b.0 != "other"), "{bars:?}");
        assert!(!svg.contains(", total "), "{svg}");
        assert!(
            svg.contains("12 keys, not all whole numbers: no total; the 2 smallest not shown"),
            "{svg}"
        );
        // Counts keep their total.
        let counts = bar_chart(
            &rows(&[("a", 3.0), ("b", 4.0)]),
            "n",
            &ChartOptions::default(),
        );
        assert!(counts.contains("2 keys, total 7"), "{counts}");
    }

    #[test]
    fn zero_and_negative_values_are_drawn_from_a_zero_line() {
        let svg = bar_chart(
            &rows(&[("up", 10.0), ("flat", 0.0), ("down", -5.0)]),
            "signs",
            &ChartOptions::default(),
        );
        let (bars, _) = read(&svg);
        let keys: Vec<&str> = bars.iter().map(|b| b.0.as_str()).collect();
        assert_eq!(keys, ["up", "flat", "down"]);
        assert_eq!(bars[1].2, 0.0);
        assert!(
            (bars[0].2 / bars[2].2 - 2.0).abs() < 0.01,
            "widths proportional to |value|: {bars:?}"
        );
        assert!(
            svg.contains("<line"),
            "a zero line is drawn when values go negative"
        );
        assert!(svg.contains(">-5</text>"));
        // All zeros: no division by zero, every bar empty.
        let (bars, _) = read(&bar_chart(
            &rows(&[("a", 0.0), ("b", 0.0)]),
            "zeros",
            &ChartOptions::default(),
        ));
        assert!(bars.iter().all(|b| b.2 == 0.0));
    }

    #[test]
    fn long_labels_are_cut_but_kept_whole_in_tooltips_and_data() {
        let long = "x".repeat(300);
        let svg = bar_chart(&rows(&[(&long, 1.0)]), "long", &ChartOptions::default());
        let (bars, labels) = read(&svg);
        assert_eq!(bars[0].0, long);
        assert!(
            labels[0].ends_with('…') && labels[0].chars().count() < 60,
            "{}",
            labels[0]
        );
        assert!(svg.contains(&format!("<title>{long}: 1</title>")));
    }

    #[test]
    fn numbers_read_well() {
        let cases = [
            (0.0, "0"),
            (7.0, "7"),
            (1234567.0, "1,234,567"),
            (-1234.0, "-1,234"),
            (999.0, "999"),
            (12.345, "12.35"),
            (0.5, "0.5"),
            (0.001234, "0.00123"),
            (-0.25, "-0.25"),
            (1234.56, "1,235"),
            (2.5e18, "2.50e18"),
        ];
        for (v, want) in cases {
            assert_eq!(format_number(v), want, "{v}");
        }
    }
}
