//! `uniform`: non-adaptive SFT (Joshi et al. 2025), the baseline: demonstrations on i.i.d.
//! prompts, one model, geometric checkpoints.

use autotune_core::Prompt;

use crate::engine::Context;
use crate::grpo::Selector;
use crate::model::Model;
use crate::pool::{PoolOutcomes, Scored};
use crate::strategy::common::*;
use crate::strategy::{
    Certificate, CertificateRule, MaskInfo, Phase, Resolved, Score, Strategy, StrategyConfig,
    StrategyInfo, Update,
};
use crate::CurriculumError;

pub const INFO: StrategyInfo = StrategyInfo {
    name: "uniform",
    needs_reference: false,
    needs_sampling: false,
    in_all: true,
    selector: Some(Selector::Uniform),
    summary: "non-adaptive SFT (Joshi et al. 2025): demonstrations on i.i.d. prompts, one model, geometric checkpoints",
    params: &[INIT, GROWTH, MAX_PHASES],
    build,
};

fn build(r: &Resolved) -> Result<Box<dyn Strategy>, CurriculumError> {
    Ok(Box::new(Iid::new(r)?))
}

/// One model trained on every prompt drawn (no test, no filter): `uniform`, and
/// `rft-uniform` with demonstrations from `pi_ref`.
pub(crate) struct Iid {
    info: &'static StrategyInfo,
    cfg: StrategyConfig,
}

impl Iid {
    pub fn new(r: &Resolved) -> Result<Self, CurriculumError> {
        let mut cfg = r.base(MaskInfo::new("uniform"))?;
        cfg.growth = r.checked("growth", "a number > 1", |g: f64| g > 1.0)?;
        Ok(Self { info: r.info, cfg })
    }

    /// Where the demonstrations come from (RLFineTune's filtered samples of `pi_ref`).
    pub fn set_source(&mut self, source: crate::strategy::Source) {
        self.cfg.source = source;
    }
}

impl Strategy for Iid {
    fn info(&self) -> &'static StrategyInfo {
        self.info
    }

    fn config(&self) -> &StrategyConfig {
        &self.cfg
    }

    fn max_rank(&self, _: &Model) -> usize {
        0
    }

    fn score(
        &self,
        _: &mut Context,
        _: &Model,
        _: usize,
        cands: &[Prompt],
    ) -> Result<Vec<Score>, CurriculumError> {
        // Non-adaptive: no test, every prompt accepted.
        Ok(vec![Score::UNTESTED; cands.len()])
    }

    fn update(
        &self,
        cx: &mut Context,
        model: &mut Model,
        phase: &Phase,
    ) -> Result<Update, CurriculumError> {
        Update::single(cx, model, phase)
    }

    /// Every prompt is accepted, so this never certifies; it only bounds the size of each draw
    /// of prompts, as it always has.
    fn certificate(&self) -> Option<Certificate> {
        Some(Certificate {
            factor: 2.0,
            delta: self.cfg.delta,
            rule: CertificateRule::Naive,
        })
    }

    fn pool_weight(&self, o: &PoolOutcomes) -> Option<Scored> {
        Some(o.single(|_, _| 1.0))
    }
}
