//! Crash safety: runs killed with SIGKILL at random points and resumed end exactly as
//! uninterrupted runs, and no teacher call is paid twice.
//!
//! `AUTOTUNE_KILLS=N` sets the number of kills (default 12 in CI; the README's number comes
//! from `AUTOTUNE_KILLS=60 cargo test --release -p autotune-cli --test resume -- --nocapture`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autotune_core::Entry;
mod common;

use autotune_experiment::{JournalRecord, JOURNAL_FILE};
use common::{finished_journal as journal, results};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_autotune"));
    c.env("NO_COLOR", "1");
    c
}

fn examples(name: &str) -> String {
    format!("{}/../../examples/tasks/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A small deterministic generator for the kill schedule.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The workloads, each with its share of the kills: a parallel comparison (interleaved
/// journal streams, ensembles, a sampling mask) and a FilterBoost run on a generated task, and
/// a run on a task file with a file teacher; the runs export their SFT data.
fn workloads() -> Vec<(&'static str, f64, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        (
            "compare",
            0.5,
            s(&[
                "compare",
                "--task",
                "halfspace-cot",
                "--strategies",
                "uniform,autotune-cex,autotune-bbm,zero-variance",
                "--eps",
                "0.02,0.01",
                "--seeds",
                "2",
            ]),
        ),
        (
            "run-filterboost",
            0.3,
            s(&[
                "run",
                "--task",
                "halfspace-cot",
                "--strategy",
                "autotune-filterboost",
                "--eps",
                "0.005",
            ]),
        ),
        (
            "run-file-task",
            0.2,
            vec![
                "run".into(),
                "--tasks".into(),
                examples("arith.jsonl"),
                "--strategy".into(),
                "autotune-bbm".into(),
                "--eps".into(),
                "0.02".into(),
            ],
        ),
    ]
}

/// Teacher prompts per stream, in journal order.
fn teacher_calls(records: &[JournalRecord]) -> BTreeMap<String, Vec<u64>> {
    let mut m: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in records {
        if let Entry::Teach { ids, .. } = &r.entry {
            m.entry(r.run.clone()).or_default().extend(ids);
        }
    }
    m
}

fn run_to_end(args: &[String], dir: &Path) -> Duration {
    let t0 = Instant::now();
    let out = bin()
        .args(args)
        .arg("--out")
        .arg(dir)
        .args(sft_args(args, dir))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t0.elapsed()
}

fn sft_args(args: &[String], dir: &Path) -> Vec<String> {
    if args[0] == "run" {
        vec![
            "--export-sft".into(),
            dir.join("sft.jsonl").display().to_string(),
        ]
    } else {
        Vec::new()
    }
}

