//! `autotune-bbm`: boost-by-majority weights over verifier ranks with the edge `gamma` guessed
//! in advance, K members, plurality vote, the certificate stop. The reconstruction that came
//! before the paper's own Algorithm 1 (`autotune-paper`), kept and measured beside it: K from
//! `exp(-2 gamma^2 K) <= eps`, one stream of prompts, cumulative members by default.

use autotune_core::Prompt;

use crate::engine::Context;
use crate::model::Model;
use crate::pool::{PoolOutcomes, Scored};
use crate::strategies::score_by_members;
use crate::strategy::common::*;
use crate::strategy::{
    MaskInfo, Phase, Resolved, Score, Strategy, StrategyConfig, StrategyInfo, Update,
};
use crate::weights::{bbm_max_weight, bbm_phases, bbm_weight};
use crate::CurriculumError;
use autotune_core::ParamSpec;

pub const INFO: StrategyInfo = StrategyInfo {
    name: "autotune-bbm",
    needs_reference: false,
    needs_sampling: false,
    in_all: true,
    selector: None,
    summary: "AutoTune as reconstructed before the paper: boost-by-majority weights over verifier ranks, one prompt stream, cumulative members, plurality vote, certificate stop (the paper's Algorithm 1 is autotune-paper)",
    params: &[
        ParamSpec { key: "gamma", default: "0.25", help: "assumed edge of each member on its filtered distribution" },
        ParamSpec { key: "phases", default: "auto", help: "K, odd (auto: smallest odd K with exp(-2 gamma^2 K) <= eps)" },
        PER_PHASE,
        CUMULATIVE,
        WARM_START,
        DELTA,
        CERTIFICATE,
        TEST_GROWTH,
    ],
    build,
};

fn build(r: &Resolved) -> Result<Box<dyn Strategy>, CurriculumError> {
    let gamma = r.checked("gamma", "a number in (0, 1/2)", |g: f64| g > 0.0 && g < 0.5)?;
    let mut cfg = r.base(MaskInfo::new("boost-by-majority").with("gamma", gamma))?;
    r.ensemble(&mut cfg)?;
    cfg.max_phases = r.auto_or(
        "phases",
        bbm_phases(r.eps, gamma),
        "an odd positive integer or auto",
        |k: usize| k % 2 == 1,
    )?;
    Ok(Box::new(Bbm { cfg, gamma }))
}

struct Bbm {
    cfg: StrategyConfig,
    gamma: f64,
}

impl Bbm {
    /// The weight of rank `r` in phase `i`, normalised by its maximum over the ranks possible.
    fn weight(&self, i: usize, r: usize) -> f64 {
        let k = self.cfg.max_phases;
        let max = bbm_max_weight(k, i, self.gamma);
        if max > 0.0 {
            bbm_weight(k, i, r, self.gamma) / max
        } else {
            0.0
        }
    }
}

impl Strategy for Bbm {
    fn info(&self) -> &'static StrategyInfo {
        &INFO
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
        phase: usize,
        cands: &[Prompt],
    ) -> Result<Vec<Score>, CurriculumError> {
        score_by_members(cx, model, cands, |v| self.weight(phase, v.rank()))
    }

    fn update(
        &self,
        cx: &mut Context,
        model: &mut Model,
        phase: &Phase,
    ) -> Result<Update, CurriculumError> {
        let (student, fit) = cx.fit_member(model, phase, &self.cfg)?;
        cx.push_member(model, student, 1.0, phase.all.len());
        Ok(Update {
            fit,
            member_error: None,
            member_added: true,
        })
    }

    fn pool_weight(&self, o: &PoolOutcomes) -> Option<Scored> {
        let (rank, max_rank, _) = o.members();
        Some(Scored {
            rank,
            max_rank,
            weight: self.weight(max_rank as usize, rank as usize),
        })
    }
}
