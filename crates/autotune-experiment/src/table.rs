//! The comparison table as aligned plain text.

use crate::CompareReport;

fn num(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Renders the comparison: one row per (strategy, eps), then the scaling fits.
pub fn render_table(r: &CompareReport) -> String {
    let header = [
        "strategy",
        "eps",
        "reached",
        "demos med",
        "[min, max]",
        "x uniform",
        "verifier",
        "student gens",
        "train steps",
        "wall s",
        "final err",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for a in &r.results {
        let uni = r
            .results
            .iter()
            .find(|u| u.strategy == "uniform" && u.eps == a.eps)
            .and_then(|u| u.demos_median);
        let ratio = match (uni, a.demos_median) {
            (Some(u), Some(d)) if a.strategy != "uniform" && d > 0.0 => {
                format!("{:.1}x fewer", u / d)
            }
            _ => String::new(),
        };
        rows.push(vec![
            a.strategy.clone(),
            format!("{}", a.eps),
            format!("{}/{}", a.reached, a.seeds),
            a.demos_median.map_or("-".into(), num),
            format!(
                "[{}, {}]",
                a.demos_min.map_or("-".into(), |x| num(x as f64)),
                a.demos_max.map_or("-".into(), |x| num(x as f64))
            ),
            ratio,
            num(a.verifier_calls_median),
            num(a.student_generations_median),
            num(a.training_steps_median),
            format!("{:.2}", a.wall_seconds_median),
            format!("{:.4}", a.final_error_median),
        ]);
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = format!(
        "task {} (d = {}), {} seeds from {}; demos = teacher demonstrations to reach held-out error <= eps\n",
        r.task, r.dimension, r.seeds, r.base_seed
    );
    out += &line(header.iter().map(|s| s.to_string()).collect());
    out.push('\n');
    out += &line(widths.iter().map(|w| "-".repeat(*w)).collect());
    out.push('\n');
    for row in rows {
        out += &line(row);
        out.push('\n');
    }
    if r.eps.len() >= 2 {
        out += "\nscaling of median demos with eps:\n";
        for f in &r.fits {
            let growth = f
                .growth
                .iter()
                .map(|(a, b, g)| format!("{a}->{b}: x{g:.2}"))
                .collect::<Vec<_>>()
                .join(", ");
            let fit = |l: &Option<crate::LinearFit>| {
                l.map_or("-".into(), |l| {
                    format!("{:.1} + {:.3}*x (R2 {:.2})", l.intercept, l.slope, l.r2)
                })
            };
            out += &format!(
                "  {:<22} log-log slope {:>5}  | vs ln(1/eps): {} | vs 1/eps: {} | {}\n",
                f.strategy,
                f.loglog_slope.map_or("-".into(), |s| format!("{s:.2}")),
                fit(&f.vs_log_inv_eps),
                fit(&f.vs_inv_eps),
                growth
            );
        }
    }
    out
}
