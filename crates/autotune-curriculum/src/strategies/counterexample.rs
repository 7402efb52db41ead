//! `autotune-cex`: AutoTune with one model, the practical variant one can run with one LLM:
//! the teacher is asked only on the current model's failures (counterexamples, weight 1 where
//! the greedy answer is wrong), and the model keeps training on every demonstration so far.

use autotune_core::Prompt;

use crate::engine::Context;
use crate::grpo::Selector;
use crate::model::Model;
use crate::pool::{PoolOutcomes, Scored};
use crate::strategies::score_by_members;
use crate::strategy::common::*;
use crate::strategy::{
    certificate_rule, Certificate, MaskInfo, Phase, Resolved, Score, Strategy, StrategyConfig,
    StrategyInfo, Update,
};
use crate::CurriculumError;

pub const INFO: StrategyInfo = StrategyInfo {
    name: "autotune-cex",
    needs_reference: false,
    needs_sampling: false,
    in_all: true,
    selector: Some(Selector::Autotune),
    summary: "AutoTune, one model: teacher queried only on the current model's failures (counterexamples)",
    params: &[BATCH, MAX_PHASES, DELTA, CERTIFICATE, TEST_GROWTH],
    build,
};

fn build(r: &Resolved) -> Result<Box<dyn Strategy>, CurriculumError> {
    Ok(Box::new(Counterexample::new(r)?))
}

/// One model; a candidate is accepted iff its greedy answer is wrong. Also the filter of
/// `autotune-rl filter=cex`, with demonstrations from `pi_ref`.
pub(crate) struct Counterexample {
    info: &'static StrategyInfo,
    cfg: StrategyConfig,
}

impl Counterexample {
    pub fn new(r: &Resolved) -> Result<Self, CurriculumError> {
        let mut cfg = r.base(MaskInfo::new("counterexample"))?;
        cfg.init_demos = cfg.phase_demos;
        Ok(Self { info: r.info, cfg })
    }
}

impl Strategy for Counterexample {
    fn info(&self) -> &'static StrategyInfo {
        self.info
    }

    fn config(&self) -> &StrategyConfig {
        &self.cfg
    }

    fn max_rank(&self, model: &Model) -> usize {
        model.len()
    }

    fn score(
        &self,
        cx: &mut Context,
        model: &Model,
        _: usize,
        cands: &[Prompt],
    ) -> Result<Vec<Score>, CurriculumError> {
        score_by_members(cx, model, cands, |v| f64::from(u8::from(v.rank() == 0)))
    }

    fn update(
        &self,
        cx: &mut Context,
        model: &mut Model,
        phase: &Phase,
    ) -> Result<Update, CurriculumError> {
        Update::single(cx, model, phase)
    }

    /// Every mistake is accepted: a rejection has probability at most `1 - err`.
    fn certificate(&self) -> Option<Certificate> {
        Some(Certificate {
            factor: 1.0,
            delta: self.cfg.delta,
            rule: certificate_rule(&self.cfg),
        })
    }

    fn pool_weight(&self, o: &PoolOutcomes) -> Option<Scored> {
        Some(o.single(|rank, _| f64::from(u8::from(rank == 0))))
    }
}
