//! The neural student on a task file (`--tasks FILE --student neural`), end to end: a
//! transformer trained from scratch over the text's bytes learns the demonstrations, both
//! strategies reach eps, and the neural student's parameters are refused without it.

use std::path::Path;
use std::process::Command;

/// 40 records "Copy the digit: d (item i)" with answer d, scored by the numeric verifier.
fn tasks(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("tasks.jsonl");
    let text: String = (0..40)
        .map(|i| {
            let d = (i * 7) % 10;
            format!("{{\"id\": \"r{i}\", \"prompt\": \"Copy the digit: {d} (item {i})\", \"answer\": {d}}}\n")
        })
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn autotune(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_autotune"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const SMALL: &[&str] = &[
    "--param",
    "d_model=32",
    "--param",
    "layers=1",
    "--param",
    "heads=2",
    "--param",
    "max_len=64",
    "--param",
    "lr=0.005",
    "--param",
    "batch=8",
    "--param",
    "min_steps=100",
    "--param",
    "max_steps=200",
];

#[test]
fn a_neural_student_learns_a_task_file_from_scratch() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tasks(tmp.path());
    let out = tmp.path().join("cmp");
    let mut args = vec![
        "compare",
        "--tasks",
        file.to_str().unwrap(),
        "--verifier",
        "numeric",
        "--student",
        "neural",
        "--strategies",
        "uniform,autotune-cex",
        "--eps",
        "0.1",
        "--seeds",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(SMALL);
    let (code, stdout, stderr) = autotune(&args);
    assert_eq!(code, 0, "{stderr}");
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("uniform") || l.starts_with("autotune-cex"))
    {
        assert!(line.contains("1/1"), "not reached: {line}\n{stdout}");
    }
    // The table says which student ran.
    let table = std::fs::read_to_string(out.join("table.txt")).unwrap();
    assert!(
        table.contains("task file, student: neural student (from scratch, byte tokens)"),
        "{table}"
    );
}

#[test]
fn neural_student_parameters_need_the_neural_student() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tasks(tmp.path());
    let dir = tmp.path().to_str().unwrap();
    // `run` of the file with the model directory `dir` and `student` flags.
    let run = |student: &[&str], out: &str| {
        let out = tmp.path().join(out);
        let mut args = vec!["run", "--tasks", file.to_str().unwrap(), "--model", dir];
        args.extend_from_slice(student);
        args.extend(["--strategy", "uniform", "--eps", "0.1", "--out"]);
        args.push(out.to_str().unwrap());
        autotune(&args)
    };
    let (code, _, stderr) = run(&[], "a");
    assert_ne!(code, 0);
    assert!(stderr.contains("student=neural"), "{stderr}");
    // A model directory that is not one: one line naming the file.
    let (code, _, stderr) = run(&["--student", "neural"], "b");
    assert_ne!(code, 0);
    assert!(stderr.contains("config.json"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
