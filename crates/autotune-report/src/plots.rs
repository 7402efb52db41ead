//! The report's figures, drawn with plotters on any backend: SVG for the page, PNG for
//! papers and slides. Each figure is computed from a [`RunData`] by [`Figures::new`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Once;

use autotune_core::Ledger;
use autotune_curriculum::StopReason;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::RunData;

/// What the x axis of an error curve counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    /// Cumulative demonstrations (teacher calls, or pi_ref samples accepted by the verifier).
    TeacherDemos,
    /// Cumulative sampled chains of thought, verifier-checked (RL).
    Rollouts,
}

impl XAxis {
    fn of(self, l: &Ledger) -> f64 {
        match self {
            XAxis::TeacherDemos => l.demos() as f64,
            XAxis::Rollouts => l.rollouts() as f64,
        }
    }

    fn label(self) -> &'static str {
        match self {
            XAxis::TeacherDemos => {
                "demonstrations: teacher, or accepted pi_ref samples (cumulative)"
            }
            XAxis::Rollouts => "rollouts: sampled and verified CoTs (cumulative)",
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            XAxis::TeacherDemos => "n",
            XAxis::Rollouts => "r",
        }
    }
}

/// A fitted scaling law of an error curve (held-out error against cost `x`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScalingFit {
    /// `err = exp(a) x^-p`: the non-adaptive shape (`d/eps` when `p` is near 1).
    Power { a: f64, p: f64 },
    /// `err = exp(a - x / tau)`, i.e. `x = tau ln(1/err) + tau a`: the `d log(1/eps)` shape.
    Exponential { a: f64, tau: f64 },
}

impl ScalingFit {
    /// Fits both shapes by least squares on `ln err` and keeps the one with the smaller
    /// residual (at least three points with positive x and err, and a decreasing fit).
    pub fn fit(points: &[(f64, f64)]) -> Option<Self> {
        let pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|(x, y)| *x > 0.0 && *y > 0.0)
            .map(|&(x, y)| (x, y.ln()))
            .collect();
        if pts.len() < 3 {
            return None;
        }
        let sse = |f: &dyn Fn(f64) -> f64| -> f64 {
            pts.iter().map(|(x, ly)| (ly - f(*x)).powi(2)).sum()
        };
        let logx: Vec<(f64, f64)> = pts.iter().map(|&(x, ly)| (x.ln(), ly)).collect();
        let power = autotune_experiment::fit_linear(&logx)
            .filter(|f| f.slope < 0.0)
            .map(|f| {
                let (a, p) = (f.intercept, -f.slope);
                (ScalingFit::Power { a, p }, sse(&|x| a - p * x.ln()))
            });
        let exp = autotune_experiment::fit_linear(&pts)
            .filter(|f| f.slope < 0.0)
            .map(|f| {
                let (a, tau) = (f.intercept, -1.0 / f.slope);
                (ScalingFit::Exponential { a, tau }, sse(&|x| a - x / tau))
            });
        match (power, exp) {
            (Some(p), Some(e)) => Some(if e.1 < p.1 { e.0 } else { p.0 }),
            (Some(p), None) => Some(p.0),
            (None, Some(e)) => Some(e.0),
            (None, None) => None,
        }
    }

    pub fn eval(&self, x: f64) -> f64 {
        match *self {
            ScalingFit::Power { a, p } => (a - p * x.ln()).exp(),
            ScalingFit::Exponential { a, tau } => (a - x / tau).exp(),
        }
    }

    /// The law as a formula, in units of the dimension `d` where known.
    pub fn short(&self, x: &str, d: Option<usize>) -> String {
        let d = d.filter(|d| *d > 0).map(|d| d as f64);
        match (*self, d) {
            (ScalingFit::Power { a, p }, Some(d)) => {
                // exp(a) x^-p = exp(a - p ln d) (d/x)^p
                format!("err ≈ {:.2}·(d/{x})^{p:.2}", (a - p * d.ln()).exp())
            }
            (ScalingFit::Power { a, p }, None) => format!("err ≈ {:.2}·{x}^-{p:.2}", a.exp()),
            (ScalingFit::Exponential { a, tau }, Some(d)) => {
                format!("{x} ≈ {:.2}·d·ln(1/err) {:+.0}", tau / d, tau * a)
            }
            (ScalingFit::Exponential { a, tau }, None) => {
                format!("{x} ≈ {tau:.1}·ln(1/err) {:+.0}", tau * a)
            }
        }
    }

    /// The formula and which of the paper's shapes it is.
    pub fn describe(&self, x: &str, d: Option<usize>) -> String {
        let shape = match self {
            ScalingFit::Power { p, .. } if (0.7..=1.4).contains(p) => "power law near d/eps",
            ScalingFit::Power { .. } => "power law",
            ScalingFit::Exponential { .. } => "d log(1/eps)-like",
        };
        format!("{}  ({shape})", self.short(x, d))
    }
}

