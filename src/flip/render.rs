//! Renders a [`FlipReport`]: JSON for machines, Markdown to paste into a change ticket, and a
//! self-contained HTML page (inline CSS and SVG, no script, no external asset). The human
//! forms put the verdict first, then the checks as a table, then the listed sessions with
//! their evidence, then the sources.

use std::fmt::Write as _;

use super::svg;
use super::{Check, FlipReport, Status};
use crate::html::esc;
use crate::report::Evidence;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Markdown,
    Html,
}

pub fn render(r: &FlipReport, format: Format) -> String {
    match format {
        Format::Json => json(r),
        Format::Markdown => markdown(r),
        Format::Html => html(r),
    }
}

pub fn json(r: &FlipReport) -> String {
    let mut s =
        serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

fn seconds(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.3}"))
}

fn change(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:+.3}"))
}

fn headline(r: &FlipReport) -> String {
    let what = match r.kind {
        super::FlipKind::Flip => "Flip",
        super::FlipKind::Rollback => "Rollback",
        super::FlipKind::Unknown => "Flip (direction unknown)",
    };
    format!(
        "{what} of org {}: {} → {} at {}",
        r.org, r.from, r.to, r.flip_at
    )
}

fn located(r: &FlipReport) -> String {
    let at = match r.flip_located.as_str() {
        "given" => "flip time as given",
        _ => "flip located at the org's first dispatch to the new runner",
    };
    let direction = match r.direction_from.as_str() {
        "given" => "direction as given",
        "baseline" => "direction: away from the runner of most baseline dispatches",
        "after_flip" => "direction: the runner of most dispatches after the grace",
        "dispatches" => "direction: the runner of the org's latest dispatch",
        _ => "direction unknown: no dispatch on either side",
    };
    format!("{at}; {direction}")
}

/// The latency table's rows: the compared pair (labelled with their runtimes), the change,
/// then each runtime on each side. Every value is in seconds.
fn latency_rows(r: &FlipReport) -> Vec<[String; 6]> {
    let l = &r.claim_latency_seconds;
    let rt = |x: &Option<String>| x.clone().unwrap_or_else(|| "-".into());
    let row = |name: String, x: &crate::report::Latency| {
        [
            name,
            x.count.to_string(),
            seconds(x.p50),
            seconds(x.p95),
            seconds(x.p99),
            seconds(x.max),
        ]
    };
    let mut rows = vec![
        row(format!("before ({})", rt(&l.before_runtime)), &l.before),
        row(format!("after ({})", rt(&l.after_runtime)), &l.after),
        [
            if l.cross_runtime {
                "change (cross-runtime)".into()
            } else {
                "change".into()
            },
            String::new(),
            change(l.change.p50),
            change(l.change.p95),
            change(l.change.p99),
            String::new(),
        ],
    ];
    for b in &l.by_runtime {
        for (side, x) in [("before", &b.before), ("after", &b.after)] {
            if x.count > 0 {
                rows.push(row(format!("{} {side}", b.runtime), x));
            }
        }
    }
    rows
}

const LATENCY_HEAD: [&str; 6] = ["", "count", "p50 (s)", "p95 (s)", "p99 (s)", "max (s)"];

fn evidence_line(e: &Evidence) -> String {
    let mut s = format!("{} {} {} {}", e.source, e.at, e.event, e.runner);
    if let Some(w) = &e.worker {
        let _ = write!(s, " {w}");
    }
    if let Some(d) = &e.detail {
        let _ = write!(s, " ({d})");
    }
    s
}

