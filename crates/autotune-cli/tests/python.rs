//! The Python package (`python/`: the client and the TRL integration) against a live
//! `autotune serve` from this build: its standard-library tests, run with `python3 -m
//! unittest` (no pip, no torch). The tests that need TRL are `scripts/e2e-trl.sh`.

use std::path::Path;
use std::process::Command;

#[test]
fn the_python_package_passes_its_tests_against_a_live_service() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let out = Command::new("python3")
        .current_dir(root)
        .args(["-m", "unittest", "discover", "-s", "python/tests", "-v"])
        .env("AUTOTUNE_BIN", env!("CARGO_BIN_EXE_autotune"))
        .output()
        .expect("python3 runs (CI machines have Python 3.11)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python tests failed:\n{err}");
    // Skipped tests would pass silently: every test must have run.
    assert!(!err.contains("skipped"), "{err}");
    assert!(err.contains("Ran ") && err.contains("\nOK"), "{err}");
}
