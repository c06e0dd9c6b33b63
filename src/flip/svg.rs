//! The report's two charts as inline SVG (no script, no external asset): the org's runner share
//! over time across the flip, and claim latency percentiles before vs after.

use std::fmt::Write as _;

use super::FlipReport;
use crate::html::esc;

const W: f64 = 720.0;
const H: f64 = 260.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;
pub const GO: &str = "#0f766e";
pub const TS: &str = "#d97706";
const OTHER: &str = "#7c3aed";
const GRID: &str = "#d4d4d8";
const BEFORE: &str = "#a1a1aa";

/// `HH:MM` of an RFC 3339 time, for axis labels.
fn clock(t: &str) -> &str {
    t.get(11..16).unwrap_or(t)
}

fn open(out: &mut String, id: &str, title: &str) {
    let _ = write!(
        out,
        r#"<svg id="{id}" class="chart" role="img" aria-labelledby="{id}-title" viewBox="0 0 {W} {H}" width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="12"><title id="{id}-title">{}</title>"#,
        esc(title)
    );
}

fn legend(out: &mut String, items: &[(&str, &str)]) {
    let mut x = LEFT;
    for (label, color) in items {
        let _ = write!(
            out,
            r#"<rect x="{x}" y="8" width="12" height="12" fill="{color}"/><text x="{}" y="18">{}</text>"#,
            x + 16.0,
            esc(label)
        );
        x += 24.0 + 7.0 * label.len() as f64;
    }
}

/// Stacked bars of go / ts / other shares per bucket, with the flip marked.
pub fn share(r: &FlipReport) -> String {
    let mut out = String::new();
    open(
        &mut out,
        "chart-share",
        &format!("Runner share of org {}'s dispatches across the flip", r.org),
    );
    legend(&mut out, &[("go", GO), ("ts", TS), ("other", OTHER)]);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    for pct in [0.0, 50.0, 100.0] {
        let y = TOP + ph * (1.0 - pct / 100.0);
        let _ = write!(
            out,
            r#"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="{GRID}"/><text x="{}" y="{}" text-anchor="end">{pct}%</text>"#,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let n = r.runner_share.len().max(1) as f64;
    let bw = pw / n;
    for (i, b) in r.runner_share.iter().enumerate() {
        let x = LEFT + bw * i as f64 + 1.0;
        let total = (b.go + b.ts + b.other) as f64;
        if total == 0.0 {
            let _ = write!(
                out,
                r##"<rect x="{x:.1}" y="{TOP}" width="{:.1}" height="{ph}" fill="#f4f4f5"><title>{}: no dispatch</title></rect>"##,
                (bw - 2.0).max(0.5),
                esc(&b.start)
            );
            continue;
        }
        let mut y = TOP + ph;
        for (count, color, name) in [
            (b.go, GO, "go"),
            (b.ts, TS, "ts"),
            (b.other, OTHER, "other"),
        ] {
            if count == 0 {
                continue;
            }
            let h = ph * count as f64 / total;
            y -= h;
            let _ = write!(
                out,
                r#"<rect class="bar-{name}" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{color}"><title>{} {name}: {count} of {total}</title></rect>"#,
                (bw - 2.0).max(0.5),
                esc(&b.start)
            );
        }
    }
    let flip_x = LEFT + pw / 2.0;
    let _ = write!(
        out,
        r##"<line x1="{flip_x}" y1="{}" x2="{flip_x}" y2="{}" stroke="#18181b" stroke-width="2" stroke-dasharray="5 3"/><text x="{flip_x}" y="{}" text-anchor="middle" font-weight="600">flip {} → {} at {}</text>"##,
        TOP - 4.0,
        TOP + ph + 4.0,
        TOP + ph + 32.0,
        esc(&r.from),
        esc(&r.to),
        esc(clock(&r.flip_at))
    );
    let _ = write!(
        out,
        r#"<text x="{LEFT}" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text></svg>"#,
        TOP + ph + 16.0,
        esc(clock(&r.baseline.start)),
        LEFT + pw,
        TOP + ph + 16.0,
        esc(clock(&r.window.end)),
    );
    out
}

/// Grouped bars: p50 / p95 / p99 claim latency, before vs after the flip.
pub fn latency(r: &FlipReport) -> String {
    let mut out = String::new();
    let l = &r.claim_latency_seconds;
    let rt = |x: &Option<String>| x.as_deref().unwrap_or("-").to_owned();
    let (rb, ra) = (rt(&l.before_runtime), rt(&l.after_runtime));
    let title = if l.cross_runtime {
        format!("Claim latency (seconds), cross-runtime: {rb} before vs {ra} after the flip")
    } else {
        format!("Claim latency (seconds): {ra} before vs after the flip")
    };
    open(&mut out, "chart-latency", &title);
    let (lb, la) = (format!("before ({rb})"), format!("after ({ra})"));
    legend(&mut out, &[(lb.as_str(), BEFORE), (la.as_str(), GO)]);
    let groups = [
        ("p50", l.before.p50, l.after.p50),
        ("p95", l.before.p95, l.after.p95),
        ("p99", l.before.p99, l.after.p99),
    ];
    let max = groups
        .iter()
        .flat_map(|(_, b, a)| [*b, *a])
        .flatten()
        .fold(0.0f64, f64::max);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let top = if max > 0.0 { max * 1.15 } else { 1.0 };
    for frac in [0.0, 0.5, 1.0] {
        let y = TOP + ph * (1.0 - frac);
        let _ = write!(
            out,
            r#"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="{GRID}"/><text x="{}" y="{}" text-anchor="end">{:.1}</text>"#,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            top * frac
        );
    }
    // The value axis's unit.
    let _ = write!(
        out,
        r#"<text x="12" y="{:.1}" text-anchor="middle" transform="rotate(-90 12 {:.1})">seconds</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    let gw = pw / groups.len() as f64;
    let bw = (gw - 40.0) / 2.0;
    for (i, (name, before, after)) in groups.iter().enumerate() {
        let gx = LEFT + gw * i as f64 + 20.0;
        for (j, (v, color, side)) in [(before, BEFORE, "before"), (after, GO, "after")]
            .into_iter()
            .enumerate()
        {
            let x = gx + bw * j as f64;
            match v {
                Some(v) => {
                    let h = (ph * v / top).clamp(0.0, ph);
                    let y = TOP + ph - h;
                    let _ = write!(
                        out,
                        r#"<rect class="bar-{side}" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{color}"><title>{name} {side}: {v:.3} s</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle">{v:.2}</text>"#,
                        bw - 4.0,
                        x + (bw - 4.0) / 2.0,
                        y - 4.0
                    );
                }
                None => {
                    let _ = write!(
                        out,
                        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">no data</text>"#,
                        x + (bw - 4.0) / 2.0,
                        TOP + ph - 6.0
                    );
                }
            }
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" font-weight="600">{name}</text>"#,
            gx + bw - 2.0,
            TOP + ph + 18.0
        );
    }
    out.push_str("</svg>");
    out
}
