//! Progress on stderr while runs go on: one bar for the runs done, and one line per run in
//! flight with its phase, the filter's acceptance rate and the current held-out error, and,
//! for students that report it (the neural student), the fit in progress: step, training
//! loss, learning rate and validation accuracy. Hidden when stderr is not a terminal.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autotune_experiment::MetricRecord;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Default)]
struct Line {
    phase: usize,
    demos: u64,
    accept: f64,
    error: Option<f64>,
    fit: Option<String>,
    validation: Option<f64>,
}

impl Line {
    fn message(&self, key: &str) -> String {
        let mut m = format!(
            "{key:<36} phase {:>3} | demos {:>7} | accept {:.3} | held-out error {}",
            self.phase,
            self.demos,
            self.accept,
            self.error.map_or("-".into(), |e| format!("{e:.4}"))
        );
        if let Some(f) = &self.fit {
            m.push_str(" | ");
            m.push_str(f);
            if let Some(v) = self.validation {
                m.push_str(&format!(" val acc {v:.3}"));
            }
        }
        m
    }
}

struct Active {
    bar: ProgressBar,
    line: Line,
}

pub struct Progress {
    multi: MultiProgress,
    total: ProgressBar,
    active: Arc<Mutex<HashMap<String, Active>>>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Progress {
    pub fn new(runs: u64) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(runs));
        total.set_style(style(
            "{bar:30.cyan/blue} {pos}/{len} runs  {elapsed} (eta {eta})",
        ));
        total.enable_steady_tick(Duration::from_millis(250));
        let active: Arc<Mutex<HashMap<String, Active>>> = Arc::default();
        if std::io::stderr().is_terminal() {
            let fits = Arc::clone(&active);
            autotune_core::progress::set_hook(move |p| {
                let mut active = fits.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(a) = active.get_mut(&p.label) {
                    a.line.fit = Some(format!(
                        "fit {}/{} loss {:.4} lr {:.1e}",
                        p.step, p.steps, p.loss, p.lr
                    ));
                    if p.validation_accuracy.is_some() {
                        a.line.validation = p.validation_accuracy;
                    }
                    a.bar.set_message(a.line.message(&p.label));
                }
            });
        }
        Self {
            multi,
            total,
            active,
        }
    }

    /// Follows one metrics record.
    pub fn record(&self, r: &MetricRecord) {
        let key = r.run().label();
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if let MetricRecord::End(_) = r {
            if let Some(a) = active.remove(&key) {
                a.bar.finish_and_clear();
                self.multi.remove(&a.bar);
            }
            self.total.inc(1);
            return;
        }
        let a = active.entry(key.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(style("  {spinner} {msg}"));
            Active {
                bar,
                line: Line::default(),
            }
        });
        match r {
            MetricRecord::Phase(p) => {
                a.line.phase = p.report.phase;
                a.line.demos = p.report.ledger.demos();
                a.line.accept = p.report.acceptance_rate;
            }
            MetricRecord::Eval(e) => a.line.error = Some(e.checkpoint.heldout_error),
            MetricRecord::End(_) => {}
        }
        a.bar.set_message(a.line.message(&key));
        a.bar.tick();
    }

    pub fn finish(&self) {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        for (_, a) in active.drain() {
            a.bar.finish_and_clear();
        }
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }
}
