//! `autotune-rl`: AutoTune.RL as practised, no teacher: the filter ranks prompts with the
//! current model and `pi_ref` is rejection-sampled only on accepted prompts (`filter=cex`: one
//! model and its failures; `filterboost`: an ensemble with FilterBoost weights). The paper's
//! Algorithm 5 is `autotune-paper-rl`.

use autotune_core::ParamSpec;

use crate::strategies::counterexample::Counterexample;
use crate::strategies::filterboost::FilterBoost;
use crate::strategy::common::*;
use crate::strategy::{Resolved, Strategy, StrategyInfo};
use crate::CurriculumError;

pub const INFO: StrategyInfo = StrategyInfo {
    name: "autotune-rl",
    needs_reference: true,
    needs_sampling: false,
    in_all: true,
    selector: None,
    summary: "AutoTune.RL, no teacher: filter by rank with the current model, rejection-sample pi_ref only on accepted prompts (filter=cex: one model; filterboost: ensemble)",
    params: &[
        ParamSpec { key: "filter", default: "cex", help: "cex (one model, its failures) | filterboost (ensemble, FilterBoost weights)" },
        MAX_SAMPLES,
        BATCH,
        PER_PHASE,
        ParamSpec { key: "edge_prompts", default: "auto", help: "filterboost: filtered prompts per phase to measure the member's edge (auto: m/2)" },
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
    // `max_samples` makes the source rejection sampling from pi_ref.
    Ok(match r.choice("filter", &["cex", "filterboost"])? {
        "cex" => Box::new(Counterexample::new(r)?),
        _ => Box::new(FilterBoost::new(r, false)?),
    })
}
