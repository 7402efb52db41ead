//! The neural student (`arith`) end to end: `run --save-model` writes a checkpoint that
//! `serve-model` loads and answers from, and a run killed with SIGKILL after some fits resumes
//! by restoring the student from the journal's checkpoints (not training it again) and ends
//! exactly as an uninterrupted run, checkpoint by checkpoint.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use autotune_core::Entry;
use autotune_experiment::{JournalRecord, CHECKPOINT_DIR, JOURNAL_FILE};
use autotune_tasks::checkpoint::{Checkpoint, CheckpointModel};
use autotune_tasks::neural::NeuralStudent;
use common::{copy_digit_tasks, hf_model, journal, results};
use serde_json::Value;

/// The tiny arith of these tests: one-digit problems, a 2-layer width-32 transformer, 40 steps
/// per fit.
const TINY_ARITH: &[&str] = &[
    "max_digits=1",
    "mul_max_digits=1",
    "d=16",
    "d_model=32",
    "layers=2",
    "heads=2",
    "batch=16",
    "min_steps=40",
    "max_steps=40",
];

/// Starts `cmd` (output discarded) and kills it with SIGKILL once `ready()` holds; fails if it
/// ends first or `ready` takes over 120 s. Returns the time to the kill.
fn kill_when(mut cmd: Command, what: &str, ready: impl Fn() -> bool) -> Duration {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {what}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "not {what} in 120 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    t0.elapsed()
}

/// `autotune resume DIR`, which must succeed.
fn resume(dir: &Path) {
    let out = bin().arg("resume").arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every result file of the uninterrupted run (`want`) is in `dir`, the same.
fn assert_same_results(dir: &Path, want: &BTreeMap<String, String>) {
    let got = results(dir);
    for (file, w) in want {
        assert_eq!(
            got.get(file),
            Some(w),
            "{file} differs from the uninterrupted run ({})",
            dir.display()
        );
    }
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_autotune"));
    c.env("NO_COLOR", "1");
    c
}

/// A tiny arith run: one-digit problems, a 2-layer width-32 transformer, 40 steps per fit,
/// 10 phases of autotune-cex (about 2 s).
fn run_args(out: &Path, model: &Path) -> Vec<String> {
    let mut v: Vec<String> = [
        "run",
        "--task",
        "arith",
        "--strategy",
        "autotune-cex",
        "--strategy-param",
        "max_phases=10",
        "--eps",
        "0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for p in TINY_ARITH {
        v.push("--param".into());
        v.push(p.to_string());
    }
    for (flag, path) in [("--out", out), ("--save-model", model)] {
        v.push(flag.into());
        v.push(path.display().to_string());
    }
    v
}

fn base(name: &str) -> PathBuf {
    let b = std::env::temp_dir().join(format!("autotune-neural-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&b);
    std::fs::create_dir_all(&b).unwrap();
    b
}

fn run_to_end(args: &[String]) -> Duration {
    let t0 = Instant::now();
    let out = bin().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t0.elapsed()
}

/// The checkpoint names of the journal's fit records, in order.
fn fit_checkpoints(records: &[JournalRecord]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match &r.entry {
            Entry::Fit { checkpoint, .. } => {
                Some(checkpoint.clone().expect("a neural fit has a checkpoint"))
            }
            _ => None,
        })
        .collect()
}

/// The checkpoint files of a run directory (no temporary files), with what identifies one
/// write of each: inode, modification time, content.
fn checkpoint_files(dir: &Path) -> BTreeMap<String, (u64, i64, i64, String)> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir.join(CHECKPOINT_DIR)) else {
        return out;
    };
    for e in entries {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".ckpt") {
            continue;
        }
        let m = e.metadata().unwrap();
        let text = std::fs::read_to_string(e.path()).unwrap();
        out.insert(name, (m.ino(), m.mtime(), m.mtime_nsec(), text));
    }
    out
}

/// Complete fit records with a checkpoint in the journal (lines written to the end).
fn fits_journaled(dir: &Path) -> usize {
    let bytes = std::fs::read(dir.join(JOURNAL_FILE)).unwrap_or_default();
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    String::from_utf8_lossy(&bytes[..end])
        .lines()
        .filter(|l| l.contains("\"op\":\"fit\"") && l.contains("\"checkpoint\""))
        .count()
}