/// One strategy's error curve: median and spread over seeds on a log grid of x.
#[derive(Clone, Debug)]
pub struct Curve {
    pub strategy: String,
    pub eps: f64,
    pub seeds: usize,
    /// (x, median, min, max) of the held-out error over the seeds that have started.
    pub points: Vec<(f64, f64, f64, f64)>,
    pub fit: Option<ScalingFit>,
    /// (median cost to reach eps, eps) for every eps the strategy reached in at least half
    /// of its seeds.
    pub frontier: Vec<(f64, f64)>,
}

/// One strategy's filter per phase, for the rank and acceptance figures.
#[derive(Clone, Debug)]
pub struct PhaseSeries {
    pub strategy: String,
    pub eps: f64,
    /// The representative seed of the rank figure (the smallest).
    pub seed: u64,
    /// (phase, histogram, max rank) of the representative seed, tested phases only.
    pub ranks: Vec<(usize, Vec<u64>, usize)>,
    /// (phase, median, min, max) of the acceptance rate over seeds.
    pub acceptance: Vec<(usize, f64, f64, f64)>,
    /// (phase, acceptance) of the last phase of runs that stopped with a certificate.
    pub certified: Vec<(usize, f64)>,
}

/// Everything the figures draw, computed once.
#[derive(Clone, Debug)]
pub struct Figures {
    pub strategies: Vec<String>,
    pub dimension: Option<usize>,
    /// Smallest eps of the run directory.
    pub eps_min: Option<f64>,
    pub demos: Vec<Curve>,
    /// Present when some strategy learns from rollouts without a teacher.
    pub rollouts: Vec<Curve>,
    pub phases: Vec<PhaseSeries>,
    /// Error floor drawn for zero errors on a log axis (half a held-out prompt).
    pub floor: f64,
}

const GRID: usize = 90;

fn median_min_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (med, v[0], v[n - 1])
}

impl Figures {
    pub fn new(data: &RunData) -> Self {
        let strategies = data.strategies();
        let (_, dimension) = data.task();
        let eps = data.eps();
        let heldout = data
            .ends
            .iter()
            .map(|e| e.heldout_prompts)
            .chain(data.evals.iter().map(|e| e.checkpoint.heldout_evaluated))
            .max()
            .unwrap_or(1000)
            .max(1);
        let floor = 0.5 / heldout as f64;
        let rl = data.summaries().iter().any(|s| {
            s.final_ledger.reference_samples > 0
                || (s.final_ledger.teacher_calls == 0 && s.final_ledger.student_generations > 0)
        });
        let demos = curves(data, &strategies, XAxis::TeacherDemos, floor);
        let rollouts = if rl {
            curves(data, &strategies, XAxis::Rollouts, floor)
        } else {
            Vec::new()
        };
        let phases = strategies
            .iter()
            .filter_map(|s| phase_series(data, s))
            .collect();
        Figures {
            strategies,
            dimension,
            eps_min: eps.last().copied(),
            demos,
            rollouts,
            phases,
            floor,
        }
    }

    pub fn color(&self, strategy: &str) -> RGBColor {
        strategy_color(&self.strategies, strategy)
    }
}

