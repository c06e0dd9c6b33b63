//! Renders a [`Report`] for people (text, Markdown, HTML) or machines (JSON).
//!
//! The three human forms share one layout, built once as tables: the verdict first, then
//! the summary tables, then the findings with their evidence, then ingest health.

use std::fmt::Write as _;

use super::{Finding, Report, Totals, Verdict};
use crate::html::esc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
    Html,
}

pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(report)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
            s.push('\n');
            s
        }
        Format::Text => text(report),
        Format::Markdown => markdown(report),
        Format::Html => html(report),
    }
}

struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn row(cells: &[&dyn ToString]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn seconds(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.3}"))
}

fn outcome_row(name: &str, t: &Totals) -> Vec<String> {
    row(&[
        &name,
        &t.dispatched.go,
        &t.dispatched.ts,
        &t.dispatched.other,
        &t.matched,
        &t.late,
        &t.mismatched,
        &t.unclaimed,
        &t.pending,
        &t.duplicate_claims,
    ])
}

fn tables(r: &Report) -> Vec<Table> {
    let t = &r.totals;
    let header = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let outcome_header = header(&[
        "",
        "go",
        "ts",
        "other",
        "matched",
        "late",
        "mismatched",
        "unclaimed",
        "pending",
        "duplicate",
    ]);
    let mut out = vec![
        Table {
            title: "Sessions".into(),
            header: outcome_header.clone(),
            rows: r
                .runners
                .iter()
                .map(|(runner, t)| outcome_row(runner, t))
                .chain(std::iter::once(outcome_row("all", t)))
                .collect(),
        },
        Table {
            title: "Other counts".into(),
            header: header(&[
                "orphan claims",
                "re-claims",
                "cross-runtime duplicates",
                "skew clamped",
                "re-dispatches",
                "unexpected runner",
            ]),
            rows: vec![row(&[
                &t.orphan_claims,
                &t.reclaims,
                &t.duplicate_claims_cross_runtime,
                &t.skew_clamped,
                &t.redispatches,
                &t.unexpected_runner,
            ])],
        },
        Table {
            title: "Claim latency (seconds)".into(),
            header: header(&["runner", "count", "p50", "p95", "p99", "max"]),
            rows: [
                ("go", &r.claim_latency_seconds.go),
                ("ts", &r.claim_latency_seconds.ts),
            ]
            .iter()
            .map(|(n, l)| {
                row(&[
                    n,
                    &l.count,
                    &seconds(l.p50),
                    &seconds(l.p95),
                    &seconds(l.p99),
                    &seconds(l.max),
                ])
            })
            .collect(),
        },
    ];
    if !r.orgs.is_empty() {
        out.push(Table {
            title: "By org".into(),
            header: outcome_header,
            rows: r.orgs.iter().map(|(org, t)| outcome_row(org, t)).collect(),
        });
    }
    if !r.daemons.is_empty() {
        out.push(Table {
            title: "Daemons".into(),
            header: header(&[
                "runtime",
                "worker",
                "version",
                "last heartbeat",
                "heartbeats",
                "claims",
            ]),
            rows: r
                .daemons
                .iter()
                .map(|d| {
                    row(&[
                        &d.runtime,
                        &d.worker,
                        &d.version.as_deref().unwrap_or("-"),
                        &d.last_heartbeat.as_deref().unwrap_or("-"),
                        &d.heartbeats,
                        &d.claims,
                    ])
                })
                .collect(),
        });
    }
    let i = &r.ingest;
    let mut ingest_rows: Vec<Vec<String>> = i
        .inputs
        .iter()
        .map(|x| {
            let role = match &x.default_runtime {
                Some(rt) => format!("{} ({rt})", x.role),
                None => x.role.clone(),
            };
            row(&[&x.path, &role, &x.lines, &x.events, &x.ignored, &x.rejected])
        })
        .collect();
    ingest_rows.push(row(&[
        &"total",
        &"",
        &i.lines,
        &i.events.values().sum::<u64>(),
        &i.ignored,
        &i.rejected.values().sum::<u64>(),
    ]));
    out.push(Table {
        title: "Ingest".into(),
        header: header(&["input", "role", "lines", "events", "ignored", "rejected"]),
        rows: ingest_rows,
    });
    out
}

