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
    let mut rows: Vec<Vec<String>> = Vec::new();
    for a in &r.results {
        let uni = r
            .results
            .iter()
            .find(|u| u.strategy == "uniform" && u.eps == a.eps)
            .and_then(|u| u.demos_median);
        let ratio = match (uni, a.demos_median) {
            (Some(u), Some(d)) if a.strategy != "uniform" && d > 0.0 && u >= d => {
                format!("{:.1}x fewer", u / d)
            }
            (Some(u), Some(d)) if a.strategy != "uniform" && u > 0.0 => {
                format!("{:.1}x more", d / u)
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
            "task {} (d = {}), {} seeds from {}; demos = teacher demonstrations to reach held-out error <= eps",
            r.task, r.dimension, r.seeds, r.base_seed
        ),
        header: header.iter().map(|s| s.to_string()).collect(),
        all_reached: r.results.iter().map(|a| a.reached == a.seeds).collect(),
        rows,
        fits,
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