/// Uniform (the baseline) is dark grey; the others take the Tableau palette in order.
pub fn strategy_color(strategies: &[String], strategy: &str) -> RGBColor {
    const PALETTE: [RGBColor; 9] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(23, 190, 207),
        RGBColor(227, 119, 194),
        RGBColor(140, 86, 75),
        RGBColor(188, 189, 34),
    ];
    if strategy == "uniform" {
        return RGBColor(70, 70, 70);
    }
    let i = strategies
        .iter()
        .filter(|s| *s != "uniform")
        .position(|s| s == strategy)
        .unwrap_or(0);
    PALETTE[i % PALETTE.len()]
}

/// Colour of rank `r` of `max`: red (all wrong) through amber to green (all right).
pub fn rank_color(r: usize, max: usize) -> RGBColor {
    let t = if max == 0 { 0.0 } else { r as f64 / max as f64 };
    let (a, b, u) = if t < 0.5 {
        ((214.0, 39.0, 40.0), (250.0, 190.0, 40.0), t * 2.0)
    } else {
        ((250.0, 190.0, 40.0), (44.0, 160.0, 44.0), (t - 0.5) * 2.0)
    };
    let mix = |x: f64, y: f64| (x + (y - x) * u).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn curves(data: &RunData, strategies: &[String], axis: XAxis, floor: f64) -> Vec<Curve> {
    let summaries = data.summaries();
    let mut out = Vec::new();
    for s in strategies {
        // The smallest eps of this strategy: its runs go furthest.
        let Some(eps) = data
            .evals
            .iter()
            .filter(|e| &e.run.strategy == s)
            .map(|e| e.run.eps)
            .min_by(|a, b| a.total_cmp(b))
        else {
            continue;
        };
        // Against rollouts, only strategies that learn without a teacher: an SFT strategy's
        // generations are its tests, and its demonstrations were bought elsewhere.
        if axis == XAxis::Rollouts
            && summaries
                .iter()
                .any(|r| &r.strategy == s && r.final_ledger.teacher_calls > 0)
        {
            continue;
        }
        let mut per_seed: BTreeMap<u64, Vec<(usize, f64, f64)>> = BTreeMap::new();
        for e in data
            .evals
            .iter()
            .filter(|e| &e.run.strategy == s && e.run.eps == eps)
        {
            let x = axis.of(&e.checkpoint.ledger);
            per_seed.entry(e.run.seed).or_default().push((
                e.checkpoint.phase,
                x,
                e.checkpoint.heldout_error.max(floor),
            ));
        }
        let seeds: Vec<Vec<(f64, f64)>> = per_seed
            .into_values()
            .map(|mut v| {
                v.sort_by_key(|p| p.0);
                v.into_iter()
                    .filter(|p| p.1 > 0.0)
                    .map(|p| (p.1, p.2))
                    .collect::<Vec<_>>()
            })
            .filter(|v| !v.is_empty())
            .collect();
        if seeds.is_empty() {
            continue;
        }
        let lo = seeds.iter().map(|v| v[0].0).fold(f64::INFINITY, f64::min);
        let hi = seeds
            .iter()
            .map(|v| v[v.len() - 1].0)
            .fold(0.0f64, f64::max);
        let mut grid: Vec<f64> = (0..GRID)
            .map(|i| lo * (hi / lo).powf(i as f64 / (GRID - 1) as f64))
            .collect();
        // The checkpoints themselves too, so steps are drawn where they happen.
        grid.extend(seeds.iter().flatten().map(|p| p.0));
        grid.sort_by(|a, b| a.total_cmp(b));
        grid.dedup();
        let points: Vec<(f64, f64, f64, f64)> = grid
            .iter()
            .filter_map(|&x| {
                let vals: Vec<f64> = seeds
                    .iter()
                    .filter_map(|v| v.iter().take_while(|p| p.0 <= x * (1.0 + 1e-12)).last())
                    .map(|p| p.1)
                    .collect();
                (!vals.is_empty()).then(|| {
                    let (m, a, b) = median_min_max(vals);
                    (x, m, a, b)
                })
            })
            .collect();
        let fit_pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.1 > floor * 1.01)
            .map(|p| (p.0, p.1))
            .collect();
        let mut frontier = Vec::new();
        for &e in &data.eps() {
            let cell: Vec<&autotune_experiment::RunSummary> = summaries
                .iter()
                .filter(|r| &r.strategy == s && r.eps == e)
                .collect();
            let reached: Vec<f64> = cell
                .iter()
                .filter_map(|r| r.cost_to_eps.as_ref().map(|l| axis.of(l)))
                .collect();
            if !cell.is_empty() {
                // Median with unreached seeds counted as infinite.
                let mut all = reached;
                all.resize(cell.len(), f64::INFINITY);
                let (m, _, _) = median_min_max(all);
                if m.is_finite() && m > 0.0 {
                    frontier.push((m, e));
                }
            }
        }
        out.push(Curve {
            strategy: s.clone(),
            eps,
            seeds: seeds.len(),
            fit: ScalingFit::fit(&fit_pts),
            points,
            frontier,
        });
    }
    out
}

