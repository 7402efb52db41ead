//! `rlfinetune`: the paper's RL baseline (Algorithm 4, RLFineTune) on i.i.d. prompts: per
//! prompt `m = C_seq ln(4 n C_seq / delta)` chains of thought from `pi_ref`, deduplicated, kept
//! when the verifier accepts them and `pi_ref(y|x) >= 1/C_seq`; the student is the ERM of "the
//! model's CoT is not in the kept set" (trained on one kept CoT per prompt: any kept CoT counts
//! as right, and a consistent learner has zero loss on that). One model, geometric checkpoints.

use autotune_core::ParamSpec;

use crate::strategies::paper::{C_SEQ, M_SAMPLES};
use crate::strategies::uniform::Iid;
use crate::strategy::common::*;
use crate::strategy::{Resolved, Source, Strategy, StrategyInfo};
use crate::CurriculumError;

pub const INFO: StrategyInfo = StrategyInfo {
    name: "rlfinetune",
    needs_reference: true,
    needs_sampling: false,
    in_all: false,
    selector: None,
    summary: "the paper's RL baseline (Algorithm 4, RLFineTune), no teacher: m samples of pi_ref per i.i.d. prompt, deduplicated, kept when verified and pi_ref(y|x) >= 1/C_seq; one model, geometric checkpoints",
    params: &[
        INIT,
        GROWTH,
        MAX_PHASES,
        C_SEQ,
        M_SAMPLES,
        ParamSpec { key: "n", default: "auto", help: "the n of m = C_seq ln(4 n C_seq / delta) (auto: 10 d / eps)" },
        ParamSpec { key: "delta", default: "0.01", help: "failure probability delta of m" },
    ],
    build,
};

fn build(r: &Resolved) -> Result<Box<dyn Strategy>, CurriculumError> {
    let mut iid = Iid::new(r)?;
    let c_seq = match r.params.raw("c_seq") {
        Some("auto") => None,
        _ => Some(r.checked("c_seq", "a number >= 1 or auto", |c: f64| {
            c >= 1.0 && c.is_finite()
        })?),
    };
    let samples = match r.params.raw("samples") {
        Some("auto") => None,
        _ => Some(r.checked("samples", "a positive integer or auto", |m: usize| m >= 1)?),
    };
    let n = r.auto_or(
        "n",
        (10.0 * r.d.max(1) as f64 / r.eps).ceil() as u64,
        "a positive integer or auto",
        |n: u64| n >= 1,
    )?;
    let delta = r.checked("delta", "a number in (0, 1)", |x: f64| x > 0.0 && x < 1.0)?;
    iid.set_source(Source::FilteredReference {
        c_seq,
        samples,
        n,
        delta,
    });
    Ok(Box::new(iid))
}
