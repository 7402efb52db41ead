//! `autotune-filterboost`: AutoTune with adaptive weights (no edge guessed in advance):
//! FilterBoost `1/(1+e^F)` or MadaBoost `min(1, e^-F)` of the weighted vote margin `F`, each
//! member's vote weight from its edge measured on fresh filtered prompts held back from the
//! teacher. Also the ensemble filter of `autotune-rl filter=filterboost`.

use autotune_core::{ParamSpec, Prompt};

use crate::engine::Context;
use crate::model::Model;
use crate::pool::{PoolOutcomes, Scored};
use crate::strategies::score_by_members;
use crate::strategy::common::*;
use crate::strategy::{
    MaskInfo, Phase, Resolved, Score, Strategy, StrategyConfig, StrategyInfo, Update,
};
use crate::weights::{
    bbm_phases, filterboost_weight, madaboost_weight, member_alpha, smoothed_edge,
};
use crate::CurriculumError;

pub const INFO: StrategyInfo = StrategyInfo {
    name: "autotune-filterboost",
    needs_reference: false,
    needs_sampling: false,
    in_all: true,
    selector: None,
    summary: "AutoTune, adaptive: FilterBoost (or MadaBoost) weights of the vote margin, member edges measured on fresh filtered prompts",
    params: &[
        ParamSpec { key: "variant", default: "filterboost", help: "filterboost | madaboost" },
        PER_PHASE,
        EDGE,
        MAX_PHASES,
        CUMULATIVE,
        WARM_START,
        DELTA,
        CERTIFICATE,
        TEST_GROWTH,
    ],
    build,
};

fn build(r: &Resolved) -> Result<Box<dyn Strategy>, CurriculumError> {
    let madaboost = r.choice("variant", &["filterboost", "madaboost"])? == "madaboost";
    Ok(Box::new(FilterBoost::new(r, madaboost)?))
}

pub(crate) struct FilterBoost {
    info: &'static StrategyInfo,
    cfg: StrategyConfig,
    madaboost: bool,
}

impl FilterBoost {
    pub fn new(r: &Resolved, madaboost: bool) -> Result<Self, CurriculumError> {
        let mut cfg = r.base(MaskInfo::new("filter-boost").with("madaboost", madaboost))?;
        r.ensemble(&mut cfg)?;
        cfg.edge_prompts = r.count_or("edge_prompts", (cfg.phase_demos / 2).max(8))?;
        if r.params.raw("max_phases") == Some("auto") {
            cfg.max_phases = 4 * bbm_phases(r.eps, 0.25);
        }
        Ok(Self {
            info: r.info,
            cfg,
            madaboost,
        })
    }

    fn weight(&self, margin: f64) -> f64 {
        if self.madaboost {
            madaboost_weight(margin)
        } else {
            filterboost_weight(margin)
        }
    }
}

impl Strategy for FilterBoost {
    fn info(&self) -> &'static StrategyInfo {
        self.info
    }

    fn config(&self) -> &StrategyConfig {
        &self.cfg
    }

    fn max_rank(&self, model: &Model) -> usize {
        model.len()
    }

    fn held_back(&self) -> usize {
        self.cfg.edge_prompts
    }

    fn score(
        &self,
        cx: &mut Context,
        model: &Model,
        _: usize,
        cands: &[Prompt],
    ) -> Result<Vec<Score>, CurriculumError> {
        score_by_members(cx, model, cands, |v| self.weight(v.margin()))
    }

    /// A new member on the phase's demonstrations; its edge on the held-back filtered prompts
    /// gives its vote weight, and a member without an edge is dropped.
    fn update(
        &self,
        cx: &mut Context,
        model: &mut Model,
        phase: &Phase,
    ) -> Result<Update, CurriculumError> {
        let (student, fit) = cx.fit_member(model, phase, &self.cfg)?;
        let held = phase.held_back;
        if held.is_empty() {
            return Ok(Update {
                fit,
                member_error: None,
                member_added: false,
            });
        }
        let traces = cx.meter().generate(student.as_ref(), held)?;
        let errors = cx
            .meter()
            .verify(held, &traces)?
            .iter()
            .filter(|v| !**v)
            .count();
        let err = errors as f64 / held.len() as f64;
        let edge = smoothed_edge(errors, held.len());
        if edge <= 0.0 {
            return Ok(Update {
                fit,
                member_error: Some(err),
                member_added: false,
            });
        }
        cx.push_member(model, student, member_alpha(edge), phase.all.len());
        Ok(Update {
            fit,
            member_error: Some(err),
            member_added: true,
        })
    }

    fn pool_weight(&self, o: &PoolOutcomes) -> Option<Scored> {
        let (rank, max_rank, margin) = o.members();
        Some(Scored {
            rank,
            max_rank,
            weight: self.weight(margin),
        })
    }
}