fn phase_series(data: &RunData, s: &str) -> Option<PhaseSeries> {
    let eps = data
        .phases
        .iter()
        .filter(|p| p.run.strategy == s)
        .map(|p| p.run.eps)
        .min_by(|a, b| a.total_cmp(b))?;
    let recs: Vec<&autotune_experiment::PhaseRecord> = data
        .phases
        .iter()
        .filter(|p| p.run.strategy == s && p.run.eps == eps)
        .collect();
    let seed = recs.iter().map(|p| p.run.seed).min()?;
    let mut ranks: Vec<(usize, Vec<u64>, usize)> = recs
        .iter()
        .filter(|p| p.run.seed == seed && p.report.max_rank > 0)
        .filter(|p| p.report.rank_histogram.iter().sum::<u64>() > 0)
        .map(|p| {
            (
                p.report.phase,
                p.report.rank_histogram.clone(),
                p.report.max_rank,
            )
        })
        .collect();
    ranks.sort_by_key(|r| r.0);
    let mut by_phase: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut last: BTreeMap<u64, (usize, f64)> = BTreeMap::new();
    for p in recs.iter().filter(|p| p.report.drawn > 0) {
        by_phase
            .entry(p.report.phase)
            .or_default()
            .push(p.report.acceptance_rate);
        let l = last.entry(p.run.seed).or_insert((0, 1.0));
        if p.report.phase >= l.0 {
            *l = (p.report.phase, p.report.acceptance_rate);
        }
    }
    let acceptance = by_phase
        .into_iter()
        .map(|(ph, v)| {
            let (m, a, b) = median_min_max(v);
            (ph, m, a, b)
        })
        .collect();
    let certified = data
        .summaries()
        .iter()
        .filter(|r| r.strategy == s && r.eps == eps)
        .filter(|r| matches!(r.stop, StopReason::Certificate { .. }))
        .filter_map(|r| last.get(&r.seed).copied())
        .collect();
    Some(PhaseSeries {
        strategy: s.to_string(),
        eps,
        seed,
        ranks,
        acceptance,
        certified,
    })
}

/// Registers the embedded font (DejaVu Sans) that lays out and draws every label, so
/// figures look the same on every machine, with no system fonts needed.
fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// The figures of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FigureKind {
    ErrorVs(XAxis),
    Ranks,
    Acceptance,
}

