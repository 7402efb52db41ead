//! `zero-variance`: DAPO's dynamic sampling used as an SFT filter: demonstrate the prompts
//! whose `k`-sample pass rate is strictly between 0 and 1.

use autotune_core::Prompt;

use crate::engine::Context;
use crate::grpo::Selector;
use crate::model::Model;
use crate::pool::{PoolOutcomes, Scored};
use crate::strategies::score_by_passes;
use crate::strategy::common::*;
use crate::strategy::{
    MaskInfo, Phase, Resolved, Score, Strategy, StrategyConfig, StrategyInfo, Update,
};
use crate::weights::zero_variance_weight;
use crate::CurriculumError;

pub const INFO: StrategyInfo = StrategyInfo {
    name: "zero-variance",
    needs_reference: false,
    needs_sampling: false,
    in_all: true,
    selector: Some(Selector::ZeroVariance),
    summary: "DAPO dynamic sampling as an SFT filter: demonstrate prompts whose k-sample pass rate is strictly in (0,1)",
    params: &[K, TEMP, INIT, BATCH, GROWTH_SMALL, MAX_PHASES, DELTA, CERTIFICATE, TEST_GROWTH],
    build,
};

fn build(r: &Resolved) -> Result<Box<dyn Strategy>, CurriculumError> {
    Ok(Box::new(PassRate::new(r, "zero-variance", |p, k| {
        zero_variance_weight(p, k)
    })?))
}

/// One model; a candidate's weight is a function of its pass count out of `k` samples
/// (`zero-variance` and `learnability`).
pub(crate) struct PassRate {
    info: &'static StrategyInfo,
    cfg: StrategyConfig,
    k: usize,
    temperature: f64,
    weight: fn(usize, usize) -> f64,
}

impl PassRate {
    pub fn new(
        r: &Resolved,
        kind: &'static str,
        weight: fn(usize, usize) -> f64,
    ) -> Result<Self, CurriculumError> {
        let k = r.checked("k", "an integer >= 2", |k: usize| k >= 2)?;
        let temperature = r.checked("temperature", "a number > 0", |t: f64| t > 0.0)?;
        let mut cfg = r.base(
            MaskInfo::new(kind)
                .with("k", k)
                .with("temperature", temperature),
        )?;
        cfg.growth = r.checked("growth", "a number >= 1", |g: f64| g >= 1.0)?;
        Ok(Self {
            info: r.info,
            cfg,
            k,
            temperature,
            weight,
        })
    }
}

impl Strategy for PassRate {
    fn info(&self) -> &'static StrategyInfo {
        self.info
    }

    fn config(&self) -> &StrategyConfig {
        &self.cfg
    }

    fn max_rank(&self, model: &Model) -> usize {
        self.k * model.len()
    }

    fn score(
        &self,
        cx: &mut Context,
        model: &Model,
        _: usize,
        cands: &[Prompt],
    ) -> Result<Vec<Score>, CurriculumError> {
        score_by_passes(cx, model, cands, self.k, self.temperature, |p| {
            (self.weight)(p, self.k)
        })
    }

    fn update(
        &self,
        cx: &mut Context,
        model: &mut Model,
        phase: &Phase,
    ) -> Result<Update, CurriculumError> {
        Update::single(cx, model, phase)
    }

    fn pool_weight(&self, o: &PoolOutcomes) -> Option<Scored> {
        Some(o.single(|rank, max_rank| (self.weight)(rank as usize, max_rank as usize)))
    }
}
