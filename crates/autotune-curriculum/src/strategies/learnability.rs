//! `learnability`: accept with probability `4 p (1 - p)`, `p` the `k`-sample pass rate.

use crate::strategies::zero_variance::PassRate;
use crate::strategy::common::*;
use crate::strategy::{Resolved, Strategy, StrategyInfo};
use crate::weights::learnability_weight;
use crate::CurriculumError;

pub const INFO: StrategyInfo = StrategyInfo {
    name: "learnability",
    needs_reference: false,
    needs_sampling: false,
    in_all: true,
    selector: None,
    summary: "learnability filter: accept with probability 4 p(1-p), p the k-sample pass rate",
    params: &[
        K,
        TEMP,
        INIT,
        BATCH,
        GROWTH_SMALL,
        MAX_PHASES,
        DELTA,
        CERTIFICATE,
        TEST_GROWTH,
    ],
    build,
};

fn build(r: &Resolved) -> Result<Box<dyn Strategy>, CurriculumError> {
    Ok(Box::new(PassRate::new(r, "learnability", |p, k| {
        learnability_weight(p as f64 / k as f64)
    })?))
}
