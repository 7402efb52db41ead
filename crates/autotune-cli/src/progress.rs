//! Progress on stderr while runs go on: one bar for the runs done, and one line per run in
//! flight with its phase, the filter's acceptance rate and the current held-out error.
//! Hidden when stderr is not a terminal.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use autotune_experiment::MetricRecord;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Default)]
struct Line {
    phase: usize,
    demos: u64,
    accept: f64,
    error: Option<f64>,
}

struct Active {
    bar: ProgressBar,
    line: Line,
}

pub struct Progress {
    multi: MultiProgress,
    total: ProgressBar,
    active: Mutex<HashMap<String, Active>>,
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
        Self {
            multi,
            total,
            active: Mutex::new(HashMap::new()),
        }
    }

    /// Follows one metrics record.
    pub fn record(&self, r: &MetricRecord) {
        let k = r.run();
        let key = format!("{} eps {} seed {}", k.strategy, k.eps, k.seed);
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
                a.line.demos = p.report.ledger.teacher_calls;
                a.line.accept = p.report.acceptance_rate;
            }
            MetricRecord::Eval(e) => a.line.error = Some(e.checkpoint.heldout_error),
            MetricRecord::End(_) => {}
        }
        let l = &a.line;
        a.bar.set_message(format!(
            "{key:<36} phase {:>3} | demos {:>7} | accept {:.3} | held-out error {}",
            l.phase,
            l.demos,
            l.accept,
            l.error.map_or("-".into(), |e| format!("{e:.4}"))
        ));
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
