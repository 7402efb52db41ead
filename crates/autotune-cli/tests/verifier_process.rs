//! `--verifier cmd:PROGRAM ARGS` end to end: a run scored by an external process ends as the
//! same run scored in-process, and a scorer that dies mid-run stops it with a one-line error
//! that names the process, not with wrong verdicts.

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// `autotune run` on examples/tasks/arith.jsonl with `verifier`: (exit code, stdout, stderr).
fn run(verifier: &str, out: &Path) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_autotune"))
        .current_dir(repo())
        .args([
            "run",
            "--tasks",
            "examples/tasks/arith.jsonl",
            "--verifier",
            verifier,
        ])
        .args(["--strategy", "autotune-cex", "--eps", "0.05", "--out"])
        .arg(out)
        .output()
        .expect("run autotune");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn an_external_scorer_runs_the_same_run_as_the_built_in_verifier() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, inproc, err) = run("math", &tmp.path().join("math"));
    assert_eq!(code, 0, "{err}");
    let (code, external, err) = run(
        "cmd:python3 examples/verifiers/exact_scorer.py",
        &tmp.path().join("cmd"),
    );
    assert_eq!(code, 0, "{err}");
    let first = |s: &str| s.lines().next().unwrap_or_default().to_string();
    assert!(first(&inproc).contains("reached"), "{inproc}");
    assert_eq!(first(&inproc), first(&external));
    // The run's verdicts are journaled: an external process is not pure.
    let journal = std::fs::read_to_string(tmp.path().join("cmd/journal.jsonl")).unwrap();
    assert!(journal.contains(r#""op":"verify""#));
    let journal = std::fs::read_to_string(tmp.path().join("math/journal.jsonl")).unwrap();
    assert!(!journal.contains(r#""op":"verify""#));
}

#[test]
fn a_scorer_that_dies_mid_run_stops_it_with_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let records = std::fs::read_to_string(repo().join("examples/tasks/arith.jsonl"))
        .unwrap()
        .lines()
        .count();
    // Right answers for the load-time checks (every gold against itself), then 50 more.
    let script = tmp.path().join("dies.py");
    std::fs::write(
        &script,
        format!(
            "import sys\nfor i, line in enumerate(sys.stdin):\n    if i == {}:\n        print('scorer crashed', file=sys.stderr, flush=True)\n        sys.exit(2)\n    print('true', flush=True)\n",
            records + 50
        ),
    )
    .unwrap();
    let (code, _, err) = run(
        &format!("cmd:python3 {}", script.display()),
        &tmp.path().join("run"),
    );
    assert_ne!(code, 0);
    let err = err.trim_end();
    assert_eq!(err.lines().count(), 1, "{err}");
    for want in ["dies.py", "closed its output", "scorer crashed"] {
        assert!(err.contains(want), "`{want}` not in: {err}");
    }
}

/// reasoning-gym's own scorers through `examples/verifiers/reasoning_gym_scorer.py`: every gold
/// of ten families is accepted against itself, and a wrong answer is not. Needs the venv of
/// `examples/verifiers/setup.sh` (reasoning-gym from PyPI), so it is run by hand:
/// `cargo test --release --workspace --test verifier_process -- --ignored`.
#[test]
#[ignore = "needs examples/verifiers/setup.sh (reasoning-gym 0.1.25 from PyPI)"]
fn reasoning_gyms_scorers_judge_their_own_records() {
    let python = repo().join("examples/verifiers/.venv/bin/python");
    assert!(python.exists(), "run examples/verifiers/setup.sh first");
    let tmp = tempfile::tempdir().unwrap();
    let tasks = tmp.path().join("rg.jsonl");
    let made = Command::new(&python)
        .arg(repo().join("examples/verifiers/make_rg_tasks.py"))
        .arg(&tasks)
        .arg("8")
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let scorer = format!(
        "cmd:{} {}",
        python.display(),
        repo()
            .join("examples/verifiers/reasoning_gym_scorer.py")
            .display()
    );
    // Every record's gold against itself, then against the gold of another record of its
    // family (a wrong answer of the right kind), through `autotune verify` with the record's
    // metadata as `meta`.
    let mut items = String::new();
    let text = std::fs::read_to_string(&tasks).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let gold_of = |r: &serde_json::Value| {
        r["answer"]
            .as_str()
            .map_or(r["answer"].to_string(), str::to_string)
    };
    for (i, r) in records.iter().enumerate() {
        let meta = serde_json::json!({ "metadata": r["metadata"] });
        let gold = gold_of(r);
        // Records come 8 per family: the next one of the same family with another answer.
        let other = (1..8)
            .map(|k| gold_of(&records[i / 8 * 8 + (i + k) % 8]))
            .find(|o| *o != gold)
            .expect("a family with one answer");
        for prediction in [gold.clone(), other] {
            items += &serde_json::json!({"gold": gold, "prediction": prediction, "meta": meta})
                .to_string();
            items.push('\n');
        }
    }
    let input = tmp.path().join("items.jsonl");
    std::fs::write(&input, items).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_autotune"))
        .args(["verify", "--verifier", &scorer, "--in"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let verdicts: Vec<bool> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["correct"] == true)
        .collect();
    assert_eq!(verdicts.len(), 160);
    let golds = verdicts.iter().step_by(2).filter(|&&v| v).count();
    let wrong = verdicts.iter().skip(1).step_by(2).filter(|&&v| v).count();
    assert_eq!(golds, 80, "every gold accepted against itself");
    assert_eq!(wrong, 0, "no wrong answer accepted");
}
