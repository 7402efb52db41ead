//! The external verifier process (`cmd:PROGRAM ARGS`) against small Python scorers (the
//! standard library only): verdicts in every form it may answer, the record's `meta` passed
//! through, big batches without deadlock, and every way a process can fail (exit, hang,
//! nonsense, extra lines, no program) an error that names it, never wrong verdicts.

use std::path::PathBuf;

use autotune_verify::{build_verifier, Item};

/// A scorer script in a temporary directory; returns the verifier name that runs it.
fn script(dir: &tempfile::TempDir, name: &str, body: &str) -> String {
    let path: PathBuf = dir.path().join(name);
    let head = "import json, sys, time\n";
    std::fs::write(&path, format!("{head}{body}")).unwrap();
    format!("cmd:python3 {}", path.display())
}

fn opts(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Answers each item by its prediction: the prediction is the answer line itself.
const ECHO: &str = r#"
for line in sys.stdin:
    item = json.loads(line)
    print(item["prediction"], flush=True)
"#;

#[test]
fn every_answer_form_reads_as_its_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let v = build_verifier(
        &script(&dir, "echo.py", ECHO),
        &opts(&[("min_score", "0.5")]),
    )
    .unwrap();
    let cases = [
        ("true", true),
        ("false", false),
        ("1", true),
        ("0", false),
        ("0.7", true),
        ("0.2", false),
        (r#"{"correct": true}"#, true),
        (r#"{"correct": false, "reason": "off by one"}"#, false),
        (r#"{"score": 0.5}"#, true),
        (r#"{"score": 0.49, "reason": "partial"}"#, false),
    ];
    let items: Vec<Item> = cases.iter().map(|(p, _)| Item::new("g", *p)).collect();
    let verdicts = v.try_verify_batch(&items).unwrap();
    for ((p, want), got) in cases.iter().zip(&verdicts) {
        assert_eq!(got.correct, *want, "{p}: {got:?}");
    }
    assert_eq!(verdicts[7].reason.as_deref(), Some("off by one"));
    assert!(!v.pure(), "an external process is journaled");
    // The process lives on: a second batch is answered by the same one.
    let again = v.try_verify_batch(&[Item::new("g", "true")]).unwrap();
    assert!(again[0].correct);
}

#[test]
fn a_scorer_sees_gold_prediction_tests_and_meta() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
for line in sys.stdin:
    item = json.loads(line)
    meta = item.get("meta") or {}
    ok = (item["gold"] == "42" and item["prediction"].endswith("42")
          and item.get("tests") == "assert True"
          and meta.get("metadata", {}).get("source_dataset") == "basic_arithmetic")
    print(json.dumps({"correct": ok}), flush=True)
"#;
    let v = build_verifier(&script(&dir, "meta.py", body), &[]).unwrap();
    let mut item = Item::new("42", "so the answer is 42");
    item.tests = Some("assert True".into());
    item.meta = Some(serde_json::json!({"metadata": {"source_dataset": "basic_arithmetic"}}));
    let mut without = item.clone();
    without.meta = None;
    let v = v.try_verify_batch(&[item, without]).unwrap();
    assert!(v[0].correct && !v[1].correct, "{v:?}");
}

#[test]
fn a_big_batch_does_not_deadlock_the_pipes() {
    // 20,000 items of 1 KB each (20 MB): far more than a pipe holds, answered as they are
    // read, so both pipes fill while the batch is being written.
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
for line in sys.stdin:
    item = json.loads(line)
    print("true" if item["prediction"].startswith(item["gold"]) else "false", flush=False)
    sys.stdout.flush()
"#;
    let v = build_verifier(&script(&dir, "big.py", body), &[]).unwrap();
    let items: Vec<Item> = (0..20_000)
        .map(|i| {
            let gold = if i % 3 == 0 { "x" } else { "y" };
            Item::new(gold, format!("y{}", "z".repeat(1000)))
        })
        .collect();
    let verdicts = v.try_verify_batch(&items).unwrap();
    assert_eq!(verdicts.len(), 20_000);
    for (i, v) in verdicts.iter().enumerate() {
        assert_eq!(v.correct, i % 3 != 0, "item {i}");
    }
}

#[test]
fn a_process_that_exits_is_an_error_with_its_status_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
for i, line in enumerate(sys.stdin):
    print("true", flush=True)
    if i == 1:
        print("scorer: out of memory, giving up", file=sys.stderr, flush=True)
        sys.exit(3)
"#;
    let v = build_verifier(&script(&dir, "dies.py", body), &[]).unwrap();
    let items: Vec<Item> = (0..5).map(|i| Item::new("g", format!("p{i}"))).collect();
    let e = v.try_verify_batch(&items).unwrap_err().to_string();
    for want in [
        "dies.py",
        "closed its output after 2 of 5 verdicts",
        "exit status: 3",
        "out of memory, giving up",
    ] {
        assert!(e.contains(want), "`{want}` not in: {e}");
    }
    assert_eq!(e.lines().count(), 1, "{e}");
    // It stays failed: every later batch says so, none reads as wrong answers.
    let again = v.try_verify_batch(&items[..1]).unwrap_err().to_string();
    assert!(again.contains("closed its output"), "{again}");
    // The infallible interface turns the failure into wrong verdicts that say why.
    let w = v.verify(&items[0]);
    assert!(!w.correct && w.reason.unwrap().contains("closed its output"));
}

#[test]
fn a_process_that_hangs_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
for line in sys.stdin:
    time.sleep(3600)
"#;
    let v = build_verifier(&script(&dir, "hangs.py", body), &opts(&[("timeout", "1")])).unwrap();
    let e = v
        .try_verify_batch(&[Item::new("g", "p")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("gave no verdict within 1 s") && e.contains("0 of 1"),
        "{e}"
    );
}

#[test]
fn a_process_that_stops_reading_does_not_block_the_writer() {
    // It reads one line, then neither reads nor answers: the batch writer blocks on a full
    // pipe until the timeout kills the process.
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
sys.stdin.readline()
time.sleep(3600)
"#;
    let v = build_verifier(&script(&dir, "stuck.py", body), &opts(&[("timeout", "1")])).unwrap();
    let items: Vec<Item> = (0..2_000)
        .map(|_| Item::new("g", "p".repeat(1000)))
        .collect();
    let e = v.try_verify_batch(&items).unwrap_err().to_string();
    assert!(e.contains("gave no verdict within 1 s"), "{e}");
}

#[test]
fn nonsense_and_extra_lines_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let v = build_verifier(&script(&dir, "echo.py", ECHO), &[]).unwrap();
    let e = v
        .try_verify_batch(&[Item::new("g", "true"), Item::new("g", "maybe")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("answered `maybe` for item 2 of a batch of 2"),
        "{e}"
    );

    let body = r#"
for line in sys.stdin:
    print("true", flush=True)
    print("true", flush=True)
"#;
    let v = build_verifier(&script(&dir, "twice.py", body), &[]).unwrap();
    assert!(v.try_verify_batch(&[Item::new("g", "p")]).unwrap()[0].correct);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let e = v
        .try_verify_batch(&[Item::new("g", "p")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("answered more lines than items"), "{e}");
}

#[test]
fn bad_commands_and_options_are_clear_errors() {
    let e = |name: &str, o: &[(&str, &str)]| {
        build_verifier(name, &opts(o))
            .err()
            .expect("refused")
            .to_string()
    };
    let missing = e("cmd:/nonexistent/scorer --flag", &[]);
    assert!(
        missing.contains("cannot start `/nonexistent/scorer`"),
        "{missing}"
    );
    assert!(e("cmd:", &[]).contains("no program given"));
    assert!(e("cmd:python3 -c pass", &[("timeout", "0")]).contains("timeout=0"));
    assert!(e("cmd:python3 -c pass", &[("timeout", "x")]).contains("timeout=x"));
    assert!(e("cmd:python3 -c pass", &[("min_score", "nan")]).contains("min_score"));
    assert!(e("cmd:python3 -c pass", &[("case", "x")]).contains("unknown option `case`"));
    assert!(e("shell", &[]).contains("cmd:PROGRAM"));
}