impl FigureKind {
    /// File stem of the PNG export.
    pub fn id(self) -> &'static str {
        match self {
            FigureKind::ErrorVs(XAxis::TeacherDemos) => "error-vs-demos",
            FigureKind::ErrorVs(XAxis::Rollouts) => "error-vs-rollouts",
            FigureKind::Ranks => "rank-distribution",
            FigureKind::Acceptance => "acceptance",
        }
    }

    pub fn size(self, f: &Figures) -> (u32, u32) {
        match self {
            FigureKind::ErrorVs(_) => (980, 560),
            FigureKind::Acceptance => (980, 440),
            FigureKind::Ranks => {
                let n = f
                    .phases
                    .iter()
                    .filter(|p| !p.ranks.is_empty())
                    .count()
                    .max(1);
                let rows = n.div_ceil(2) as u32;
                (980, 270 * rows + 60)
            }
        }
    }

    /// Whether there is anything to draw.
    pub fn available(self, f: &Figures) -> bool {
        match self {
            FigureKind::ErrorVs(XAxis::TeacherDemos) => !f.demos.is_empty(),
            FigureKind::ErrorVs(XAxis::Rollouts) => !f.rollouts.is_empty(),
            FigureKind::Ranks => f.phases.iter().any(|p| !p.ranks.is_empty()),
            FigureKind::Acceptance => f.phases.iter().any(|p| !p.acceptance.is_empty()),
        }
    }

    pub const ALL: [FigureKind; 4] = [
        FigureKind::ErrorVs(XAxis::TeacherDemos),
        FigureKind::ErrorVs(XAxis::Rollouts),
        FigureKind::Ranks,
        FigureKind::Acceptance,
    ];
}

type Drawn = Result<(), String>;

/// Width of the legend column right of a chart.
const LEGEND_W: u32 = 310;

/// How a legend entry is drawn.
#[derive(Clone, Copy)]
enum Mark {
    Line,
    Dashed,
    Dot,
    Cross,
}

struct Key {
    color: RGBColor,
    mark: Mark,
    text: String,
}

/// Draws the legend as a column of entries at the top of `area`.
fn draw_keys<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, keys: &[Key]) -> Drawn {
    let mut y = 48i32;
    for k in keys {
        let c = k.color;
        match k.mark {
            Mark::Line => area
                .draw(&PathElement::new(vec![(6, y), (30, y)], c.stroke_width(3)))
                .map_err(de)?,
            Mark::Dashed => {
                for x in [6, 16, 26] {
                    area.draw(&PathElement::new(
                        vec![(x, y), (x + 5, y)],
                        c.stroke_width(1),
                    ))
                    .map_err(de)?;
                }
            }
            Mark::Dot => area
                .draw(
                    &(EmptyElement::at((18, y))
                        + Circle::new((0, 0), 5, c.filled())
                        + Circle::new((0, 0), 5, BLACK.stroke_width(1))),
                )
                .map_err(de)?,
            Mark::Cross => area
                .draw(&(EmptyElement::at((18, y)) + Cross::new((0, 0), 6, c.stroke_width(3))))
                .map_err(de)?,
        }
        area.draw(&Text::new(k.text.clone(), (38, y - 7), font(12)))
            .map_err(de)?;
        y += 20;
    }
    Ok(())
}

fn de<E: std::fmt::Display>(e: E) -> String {
    format!("drawing failed: {e}")
}

/// Draws `kind` on any plotters backend.
pub fn draw<DB: DrawingBackend>(
    kind: FigureKind,
    f: &Figures,
    root: &DrawingArea<DB, Shift>,
) -> Drawn {
    fonts();
    root.fill(&WHITE).map_err(de)?;
    match kind {
        FigureKind::ErrorVs(axis) => draw_error(axis, f, root),
        FigureKind::Ranks => draw_ranks(f, root),
        FigureKind::Acceptance => draw_acceptance(f, root),
    }?;
    root.present().map_err(de)
}

/// The figure as an SVG document.
pub fn svg(kind: FigureKind, f: &Figures) -> Result<String, String> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, kind.size(f)).into_drawing_area();
        draw(kind, f, &root)?;
    }
    Ok(s)
}

/// The figure as a PNG file.
pub fn png(kind: FigureKind, f: &Figures, path: &Path) -> Result<(), String> {
    let root = BitMapBackend::new(path, kind.size(f)).into_drawing_area();
    draw(kind, f, &root)
}

fn font(size: u32) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&BLACK)
}

