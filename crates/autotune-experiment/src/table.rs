//! The comparison table as aligned plain text.

use crate::CompareReport;

/// `N.Nx fewer` (`base / x`) or `N.Nx more` (`x / base`), with `decimals` digits; empty when
/// either is missing or not positive.
pub(crate) fn ratio_text(base: Option<f64>, x: Option<f64>, decimals: usize) -> String {
    match (base, x) {
        (Some(u), Some(d)) if u > 0.0 && d > 0.0 && u >= d => {
            format!("{:.decimals$}x fewer", u / d)
        }
        (Some(u), Some(d)) if u > 0.0 && d > 0.0 => format!("{:.decimals$}x more", d / u),
        _ => String::new(),
    }
}

/// `[min, max]`, `-` for a missing end.
pub(crate) fn range_text(min: Option<u64>, max: Option<u64>) -> String {
    let end = |x: Option<u64>| x.map_or("-".into(), |x| num(x as f64));
    format!("[{}, {}]", end(min), end(max))
}

pub(crate) fn num(x: f64) -> String {
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

/// The comparison as cells: one row per (strategy, eps).
#[derive(Clone, Debug)]
pub struct Table {
    /// What the table shows (one line).
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Per row: whether every seed reached eps.
    pub all_reached: Vec<bool>,
    /// The scaling fits, one line per strategy (empty with fewer than two eps values).
    pub fits: Vec<String>,
    /// Per-cell notes: aborted phases, plain error of stochastic outputs, the certificate's
    /// false-certificate count.
    pub notes: Vec<String>,
}

/// Column of the "x uniform" ratio in [`Table`].
pub const RATIO_COLUMN: usize = 5;
/// Column of the "reached" count in [`Table`].
pub const REACHED_COLUMN: usize = 2;

/// Builds the comparison table of `r`.
pub fn comparison_table(r: &CompareReport) -> Table {
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
    let rl = r.results.iter().any(|a| a.reference_samples_median > 0.0);
    let mut header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    if rl {
        header.extend(
            [
                "rollouts med",
                "[min, max]",
                "x rft-uniform",
                "pi_ref samples",
            ]
            .map(String::from),
        );
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for a in &r.results {
        // The baseline's median at this eps (none on the baseline's own row).
        let base = |name: &str, f: &dyn Fn(&crate::Aggregate) -> Option<f64>| {
            r.results
                .iter()
                .find(|u| u.strategy == name && u.eps == a.eps && a.strategy != name)
                .and_then(f)
        };
        let mut row = vec![
            a.strategy.clone(),
            format!("{}", a.eps),
            format!("{}/{}", a.reached, a.seeds),
            a.demos_median.map_or("-".into(), num),
            range_text(a.demos_min, a.demos_max),
            ratio_text(base("uniform", &|u| u.demos_median), a.demos_median, 1),
            num(a.verifier_calls_median),
            num(a.student_generations_median),
            num(a.training_steps_median),
            format!("{:.2}", a.wall_seconds_median),
            format!("{:.4}", a.final_error_median),
        ];
        if rl {
            row.extend([
                a.rollouts_median.map_or("-".into(), num),
                range_text(a.rollouts_min, a.rollouts_max),
                // Only against strategies without a teacher: an SFT strategy's rollouts leave out
                // the demonstrations it bought.
                if a.reference_samples_median > 0.0 {
                    ratio_text(
                        base("rft-uniform", &|u| u.rollouts_median),
                        a.rollouts_median,
                        1,
                    )
                } else {
                    String::new()
                },
                num(a.reference_samples_median),
            ]);
        }
        rows.push(row);
    }
    let mut cell_notes = Vec::new();
    // Notes for the paper's strategies: aborted phases, and the plain error of stochastic
    // outputs beside their own metric.
    for a in &r.results {
        let mut notes: Vec<String> = Vec::new();
        if a.aborted_phases_median > 0.0 {
            notes.push(format!(
                "aborted phases (median) {}",
                num(a.aborted_phases_median)
            ));
        }
        if let Some(p) = a.final_plain_error_median {
            notes.push(format!(
                "final err is Pr_x[Acc_x < accuracy]; plain error (one sampled answer) {p:.4}"
            ));
        }
        // The stop certificate's promise: a certified model has error <= eps with probability
        // at least 1 - delta. Certified runs whose held-out error is above eps break it.
        let cell: Vec<_> = r
            .runs
            .iter()
            .filter(|x| x.strategy == a.strategy && x.eps == a.eps)
            .collect();
        let certified: Vec<_> = cell
            .iter()
            .filter(|x| matches!(x.stop, autotune_curriculum::StopReason::Certificate { .. }))
            .collect();
        if !certified.is_empty() {
            let false_certs = certified.iter().filter(|x| x.final_error > a.eps).count();
            let worst = certified.iter().map(|x| x.final_error).fold(0.0, f64::max);
            notes.push(format!(
                "certified {}/{} runs, {} above eps (false certificates, {:.1}%), worst error {:.4}, demos at stop (median) {}",
                certified.len(),
                cell.len(),
                false_certs,
                100.0 * false_certs as f64 / certified.len() as f64,
                worst,
                num(a.demos_at_stop_median)
            ));
        }
        if !notes.is_empty() {
            cell_notes.push(format!(
                "{:<22} eps {}: {}",
                a.strategy,
                a.eps,
                notes.join("; ")
            ));
        }
    }
    let notes = cell_notes;
    let mut fits = Vec::new();
    if r.eps.len() >= 2 {
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
            fits.push(format!(
                "{:<22} log-log slope {:>5}  | vs ln(1/eps): {} | vs 1/eps: {} | {}",
                f.strategy,
                f.loglog_slope.map_or("-".into(), |s| format!("{s:.2}")),
                fit(&f.vs_log_inv_eps),
                fit(&f.vs_inv_eps),
                growth
            ));
            if !f.rollouts_growth.is_empty() {
                fits.push(format!(
                    "{:<22} rollouts: {}",
                    "",
                    f.rollouts_growth
                        .iter()
                        .map(|(a, b, g)| format!("{a}->{b}: x{g:.2}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    if let Some(first) = r.slices_at_budget.first() {
        fits.push(format!(
            "held-out error per slice at {} demonstrations (the cheapest strategy's median to eps = {}), medians over seeds:",
            num(first.budget_demos),
            first.eps
        ));
        let mut labels: Vec<&str> = Vec::new();
        for s in &r.slices_at_budget {
            for (l, _, _) in &s.slices {
                if !labels.contains(&l.as_str()) {
                    labels.push(l);
                }
            }
        }
        labels.sort_by(|a, b| crate::slice_order(a, b));
        let mut head = format!("{:<22} {:>9}", "strategy", "all");
        for l in &labels {
            head.push_str(&format!(" {l:>10}"));
        }
        fits.push(head);
        let mut counts = format!(
            "{:<22} {:>9}",
            "(held-out prompts)",
            r.slices_at_budget[0]
                .slices
                .iter()
                .map(|x| x.1)
                .sum::<usize>()
        );
        for l in &labels {
            let n = r.slices_at_budget[0]
                .slices
                .iter()
                .find(|x| x.0 == *l)
                .map_or(0, |x| x.1);
            counts.push_str(&format!(" {n:>10}"));
        }
        fits.push(counts);
        for s in &r.slices_at_budget {
            let mut line = format!("{:<22} {:>9.4}", s.strategy, s.error_median);
            for l in &labels {
                match s.slices.iter().find(|x| x.0 == *l) {
                    Some((_, _, e)) => line.push_str(&format!(" {e:>10.4}")),
                    None => line.push_str(&format!(" {:>10}", "-")),
                }
            }
            fits.push(line);
        }
    }
    Table {
        title: format!(
            "task {}{} (d = {}), {} seeds from {}; demos = {} to reach held-out error <= eps{}",
            r.task,
            r.student
                .as_ref()
                .map_or(String::new(), |s| format!(", student: {s}")),
            r.dimension,
            r.seeds,
            r.base_seed,
            if rl {
                "demonstrations (teacher calls, or pi_ref samples the verifier accepted)"
            } else {
                "teacher demonstrations"
            },
            if rl {
                "; rollouts = pi_ref samples + student generations, each verifier-checked"
            } else {
                ""
            }
        ),
        header,
        all_reached: r.results.iter().map(|a| a.reached == a.seeds).collect(),
        rows,
        fits,
        notes,
    }
}

impl Table {
    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        widths
    }

    /// Aligned text; `paint(row, column, padded_cell)` may decorate each padded cell (row
    /// `None` is the header), e.g. with terminal colours.
    pub fn render(&self, paint: &dyn Fn(Option<usize>, usize, String) -> String) -> String {
        let widths = self.widths();
        let line = |row: Option<usize>, cells: &[String]| -> String {
            cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    let padded = if i == 0 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    };
                    paint(row, i, padded)
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let mut out = format!("{}\n", self.title);
        out += &line(None, &self.header);
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out += &rule.join("  ");
        out.push('\n');
        for (i, row) in self.rows.iter().enumerate() {
            out += &line(Some(i), row);
            out.push('\n');
        }
        if !self.notes.is_empty() {
            out += "\nnotes:\n";
            for n in &self.notes {
                out += &format!("  {n}\n");
            }
        }
        if !self.fits.is_empty() {
            out += "\nscaling of median demos with eps:\n";
            for f in &self.fits {
                out += &format!("  {f}\n");
            }
        }
        out
    }

    /// A GitHub-flavoured Markdown table, with the fits as a list below it.
    pub fn markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = format!("{}\n\n", self.title);
        out += &format!(
            "| {} |\n",
            self.header
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        out += &format!(
            "|{}\n",
            self.header
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
                .collect::<String>()
        );
        for row in &self.rows {
            out += &format!(
                "| {} |\n",
                row.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
            );
        }
        if !self.notes.is_empty() {
            out += "\nNotes:\n\n";
            for n in &self.notes {
                out += &format!(
                    "- `{}`\n",
                    n.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
        }
        if !self.fits.is_empty() {
            out += "\nScaling of median demos with eps:\n\n";
            for f in &self.fits {
                out += &format!(
                    "- `{}`\n",
                    f.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
        }
        out
    }
}

/// Renders the comparison as plain aligned text: one row per (strategy, eps), then the
/// scaling fits.
pub fn render_table(r: &CompareReport) -> String {
    comparison_table(r).render(&|_, _, cell| cell)
}

/// Renders the comparison as Markdown.
pub fn render_markdown(r: &CompareReport) -> String {
    comparison_table(r).markdown()
}

/// One row of the burn-in table: a strategy at one (kappa, eps), medians over seeds.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BurnInRow {
    pub kappa: f64,
    pub strategy: String,
    pub eps: f64,
    pub seeds: usize,
    pub reached: usize,
    /// Rollouts to eps (pi_ref samples + student generations); null if the median seed did
    /// not reach eps.
    pub rollouts_median: Option<f64>,
    pub reference_samples_median: f64,
    pub student_generations_median: f64,
    pub demos_median: Option<f64>,
}

/// The rows of the burn-in table, from one comparison per kappa.
pub fn burn_in_rows(reports: &[(f64, CompareReport)]) -> Vec<BurnInRow> {
    reports
        .iter()
        .flat_map(|(k, r)| {
            r.results.iter().map(move |a| BurnInRow {
                kappa: *k,
                strategy: a.strategy.clone(),
                eps: a.eps,
                seeds: a.seeds,
                reached: a.reached,
                rollouts_median: a.rollouts_median,
                reference_samples_median: a.reference_samples_median,
                student_generations_median: a.student_generations_median,
                demos_median: a.demos_median,
            })
        })
        .collect()
}

/// The burn-in table: rollouts to reach each eps for each kappa, split into pi_ref samples
/// (the kappa part) and student generations (the filter's tests), with the growth in eps and
/// the slope in kappa of each part.
pub fn burn_in_table(reports: &[(f64, CompareReport)]) -> String {
    let rows = burn_in_rows(reports);
    let seeds = rows.first().map_or(0, |r| r.seeds);
    let mut out = format!(
        "burn-in: rollouts to reach held-out error <= eps (medians over {seeds} seeds); \
         rollouts = pi_ref samples + student generations\n"
    );
    out.push_str(&format!(
        "{:>6}  {:<14} {:>6} {:>7} {:>10} {:>10} {:>10} {:>9} {:>13} {:>11}\n",
        "kappa",
        "strategy",
        "eps",
        "reached",
        "rollouts",
        "pi_ref",
        "student",
        "demos",
        "rollouts*eps",
        "pi_ref/demo"
    ));
    out.push_str(&format!(
        "{:>6}  {:<14} {:>6} {:>7} {:>10} {:>10} {:>10} {:>9} {:>13} {:>11}\n",
        "", "", "", "", "", "", "", "", "/kappa", ""
    ));
    for r in &rows {
        let norm = r
            .rollouts_median
            .map_or("-".into(), |x| format!("{:.2}", x * r.eps / r.kappa));
        let per_demo = r.demos_median.filter(|d| *d > 0.0).map_or("-".into(), |d| {
            format!("{:.1}", r.reference_samples_median / d)
        });
        out.push_str(&format!(
            "{:>6}  {:<14} {:>6} {:>7} {:>10} {:>10} {:>10} {:>9} {:>13} {:>11}\n",
            r.kappa,
            r.strategy,
            r.eps,
            format!("{}/{}", r.reached, r.seeds),
            r.rollouts_median.map_or("-".into(), num),
            num(r.reference_samples_median),
            num(r.student_generations_median),
            r.demos_median.map_or("-".into(), num),
            norm,
            per_demo
        ));
    }
    let mut strategies: Vec<&str> = Vec::new();
    let mut eps: Vec<f64> = Vec::new();
    for r in &rows {
        if !strategies.contains(&r.strategy.as_str()) {
            strategies.push(&r.strategy);
        }
        if !eps.contains(&r.eps) {
            eps.push(r.eps);
        }
    }
    eps.sort_by(|a, b| b.total_cmp(a));
    let find = |s: &str, k: f64, e: f64| {
        rows.iter()
            .find(|r| r.strategy == s && r.kappa == k && r.eps == e)
    };
    if eps.len() >= 2 {
        let (e0, e1) = (eps[0], eps[eps.len() - 1]);
        out.push_str(&format!(
            "\ngrowth from eps {e0} to {e1} (x): total rollouts | pi_ref samples | student generations\n"
        ));
        for s in &strategies {
            for (k, _) in reports {
                let (Some(a), Some(b)) = (find(s, *k, e0), find(s, *k, e1)) else {
                    continue;
                };
                let ratio = |x: f64, y: f64| {
                    if x > 0.0 && y.is_finite() {
                        format!("{:.2}", y / x)
                    } else {
                        "-".into()
                    }
                };
                out.push_str(&format!(
                    "  {:<14} kappa {:>4}: {:>6} | {:>6} | {:>6}\n",
                    s,
                    k,
                    match (a.rollouts_median, b.rollouts_median) {
                        (Some(x), Some(y)) => ratio(x, y),
                        _ => "-".into(),
                    },
                    ratio(a.reference_samples_median, b.reference_samples_median),
                    ratio(a.student_generations_median, b.student_generations_median),
                ));
            }
        }
    }
    if reports.len() >= 2 {
        out.push_str(
            "\nslope in kappa (log-log, over the kappas): total rollouts | pi_ref samples\n",
        );
        for s in &strategies {
            for &e in &eps {
                let pts = |f: &dyn Fn(&BurnInRow) -> Option<f64>| -> Vec<(f64, f64)> {
                    reports
                        .iter()
                        .filter_map(|(k, _)| {
                            find(s, *k, e)
                                .and_then(f)
                                .filter(|x| *x > 0.0)
                                .map(|x| (k.ln(), x.ln()))
                        })
                        .collect()
                };
                let slope = |p: Vec<(f64, f64)>| {
                    crate::fit_linear(&p).map_or("-".into(), |f| format!("{:.2}", f.slope))
                };
                out.push_str(&format!(
                    "  {:<14} eps {:>6}: {:>5} | {:>5}\n",
                    s,
                    e,
                    slope(pts(&|r| r.rollouts_median)),
                    slope(pts(&|r| Some(r.reference_samples_median))),
                ));
            }
        }
    }
    out
}
