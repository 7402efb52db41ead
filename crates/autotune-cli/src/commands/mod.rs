//! One module per command; each has a `run` taking its parsed arguments.

pub mod compare;
pub mod coverage;
pub mod demo;
pub mod export_hf;
pub mod report;
pub mod resume;
pub mod rl;
pub mod run;
pub mod serve;
pub mod serve_model;
pub mod strategies;
pub mod tasks;
pub mod verify;
