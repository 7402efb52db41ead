//! `autotune coverage`: the coverage of a task's reference policy pi_ref.

use anyhow::Result;
use autotune_core::Params;

use crate::args::CoverageArgs;
use crate::setup::{check_task, insert_kappa};

pub fn run(a: CoverageArgs) -> Result<()> {
    let mut params = Params::parse(&a.params)?;
    if let Some(k) = a.kappa {
        insert_kappa(&mut params, &a.task, k)?;
    }
    check_task(&a.task, &params)?;
    let (task, _) = autotune_tasks::build_task(&a.task, &params, a.seed)?;
    let c = autotune_experiment::measure_coverage(task.as_ref(), a.prompts, a.samples, a.seed)?;
    print!("{}", autotune_experiment::coverage_text(&c));
    Ok(())
}
