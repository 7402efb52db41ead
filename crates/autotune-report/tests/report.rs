//! The report end to end: a real (small) comparison written as a run directory, drawn, then
//! drawn again after the directory is damaged in the ways a crash or a careless copy does.

use std::path::{Path, PathBuf};

use autotune_core::Params;
use autotune_curriculum::Budget;
use autotune_experiment::{compare, CompareSpec, Provenance, RunConfig, RunDirWriter};
use autotune_report::{write_report, RunData};

fn spec() -> CompareSpec {
    let mut p = Params::default();
    p.0.insert("window".into(), "8".into());
    CompareSpec {
        task: "halfspace-cot".into(),
        task_params: p,
        strategies: vec![
            "uniform".into(),
            "autotune-cex".into(),
            "autotune-bbm".into(),
        ],
        strategy_params: Params::default(),
        eps: vec![0.1, 0.05],
        seeds: 2,
        base_seed: 0,
        test_factor: 10.0,
        budget: Budget {
            max_demos: Some(4000),
            ..Budget::default()
        },
        stop_at_eps: true,
        nested_eps: false,
    }
}

/// A fresh run directory with a finished comparison in it.
fn run_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let s = spec();
    let plan = s.plan(&autotune_tasks::BuiltinTasks).unwrap();
    let cfg = RunConfig::new(
        Provenance {
            command: "autotune compare --task halfspace-cot".into(),
            ..Provenance::default()
        },
        &plan,
    );
    let w = RunDirWriter::create(&dir, &cfg).unwrap();
    let report = compare(&autotune_tasks::BuiltinTasks, &plan, &|r| w.record(r), None).unwrap();
    w.finish(&report).unwrap();
    (tmp, dir)
}

fn html(dir: &Path) -> (String, Vec<String>) {
    let w = write_report(dir, None, None).unwrap();
    let problems = w.problems.iter().map(|p| p.to_string()).collect();
    (std::fs::read_to_string(w.html).unwrap(), problems)
}

fn has_figure(html: &str, id: &str) -> bool {
    html.contains(&format!("<figure id=\"fig-{id}\"><svg"))
}

#[test]
fn a_complete_run_directory_draws_every_section_self_contained() {
    let (_tmp, dir) = run_dir();
    for f in [
        "config.toml",
        "metrics.jsonl",
        "ledger.json",
        "comparison.json",
        "comparison.md",
        "table.txt",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let (page, problems) = html(&dir);
    assert!(problems.is_empty(), "{problems:?}");
    for id in ["error-vs-demos", "rank-distribution", "acceptance"] {
        assert!(has_figure(&page, id), "figure {id} missing");
    }
    // RL curves appear only when a strategy learns without a teacher.
    assert!(!has_figure(&page, "error-vs-rollouts"));
    // Self-contained: nothing to fetch.
    for bad in [
        "src=\"http",
        "href=\"http",
        "<script",
        "<link",
        "@import",
        "url(",
    ] {
        assert!(!page.contains(bad), "page contains {bad}");
    }
    // The bill names every cost of the ledger, with ratios to uniform.
    for col in [
        "teacher calls",
        "teacher tokens",
        "verifier calls",
        "student gens",
        "student tokens",
        "train steps",
        "train examples",
        "prompts drawn",
        "wall s",
    ] {
        assert!(
            page.contains(&format!("<th>{col}</th>")),
            "bill lacks {col}"
        );
    }
    assert!(page.contains("class=\"ratio"));
    // Configuration and provenance.
    assert!(page.contains("autotune compare --task halfspace-cot"));
    assert!(page.contains("[task.params]"));
    // Every strategy drawn in the error figure's legend, and a fitted law listed.
    for s in ["uniform", "autotune-cex", "autotune-bbm"] {
        assert!(page.contains(s));
    }
    assert!(page.contains("fit: "), "no fitted scaling drawn");
}

#[test]
fn truncated_metrics_are_named_by_file_and_line_and_the_rest_is_drawn() {
    let (_tmp, dir) = run_dir();
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Keep 60% of the lines and half of the next one, as a killed writer would leave it.
    let keep = lines.len() * 6 / 10;
    let mut cut = lines[..keep].join("\n");
    cut.push('\n');
    cut.push_str(&lines[keep][..lines[keep].len() / 2]);
    std::fs::write(&path, &cut).unwrap();
    let (page, problems) = html(&dir);
    let want = format!("metrics.jsonl:{}: truncated record", keep + 1);
    assert!(
        problems.iter().any(|p| p.contains(&want)),
        "expected `{want}` in {problems:?}"
    );
    assert!(page.contains(&want), "the page should list the problem");
    assert!(has_figure(&page, "error-vs-demos"));
    assert!(has_figure(&page, "acceptance"));
}

#[test]
fn a_corrupt_line_is_skipped_and_named() {
    let (_tmp, dir) = run_dir();
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[4] = "{\"record\": \"phase\", \"strategy\": 7}".into();
    lines[6] = "garbage".into();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let data = RunData::load(&dir).unwrap();
    let p: Vec<String> = data.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].contains("metrics.jsonl:5: not a metrics record"),
        "{p:?}"
    );
    assert!(
        p[1].contains("metrics.jsonl:7: not a metrics record"),
        "{p:?}"
    );
    let records = data.phases.len() + data.evals.len() + data.ends.len();
    assert_eq!(records, lines.len() - 2);
}

#[test]
fn missing_files_are_reported_and_the_bill_survives() {
    let (_tmp, dir) = run_dir();
    std::fs::remove_file(dir.join("metrics.jsonl")).unwrap();
    let (page, problems) = html(&dir);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("metrics.jsonl: missing")),
        "{problems:?}"
    );
    assert!(!has_figure(&page, "error-vs-demos"));
    assert!(
        page.contains("<th>teacher calls</th>"),
        "the bill comes from comparison.json"
    );

    // Without comparison.json either, but with the metrics back: the bill comes from the
    // end records.
    let (_tmp2, dir2) = run_dir();
    std::fs::remove_file(dir2.join("comparison.json")).unwrap();
    std::fs::write(dir2.join("config.toml"), "this is = = not toml").unwrap();
    let (page, problems) = html(&dir2);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("comparison.json: missing")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("config.toml:1: not valid TOML")),
        "{problems:?}"
    );
    assert!(page.contains("<th>teacher calls</th>"));
    assert!(has_figure(&page, "error-vs-demos"));
}

#[test]
fn png_export_writes_one_image_per_plot() {
    let (tmp, dir) = run_dir();
    let png_dir = tmp.path().join("png");
    let out = tmp.path().join("elsewhere/page.html");
    let w = write_report(&dir, Some(&out), Some(&png_dir)).unwrap();
    assert_eq!(w.html, out);
    assert!(out.is_file());
    let names: Vec<String> = w
        .pngs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "error-vs-demos.png",
            "rank-distribution.png",
            "acceptance.png"
        ]
    );
    for p in &w.pngs {
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(
            &bytes[..8],
            b"\x89PNG\r\n\x1a\n",
            "{} is not a PNG",
            p.display()
        );
        assert!(bytes.len() > 10_000, "{} looks empty", p.display());
    }
}

#[test]
fn a_path_that_is_not_a_directory_is_refused() {
    let e = write_report(Path::new("/nonexistent/run"), None, None).unwrap_err();
    assert!(e
        .to_string()
        .contains("/nonexistent/run is not a run directory"));
}
