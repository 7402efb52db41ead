//! [`throughput`](./throughput.rs) with the system allocator, for comparison.

mod common;

fn main() {
    common::run("system");
}
