//! One module per command; each has a `run` taking its parsed arguments.

pub mod compare;
pub mod coverage;
pub mod demo;
#[cfg(feature = "neural")]
pub mod export_hf;
/// Without the `neural` feature `export-hf` is listed and refused with the way to get it.
#[cfg(not(feature = "neural"))]
pub mod export_hf {
    pub fn run(_: crate::args::ExportHfArgs) -> anyhow::Result<()> {
        anyhow::bail!(
            "export-hf needs the neural student, which this build leaves out; build it with `{}`",
            autotune_tasks::NEURAL_FEATURE
        )
    }
}
pub mod report;
pub mod resume;
pub mod rl;
pub mod run;
pub mod serve;
pub mod serve_model;
pub mod strategies;
pub mod tasks;
pub mod verify;
