//! Charts as SVG drawn on the server: no script, no CDN, readable at any
//! width (the SVG scales). Pure functions from numbers to markup.

use std::fmt::Write;

/// One series of per-minute counts, oldest first.
pub struct Series<'a> {
    pub label: &'a str,
    pub values: &'a [u64],
    /// CSS colour.
    pub colour: &'a str,
}

const W: f64 = 600.0;
const H: f64 = 160.0;
const LEFT: f64 = 36.0;
const BOTTOM: f64 = 18.0;

/// Bars per minute for the last `values.len()` minutes, series side by side
/// in each minute's slot; a title for screen readers and hover.
pub fn bars(title: &str, series: &[Series<'_>]) -> String {
    let minutes = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let (plot_w, plot_h) = (W - LEFT - 4.0, H - BOTTOM - 6.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    // Axis and the top value.
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="6" x2="{LEFT}" y2="{y}" stroke="#8c959f"/><line x1="{LEFT}" y1="{y}" x2="{r}" y2="{y}" stroke="#8c959f"/><text x="{tx}" y="14" text-anchor="end">{top}</text><text x="{tx}" y="{y}" text-anchor="end">0</text>"##,
        y = H - BOTTOM,
        r = W - 4.0,
        tx = LEFT - 4.0,
    );
    if minutes > 0 {
        let slot = plot_w / minutes as f64;
        let bar = (slot / series.len().max(1) as f64).max(0.5);
        for (k, s) in series.iter().enumerate() {
            for (i, v) in s.values.iter().enumerate() {
                if *v == 0 {
                    continue;
                }
                let h = plot_h * (*v as f64) / (top as f64);
                let _ = write!(
                    svg,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.2}" height="{:.1}" fill="{}"><title>{}: {v}</title></rect>"#,
                    LEFT + 1.0 + slot * i as f64 + bar * k as f64,
                    H - BOTTOM - h,
                    bar,
                    h,
                    s.colour,
                    escape(s.label),
                );
            }
        }
        let _ = write!(
            svg,
            r#"<text x="{LEFT}" y="{}">-{minutes} min</text><text x="{}" y="{}" text-anchor="end">now</text>"#,
            H - 4.0,
            W - 4.0,
            H - 4.0
        );
    }
    svg.push_str("</svg>");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value_and_skip_zeros() {
        let svg = bars(
            "Sales <per> minute",
            &[
                Series {
                    label: "accepted",
                    values: &[0, 5, 10],
                    colour: "#1f6feb",
                },
                Series {
                    label: "failed",
                    values: &[0, 0, 1],
                    colour: "#cf222e",
                },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("Sales &lt;per&gt; minute"));
        assert_eq!(svg.matches("<rect").count(), 3, "zeros draw nothing");
        assert!(
            svg.contains(">10</text>"),
            "the top of the axis is the largest value"
        );
        assert!(svg.contains("accepted: 10") && svg.contains("failed: 1"));
        let empty = bars("nothing", &[]);
        assert!(!empty.contains("<rect"));
    }
}