fn draw_error<DB: DrawingBackend>(
    axis: XAxis,
    f: &Figures,
    root: &DrawingArea<DB, Shift>,
) -> Drawn {
    let curves = match axis {
        XAxis::TeacherDemos => &f.demos,
        XAxis::Rollouts => &f.rollouts,
    };
    let xs = curves.iter().flat_map(|c| {
        c.points
            .iter()
            .map(|p| p.0)
            .chain(c.frontier.iter().map(|p| p.0))
    });
    let (xlo, xhi) = xs.fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    let ys = curves.iter().flat_map(|c| {
        c.points
            .iter()
            .flat_map(|p| [p.2, p.3])
            .chain(c.frontier.iter().map(|p| p.1))
    });
    let (ylo, yhi) = ys.fold((f64::INFINITY, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
    let (xlo, xhi) = (xlo.max(0.5) / 1.3, xhi.max(1.0) * 1.3);
    let (ylo, yhi) = (
        (ylo.max(f.floor)) / 1.5,
        (yhi * 1.5).min(1.5).max(ylo * 10.0),
    );
    let title = match axis {
        XAxis::TeacherDemos => "Held-out error vs teacher demonstrations",
        XAxis::Rollouts => "Held-out error vs rollouts",
    };
    let (w, _) = root.dim_in_pixel();
    let (plot, legend) = root.split_horizontally(w.saturating_sub(LEGEND_W));
    let mut keys = Vec::new();
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, font(20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d((xlo..xhi).log_scale(), (ylo..yhi).log_scale())
        .map_err(de)?;
    chart
        .configure_mesh()
        .x_desc(axis.label())
        .y_desc("held-out error (log)")
        .label_style(font(13))
        .axis_desc_style(font(14))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .y_label_formatter(&|y| format_tick(*y))
        .x_label_formatter(&|x| format_tick(*x))
        .draw()
        .map_err(de)?;
    for c in curves {
        let col = f.color(&c.strategy);
        let mut band: Vec<(f64, f64)> = c.points.iter().map(|p| (p.0, p.3)).collect();
        band.extend(c.points.iter().rev().map(|p| (p.0, p.2)));
        if c.seeds > 1 {
            chart
                .draw_series(std::iter::once(Polygon::new(band, col.mix(0.14).filled())))
                .map_err(de)?;
        }
        chart
            .draw_series(LineSeries::new(
                c.points.iter().map(|p| (p.0, p.1)),
                col.stroke_width(2),
            ))
            .map_err(de)?;
        keys.push(Key {
            color: col,
            mark: Mark::Line,
            text: format!("{} ({} seeds, eps {})", c.strategy, c.seeds, c.eps),
        });
        if let Some(fit) = &c.fit {
            let (a, b) = (c.points[0].0, c.points[c.points.len() - 1].0);
            let pts: Vec<(f64, f64)> = (0..60)
                .map(|i| a * (b / a).powf(i as f64 / 59.0))
                .map(|x| (x, fit.eval(x)))
                .filter(|p| p.1 >= ylo && p.1 <= yhi)
                .collect();
            if pts.len() > 1 {
                chart
                    .draw_series(DashedLineSeries::new(pts, 6, 5, col.stroke_width(1)))
                    .map_err(de)?;
                keys.push(Key {
                    color: col,
                    mark: Mark::Dashed,
                    text: format!("fit: {}", fit.short(axis.symbol(), f.dimension)),
                });
            }
        }
        chart
            .draw_series(c.frontier.iter().map(|&(x, y)| {
                EmptyElement::at((x, y))
                    + Circle::new((0, 0), 5, col.filled())
                    + Circle::new((0, 0), 5, BLACK.stroke_width(1))
            }))
            .map_err(de)?;
    }
    keys.push(Key {
        color: RGBColor(150, 150, 150),
        mark: Mark::Dot,
        text: format!("median {} to reach each eps", axis.symbol()),
    });
    draw_keys(&legend, &keys)
}

/// A tick label for an integer axis: fractional positions get none.
fn int_tick(x: f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{:.0}", x)
    } else {
        String::new()
    }
}

fn format_tick(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.0}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.5}");
        s.trim_end_matches('0').to_string()
    }
}

