//! The records of a run directory's `metrics.jsonl`: one JSON object per line, tagged by its
//! `record` field and keyed by the run it belongs to (`strategy`, `eps`, `seed`). The field
//! names are part of the documented output (README, "Run directories").

use autotune_curriculum::PhaseReport;
use serde::{Deserialize, Serialize};

use crate::{Checkpoint, RunSummary};

/// Which run of a comparison a record belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunKey {
    pub strategy: String,
    pub eps: f64,
    pub seed: u64,
}

impl RunKey {
    /// `strategy eps E seed S`: how progress displays name a run (and the label of its fits'
    /// [`autotune_core::progress`] reports).
    pub fn label(&self) -> String {
        format!("{} eps {} seed {}", self.strategy, self.eps, self.seed)
    }
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum MetricRecord {
    /// The end of a phase: what the filter saw (ranks of the candidates, acceptance) and what
    /// the phase bought, with the cumulative ledger.
    Phase(PhaseRecord),
    /// A held-out evaluation of the output model (after every phase).
    Eval(EvalRecord),
    /// The end of a run: why it stopped, demos to eps, final error and ledger.
    End(EndRecord),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PhaseRecord {
    #[serde(flatten)]
    pub run: RunKey,
    #[serde(flatten)]
    pub report: PhaseReport,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalRecord {
    #[serde(flatten)]
    pub run: RunKey,
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndRecord {
    #[serde(flatten)]
    pub summary: RunSummary,
    /// Size of the held-out set.
    pub heldout_prompts: usize,
}

impl MetricRecord {
    /// The run this record belongs to.
    pub fn run(&self) -> RunKey {
        match self {
            MetricRecord::Phase(p) => p.run.clone(),
            MetricRecord::Eval(e) => e.run.clone(),
            MetricRecord::End(e) => RunKey {
                strategy: e.summary.strategy.clone(),
                eps: e.summary.eps,
                seed: e.summary.seed,
            },
        }
    }

    /// The record as one JSON line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("metric records serialise")
    }
}
