//! Training and generation throughput of the default small model (about 0.45M parameters,
//! batch 64 x 48 tokens) on this CPU, with mimalloc as the global allocator.
//!
//! `cargo run --release -p autotune-neural --example throughput [-- --steps N --batch B
//! --seq T --gen-reps R --uncached]`; `--example throughput_system` is the same with the system
//! allocator.

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    common::run("mimalloc");
}