fn draw_ranks<DB: DrawingBackend>(f: &Figures, root: &DrawingArea<DB, Shift>) -> Drawn {
    let series: Vec<&PhaseSeries> = f.phases.iter().filter(|p| !p.ranks.is_empty()).collect();
    let (_, h) = root.dim_in_pixel();
    let (top, legend) = root.split_vertically(h.saturating_sub(60));
    let cols = if series.len() == 1 { 1 } else { 2 };
    let rows = series.len().div_ceil(cols).max(1);
    let panels = top.split_evenly((rows, cols));
    for (p, area) in series.iter().zip(panels.iter()) {
        let last = p.ranks.iter().map(|r| r.0).max().unwrap_or(0);
        let first = p.ranks.iter().map(|r| r.0).min().unwrap_or(0);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{}  (seed {}, eps {})", p.strategy, p.seed, p.eps),
                font(15),
            )
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(46)
            .build_cartesian_2d(first as f64 - 0.6..last as f64 + 0.6, 0.0..1.0)
            .map_err(de)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("phase")
            .y_desc("share of candidates")
            .label_style(font(11))
            .axis_desc_style(font(12))
            .x_labels(((last - first) + 1).min(12))
            .x_label_formatter(&|x| int_tick(*x))
            .y_labels(5)
            .draw()
            .map_err(de)?;
        let width = 0.38;
        let mut rects = Vec::new();
        for (phase, hist, max) in &p.ranks {
            let total: u64 = hist.iter().sum();
            let mut y = 0.0;
            for (r, &n) in hist.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                let h = n as f64 / total as f64;
                let x = *phase as f64;
                rects.push(Rectangle::new(
                    [(x - width, y), (x + width, y + h)],
                    rank_color(r, *max).filled(),
                ));
                y += h;
            }
        }
        chart.draw_series(rects).map_err(de)?;
    }
    // The colour key: from "all members wrong" to "all right".
    let (w, _) = legend.dim_in_pixel();
    let steps = 11usize;
    let key_w = 300i32;
    let x0 = (w as i32 - key_w) / 2;
    for i in 0..steps {
        let xa = x0 + key_w * i as i32 / steps as i32;
        let xb = x0 + key_w * (i as i32 + 1) / steps as i32;
        legend
            .draw(&Rectangle::new(
                [(xa, 18), (xb, 36)],
                rank_color(i, steps - 1).filled(),
            ))
            .map_err(de)?;
    }
    legend
        .draw(&Text::new(
            "rank 0: all members (or samples) wrong",
            (x0 - 270, 21),
            font(12),
        ))
        .map_err(de)?;
    legend
        .draw(&Text::new("all right", (x0 + key_w + 10, 21), font(12)))
        .map_err(de)?;
    Ok(())
}

