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
//! server: paid, and not reproducible); the verdicts of verifiers that are not pure
//! ([`Verifier::pure`]: in-process comparisons of answers are computed again on resume, a
//! verifier that runs programs is journaled); and, after a fit, a reference to
//! the student's checkpoint when the student asks for it ([`Student::journal_checkpoints`]:
//! students whose training is expensive). Calls of in-process policies, and fits of cheap
//! students, are made again on resume: they are deterministic and cost nothing to repeat.
//!
//! Prompt ids and chains of thought are written compactly ([`compact`](crate::compact)).
//!
//! [`Student::journal_checkpoints`]: crate::Student::journal_checkpoints
//! [`Verifier::pure`]: crate::Verifier::pure

use serde::{Deserialize, Serialize};

use crate::{ApiUsage, FitStats, Result, Trace};

/// One recorded result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Entry {
    /// Teacher demonstrations, one per prompt id.
    Teach {
        #[serde(with = "crate::compact::ids")]
        ids: Vec<u64>,
        #[serde(with = "crate::compact::traces")]
        traces: Vec<Trace>,
        /// What the remote teacher charged for this call (`None`: in-process teacher).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api: Option<ApiUsage>,
        secs: f64,
    },
    /// Generations of a remote policy (greedy, or sampled at a temperature).
    Generate {
        #[serde(with = "crate::compact::ids")]
        ids: Vec<u64>,
        #[serde(with = "crate::compact::traces")]
        traces: Vec<Trace>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api: Option<ApiUsage>,
        secs: f64,
    },
    /// Verifier verdicts, `'1'` correct and `'0'` incorrect, one per prompt id.
    Verify {
        #[serde(with = "crate::compact::ids")]
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

    /// A journal in memory, for testing what [`Metered`](crate::Metered) does with one.
    #[derive(Default)]
    struct MemJournal {
        log: std::sync::Mutex<Vec<(String, u64, Entry)>>,
        replay: std::sync::Mutex<std::collections::HashMap<(String, u64), Entry>>,
        checkpoints: std::sync::Mutex<std::collections::HashMap<String, String>>,
    }

    impl MemJournal {
        /// A journal holding what `self` recorded, for a resumed run.
        fn reopen(&self) -> MemJournal {
            let j = MemJournal::default();
            *j.replay.lock().unwrap() = self
                .log
                .lock()
                .unwrap()
                .iter()
                .map(|(r, s, e)| ((r.clone(), *s), e.clone()))
                .collect();
            *j.checkpoints.lock().unwrap() = self.checkpoints.lock().unwrap().clone();
            j
        }
    }

    impl Journal for MemJournal {
        fn take(&self, run: &str, seq: u64) -> Option<Entry> {
            self.replay.lock().unwrap().remove(&(run.to_string(), seq))
        }
        fn append(&self, run: &str, seq: u64, entry: &Entry) -> Result<()> {
            self.log
                .lock()
                .unwrap()
                .push((run.to_string(), seq, entry.clone()));
            Ok(())
        }
        fn put_checkpoint(&self, run: &str, seq: u64, state: &str) -> Result<String> {
            let name = format!("{run}-{seq}");
            self.checkpoints
                .lock()
                .unwrap()
                .insert(name.clone(), state.to_string());
            Ok(name)
        }
        fn get_checkpoint(&self, name: &str) -> Result<String> {
            Ok(self.checkpoints.lock().unwrap()[name].clone())
        }
    }

    use crate::{Demo, Metered, Policy, Prompt, PromptSource, Student, Task, Teacher, Verifier};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Counts the calls that a replay must not repeat.
    static TEACHER_CALLS: AtomicU64 = AtomicU64::new(0);
    static VERIFIER_CALLS: AtomicU64 = AtomicU64::new(0);
    static FITS: AtomicU64 = AtomicU64::new(0);

    struct Echo;
    impl Teacher for Echo {
        fn demonstrate_batch(&self, prompts: &[Prompt]) -> Result<Vec<Trace>> {
            TEACHER_CALLS.fetch_add(prompts.len() as u64, Ordering::SeqCst);
            Ok(prompts
                .iter()
                .map(|p| Trace::new(p.tokens.clone(), 1))
                .collect())
        }
    }
    impl Verifier for Echo {
        fn verify_batch(&self, prompts: &[Prompt], answers: &[&[u32]]) -> Vec<bool> {
            VERIFIER_CALLS.fetch_add(prompts.len() as u64, Ordering::SeqCst);
            prompts
                .iter()
                .zip(answers)
                .map(|(p, a)| p.tokens.last().map(std::slice::from_ref) == Some(*a))
                .collect()
        }
    }

    /// Remembers the last token of every demonstration; its state is the list.
    struct Memo(Vec<u32>);
    impl Policy for Memo {
        fn generate_batch(&self, prompts: &[Prompt]) -> Vec<Trace> {
            prompts
                .iter()
                .map(|p| {
                    let t = *p.tokens.last().unwrap();
                    Trace::new(vec![if self.0.contains(&t) { t } else { 0 }], 1)
                })
                .collect()
        }
    }
    impl Student for Memo {
        fn fit(&mut self, demos: &[Demo]) -> Result<FitStats> {
            FITS.fetch_add(1, Ordering::SeqCst);
            self.0.extend(demos.iter().map(|d| d.trace.answer()[0]));
            Ok(FitStats {
                steps: demos.len() as u64,
                examples: demos.len() as u64,
                consistent: true,
                validation_generations: 0,
            })
        }
        fn save(&self) -> Option<String> {
            Some(serde_json::to_string(&self.0).unwrap())
        }
        fn journal_checkpoints(&self) -> bool {
            true
        }
    }

    struct Toy;
    impl Task for Toy {
        fn name(&self) -> &str {
            "toy"
        }
        fn dimension(&self) -> usize {
            1
        }
        fn prompts(&self, _: &str, _: u64) -> Result<Box<dyn PromptSource>> {
            unimplemented!("not drawn in these tests")
        }
        fn teacher(&self) -> &dyn Teacher {
            &Echo
        }
        fn verifier(&self) -> &dyn Verifier {
            &Echo
        }
        fn new_student(&self, _: u64) -> Box<dyn Student> {
            Box::new(Memo(Vec::new()))
        }
        fn load_student(&self, state: &str) -> Result<Box<dyn Student>> {
            Ok(Box::new(Memo(serde_json::from_str(state).unwrap())))
        }
    }

    fn prompts(ids: std::ops::Range<u64>) -> Vec<Prompt> {
        ids.map(|i| Prompt {
            id: i,
            tokens: vec![i as u32 + 1],
        })
        .collect()
    }

    /// One "run": test, teach the failures, fit, test again.
    fn run(meter: &mut Metered) -> Result<(Vec<bool>, crate::Ledger, Vec<u32>)> {
        let mut student = Toy.new_student(0);
        let ps = prompts(0..6);
        let traces = meter.generate(student.as_ref(), &ps)?;
        let ok = meter.verify(&ps, &traces)?;
        let wrong: Vec<Prompt> = ps
            .iter()
            .zip(&ok)
            .filter(|(_, v)| !**v)
            .map(|(p, _)| p.clone())
            .take(4)
            .collect();
        let demos = meter.teach(wrong)?;
        meter.fit(&mut student, &demos)?;
        let traces = meter.generate(student.as_ref(), &ps)?;
        let after = meter.verify(&ps, &traces)?;
        let state = serde_json::from_str(&student.save().unwrap()).unwrap();
        let mut ledger = meter.snapshot();
        ledger.wall_seconds = 0.0;
        Ok((after, ledger, state))
    }

    // One test: the call counters are shared.
    #[test]
    fn metered_journals_every_result_and_a_replay_pays_for_none() {
        let journal = MemJournal::default();
        let mut live = Metered::new(&Toy).with_journal(&journal, "r".into());
        let want = run(&mut live).unwrap();
        let ops: Vec<&str> = journal
            .log
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, e)| e.op())
            .collect();
        // In-process generations are not journaled; verdicts, teaching and the fit are.
        assert_eq!(ops, ["verify", "teach", "fit", "verify"]);
        let fit = journal.log.lock().unwrap()[2].2.clone();
        assert!(
            matches!(
                fit,
                Entry::Fit {
                    checkpoint: Some(_),
                    ..
                }
            ),
            "this student journals its checkpoints: {fit:?}"
        );
        let counts = || [&TEACHER_CALLS, &VERIFIER_CALLS, &FITS].map(|c| c.load(Ordering::SeqCst));
        let before = counts();
        // The resumed run: same results, same ledger, and no teacher, verifier or fit call.
        let resumed = journal.reopen();
        let mut replay = Metered::new(&Toy).with_journal(&resumed, "r".into());
        assert_eq!(run(&mut replay).unwrap(), want);
        assert_eq!(counts(), before, "nothing was paid again");
        assert!(
            resumed.log.lock().unwrap().is_empty(),
            "nothing new journaled"
        );
        // Half a journal: the rest is made live and appended after the replayed part.
        let half = MemJournal::default();
        half.replay.lock().unwrap().extend(
            journal.log.lock().unwrap()[..2]
                .iter()
                .map(|(r, s, e)| ((r.clone(), *s), e.clone())),
        );
        let mut partial = Metered::new(&Toy).with_journal(&half, "r".into());
        assert_eq!(run(&mut partial).unwrap(), want);
        let seqs: Vec<u64> = half
            .log
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s, _)| *s)
            .collect();
        assert_eq!(seqs, [2, 3]);
        // A run that no longer follows its journal is stopped with what differs.
        let other = journal.reopen();
        let mut diverged = Metered::new(&Toy).with_journal(&other, "r".into());
        let err = diverged.teach(prompts(0..2)).unwrap_err().to_string();
        assert!(
            err.contains("the journal holds `verify`") && err.contains("`teach`"),
            "{err}"
        );
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