#[test]
fn a_neural_run_killed_after_some_fits_resumes_from_its_checkpoints_to_the_same_end() {
    let base = base("resume");
    let (reference, ref_model) = (base.join("ref"), base.join("ref-model.json"));
    let secs = run_to_end(&run_args(&reference, &ref_model));
    let want = results(&reference);
    let ref_records = journal(&reference);
    let ref_fits = fit_checkpoints(&ref_records);
    let ref_files = checkpoint_files(&reference);
    assert_eq!(ref_fits.len(), 10, "a fit per phase");
    assert_eq!(
        ref_files.keys().cloned().collect::<Vec<_>>(),
        {
            let mut v = ref_fits.clone();
            v.sort();
            v
        },
        "one checkpoint file per fit record"
    );

    // Start the same run and kill it (SIGKILL) once its journal holds 3 fits.
    let kill_at = 3;
    let (dir, model) = (base.join("killed"), base.join("killed-model.json"));
    let mut cmd = bin();
    cmd.args(run_args(&dir, &model));
    let killed_after = kill_when(cmd, "its journal held 3 fits", || {
        fits_journaled(&dir) >= kill_at
    });
    assert!(!model.exists(), "the killed run saved no model");

    // What the journal references at the kill: every fit's checkpoint is on disk (written and
    // synced before its record). At most one more file can exist: the checkpoint of a fit
    // killed between writing it and journaling the record, which the resume writes again.
    let before = journal(&dir);
    let fits_before = fit_checkpoints(&before);
    let files_before = checkpoint_files(&dir);
    assert!(fits_before.len() >= kill_at, "{fits_before:?}");
    assert_eq!(fits_before, ref_fits[..fits_before.len()]);
    for name in &fits_before {
        assert!(
            files_before.contains_key(name),
            "{name} is journaled but missing"
        );
    }
    let orphans: Vec<&String> = files_before
        .keys()
        .filter(|n| !fits_before.contains(n))
        .collect();
    assert!(
        orphans.len() <= 1 && orphans.iter().all(|n| ref_fits.contains(n)),
        "checkpoint files without a fit record: {orphans:?}"
    );
    // The checkpoints hold what the uninterrupted run's hold (up to the parameter ids that
    // every process draws afresh): training is deterministic across processes.
    for name in files_before.keys() {
        let diff =
            NeuralStudent::state_difference(&files_before[name].3, &ref_files[name].3).unwrap();
        assert_eq!(diff, None, "{name} differs from the uninterrupted run's");
    }

    // A control: without the first fit's checkpoint, the resume cannot restore that fit and
    // says so (it does not quietly train again).
    let control = base.join("control");
    copy_dir(&dir, &control);
    std::fs::remove_file(control.join(CHECKPOINT_DIR).join(&fits_before[0])).unwrap();
    let out = bin().arg("resume").arg(&control).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "resumed without its checkpoint");
    assert!(
        err.contains("reading a checkpoint") && err.contains(&fits_before[0]),
        "{err}"
    );

    // Resume: the uninterrupted run's results, ledger and metrics.
    let t1 = Instant::now();
    resume(&dir);
    let resume_secs = t1.elapsed();
    assert_same_results(&dir, &want);
    // The fits before the kill were restored, not trained and written again: their checkpoint
    // files are the very ones written before the kill; the others were written once each.
    let after = journal(&dir);
    let fits_after = fit_checkpoints(&after);
    assert_eq!(fits_after, ref_fits);
    let files_after = checkpoint_files(&dir);
    assert_eq!(
        files_after.keys().collect::<Vec<_>>(),
        ref_files.keys().collect::<Vec<_>>()
    );
    for name in &fits_before {
        assert!(
            files_after[name] == files_before[name],
            "{name} was written again by the resume"
        );
    }
    // Every checkpoint, and the saved model, is the uninterrupted run's student.
    for (name, (.., text)) in &files_after {
        let diff = NeuralStudent::state_difference(text, &ref_files[name].3).unwrap();
        assert_eq!(diff, None, "{name} differs from the uninterrupted run's");
    }
    let saved = |p: &Path| Checkpoint::read(p).unwrap().student;
    assert_eq!(
        NeuralStudent::state_difference(&saved(&model), &saved(&ref_model)).unwrap(),
        None,
        "the saved model differs from the uninterrupted run's"
    );
    println!(
        "uninterrupted run {:.2} s; killed after {:.2} s with {} of {} fits journaled \
         ({} checkpoint files); resume {:.2} s restored {} fits from checkpoints and trained {}; \
         results, ledger, metrics, all {} checkpoints and the saved model identical",
        secs.as_secs_f64(),
        killed_after.as_secs_f64(),
        fits_before.len(),
        ref_fits.len(),
        files_before.len(),
        resume_secs.as_secs_f64(),
        fits_before.len(),
        ref_fits.len() - fits_before.len(),
        files_after.len(),
    );
    std::fs::remove_dir_all(&base).ok();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A child `autotune serve-model` on a free loopback port, killed on drop.
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Server {
    fn start(checkpoint: &Path) -> Server {
        use std::io::BufRead;
        let mut child = bin()
            .args(["serve-model", checkpoint.to_str().unwrap(), "--port", "0"])
            .args(["--name", "arith"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start serve-model");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("no address in `{line}`"))
            .to_string();
        Server { child, addr }
    }

    fn post(&self, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (status, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_saved_neural_student_is_loaded_and_served() {
    let base = base("serve");
    let model = base.join("arith-model.json");
    let run = base.join("run");
    let out = bin().args(run_args(&run, &model)).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("saved the student"), "{stdout}");
    // The run's last checkpoint is the saved student.
    let last = fit_checkpoints(&journal(&run)).pop().unwrap();
    let last = std::fs::read_to_string(run.join(CHECKPOINT_DIR).join(last)).unwrap();
    let ck = Checkpoint::read(&model).unwrap();
    assert_eq!(ck.task, "arith");
    assert!(
        ck.student == last,
        "the saved model is the last fit's state"
    );
    // Loaded the way serve-model loads it, the student answers in process...
    let loaded = CheckpointModel::open(&model).unwrap();
    let prompts = ["3+5", "7-9", "4*6", "0+0"];
    let answers = loaded.complete(&prompts).unwrap();
    assert!(answers.iter().all(|a| !a.is_empty()), "{answers:?}");
    // ... and over HTTP, with the same completions.
    let server = Server::start(&model);
    for (p, want) in prompts.iter().zip(&answers) {
        let (status, body) = server.post(
            "/v1/chat/completions",
            &format!(
                r#"{{"model": "arith", "messages": [{{"role": "user", "content": "{p}"}}], "temperature": 0}}"#
            ),
        );
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"].as_str(),
            Some(want.as_str())
        );
    }
    let (status, body) = server.post(
        "/v1/chat/completions",
        r#"{"model": "arith", "messages": [{"role": "user", "content": "three plus five"}]}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not an arith problem"), "{body}");
    drop(server);
    // A checkpoint whose student was damaged: a one-line error, no panic.
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    let s = v["student"].as_str().unwrap().to_string();
    v["student"] = Value::String(s.replacen("\"step\":", "\"step\":1", 1));
    let bad = base.join("bad.json");
    std::fs::write(&bad, v.to_string()).unwrap();
    let out = bin()
        .args(["serve-model", bad.to_str().unwrap(), "--port", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("checksum"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&base).ok();
}

/// `export-hf` of a saved arith student: the Hugging Face directory it writes (GPT-2, the
/// head's bias moved into the final norm) reads back and gives the greedy tokens its check file
/// records, which are the student's own; an output directory that holds a model is not
/// replaced without `--force`; a source that is no model is a one-line error.
#[test]
fn a_saved_student_exports_to_a_hugging_face_directory_that_generates_the_same() {
    let b = base("export");
    let student = b.join("student.json");
    run_to_end(&run_args(&b.join("run"), &student));
    let out = b.join("hf");
    let export = |extra: &[&str]| {
        let mut c = bin();
        c.args([
            "export-hf",
            &student.display().to_string(),
            &out.display().to_string(),
        ]);
        c.args(["--check", "20"]);
        c.args(extra);
        c.output().unwrap()
    };
    let o = export(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = autotune_neural::NeuralModel::load_hf(&out).unwrap();
    let check: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("autotune_check.json")).unwrap())
            .unwrap();
    let ids = |v: &Value| -> Vec<Vec<u32>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p.as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect()
    };
    let prompts = ids(&check["prompts"]);
    assert_eq!(prompts.len(), 20);
    let n = check["new_tokens"].as_u64().unwrap() as usize;
    let again = model
        .generate(&prompts, &autotune_neural::GenerateOptions::greedy(n, None))
        .unwrap();
    assert_eq!(again, ids(&check["greedy"]));
    // The student itself, from its file, gives the same tokens.
    let c = Checkpoint::read(&student).unwrap();
    assert_eq!(check["task"], "arith");
    let own = NeuralStudent::saved_model(&c.student, None).unwrap();
    assert_eq!(
        own.generate(&prompts, &autotune_neural::GenerateOptions::greedy(n, None))
            .unwrap(),
        again
    );
    // Not replaced without --force; replaced with it.
    let o = export(&[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert!(export(&["--force"]).status.success());
    // A source that is no model.
    let o = bin()
        .args([
            "export-hf",
            &b.join("nothing").display().to_string(),
            &b.join("x").display().to_string(),
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("no such file or directory"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&b);
}

/// A task-file run of a LoRA student on a Hugging Face checkpoint, killed with SIGKILL after
/// 2 fits and resumed, ends as the uninterrupted run: its journal's checkpoints hold the
/// adapters only (with the base's digest), restored over the run's `model=DIR`.
#[test]
fn a_lora_run_on_a_task_file_killed_after_some_fits_resumes_to_the_same_end() {
    let base = base("lora-resume");
    let tasks = copy_digit_tasks(&base);
    let model_dir = hf_model(&base);
    let args = |out: &Path, saved: &Path| -> Vec<String> {
        let mut v: Vec<String> = [
            "run",
            "--tasks",
            tasks.to_str().unwrap(),
            "--verifier",
            "numeric",
            "--student",
            "neural",
            "--model",
            model_dir.to_str().unwrap(),
            "--strategy",
            "autotune-cex",
            "--strategy-param",
            "max_phases=6",
            "--strategy-param",
            "batch=8",
            // The random base answers nothing right in 6 phases: no prompt is given up on.
            "--max-teach",
            "100",
            "--eps",
            "0.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for p in [
            "lora_rank=4",
            "max_len=96",
            "batch=8",
            "min_steps=10",
            "max_steps=10",
        ] {
            v.push("--param".into());
            v.push(p.into());
        }
        for (flag, path) in [("--out", out), ("--save-model", saved)] {
            v.push(flag.into());
            v.push(path.display().to_string());
        }
        v
    };
    let (reference, ref_saved) = (base.join("ref"), base.join("ref.json"));
    run_to_end(&args(&reference, &ref_saved));
    let want = results(&reference);
    assert!(fit_checkpoints(&journal(&reference)).len() >= 3);

    let (dir, saved) = (base.join("killed"), base.join("killed.json"));
    let mut cmd = bin();
    cmd.args(args(&dir, &saved));
    kill_when(cmd, "its journal held 2 fits", || fits_journaled(&dir) >= 2);
    assert!(!saved.exists(), "the killed run saved no model");
    // The journaled checkpoints are adapters over the base's digest, not the base.
    let files = checkpoint_files(&dir);
    let (name, first) = files.iter().next().expect("a checkpoint");
    assert!(
        first.3.contains("base_sha256"),
        "{name} holds no base digest"
    );
    let base_bytes = std::fs::metadata(model_dir.join("model.safetensors"))
        .unwrap()
        .len();
    assert!((first.3.len() as u64) < base_bytes, "{name} holds the base");

    resume(&dir);
    assert_same_results(&dir, &want);
    let student = |p: &Path| Checkpoint::read(p).unwrap().student;
    assert_eq!(
        NeuralStudent::state_difference(&student(&saved), &student(&ref_saved)).unwrap(),
        None
    );
}

/// `autotune rl` on the tiny arith from a reference checkpoint: two selectors, 12 steps each,
/// the held-out error every 2 steps (eps 0.05 is out of reach, so every run takes all 12).
fn rl_args(out: &Path, reference: &Path) -> Vec<String> {
    let mut v: Vec<String> = [
        "rl",
        "--task",
        "arith",
        "--selectors",
        "uniform,autotune",
        "--seeds",
        "1",
        "--eps",
        "0.05",
        "--heldout",
        "200",
        "--eval-every",
        "2",
        "--max-steps",
        "12",
        "--group",
        "4",
        "--prompts-per-step",
        "8",
        "--coverage-samples",
        "4",
        "--coverage-prompts",
        "50",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for p in TINY_ARITH {
        v.push("--param".into());
        v.push(p.to_string());
    }
    v.push("--param".into());
    v.push(format!("reference={}", reference.display()));
    v.push("--out".into());
    v.push(out.display().to_string());
    v
}

/// The steps done by every run of an `autotune rl` directory, from the states they kept.
fn rl_steps_kept(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir.join("rl-state")) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // Not a state being written (`write_atomic`'s temporary file).
            name.contains("-seed") && name.ends_with(".json")
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|s| s["steps"].as_array().map_or(0, Vec::len))
        .sum()
}

/// rl.json without wall time.
fn rl_report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("rl.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    common::strip_time(&mut v);
    v
}

/// `autotune rl` killed (SIGKILL) at 5 points and resumed each time ends with the
/// uninterrupted run's report: every step, held-out error, rollout and token count.
#[test]
fn an_rl_run_killed_at_five_points_resumes_to_the_same_report() {
    let base = base("rl-resume");
    let reference = base.join("ref-model.json");
    run_to_end(&run_args(&base.join("ref-run"), &reference));
    let whole = base.join("whole");
    let secs = run_to_end(&rl_args(&whole, &reference));
    let want = rl_report(&whole);
    assert_eq!(rl_steps_kept(&whole), 24, "both runs kept their 12 steps");

    let dir = base.join("killed");
    // Kill once the runs together have kept this many steps (of 24), then resume.
    let kill_at = [1usize, 5, 9, 14, 19];
    let mut kept_at_kill = Vec::new();
    for (i, &at) in kill_at.iter().enumerate() {
        let mut cmd = bin();
        if i == 0 {
            cmd.args(rl_args(&dir, &reference));
        } else {
            cmd.arg("resume").arg(&dir);
        }
        kill_when(cmd, &format!("it kept {at} steps"), || {
            rl_steps_kept(&dir) >= at
        });
        kept_at_kill.push(rl_steps_kept(&dir));
        assert!(
            !dir.join("rl.json").exists(),
            "a killed run wrote its report"
        );
    }
    resume(&dir);
    assert_eq!(rl_report(&dir), want, "the resumed report differs");
    // States kept every 5 steps: killed once 5 steps were kept, the resume does again what
    // came after them, to the same report.
    let sparse = base.join("sparse");
    let mut args = rl_args(&sparse, &reference);
    args.extend(["--keep-every".to_string(), "5".to_string()]);
    let mut cmd = bin();
    cmd.args(&args);
    kill_when(cmd, "it kept 5 steps", || rl_steps_kept(&sparse) >= 5);
    // Each run kept its state after steps 5, 10 and its last (12) only.
    for e in std::fs::read_dir(sparse.join("rl-state"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains("-seed") && name.ends_with(".json") {
            let v: Value = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            let n = v["steps"].as_array().unwrap().len();
            assert!(
                n.is_multiple_of(5) || n == 12,
                "{name}: a state after {n} steps"
            );
        }
    }
    resume(&sparse);
    assert_eq!(
        rl_report(&sparse),
        want,
        "the report resumed from sparse states differs"
    );
    println!(
        "uninterrupted rl {:.2} s; killed with {kept_at_kill:?} of 24 steps kept, resumed each \
         time: the same report",
        secs.as_secs_f64()
    );
    std::fs::remove_dir_all(&base).ok();
}