fn listed(c: &Check) -> Option<String> {
    (c.sessions_total > 0).then(|| {
        let more = if c.sessions_truncated {
            format!(
                ", first {} listed (cap {})",
                c.sessions.len(),
                c.sessions_cap
            )
        } else {
            String::new()
        };
        format!(
            "{} session{}{more}",
            c.sessions_total,
            if c.sessions_total == 1 { "" } else { "s" }
        )
    })
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(r: &FlipReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n", headline(r));
    let _ = writeln!(
        o,
        "**Verdict: {}** — {}\n",
        r.verdict.as_str().to_uppercase(),
        r.reason
    );
    let _ = writeln!(
        o,
        "Window {} → {} ({} s; baseline from {}), grace {} s, claim timeout go {} s / ts {} s, \
         {}, evidence ends {}. Sessions: {} in the baseline, {} in the window ({} in the \
         grace), {} in flight at the flip.\n",
        r.window.start,
        r.window.end,
        r.window.seconds,
        r.baseline.start,
        r.grace_seconds,
        r.claim_timeout_seconds.get("go").copied().unwrap_or(0.0),
        r.claim_timeout_seconds.get("ts").copied().unwrap_or(0.0),
        located(r),
        r.evidence_ends.as_deref().unwrap_or("-"),
        r.sessions.baseline,
        r.sessions.window,
        r.sessions.in_grace,
        r.sessions.in_flight,
    );
    let half = r.runner_share.len() / 2;
    let share = |b: &[super::ShareBucket]| {
        let (go, ts, other) = b
            .iter()
            .fold((0, 0, 0), |(g, t, o), x| (g + x.go, t + x.ts, o + x.other));
        format!("go {go}, ts {ts}, other {other}")
    };
    let _ = writeln!(
        o,
        "Dispatches of the org: {} in the baseline; {} in the window.\n",
        share(&r.runner_share[..half]),
        share(&r.runner_share[half..])
    );
    o.push_str("| check | status | result |\n|---|---|---|\n");
    for c in &r.checks {
        let _ = writeln!(
            o,
            "| {} | **{}** | {} |",
            md_cell(&c.title),
            c.status.as_str().to_uppercase(),
            md_cell(&c.summary)
        );
    }
    o.push_str("\n## Claim latency (seconds)\n\n");
    let _ = writeln!(
        o,
        "| {} |\n|---|---|---|---|---|---|",
        LATENCY_HEAD.join(" | ")
    );
    for row in latency_rows(r) {
        let _ = writeln!(o, "| {} |", row.join(" | "));
    }
    for c in &r.checks {
        let Some(count) = listed(c) else {
            if c.notes.is_empty() {
                continue;
            }
            let _ = writeln!(o, "\n## {} — {}\n", c.id, c.status.as_str());
            for n in &c.notes {
                let _ = writeln!(o, "- {n}");
            }
            continue;
        };
        let _ = writeln!(o, "\n## {} — {} ({count})\n", c.id, c.status.as_str());
        for n in &c.notes {
            let _ = writeln!(o, "- {n}");
        }
        for s in &c.sessions {
            let mark = if s.failing { "✗" } else { "·" };
            let _ = writeln!(o, "- {mark} `{}` {}", s.session_id, s.problem);
            for e in &s.events {
                let _ = writeln!(o, "  - `{}`", evidence_line(e));
            }
        }
    }
    o.push_str("\n## Sources\n\n| source | role | events in window | last event | longest silence (s) | status |\n|---|---|---|---|---|---|\n");
    for s in &r.sources {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            md_cell(&s.name),
            s.role,
            s.events_in_window,
            s.last_event.as_deref().unwrap_or("-"),
            s.longest_silence_seconds,
            s.status
        );
    }
    o
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;\
padding:0 1rem;color:#18181b;line-height:1.45}h1{font-size:1.4rem}h2{font-size:1.1rem;\
margin-top:2rem}.verdict{padding:1rem 1.25rem;border-radius:.5rem;font-size:1.15rem;\
margin:1rem 0}.verdict strong{font-size:1.5rem;margin-right:.75rem;letter-spacing:.05em}\
.v-pass{background:#dcfce7;border:2px solid #16a34a}.v-fail{background:#fee2e2;border:2px \
solid #dc2626}.v-inconclusive{background:#fef9c3;border:2px solid #ca8a04}table{border-collapse:\
collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #e4e4e7;padding:.35rem .5rem;\
text-align:left;vertical-align:top;font-size:.9rem}th{background:#f4f4f5}.s{font-weight:700;\
white-space:nowrap}.s-pass{color:#15803d}.s-fail{color:#b91c1c}.s-unknown{color:#a16207}\
.s-skipped{color:#71717a}code{font-size:.85em}.chart{max-width:100%;height:auto;display:block;\
margin:.5rem 0}ul.ev{margin:.25rem 0 .5rem;font-size:.85rem}details{margin:.4rem 0}\
.meta{color:#52525b;font-size:.9rem}";

pub fn html(r: &FlipReport) -> String {
    let mut o = String::new();
    let title = headline(r);
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{CSS}</style>\
         </head><body>",
        esc(&title)
    );
    let v = r.verdict.as_str();
    let _ = write!(
        o,
        "<h1>{}</h1><div id=\"verdict\" class=\"verdict v-{v}\" data-verdict=\"{v}\"><strong>{}\
         </strong>{}</div>",
        esc(&title),
        v.to_uppercase(),
        esc(&r.reason)
    );
    let _ = write!(
        o,
        "<p class=\"meta\">Window {} → {} (baseline from {}); grace {} s; claim timeout go {} s, \
         ts {} s; {}; evidence ends {}. Sessions: {} in the baseline, {} in the window ({} \
         in the grace), {} in flight at the flip.</p>",
        esc(&r.window.start),
        esc(&r.window.end),
        esc(&r.baseline.start),
        r.grace_seconds,
        r.claim_timeout_seconds.get("go").copied().unwrap_or(0.0),
        r.claim_timeout_seconds.get("ts").copied().unwrap_or(0.0),
        esc(&located(r)),
        esc(r.evidence_ends.as_deref().unwrap_or("-")),
        r.sessions.baseline,
        r.sessions.window,
        r.sessions.in_grace,
        r.sessions.in_flight
    );
    o.push_str("<h2>Checks</h2><table id=\"checks\"><tr><th>check</th><th>status</th><th>result</th><th>listed</th></tr>");
    for c in &r.checks {
        let st = c.status.as_str();
        let _ = write!(
            o,
            "<tr data-check=\"{}\"><td>{}</td><td class=\"s s-{st}\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.id),
            esc(&c.title),
            st.to_uppercase(),
            esc(&c.summary),
            esc(&listed(c).unwrap_or_default())
        );
    }
    o.push_str("</table><h2>Runner share across the flip</h2>");
    o.push_str(&svg::share(r));
    o.push_str("<h2>Claim latency</h2>");
    o.push_str(&svg::latency(r));
    o.push_str("<table><tr>");
    for h in LATENCY_HEAD {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    o.push_str("</tr>");
    for row in latency_rows(r) {
        o.push_str("<tr>");
        for cell in row {
            let _ = write!(o, "<td>{}</td>", esc(&cell));
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>");
    for c in r
        .checks
        .iter()
        .filter(|c| c.sessions_total > 0 || !c.notes.is_empty())
    {
        let _ = write!(
            o,
            "<h2 id=\"{}\">{} <span class=\"s s-{}\">{}</span></h2>",
            esc(&c.id),
            esc(&c.id),
            c.status.as_str(),
            c.status.as_str().to_uppercase()
        );
        if let Some(count) = listed(c) {
            let _ = write!(o, "<p class=\"meta\">{}</p>", esc(&count));
        }
        if !c.notes.is_empty() {
            o.push_str("<ul>");
            for n in &c.notes {
                let _ = write!(o, "<li>{}</li>", esc(n));
            }
            o.push_str("</ul>");
        }
        for s in &c.sessions {
            let _ = write!(
                o,
                "<details{}><summary><code>{}</code> {}{}</summary><ul class=\"ev\">",
                if s.failing && c.status == Status::Fail {
                    " open"
                } else {
                    ""
                },
                esc(&s.session_id),
                if s.failing { "✗ " } else { "" },
                esc(&s.problem)
            );
            for e in &s.events {
                let _ = write!(o, "<li><code>{}</code></li>", esc(&evidence_line(e)));
            }
            o.push_str("</ul></details>");
        }
    }
    o.push_str("<h2>Sources</h2><table><tr><th>source</th><th>role</th><th>events in window</th><th>first event</th><th>last event</th><th>longest silence (s)</th><th>status</th></tr>");
    for s in &r.sources {
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.name),
            esc(&s.role),
            s.events_in_window,
            esc(s.first_event.as_deref().unwrap_or("-")),
            esc(s.last_event.as_deref().unwrap_or("-")),
            s.longest_silence_seconds,
            esc(&s.status)
        );
    }
    let _ = writeln!(
        o,
        "</table><p class=\"meta\">claimcheck {} · verdict {}</p></body></html>",
        env!("CARGO_PKG_VERSION"),
        r.verdict.as_str()
    );
    o
}
