//! The journal: results of expensive calls, kept so that a killed run resumes without paying
//! for them again.
//!
//! [`Metered`](crate::Metered) numbers every expensive call of a run (`seq` = 0, 1, 2, ...).
//! Before it makes call `seq`, it asks the journal for the recorded result; if there is one,
//! the result is replayed (and its recorded costs charged to the ledger), otherwise the call is
//! made and its result appended to the journal *before* the run uses it. A run is
//! deterministic under its seed, so a resumed run asks for the same calls in the same order
//! and ends exactly as an uninterrupted one would.
//!
//! What is journaled: every teacher demonstration; generations of remote policies (a model
//! server: paid, and not reproducible); every verifier verdict; and, after a fit, a reference to
//! the student's checkpoint when the student asks for it ([`Student::journal_checkpoints`]:
//! students whose training is expensive). Calls of in-process policies, and fits of cheap
//! students, are made again on resume: they are deterministic and cost nothing to repeat.
//!
//! [`Student::journal_checkpoints`]: crate::Student::journal_checkpoints

use serde::{Deserialize, Serialize};

use crate::{ApiUsage, FitStats, Result, Trace};

/// One recorded result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Entry {
    /// Teacher demonstrations, one per prompt id.
    Teach {
        ids: Vec<u64>,
        traces: Vec<Trace>,
        /// What the remote teacher charged for this call (`None`: in-process teacher).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api: Option<ApiUsage>,
        secs: f64,
    },
    /// Generations of a remote policy (greedy, or sampled at a temperature).
    Generate {
        ids: Vec<u64>,
        traces: Vec<Trace>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api: Option<ApiUsage>,
        secs: f64,
    },
    /// Verifier verdicts, `'1'` correct and `'0'` incorrect, one per prompt id.
    Verify {
        ids: Vec<u64>,
        verdicts: String,
        secs: f64,
    },
    /// A fit: its statistics and, for students that journal checkpoints, the checkpoint (a
    /// file name in the journal's checkpoint directory) holding the state after it.
    Fit {
        stats: FitStats,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoint: Option<String>,
        secs: f64,
    },
}

impl Entry {
    /// The operation's name, as written in the journal.
    pub fn op(&self) -> &'static str {
        match self {
            Entry::Teach { .. } => "teach",
            Entry::Generate { .. } => "generate",
            Entry::Verify { .. } => "verify",
            Entry::Fit { .. } => "fit",
        }
    }

    /// Whether the run must not go on until this entry is on disk (it cost money or hours).
    pub fn paid(&self) -> bool {
        match self {
            Entry::Teach { .. } | Entry::Generate { .. } => true,
            Entry::Verify { .. } => false,
            Entry::Fit { checkpoint, .. } => checkpoint.is_some(),
        }
    }
}

/// Verdicts as the journal writes them.
pub fn verdicts_to_string(v: &[bool]) -> String {
    v.iter().map(|&b| if b { '1' } else { '0' }).collect()
}

/// Verdicts back from the journal; `None` if the text holds anything but `0` and `1`.
pub fn verdicts_from_str(s: &str) -> Option<Vec<bool>> {
    s.bytes()
        .map(|b| match b {
            b'1' => Some(true),
            b'0' => Some(false),
            _ => None,
        })
        .collect()
}

/// Where a run keeps its expensive results. Implementations are shared by the parallel runs of
/// a comparison; each run has its own stream, named by `run`.
pub trait Journal: Send + Sync {
    /// Takes the recorded entry `seq` of stream `run`, if the journal holds it (then the caller
    /// replays it instead of making the call).
    fn take(&self, run: &str, seq: u64) -> Option<Entry>;

    /// Appends entry `seq` of stream `run`. When [`Entry::paid`], it is on disk (synced) when
    /// this returns; other entries may be synced later, but never after a later paid entry.
    fn append(&self, run: &str, seq: u64, entry: &Entry) -> Result<()>;

    /// Stores a student checkpoint durably and returns the name the journal refers to it by.
    fn put_checkpoint(&self, run: &str, seq: u64, state: &str) -> Result<String>;

    /// Reads a checkpoint stored by [`Journal::put_checkpoint`].
    fn get_checkpoint(&self, name: &str) -> Result<String>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn verdicts_round_trip(v in proptest::collection::vec(any::<bool>(), 0..300)) {
            prop_assert_eq!(verdicts_from_str(&verdicts_to_string(&v)), Some(v));
        }
    }

    #[test]
    fn bad_verdict_text_is_refused() {
        assert_eq!(verdicts_from_str("01x"), None);
    }

    #[test]
    fn entries_round_trip_as_json() {
        let e = Entry::Teach {
            ids: vec![3, 4],
            traces: vec![Trace::new(vec![1, 2], 1), Trace::new(vec![5], 1)],
            api: None,
            secs: 0.5,
        };
        let s = serde_json::to_string(&e).unwrap();
        assert!(s.starts_with(r#"{"op":"teach""#), "{s}");
        assert_eq!(serde_json::from_str::<Entry>(&s).unwrap(), e);
        assert!(e.paid());
        let f = Entry::Fit {
            stats: FitStats::default(),
            checkpoint: None,
            secs: 0.0,
        };
        assert!(!f.paid());
    }
}