/// Starts `cmd`, kills it (SIGKILL) after `after`; returns whether it was still running.
fn kill_after(mut cmd: Command, after: Duration) -> bool {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let running = child.try_wait().unwrap().is_none();
    child.kill().ok();
    child.wait().unwrap();
    running
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_result_without_paying_twice() {
    let kills: usize = std::env::var("AUTOTUNE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let base: PathBuf =
        std::env::temp_dir().join(format!("autotune-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let mut rng = Lcg(20261125);
    let mut total_kills = 0;
    let mut resume_kills = 0;
    let mut torn = 0;
    let mut tears = 0;
    for (name, share, args) in workloads() {
        let reference = base.join(format!("{name}-ref"));
        let secs = run_to_end(&args, &reference);
        let want = results(&reference);
        let want_teacher = teacher_calls(&journal(&reference));
        let paid: usize = want_teacher.values().map(Vec::len).sum();
        assert!(paid > 0, "the reference paid for demonstrations");
        let share = (kills as f64 * share).ceil() as usize;
        let mut done = 0;
        let mut at_records = Vec::new();
        let mut attempt = 0;
        while done < share {
            attempt += 1;
            assert!(attempt < share * 10, "the kills keep missing the run");
            let dir = base.join(format!("{name}-{attempt}"));
            let mut first = bin();
            first
                .args(&args)
                .arg("--out")
                .arg(&dir)
                .args(sft_args(&args, &dir));
            if !kill_after(first, secs.mul_f64(0.02 + 0.9 * rng.next())) {
                std::fs::remove_dir_all(&dir).ok();
                continue;
            }
            done += 1;
            total_kills += 1;
            let mut just_torn = false;
            let journaled = std::fs::read(dir.join(JOURNAL_FILE)).unwrap_or_default();
            at_records.push(journaled.iter().filter(|&&b| b == b'\n').count());
            // Every fourth kill also tears the last record, as a power cut in the middle of a
            // write would: the start of the last line written again, without its end.
            if done % 4 == 0 && !journaled.is_empty() {
                let start = journaled[..journaled.len() - 1]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let line = &journaled[start..];
                let mut torn_bytes = journaled.clone();
                torn_bytes.extend_from_slice(&line[..line.len() / 2]);
                std::fs::write(dir.join(JOURNAL_FILE), torn_bytes).unwrap();
                tears += 1;
                just_torn = true;
            }
            // Resume; a third of the resumes are killed again (torn records in a replay).
            loop {
                if !dir.join("invocation.json").exists() {
                    // Killed before it started: nothing was paid, run it again.
                    std::fs::remove_dir_all(&dir).ok();
                    run_to_end(&args, &dir);
                    break;
                }
                let mut resume = bin();
                resume.arg("resume").arg(&dir);
                // (The resume right after a tear runs to the end, to show its warning.)
                if !just_torn && rng.next() < 0.33 && kill_after(resume, secs.mul_f64(rng.next())) {
                    resume_kills += 1;
                    continue;
                }
                let out = bin().arg("resume").arg(&dir).output().unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    out.status.success(),
                    "resume of {} failed: {err}",
                    dir.display(),
                );
                let dropped = err.contains("dropped the torn last record");
                assert!(
                    dropped || !just_torn,
                    "a torn record is dropped with a warning: {err}"
                );
                torn += usize::from(dropped);
                break;
            }
            let got = results(&dir);
            for (file, w) in &want {
                assert_eq!(
                    got.get(file),
                    Some(w),
                    "{name}, kill {done}: {file} differs from the uninterrupted run ({})",
                    dir.display()
                );
            }
            // Every demonstration is in the journal exactly once, in the reference's order.
            assert_eq!(
                teacher_calls(&journal(&dir)),
                want_teacher,
                "{name}, kill {done}: teacher calls differ"
            );
            std::fs::remove_dir_all(&dir).ok();
        }
        at_records.sort_unstable();
        let total = journal(&reference).len();
        println!(
            "{name}: {done} kills at random points (journal records at the kill: min {}, median {}, max {} of {total}), every resumed run identical, {paid} teacher demonstrations paid once each (reference {:.2} s)",
            at_records[0],
            at_records[at_records.len() / 2],
            at_records[at_records.len() - 1],
            secs.as_secs_f64()
        );
    }
    println!("total: {total_kills} kills of runs, {resume_kills} kills of resumes, {tears} last records torn by the test, {torn} torn last records dropped by resume");
    assert!(torn >= tears, "every torn record is dropped with a warning");
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn a_second_resume_of_the_same_run_is_refused_while_the_first_runs() {
    let base = std::env::temp_dir().join(format!("autotune-resume-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (_, _, args) = workloads().remove(0);
    let dir = base.join("run");
    let mut first = bin()
        .args(&args)
        .arg("--out")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the run holds its directory.
    let t0 = Instant::now();
    while !dir.join("invocation.json").exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = bin().arg("resume").arg(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let finished_first = first.try_wait().unwrap().is_some();
    if !finished_first {
        assert!(!out.status.success());
        assert!(err.contains("in use by another autotune process"), "{err}");
    }
    first.wait().unwrap();
    // Another command into a directory that holds a journal is refused...
    let out = bin()
        .args(&args)
        .args(["--test-factor", "20"])
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("autotune resume"), "{err}");
    // ... and the same command again continues (here: replays) its run.
    let before = results(&dir);
    let out = bin().args(&args).arg("--out").arg(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("holds a run of this same command"), "{err}");
    assert_eq!(results(&dir), before);
    assert!(
        !finished_first,
        "the run ended before the second resume started"
    );
    std::fs::remove_dir_all(&base).ok();
}

/// Runs `script` as root of a private user and mount namespace (where it may mount a small
/// tmpfs); `None` where this machine allows no such namespace.
fn in_namespace(script: &str) -> Option<std::process::Output> {
    let probe = Command::new("unshare").args(["-rm", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return None;
    }
    Some(
        Command::new("unshare")
            .args(["-rm", "sh", "-c", script])
            .env("AUTOTUNE", env!("CARGO_BIN_EXE_autotune"))
            .env("NO_COLOR", "1")
            .output()
            .unwrap(),
    )
}

#[test]
fn a_full_disk_stops_the_run_cleanly_and_resume_finishes_it_identically() {
    let base = std::env::temp_dir().join(format!("autotune-resume-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (_, _, args) = workloads().remove(1);
    let reference = base.join("ref");
    run_to_end(&args, &reference);
    let want = results(&reference);
    let journal_bytes = std::fs::metadata(reference.join(JOURNAL_FILE))
        .unwrap()
        .len();
    let mnt = base.join("mnt");
    let kept = base.join("kept");
    std::fs::create_dir_all(&mnt).unwrap();
    // A disk that fills up in the middle of the run (config, metrics and half the journal
    // fit), then grows; then turns read-only.
    let size_kib = (journal_bytes / 2 / 1024).max(64);
    let script = format!(
        r#"set -u
mount -t tmpfs -o size={size_kib}k tmpfs {mnt}
"$AUTOTUNE" {args} --out {mnt}/run --export-sft {mnt}/run/sft.jsonl >/dev/null 2>{base}/full.err; echo "full=$?"
mount -o remount,size=64m {mnt}
"$AUTOTUNE" resume {mnt}/run >/dev/null 2>{base}/resume.err; echo "resume=$?"
cp -r {mnt}/run {kept}
mount -o remount,ro {mnt}
"$AUTOTUNE" resume {mnt}/run >/dev/null 2>{base}/ro-resume.err; echo "ro_resume=$?"
"$AUTOTUNE" {args} --out {mnt}/new >/dev/null 2>{base}/ro-new.err; echo "ro_new=$?"
"#,
        mnt = mnt.display(),
        base = base.display(),
        kept = kept.display(),
        args = args.join(" "),
    );
    let Some(out) = in_namespace(&script) else {
        println!("skipped: this machine allows no user namespaces for a small tmpfs");
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let read = |f: &str| std::fs::read_to_string(base.join(f)).unwrap_or_default();
    // The full disk: a non-zero exit and an error naming the file and the cause.
    assert!(stdout.contains("full=2"), "{stdout}\n{}", read("full.err"));
    let full = read("full.err");
    assert!(full.contains("No space left on device"), "{full}");
    assert!(full.contains("error:"), "{full}");
    // Resumed once the disk has room: the uninterrupted result.
    assert!(
        stdout.contains("resume=0"),
        "{stdout}\n{}",
        read("resume.err")
    );
    let got = results(&kept);
    for (file, w) in &want {
        assert_eq!(
            got.get(file),
            Some(w),
            "{file} differs after the disk-full resume"
        );
    }
    assert_eq!(
        teacher_calls(&journal(&kept)),
        teacher_calls(&journal(&reference))
    );
    // Read-only: both refused with the cause, nothing written.
    assert!(stdout.contains("ro_resume=2"), "{stdout}");
    assert!(stdout.contains("ro_new=2"), "{stdout}");
    for f in ["ro-resume.err", "ro-new.err"] {
        let e = read(f);
        assert!(e.contains("Read-only file system"), "{f}: {e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{f}: one-line error: {e}");
    }
    println!("disk full: {}", full.trim());
    println!("read-only resume: {}", read("ro-resume.err").trim());
    println!("read-only new run: {}", read("ro-new.err").trim());
    std::fs::remove_dir_all(&base).ok();
}
