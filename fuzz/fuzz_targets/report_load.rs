//! The report's run-directory loader (`autotune report DIR`): `config.toml`, `metrics.jsonl`
//! and `comparison.json` with arbitrary content, then the HTML page drawn from what loaded.
//! The input is the three files' contents separated by NUL bytes (a missing part is a missing
//! file). Loading never fails on content, and every problem names its file and a real line.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use autotune_report::{render_html, RunData};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        tempfile::Builder::new()
            .prefix("autotune-fuzz-report")
            .tempdir_in(base)
            .unwrap()
            .keep()
    })
}

const FILES: [&str; 3] = ["config.toml", "metrics.jsonl", "comparison.json"];

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    let mut parts = data.splitn(3, |b| *b == 0);
    let mut contents: Vec<Option<&[u8]>> = Vec::new();
    for name in FILES {
        let path = dir.join(name);
        match parts.next() {
            Some(p) => {
                std::fs::write(&path, p).unwrap();
                contents.push(Some(p));
            }
            None => {
                let _ = std::fs::remove_file(&path);
                contents.push(None);
            }
        }
    }
    let d = RunData::load(dir).expect("a directory loads");
    for p in &d.problems {
        let i = FILES
            .iter()
            .position(|f| p.file.ends_with(f))
            .unwrap_or_else(|| panic!("problem in an unknown file: {p}"));
        if let (Some(line), Some(text)) = (p.line, contents[i]) {
            let lines = text.iter().filter(|b| **b == b'\n').count() + 1;
            assert!(
                line >= 1 && line <= lines,
                "{p}: the file has {lines} lines"
            );
        }
    }
    let eps = d.eps();
    assert!(eps.windows(2).all(|w| w[0] > w[1]), "{eps:?}");
    let _ = (d.summaries(), d.strategies(), d.task(), d.provenance("git"));
    let html = render_html(&d);
    assert!(html.starts_with("<!DOCTYPE html>") || html.starts_with("<!doctype html>"));
});
