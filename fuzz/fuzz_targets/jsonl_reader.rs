//! The JSONL line reader on arbitrary bytes (against a naive split of the same bytes), and
//! the three readers built on it: task files, `autotune verify` input, the teacher file.
#![no_main]

use std::collections::HashSet;
use std::io::Cursor;
use std::sync::Arc;

use autotune_data::{
    read_tasks_from, read_verify_items_from, FileTeacher, Format, JsonLines, MAX_LINE_BYTES,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// What each line should give, from a naive reading of the whole input: `(line, None)` for a
/// line over the limit, `(line, Some(is JSON))` for any other non-blank line.
fn naive(bytes: &[u8], limit: usize) -> Vec<(usize, Option<bool>)> {
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let mut expected = Vec::new();
    for (i, raw) in lines.iter().enumerate() {
        if i + 1 == lines.len() && raw.is_empty() {
            break;
        }
        let entry = if raw.len() > limit {
            Some(None)
        } else {
            match std::str::from_utf8(raw) {
                Err(_) => Some(Some(false)),
                Ok(s) if s.trim().is_empty() => None,
                Ok(s) => Some(Some(serde_json::from_str::<Value>(s).is_ok())),
            }
        };
        if let Some(e) = entry {
            expected.push((i + 1, e));
        }
    }
    expected
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    // Small limits put the limit's edges within reach.
    let limit = if first < 128 {
        usize::from(first % 64)
    } else {
        MAX_LINE_BYTES
    };

    let expected = naive(bytes, limit);
    let got: Vec<(usize, Result<Value, String>)> = JsonLines::with_limit(Cursor::new(bytes), limit)
        .map(|l| l.expect("a cursor does not fail"))
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:?} vs {expected:?}");
    for ((line, value), (want_line, want)) in got.iter().zip(&expected) {
        assert_eq!(line, want_line);
        match (value, want) {
            (Err(e), None) => assert!(e.contains("longer than"), "{e}"),
            (Ok(v), Some(true)) => {
                // A value read is one that re-reads the same.
                let again: Value = serde_json::from_str(&v.to_string()).unwrap();
                assert_eq!(&again, v);
            }
            (Err(e), Some(false)) => assert!(e.starts_with("not "), "{e}"),
            other => panic!("line {line}: {other:?}"),
        }
    }
    // The readers below use the default limit.
    let n = naive(bytes, MAX_LINE_BYTES).len();

    // Task files: with skip_bad, every non-blank line is a record or a skipped line.
    match read_tasks_from(Cursor::new(bytes), "t.jsonl", Format::Auto, true) {
        Ok(imported) => {
            assert_eq!(imported.records.len() + imported.skipped.len(), n);
            let mut ids = HashSet::new();
            let mut last = 0;
            for r in &imported.records {
                assert!(r.line > last);
                last = r.line;
                assert!(ids.insert(r.id.clone()), "duplicate id {}", r.id);
            }
            let strict = read_tasks_from(Cursor::new(bytes), "t.jsonl", Format::Auto, false);
            match strict {
                Ok(s) => assert!(imported.skipped.is_empty() && s.records == imported.records),
                Err(e) => assert!(!imported.skipped.is_empty(), "{e}"),
            }
        }
        Err(e) => assert!(e.to_string().contains("no task records"), "{e}"),
    }
    if let Ok(items) = read_verify_items_from(Cursor::new(bytes), "v.jsonl") {
        assert_eq!(items.len(), n);
    }
    let _ = FileTeacher::from_reader(Arc::new(Vec::new()), Cursor::new(bytes), "teacher.jsonl");
});
