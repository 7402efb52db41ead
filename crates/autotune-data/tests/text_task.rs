//! The text task's parts: the file-backed teacher serves only what it is asked for, records'
//! own verifiers decide, and the memorising student answers what it was taught.

use std::path::PathBuf;

use autotune_core::{Demo, Task};
use autotune_data::{decode, encode, Format, TextTask, TextTaskConfig};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn config(path: PathBuf, teacher: Option<PathBuf>) -> TextTaskConfig {
    TextTaskConfig {
        path,
        format: Format::Auto,
        verifier: "numeric".into(),
        verifier_options: Vec::new(),
        teacher,
        model_teacher: None,
        student_server: None,
        student: None,
        skip_bad: false,
        holdout: None,
        dimension: None,
    }
}

const TASKS: &str = r#"{"id": "p1", "prompt": "2+2?", "answer": 4}
{"id": "p2", "prompt": "Capital of Peru?", "answer": "Lima", "verifier": "exact"}
{"id": "p3", "prompt": "Pick: (A) 1 (B) 2", "answer": "B", "meta": {"verifier": "choice"}}
"#;

#[test]
fn file_teacher_serves_demonstrations_by_id_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = write(&dir, "t.jsonl", TASKS);
    let teacher = write(
        &dir,
        "teacher.jsonl",
        "{\"id\": \"p1\", \"cot\": \"2+2 is 4. The answer is 4.\"}\n{\"id\": \"p2\", \"cot\": \"Peru's capital.\", \"answer\": \"Lima\"}\n",
    );
    let t = TextTask::open(config(tasks, Some(teacher))).unwrap();
    assert_eq!(
        t.file_teacher().unwrap().served(),
        0,
        "nothing is consumed before it is asked for"
    );
    let pool = t.pool().unwrap();
    let traces = t.teacher().demonstrate_batch(&pool[..2]).unwrap();
    assert_eq!(t.file_teacher().unwrap().served(), 2);
    assert_eq!(decode(traces[0].answer()), "4");
    assert_eq!(decode(traces[1].answer()), "Lima");
    // The records' own verifiers judge the teacher's answers.
    let answers: Vec<&[u32]> = traces.iter().map(|t| t.answer()).collect();
    assert_eq!(
        t.verifier().verify_batch(&pool[..2], &answers),
        vec![true, true]
    );
    // p3 has no demonstration in the teacher file: a clear error, nothing served.
    let e = t
        .teacher()
        .demonstrate_batch(&pool[2..])
        .unwrap_err()
        .to_string();
    assert!(e.contains("has no demonstration for prompt id `p3`"), "{e}");
    assert_eq!(t.file_teacher().unwrap().served(), 2);
}

#[test]
fn per_record_verifiers_decide() {
    let dir = tempfile::tempdir().unwrap();
    let t = TextTask::open(config(write(&dir, "t.jsonl", TASKS), None)).unwrap();
    let pool = t.pool().unwrap();
    let ans = [
        encode("so 4.0"),
        encode("lima"),
        encode("The answer is (B)"),
    ];
    let refs: Vec<&[u32]> = ans.iter().map(Vec::as_slice).collect();
    // numeric: 4.0 == 4; exact is case-sensitive by default; choice extracts (B).
    assert_eq!(
        t.verifier().verify_batch(&pool, &refs),
        vec![true, false, true]
    );
}

#[test]
fn the_memorising_student_answers_what_it_was_taught() {
    let dir = tempfile::tempdir().unwrap();
    let t = TextTask::open(config(write(&dir, "t.jsonl", TASKS), None)).unwrap();
    let pool = t.pool().unwrap();
    let mut s = t.new_student(0);
    let traces = t.teacher().demonstrate_batch(&pool[..1]).unwrap();
    s.fit(&[Demo {
        prompt: pool[0].clone(),
        trace: traces[0].clone(),
    }])
    .unwrap();
    let out = s.generate_batch(&pool);
    let refs: Vec<&[u32]> = out.iter().map(|t| t.answer()).collect();
    // Taught p1; the others get the most frequent answer ("4"), which is wrong for them.
    assert_eq!(
        t.verifier().verify_batch(&pool, &refs),
        vec![true, false, false]
    );
}

#[test]
fn bad_teacher_files_and_verifiers_name_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = write(&dir, "t.jsonl", TASKS);
    let teacher = write(&dir, "teacher.jsonl", "{\"id\": \"p1\"}\n");
    let e = TextTask::open(config(tasks.clone(), Some(teacher)))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.ends_with("teacher.jsonl:1: expected `cot` (a string)"),
        "{e}"
    );
    let odd = write(
        &dir,
        "odd.jsonl",
        "{\"prompt\": \"q\", \"answer\": 1, \"verifier\": \"regex\"}\n",
    );
    let e = TextTask::open(config(odd, None)).err().unwrap().to_string();
    assert!(e.contains("odd.jsonl:1: unknown verifier `regex`"), "{e}");
    let mut c = config(tasks, None);
    c.holdout = Some(0.5);
    let t = TextTask::open(c).unwrap();
    assert_eq!(
        t.pool().unwrap().len(),
        2,
        "the test part is not in the training pool"
    );
}