fn draw_acceptance<DB: DrawingBackend>(f: &Figures, root: &DrawingArea<DB, Shift>) -> Drawn {
    let series: Vec<&PhaseSeries> = f
        .phases
        .iter()
        .filter(|p| !p.acceptance.is_empty())
        .collect();
    let last = series
        .iter()
        .flat_map(|p| p.acceptance.iter().map(|a| a.0))
        .max()
        .unwrap_or(1);
    let lo = series
        .iter()
        .flat_map(|p| p.acceptance.iter().map(|a| a.2))
        .chain(f.eps_min)
        .fold(1.0f64, f64::min)
        .max(1e-6)
        / 2.0;
    let (w, _) = root.dim_in_pixel();
    let (plot, legend) = root.split_horizontally(w.saturating_sub(LEGEND_W));
    let mut keys = Vec::new();
    let mut chart = ChartBuilder::on(&plot)
        .caption("Filter acceptance rate per phase", font(20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5..last as f64 + 0.5, (lo..1.6).log_scale())
        .map_err(de)?;
    chart
        .configure_mesh()
        .x_desc("phase")
        .y_desc("accepted / tested candidates (log)")
        .label_style(font(13))
        .axis_desc_style(font(14))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .x_label_formatter(&|x| int_tick(*x))
        .y_label_formatter(&|y| format_tick(*y))
        .draw()
        .map_err(de)?;
    if let Some(eps) = f.eps_min {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(-0.5, eps), (last as f64 + 0.5, eps)],
                8,
                6,
                BLACK.stroke_width(1),
            ))
            .map_err(de)?;
        keys.push(Key {
            color: BLACK,
            mark: Mark::Dashed,
            text: format!("eps = {eps} (certified error level)"),
        });
    }
    for p in series {
        let col = f.color(&p.strategy);
        if p.acceptance.len() > 1 {
            let mut band: Vec<(f64, f64)> =
                p.acceptance.iter().map(|a| (a.0 as f64, a.3)).collect();
            band.extend(p.acceptance.iter().rev().map(|a| (a.0 as f64, a.2)));
            chart
                .draw_series(std::iter::once(Polygon::new(band, col.mix(0.12).filled())))
                .map_err(de)?;
        }
        chart
            .draw_series(LineSeries::new(
                p.acceptance.iter().map(|a| (a.0 as f64, a.1)),
                col.stroke_width(2),
            ))
            .map_err(de)?;
        keys.push(Key {
            color: col,
            mark: Mark::Line,
            text: format!("{} (eps {})", p.strategy, p.eps),
        });
        chart
            .draw_series(
                p.acceptance
                    .iter()
                    .map(|a| Circle::new((a.0 as f64, a.1), 3, col.filled())),
            )
            .map_err(de)?;
        chart
            .draw_series(p.certified.iter().map(|&(ph, a)| {
                EmptyElement::at((ph as f64, a.max(lo)))
                    + Cross::new((0, 0), 7, col.stroke_width(3))
            }))
            .map_err(de)?;
    }
    if f.phases.iter().any(|p| !p.certified.is_empty()) {
        keys.push(Key {
            color: RGBColor(90, 90, 90),
            mark: Mark::Cross,
            text: "run stopped by the certificate".into(),
        });
    }
    draw_keys(&legend, &keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rank_colours_run_from_red_to_green() {
        assert_eq!(rank_color(0, 4), RGBColor(214, 39, 40));
        assert_eq!(rank_color(4, 4), RGBColor(44, 160, 44));
        assert_eq!(rank_color(0, 0), RGBColor(214, 39, 40));
    }

    #[test]
    fn integer_ticks_only() {
        assert_eq!(int_tick(3.0), "3");
        assert_eq!(int_tick(2.5), "");
    }

    proptest! {
        /// Exact exponential data (the autocurriculum's shape) is recognised and recovered.
        #[test]
        fn exponential_laws_are_recovered(a in -1.0f64..1.0, tau in 5.0f64..500.0) {
            let pts: Vec<(f64, f64)> = (1..20).map(|i| {
                let x = i as f64 * tau / 4.0;
                (x, (a - x / tau).exp())
            }).collect();
            match ScalingFit::fit(&pts) {
                Some(ScalingFit::Exponential { a: fa, tau: ft }) => {
                    prop_assert!((fa - a).abs() < 1e-6 && (ft / tau - 1.0).abs() < 1e-6);
                }
                other => prop_assert!(false, "got {:?}", other),
            }
        }

        /// Exact power-law data (the non-adaptive shape) is recognised and recovered.
        #[test]
        fn power_laws_are_recovered(c in 0.5f64..50.0, p in 0.5f64..2.0) {
            let pts: Vec<(f64, f64)> = (0..20).map(|i| {
                let x = 10.0 * 1.5f64.powi(i);
                (x, c * x.powf(-p))
            }).collect();
            match ScalingFit::fit(&pts) {
                Some(ScalingFit::Power { a, p: fp }) => {
                    prop_assert!((a.exp() / c - 1.0).abs() < 1e-6 && (fp - p).abs() < 1e-6);
                }
                other => prop_assert!(false, "got {:?}", other),
            }
        }
    }
}
