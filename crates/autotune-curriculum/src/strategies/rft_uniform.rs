//! `rft-uniform`: the RL baseline without a teacher (STaR / RFT / ReST expert iteration):
//! rejection-sample `pi_ref` on i.i.d. prompts (the first accepted sample of at most
//! `max_samples`), fine-tune on what was found, one model, geometric checkpoints.

use crate::strategies::uniform::Iid;
use crate::strategy::common::*;
use crate::strategy::{Resolved, Strategy, StrategyInfo};
use crate::CurriculumError;

pub const INFO: StrategyInfo = StrategyInfo {
    name: "rft-uniform",
    needs_reference: true,
    needs_sampling: false,
    in_all: true,
    selector: None,
    summary: "RL baseline, no teacher (STaR / RFT / ReST expert iteration): rejection-sample pi_ref on i.i.d. prompts, fine-tune on the accepted samples, one model, geometric checkpoints",
    params: &[INIT, GROWTH, MAX_SAMPLES, MAX_PHASES],
    build,
};

fn build(r: &Resolved) -> Result<Box<dyn Strategy>, CurriculumError> {
    // `max_samples` makes the source rejection sampling from pi_ref.
    Ok(Box::new(Iid::new(r)?))
}