#[test]
fn a_saved_student_loads_back_answer_for_answer() {
    let dir = tempfile::tempdir().unwrap();
    let t = TextTask::open(config(write(&dir, "t.jsonl", TASKS), None)).unwrap();
    let pool = t.pool().unwrap();
    let mut s = t.new_student(0);
    let traces = t.teacher().demonstrate_batch(&pool).unwrap();
    // p1 taught twice, so its answer is the most frequent (the fallback).
    let demos: Vec<Demo> = [0usize, 1, 0]
        .iter()
        .map(|&i| Demo {
            prompt: pool[i].clone(),
            trace: traces[i].clone(),
        })
        .collect();
    s.fit(&demos).unwrap();
    let state = s.save().expect("the memorising student saves");
    let loaded = t.load_student(&state).unwrap();
    let unseen = autotune_core::Prompt {
        id: 9,
        tokens: encode("never seen"),
    };
    let mut all = pool.clone();
    all.push(unseen);
    assert_eq!(s.generate_batch(&all), loaded.generate_batch(&all));
    assert_eq!(decode(loaded.generate_batch(&all)[3].answer()), "4");
    let e = t.load_student("{\"table\": 3}").err().unwrap().to_string();
    assert!(e.contains("not a memorising-student checkpoint"), "{e}");
}

/// Pre-flight: a gold answer its own verifier rejects, records with the same prompt and
/// different answers, and a teacher demonstration that fails its verifier are reported at load
/// (an error naming file, line and fix; with skip_bad, skipped and counted), so no
/// demonstration is ever bought for them.
#[test]
fn preflight_reports_unpassable_records_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = write(
        &dir,
        "t.jsonl",
        concat!(
            "{\"id\": \"a\", \"prompt\": \"1+1?\", \"answer\": 2}\n",
            "{\"id\": \"b\", \"prompt\": \"a number?\", \"answer\": \"seven\"}\n",
            "{\"id\": \"c\", \"prompt\": \"3+3?\", \"answer\": 6}\n",
            "{\"id\": \"d\", \"prompt\": \"3+3?\", \"answer\": 7}\n",
            "{\"id\": \"e\", \"prompt\": \"2+3?\", \"answer\": 5}\n",
            "{\"id\": \"f\", \"prompt\": \"2+2?\", \"answer\": 4}\n",
            "{\"id\": \"g\", \"prompt\": \"2+2?\", \"answer\": \"4.0\"}\n",
        ),
    );
    // Without skip_bad: the first problem, where it is, how many more, and the fix.
    let e = TextTask::open(config(tasks.clone(), None))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("t.jsonl:2:"), "{e}");
    assert!(
        e.contains("the gold answer `seven` fails its own verifier `numeric`"),
        "{e}"
    );
    assert!(e.contains("(2 more records like it)"), "{e}");
    assert!(e.contains("--skip-bad"), "{e}");
    // With skip_bad: skipped and counted; records that agree up to the verifier (4 and 4.0)
    // are not a conflict.
    let mut c = config(tasks.clone(), None);
    c.skip_bad = true;
    let t = TextTask::open(c).unwrap();
    let ids: Vec<&str> = t.records().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["a", "e", "f", "g"]);
    assert_eq!(t.skipped.len(), 3, "{:?}", t.skipped);
    assert!(
        t.skipped[1].contains("t.jsonl:3: conflicting records: lines 3, 4"),
        "{:?}",
        t.skipped
    );
    // A wrong teacher line: reported, the record skipped, its demonstration never served.
    let teacher = write(
        &dir,
        "teacher.jsonl",
        concat!(
            "{\"id\": \"a\", \"cot\": \"1+1 = 2\", \"answer\": 2}\n",
            "{\"id\": \"e\", \"cot\": \"2+3 = 6\", \"answer\": 6}\n",
            "{\"id\": \"f\", \"cot\": \"2+2 = 4\", \"answer\": 4}\n",
            "{\"id\": \"g\", \"cot\": \"2+2 = 4\", \"answer\": 4}\n",
        ),
    );
    let mut c = config(tasks, Some(teacher));
    c.skip_bad = true;
    let t = TextTask::open(c).unwrap();
    let ids: Vec<&str> = t.records().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["a", "f", "g"]);
    assert!(
        t.skipped.iter().any(
            |s| s.contains("t.jsonl:5: the teacher's demonstration for id `e`")
                && s.contains("answers `6`")
        ),
        "{:?}",
        t.skipped
    );
    let pool = t.pool().unwrap();
    t.teacher().demonstrate_batch(&pool).unwrap();
    assert_eq!(t.file_teacher().unwrap().served(), 3);
}
