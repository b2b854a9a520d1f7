//! A chosen key's value across a schedule's runs as a self-contained SVG column chart: one
//! column per run, oldest on the left, labelled with the run's slot date; a run whose result
//! lacks the key (or that did not succeed) is a gap marked "–". Same conventions as [`super::chart`]:
//! no external resources, every label escaped, `<title>`/`<desc>` for screen readers; each column
//! is a `<rect class="run">` with `data-run` and `data-value`.

use std::fmt::Write;

use crate::chart::{escape, format_number};

/// One run's point: its label (a date) and the key's value, if it had one.
pub type Point = (String, Option<f64>);

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 300.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 250.0;
const LEFT: f64 = 16.0;
const COLOR: &str = "#4e79a7";

/// Draws `points` titled `title` (see the module doc).
pub fn runs_chart(points: &[Point], title: &str, key: &str) -> String {
    let max = points
        .iter()
        .filter_map(|(_, v)| *v)
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 { (BOTTOM - TOP) / max } else { 0.0 };
    let slot = (WIDTH - 2.0 * LEFT) / points.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        svg,
        "<title>{} · {}</title><desc>{} across {} runs</desc>",
        escape(title),
        escape(key),
        escape(key),
        points.len()
    );
    let _ = write!(
        svg,
        r##"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text><text x="{LEFT}" y="42" fill="#555">{} across {} runs</text>"##,
        escape(title),
        escape(key),
        points.len()
    );
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{BOTTOM}" x2="{}" y2="{BOTTOM}" stroke="#888"/>"##,
        WIDTH - LEFT
    );
    for (i, (label, value)) in points.iter().enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let cx = x + bar / 2.0;
        match value {
            Some(v) => {
                let h = v.abs() * scale;
                let _ = write!(
                    svg,
                    r#"<rect class="run" data-run="{}" data-value="{v}" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{h:.1}" fill="{COLOR}"/><text x="{cx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                    escape(label),
                    BOTTOM - h,
                    BOTTOM - h - 4.0,
                    format_number(*v)
                );
            }
            None => {
                let _ = write!(
                    svg,
                    r##"<text class="gap" data-run="{}" x="{cx:.1}" y="{:.1}" text-anchor="middle" fill="#999">–</text>"##,
                    escape(label),
                    BOTTOM - 4.0
                );
            }
        }
        let _ = write!(
            svg,
            r##"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" fill="#333">{}</text>"##,
            BOTTOM + 16.0,
            escape(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_column_per_run_and_gaps_for_missing_values() {
        let svg = runs_chart(
            &[
                ("2026-12-02".into(), Some(3.0)),
                ("2026-12-03".into(), None),
                ("2026-12-04".into(), Some(12.0)),
            ],
            "os <daily>",
            "WINNT",
        );
        assert_eq!(svg.matches(r#"class="run""#).count(), 2);
        assert_eq!(svg.matches(r#"class="gap""#).count(), 1);
        assert!(
            svg.contains(r#"data-run="2026-12-04" data-value="12""#),
            "{svg}"
        );
        assert!(svg.contains("os &lt;daily&gt;") && !svg.contains("<daily>"));
    }
}