fn ingest_notes(r: &Report) -> Vec<String> {
    let i = &r.ingest;
    let mut notes = vec![format!(
        "distinct events: {}; exact re-deliveries dropped: {}",
        i.events
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        i.duplicates
    )];
    if !i.rejected.is_empty() {
        notes.push(format!(
            "rejected lines by reason: {}",
            i.rejected
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for ex in &i.rejected_examples {
            notes.push(format!("  {} at {}", ex.reason, ex.source));
        }
    }
    if i.evicted_sessions > 0 {
        notes.push(format!(
            "{} sessions were judged early because the session cap was reached (--max-sessions)",
            i.evicted_sessions
        ));
    }
    notes
}

fn headline(r: &Report) -> String {
    let word = match r.verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Inconclusive => "INCONCLUSIVE",
    };
    format!("{word}: {}", r.reason)
}

fn context_line(r: &Report) -> String {
    let timeouts: Vec<String> = r
        .claim_timeout_seconds
        .iter()
        .map(|(k, v)| format!("{k} {v}s"))
        .collect();
    let sel = &r.selection;
    let mut parts = Vec::new();
    if let Some(orgs) = sel["orgs"].as_array().filter(|o| !o.is_empty()) {
        let names: Vec<&str> = orgs.iter().filter_map(|o| o.as_str()).collect();
        parts.push(format!("orgs {}", names.join(", ")));
    }
    for (key, label) in [
        ("since", "dispatched since"),
        ("until", "dispatched before"),
    ] {
        if let Some(t) = sel[key].as_str() {
            parts.push(format!("{label} {t}"));
        }
    }
    if let Some(r) = sel["expect_runner"].as_str() {
        parts.push(format!("expecting runner {r}"));
    }
    let selection = if parts.is_empty() {
        "all sessions".to_owned()
    } else {
        parts.join(", ")
    };
    format!(
        "selection: {selection}; evidence until {}; claim timeout {}",
        r.watermark.as_deref().unwrap_or("-"),
        timeouts.join(", "),
    )
}

fn findings_title(r: &Report) -> String {
    if r.findings_truncated {
        format!(
            "Findings ({} of {}, capped at {})",
            r.findings.len(),
            r.findings_total,
            r.findings_cap
        )
    } else {
        format!("Findings ({})", r.findings_total)
    }
}

fn finding_summary(f: &Finding) -> String {
    let latency = f
        .latency_seconds
        .map(|s| format!(", latency {s:.3}s"))
        .unwrap_or_default();
    format!(
        "{} [{}] org {} runner {} dispatched {} deadline {}{latency}",
        f.session_id,
        f.kinds.join(", "),
        f.org,
        f.runner,
        f.dispatched_at,
        f.deadline
    )
}

fn evidence_line(e: &super::Evidence) -> String {
    let mut s = format!("{:<10} {:<5} {}", e.event, e.runner, e.at);
    if let Some(w) = &e.worker {
        let _ = write!(s, " worker {w}");
    }
    if let Some(d) = &e.detail {
        let _ = write!(s, " ({d})");
    }
    let _ = write!(s, "  {}", e.source);
    s
}

fn text(r: &Report) -> String {
    let mut s = format!("claimcheck verify: {}\n{}\n", headline(r), context_line(r));
    for t in tables(r) {
        let _ = write!(s, "\n{}\n", t.title);
        let mut widths: Vec<usize> = t.header.iter().map(String::len).collect();
        let numeric: Vec<bool> = (0..t.header.len())
            .map(|i| {
                t.rows.iter().all(|r| {
                    r.get(i)
                        .is_some_and(|c| c == "-" || c.parse::<f64>().is_ok())
                })
            })
            .collect();
        for row in &t.rows {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        for cells in std::iter::once(&t.header).chain(&t.rows) {
            let line: Vec<String> = cells
                .iter()
                .zip(&widths)
                .zip(&numeric)
                .map(|((c, w), num)| {
                    if *num {
                        format!("{c:>w$}")
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect();
            let _ = writeln!(s, "  {}", line.join("  ").trim_end());
        }
    }
    let _ = write!(s, "\n{}\n", findings_title(r));
    for f in &r.findings {
        let _ = writeln!(s, "  {}", finding_summary(f));
        for e in &f.events {
            let _ = writeln!(s, "      {}", evidence_line(e));
        }
    }
    s.push_str("\nIngest health\n");
    for n in ingest_notes(r) {
        let _ = writeln!(s, "  {n}");
    }
    s
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

fn markdown(r: &Report) -> String {
    let mut s = format!(
        "## claimcheck verify: **{}**\n\n{}\n",
        headline(r),
        md_escape(&context_line(r))
    );
    for t in tables(r) {
        let _ = write!(
            s,
            "\n### {}\n\n| {} |\n|{}\n",
            t.title,
            t.header.join(" | "),
            "---|".repeat(t.header.len())
        );
        for row in &t.rows {
            let cells: Vec<String> = row.iter().map(|c| md_escape(c)).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
    }
    let _ = write!(s, "\n### {}\n\n", findings_title(r));
    for f in &r.findings {
        let _ = writeln!(
            s,
            "- `{}` **{}** org `{}` runner `{}` dispatched {}",
            f.session_id,
            f.kinds.join(", "),
            f.org,
            f.runner,
            f.dispatched_at
        );
        for e in &f.events {
            let _ = writeln!(s, "  - `{}`", evidence_line(e));
        }
    }
    s.push_str("\n### Ingest health\n\n");
    for n in ingest_notes(r) {
        let _ = writeln!(s, "- {}", md_escape(n.trim()));
    }
    s
}

fn html(r: &Report) -> String {
    let color = match r.verdict {
        Verdict::Pass => "#1a7f37",
        Verdict::Fail => "#cf222e",
        Verdict::Inconclusive => "#9a6700",
    };
    let mut s = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>claimcheck verify: {verdict}</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:2em;color:#1f2328}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         td,th{{border:1px solid #d0d7de;padding:3px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         .verdict{{font-size:1.4em;font-weight:600;color:{color}}}code{{font-size:12px}}</style></head><body>\
         <p class=\"verdict\" id=\"verdict\">{headline}</p><p>{context}</p>",
        verdict = r.verdict.as_str(),
        headline = esc(&headline(r)),
        context = esc(&context_line(r)),
    );
    for t in tables(r) {
        let _ = write!(s, "<h3>{}</h3><table><tr>", esc(&t.title));
        for h in &t.header {
            let _ = write!(s, "<th>{}</th>", esc(h));
        }
        s.push_str("</tr>");
        for row in &t.rows {
            s.push_str("<tr>");
            for c in row {
                let _ = write!(s, "<td>{}</td>", esc(c));
            }
            s.push_str("</tr>");
        }
        s.push_str("</table>");
    }
    let _ = write!(s, "<h3>{}</h3><ul>", esc(&findings_title(r)));
    for f in &r.findings {
        let _ = write!(s, "<li>{}<ul>", esc(&finding_summary(f)));
        for e in &f.events {
            let _ = write!(s, "<li><code>{}</code></li>", esc(&evidence_line(e)));
        }
        s.push_str("</ul></li>");
    }
    s.push_str("</ul><h3>Ingest health</h3><ul>");
    for n in ingest_notes(r) {
        let _ = write!(s, "<li>{}</li>", esc(n.trim()));
    }
    s.push_str("</ul></body></html>\n");
    s
}
