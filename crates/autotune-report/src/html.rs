//! The report page: inline CSS, inline SVG, no script, no external resource.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use autotune_core::Ledger;
use autotune_curriculum::StopReason;
use autotune_experiment::{comparison_table, median, RunSummary, RATIO_COLUMN, REACHED_COLUMN};

use crate::plots::{svg, FigureKind, Figures, XAxis};
use crate::RunData;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = r#"
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; margin: 0; color: #1d1d1f; background: #f6f6f4; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 34px 0 6px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p, li { font-size: 14px; line-height: 1.45; }
.meta { color: #555; font-size: 13px; margin: 0 0 8px; }
.how { color: #444; font-size: 13px; margin: 4px 0 10px; }
figure { margin: 8px 0; }
figure svg { max-width: 100%; height: auto; display: block; border: 1px solid #e4e4e4; }
table { border-collapse: collapse; font-size: 12.5px; margin: 6px 0 10px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e6e6e6; text-align: right; white-space: nowrap; }
th { background: #f0f0ee; font-weight: 600; white-space: normal; vertical-align: bottom; }
table.bill td, table.bill th { padding: 3px 6px; font-size: 12px; }
td.wrap { text-align: left; white-space: normal; word-break: break-all; }
pre.config { max-height: 460px; overflow: auto; }
td:first-child, th:first-child { text-align: left; }
td.good { color: #11772a; font-weight: 600; }
td.bad { color: #b3261e; font-weight: 600; }
.ratio { display: block; color: #777; font-size: 11px; }
.ratio.cheaper { color: #11772a; }
.ratio.dearer { color: #b3261e; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.problems { background: #fff4d6; border: 1px solid #e0b84c; padding: 8px 14px; margin: 14px 0; }
.problems li { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; }
pre { background: #f4f4f2; padding: 10px 12px; font-size: 12px; overflow-x: auto; border: 1px solid #e4e4e4; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.fits li { font-family: "DejaVu Sans Mono", monospace; font-size: 11.5px; white-space: pre-wrap; }
.scroll { overflow-x: auto; }
"#;

fn hex(c: plotters::style::RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

fn ratio_num(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}")
    } else if r >= 0.1 {
        format!("{r:.2}")
    } else {
        format!("{r:.3}")
    }
}

fn figure(kind: FigureKind, figs: &Figures) -> String {
    match svg(kind, figs) {
        Ok(s) => format!("<figure id=\"fig-{}\">{s}</figure>\n", kind.id()),
        Err(e) => format!("<p class=\"problems\">{}</p>\n", esc(&e)),
    }
}

/// The whole page.
pub fn render_html(data: &RunData) -> String {
    let figs = Figures::new(data);
    let (task, d) = data.task();
    let eps = data.eps();
    let summaries = data.summaries();
    let seeds: Vec<u64> = {
        let mut s: Vec<u64> = summaries.iter().map(|r| r.seed).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let mut h = String::new();
    let title = format!(
        "AutoTune report: {task}{}",
        d.map_or(String::new(), |d| format!(" (d = {d})"))
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let _ = writeln!(
        h,
        "<p class=\"meta\">{} strategies · eps {} · {} seeds · run directory <code>{}</code>{}{}</p>",
        figs.strategies.len(),
        esc(&eps.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")),
        seeds.len(),
        esc(&data.dir.display().to_string()),
        data.provenance("created")
            .map_or(String::new(), |c| format!(" · created {}", esc(&c))),
        data.provenance("autotune_version").map_or(String::new(), |v| format!(
            " · autotune {} ({})",
            esc(&v),
            esc(&data.provenance("git_commit").unwrap_or_default())
        )),
    );
    if !data.problems.is_empty() {
        h += "<div class=\"problems\" id=\"problems\"><strong>Problems reading the run directory</strong> (the rest is drawn from what could be read):<ul>\n";
        for p in &data.problems {
            let _ = writeln!(h, "<li>{}</li>", esc(&p.to_string()));
        }
        h += "</ul></div>\n";
    }
    comparison_section(&mut h, data);
    // Error curves.
    h += "<h2 id=\"error-vs-demos\">Held-out error against demonstrations (teacher calls, or pi_ref samples the verifier accepted)</h2>\n";
    if FigureKind::ErrorVs(XAxis::TeacherDemos).available(&figs) {
        h += "<p class=\"how\">One line per strategy: the median held-out error over seeds after each phase, at the cumulative number of teacher demonstrations bought (runs at the smallest eps; a finished run keeps its last model); the band spans the seeds. Dots: the median demonstrations needed to reach each target eps. Dashed: the scaling law fitted to the line, <code>err ≈ c·d/n</code> (the non-adaptive <code>d/eps</code> shape) or <code>n ≈ c·d·ln(1/err) + b</code> (the autocurriculum's <code>d log(1/eps)</code> shape), whichever fits better. Errors of zero are drawn at half a held-out prompt.</p>\n";
        h += &figure(FigureKind::ErrorVs(XAxis::TeacherDemos), &figs);
        fit_list(&mut h, &figs.demos, "n", figs.dimension);
    } else {
        h += "<p class=\"how\">No evaluation records to draw (see the problems above).</p>\n";
    }
    if FigureKind::ErrorVs(XAxis::Rollouts).available(&figs) {
        h += "<h2 id=\"error-vs-rollouts\">Held-out error against rollouts</h2>\n<p class=\"how\">As above, against every sampled chain of thought that was verifier-checked.</p>\n";
        h += &figure(FigureKind::ErrorVs(XAxis::Rollouts), &figs);
        fit_list(&mut h, &figs.rollouts, "r", figs.dimension);
    }
    // Ranks.
    h += "<h2 id=\"rank-distribution\">Where the filter looks: ranks of the candidate prompts per phase</h2>\n";
    if FigureKind::Ranks.available(&figs) {
        h += "<p class=\"how\">Every prompt the filter tested in a phase, by its rank: how many ensemble members (or samples) answered it correctly, from red (all wrong) to green (all right); one seed per strategy. As the ensemble learns, the mass moves from the unknown to the known, and the mask's weight follows the prompts that are not yet known. Strategies that test nothing (uniform) have no bars.</p>\n";
        h += &figure(FigureKind::Ranks, &figs);
    } else {
        h += "<p class=\"how\">No phase tested its candidates (or no phase records could be read).</p>\n";
    }
    // Acceptance.
    h += "<h2 id=\"acceptance\">Filter acceptance rate and the stop certificate</h2>\n";
    if FigureKind::Acceptance.available(&figs) {
        h += "<p class=\"how\">The share of tested candidates the filter accepted (and the teacher was then asked about), per phase, median over seeds with the spread as a band. The filter stops with a certificate when it rejects <code>M = ⌈(c/eps)·ln(1/δ)⌉</code> candidates in a row: the output model's error is then at most eps with probability 1 − δ. Crosses mark runs that stopped that way. Runs in a comparison usually stop earlier, as soon as the held-out error reaches eps.</p>\n";
        h += &figure(FigureKind::Acceptance, &figs);
    }
    stops_table(&mut h, data, &figs);
    bill_section(&mut h, data, &summaries, &figs);
    config_section(&mut h, data);
    h += "</main>\n</body>\n</html>\n";
    h
}

fn fit_list(h: &mut String, curves: &[crate::Curve], x: &str, d: Option<usize>) {
    let items: Vec<String> = curves
        .iter()
        .filter_map(|c| {
            c.fit
                .as_ref()
                .map(|f| format!("{:<22} {}", c.strategy, f.describe(x, d)))
        })
        .collect();
    if !items.is_empty() {
        h.push_str("<ul class=\"fits\">\n");
        for i in items {
            let _ = writeln!(h, "<li>{}</li>", esc(&i));
        }
        h.push_str("</ul>\n");
    }
}

fn comparison_section(h: &mut String, data: &RunData) {
    h.push_str("<h2 id=\"comparison\">Comparison</h2>\n");
    let Some(c) = &data.comparison else {
        h.push_str("<p class=\"how\">comparison.json could not be read; the bill below is computed from the end records of metrics.jsonl.</p>\n");
        return;
    };
    let t = comparison_table(c);
    let _ = writeln!(
        h,
        "<p class=\"how\">{}. Costs are medians over seeds at the first checkpoint that reached eps. Total wall time {:.1} s.</p>",
        esc(&t.title),
        c.total_wall_seconds
    );
    h.push_str("<table>\n<tr>");
    for col in &t.header {
        let _ = write!(h, "<th>{}</th>", esc(col));
    }
    h.push_str("</tr>\n");
    for (i, row) in t.rows.iter().enumerate() {
        h.push_str("<tr>");
        for (j, cell) in row.iter().enumerate() {
            let class = if j == RATIO_COLUMN && cell.ends_with("fewer") {
                " class=\"good\""
            } else if (j == RATIO_COLUMN && cell.ends_with("more"))
                || (j == REACHED_COLUMN && !t.all_reached[i])
            {
                " class=\"bad\""
            } else {
                ""
            };
            if j == 0 {
                let col = crate::strategy_color(&c.strategies, cell);
                let _ = write!(
                    h,
                    "<td><span class=\"swatch\" style=\"background:{}\"></span>{}</td>",
                    hex(col),
                    esc(cell)
                );
            } else {
                let _ = write!(h, "<td{class}>{}</td>", esc(cell));
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    if !t.fits.is_empty() {
        h.push_str("<p class=\"how\">Scaling of the median demonstrations with eps (fits over the eps values of this comparison):</p>\n<ul class=\"fits\">\n");
        for f in &t.fits {
            let _ = writeln!(h, "<li>{}</li>", esc(f));
        }
        h.push_str("</ul>\n");
    }
}

fn stop_name(s: &StopReason) -> String {
    match s {
        StopReason::Certificate { .. } => "certificate".into(),
        StopReason::FilterExhausted { .. } => "filter exhausted".into(),
        StopReason::MaxPhases => "max phases".into(),
        StopReason::Budget { what } => format!("budget ({what})"),
        StopReason::Observer => "reached eps".into(),
        StopReason::GaveUp { failing, .. } => format!("gave up ({failing} failing)"),
    }
}

fn stops_table(h: &mut String, data: &RunData, figs: &Figures) {
    let summaries = data.summaries();
    if summaries.is_empty() {
        return;
    }
    // Certificate sizes from the resolved configuration.
    let mut certs: BTreeMap<(String, String), i64> = BTreeMap::new();
    if let Some(arr) = data
        .config
        .as_ref()
        .and_then(|c| c.get("strategy")?.as_array().cloned())
    {
        for s in arr {
            let name = s
                .get("config")
                .and_then(|c| c.get("name")?.as_str().map(String::from));
            let eps = s.get("eps").and_then(|e| e.as_float());
            let m = s.get("certificate_draws").and_then(|m| m.as_integer());
            if let (Some(n), Some(e), Some(m)) = (name, eps, m) {
                certs.insert((n, e.to_string()), m);
            }
        }
    }
    h.push_str("<table>\n<tr><th>strategy</th><th>eps</th><th>certificate M</th><th style=\"text-align:left\">how the runs stopped</th></tr>\n");
    for s in &figs.strategies {
        for e in data.eps() {
            let cell: Vec<&RunSummary> = summaries
                .iter()
                .filter(|r| &r.strategy == s && r.eps == e)
                .collect();
            if cell.is_empty() {
                continue;
            }
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for r in &cell {
                *counts.entry(stop_name(&r.stop)).or_default() += 1;
            }
            let stops = counts
                .iter()
                .map(|(k, v)| format!("{k} ×{v}"))
                .collect::<Vec<_>>()
                .join(", ");
            let m = certs
                .get(&(s.clone(), e.to_string()))
                .map_or("-".into(), |m| m.to_string());
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{e}</td><td>{m}</td><td style=\"text-align:left\">{}</td></tr>",
                esc(s),
                esc(&stops)
            );
        }
    }
    h.push_str("</table>\n");
}

/// Column headers of the bill, in the order of `Ledger::fields`.
const BILL: [&str; 14] = [
    "teacher calls",
    "teacher tokens",
    "verifier calls",
    "student gens",
    "student tokens",
    "train steps",
    "train examples",
    "prompts drawn",
    "wall s",
    "teacher cache hits",
    "API requests",
    "API cache hits",
    "API tokens",
    "API cost $",
];

/// Bill columns always shown; the API columns appear when some run used a model server.
const BILL_ALWAYS: usize = 9;

fn bill_section(h: &mut String, data: &RunData, summaries: &[RunSummary], figs: &Figures) {
    h.push_str("<h2 id=\"bill\">The bill</h2>\n");
    if summaries.is_empty() {
        h.push_str("<p class=\"how\">No finished run could be read.</p>\n");
        return;
    }
    h.push_str("<p class=\"how\">Every cost the ledger counts, median over seeds, at the first checkpoint that reached eps (at the end of the run for seeds that did not reach it). Below each number: its ratio to the uniform baseline at the same eps (green: cheaper, red: dearer).</p>\n<div class=\"scroll\"><table class=\"bill\">\n<tr><th>strategy</th><th>eps</th><th>reached</th>");
    let cost = |r: &RunSummary| -> Ledger {
        r.cost_to_eps
            .clone()
            .unwrap_or_else(|| r.final_ledger.clone())
    };
    // The API columns only when some run used a model server.
    let shown: Vec<usize> = (0..BILL.len())
        .filter(|&i| i < BILL_ALWAYS || summaries.iter().any(|r| cost(r).fields()[i].1 > 0.0))
        .collect();
    for &i in &shown {
        let _ = write!(h, "<th>{}</th>", BILL[i]);
    }
    h.push_str("</tr>\n");
    let medians = |s: &str, e: f64| -> Option<(usize, usize, Vec<f64>)> {
        let cell: Vec<&RunSummary> = summaries
            .iter()
            .filter(|r| r.strategy == s && r.eps == e)
            .collect();
        if cell.is_empty() {
            return None;
        }
        let ledgers: Vec<Ledger> = cell.iter().map(|r| cost(r)).collect();
        let vals = (0..BILL.len())
            .map(|i| median(ledgers.iter().map(|l| l.fields()[i].1).collect()))
            .collect();
        Some((cell.iter().filter(|r| r.reached).count(), cell.len(), vals))
    };
    for e in data.eps() {
        let uni = medians("uniform", e);
        for s in &figs.strategies {
            let Some((reached, n, vals)) = medians(s, e) else {
                continue;
            };
            let _ = write!(
                h,
                "<tr><td><span class=\"swatch\" style=\"background:{}\"></span>{}</td><td>{e}</td><td{}>{reached}/{n}</td>",
                hex(figs.color(s)),
                esc(s),
                if reached < n { " class=\"bad\"" } else { "" }
            );
            for &i in &shown {
                let v = &vals[i];
                let ratio = match &uni {
                    Some((_, _, u)) if s != "uniform" && u[i] > 0.0 => {
                        let r = v / u[i];
                        let class = if r < 1.0 {
                            "cheaper"
                        } else if r > 1.0 {
                            "dearer"
                        } else {
                            ""
                        };
                        format!("<span class=\"ratio {class}\">×{}</span>", ratio_num(r))
                    }
                    _ => String::new(),
                };
                let _ = write!(h, "<td>{}{ratio}</td>", num(*v));
            }
            h.push_str("</tr>\n");
        }
    }
    h.push_str("</table></div>\n");
}

fn config_section(h: &mut String, data: &RunData) {
    h.push_str("<h2 id=\"configuration\">Configuration and reproduction</h2>\n");
    let rows = [
        ("command", "command"),
        ("autotune version", "autotune_version"),
        ("git commit", "git_commit"),
        ("rustc", "rustc"),
        ("target", "target"),
        ("threads", "threads"),
        ("created", "created"),
    ];
    if data.config.is_some() {
        h.push_str("<table>\n");
        for (label, key) in rows {
            if let Some(v) = data.provenance(key) {
                let _ = writeln!(
                    h,
                    "<tr><td>{label}</td><td class=\"wrap\"><code>{}</code></td></tr>",
                    esc(&v)
                );
            }
        }
        h.push_str("</table>\n<p class=\"how\">To reproduce: check out the commit above, run the command (same seeds, same numbers; wall seconds vary), then <code>autotune report</code> on its run directory. The resolved configuration, with every default filled in:</p>\n");
    }
    match &data.config_text {
        Some(t) => {
            let _ = writeln!(
                h,
                "<p class=\"how\"><code>config.toml</code>:</p>\n<pre class=\"config\">{}</pre>",
                esc(t)
            );
        }
        None => h.push_str("<p class=\"how\">config.toml could not be read.</p>\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn an_empty_run_directory_still_renders_a_page_that_says_so() {
        let tmp = std::env::temp_dir().join(format!("autotune-html-empty-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let data = RunData::load(&tmp).unwrap();
        assert_eq!(data.problems.len(), 3, "{:?}", data.problems);
        let page = render_html(&data);
        assert!(page.contains("Problems reading the run directory"));
        assert!(page.contains("No finished run could be read"));
        std::fs::remove_dir_all(&tmp).ok();
    }
}
