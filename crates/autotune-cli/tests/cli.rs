//! The `autotune` binary end to end: listings, bad input, run files, compare JSON.

use std::process::Command;

fn autotune(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_autotune"))
        .args(args)
        .output()
        .expect("run autotune");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Bad input: one line on stderr naming the valid choices, non-zero exit.
fn assert_one_line_error(args: &[&str], must_contain: &[&str]) {
    let (code, _, err) = autotune(args);
    assert_ne!(code, 0, "{args:?} should fail");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one-line error expected, got:\n{err}"
    );
    for m in must_contain {
        assert!(
            err.contains(m),
            "error for {args:?} should contain `{m}`: {err}"
        );
    }
}

#[test]
fn unknown_task_strategy_and_bad_eps_are_one_line_errors() {
    assert_one_line_error(
        &[
            "compare",
            "--task",
            "nope",
            "--strategies",
            "uniform",
            "--eps",
            "0.1",
            "--seeds",
            "1",
        ],
        &["unknown task `nope`", "halfspace-cot", "skills"],
    );
    assert_one_line_error(
        &[
            "compare",
            "--task",
            "halfspace-cot",
            "--strategies",
            "uniform,boost",
            "--eps",
            "0.1",
            "--seeds",
            "1",
        ],
        &[
            "unknown strategy `boost`",
            "uniform",
            "autotune-bbm",
            "autotune-filterboost",
            "autotune-cex",
            "zero-variance",
            "learnability",
        ],
    );
    for bad in ["0.1,abc", "0.1,,0.01", "1.5", "0", "-0.1", ""] {
        assert_one_line_error(
            &[
                "compare",
                "--task",
                "halfspace-cot",
                "--strategies",
                "uniform",
                "--eps",
                bad,
                "--seeds",
                "1",
            ],
            &["malformed eps list", "expected e.g. 0.1,0.01,0.001"],
        );
    }
    assert_one_line_error(
        &[
            "compare",
            "--task",
            "halfspace-cot",
            "--param",
            "windw=3",
            "--eps",
            "0.1",
            "--seeds",
            "1",
        ],
        &["unknown parameter `windw`", "window"],
    );
    assert_one_line_error(
        &[
            "compare",
            "--task",
            "halfspace-cot",
            "--param",
            "window=99",
            "--eps",
            "0.1",
            "--seeds",
            "1",
        ],
        &["window", "1..=63"],
    );
    assert_one_line_error(
        &[
            "run",
            "--task",
            "halfspace-cot",
            "--strategy",
            "uniform",
            "--eps",
            "0.1",
            "--out",
            "/proc/nope/x",
        ],
        &["creating /proc/nope/x"],
    );
}

#[test]
fn listings_name_every_task_and_strategy_with_parameters() {
    let (code, out, _) = autotune(&["tasks"]);
    assert_eq!(code, 0);
    for s in [
        "halfspace-cot",
        "skills",
        "--param window=32",
        "answer_bits=8",
        "dist=",
    ] {
        assert!(out.contains(s), "tasks listing lacks {s}:\n{out}");
    }
    let (code, out, _) = autotune(&["strategies"]);
    assert_eq!(code, 0);
    for s in [
        "uniform",
        "autotune-bbm",
        "autotune-filterboost",
        "autotune-cex",
        "zero-variance",
        "learnability",
        "gamma=0.25",
    ] {
        assert!(out.contains(s), "strategies listing lacks {s}:\n{out}");
    }
}

#[test]
fn run_writes_config_and_result_and_is_deterministic() {
    let dir = std::env::temp_dir().join(format!("autotune-cli-run-{}", std::process::id()));
    let read = |sub: &str| -> serde_json::Value {
        let args = [
            "run",
            "--task",
            "halfspace-cot",
            "--param",
            "window=12",
            "--strategy",
            "autotune-cex",
            "--eps",
            "0.05",
            "--seed",
            "3",
            "--out",
        ];
        let out = dir.join(sub);
        let (code, stdout, err) = autotune(&[&args[..], &[out.to_str().unwrap()]].concat());
        assert_eq!(code, 0, "{err}");
        assert!(stdout.contains("demos to eps"), "{stdout}");
        let cfg = std::fs::read_to_string(out.join("config.toml")).unwrap();
        assert!(
            cfg.contains("window = \"12\"") && cfg.contains("autotune-cex"),
            "{cfg}"
        );
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap()
    };
    let a = read("a");
    let b = read("b");
    for key in ["reached", "demos_to_eps", "final_error", "phases", "stop"] {
        assert_eq!(
            a[key], b[key],
            "{key} differs between two runs with the same seed"
        );
    }
    assert_eq!(
        a["final_ledger"]["verifier_calls"],
        b["final_ledger"]["verifier_calls"]
    );
    assert_eq!(
        a["final_ledger"]["teacher_calls"],
        b["final_ledger"]["teacher_calls"]
    );
    assert!(a["heldout_prompts"].as_u64().unwrap() >= 200);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn compare_json_has_the_documented_fields() {
    let path = std::env::temp_dir().join(format!("autotune-cli-cmp-{}.json", std::process::id()));
    let dir = std::env::temp_dir().join(format!("autotune-cli-cmp-dir-{}", std::process::id()));
    let (code, out, err) = autotune(&[
        "compare",
        "--task",
        "halfspace-cot",
        "--param",
        "window=10",
        "--strategies",
        "uniform,autotune-cex",
        "--eps",
        "0.1,0.05",
        "--seeds",
        "2",
        "--json",
        path.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("uniform") && out.contains("autotune-cex") && out.contains("scaling"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["task"], "halfspace-cot");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for r in results {
        for key in [
            "strategy",
            "eps",
            "seeds",
            "reached",
            "demos_median",
            "demos_min",
            "demos_max",
            "verifier_calls_median",
            "wall_seconds_median",
        ] {
            assert!(r.get(key).is_some(), "result lacks {key}: {r}");
        }
        assert_eq!(r["seeds"], 2);
    }
    // The run directory holds the same comparison, and everything else a run leaves.
    let in_dir: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("comparison.json")).unwrap())
            .unwrap();
    assert_eq!(in_dir["results"], v["results"]);
    for f in [
        "config.toml",
        "metrics.jsonl",
        "ledger.json",
        "comparison.md",
        "table.txt",
        "report.html",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing from the run directory");
    }
    let md = std::fs::read_to_string(dir.join("comparison.md")).unwrap();
    assert!(md.contains("| strategy | eps | reached |"), "{md}");
    let ledger: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ledger.json")).unwrap()).unwrap();
    assert_eq!(ledger["runs"].as_array().unwrap().len(), 8);
    let total: u64 = ledger["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["final_ledger"]["teacher_calls"].as_u64().unwrap())
        .sum();
    assert_eq!(ledger["total"]["teacher_calls"].as_u64().unwrap(), total);
    // Piped output is plain: no colour codes.
    assert!(!out.contains('\u{1b}'), "colour codes in piped output");
    std::fs::remove_file(&path).ok();
    std::fs::remove_dir_all(&dir).ok();
}

/// The RL commands: `--kappa` on compare (one value, and a list for the burn-in table), the
/// coverage of pi_ref, and clear errors where a reference policy is missing.
#[test]
fn kappa_gives_rollout_columns_a_burn_in_table_and_clear_errors() {
    let dir = std::env::temp_dir().join(format!("autotune-cli-rl-{}", std::process::id()));
    let path = dir.join("cmp.json");
    let common = [
        "compare",
        "--task",
        "halfspace-cot",
        "--param",
        "window=10",
        "--strategies",
        "rft-uniform,autotune-rl",
        "--eps",
        "0.1,0.05",
        "--seeds",
        "2",
    ];
    let mut args: Vec<&str> = common.to_vec();
    let out_dir = dir.join("one");
    args.extend(["--kappa", "8", "--json", path.to_str().unwrap(), "--out"]);
    args.push(out_dir.to_str().unwrap());
    let (code, out, err) = autotune(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("rollouts med") && out.contains("x rft-uniform"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for r in v["results"].as_array().unwrap() {
        for key in ["rollouts_median", "rollouts_min", "rollouts_max"] {
            assert!(r.get(key).is_some(), "result lacks {key}: {r}");
        }
        assert!(r["reference_samples_median"].as_f64().unwrap() > 0.0);
    }
    // A list of kappas: one comparison each and the burn-in table.
    let mut args: Vec<&str> = common.to_vec();
    let burn = dir.join("burn");
    args.extend(["--kappa", "2,8", "--out", burn.to_str().unwrap()]);
    let (code, out, err) = autotune(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("burn-in") && out.contains("slope in kappa"),
        "{out}"
    );
    for f in [
        "kappa-2/comparison.json",
        "kappa-8/comparison.json",
        "burn-in.txt",
        "burn-in.json",
    ] {
        assert!(burn.join(f).is_file(), "{f} missing");
    }
    // Without a reference policy the RL strategies say how to give one (before any run
    // directory is made); `all` leaves them out.
    let none = dir.join("none");
    let mut args: Vec<&str> = common.to_vec();
    args.extend(["--out", none.to_str().unwrap()]);
    let (code, _, err) = autotune(&args);
    assert_ne!(code, 0);
    assert!(err.contains("--kappa"), "{err}");
    assert!(!none.exists(), "no run directory for a refused comparison");
    let all = dir.join("all");
    let (code, out, err) = autotune(&[
        "compare",
        "--task",
        "halfspace-cot",
        "--param",
        "window=8",
        "--strategies",
        "all",
        "--eps",
        "0.2",
        "--seeds",
        "1",
        "--out",
        all.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("autotune-cex") && !out.contains("rft-uniform"),
        "{out}"
    );
    assert_one_line_error(
        &[
            "compare",
            "--task",
            "skills",
            "--kappa",
            "4",
            "--strategies",
            "rft-uniform",
            "--eps",
            "0.1",
        ],
        &["--kappa", "skills"],
    );
    assert_one_line_error(
        &[
            "compare",
            "--task",
            "halfspace-cot",
            "--kappa",
            "0.5",
            "--strategies",
            "rft-uniform",
            "--eps",
            "0.1",
        ],
        &["kappa"],
    );
    // The coverage of pi_ref: about 1/kappa.
    let (code, out, err) = autotune(&[
        "coverage",
        "--task",
        "halfspace-cot",
        "--kappa",
        "4",
        "--samples",
        "32",
        "--prompts",
        "200",
    ]);
    assert_eq!(code, 0, "{err}");
    let rate: f64 = out
        .split("mean pass rate ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!((rate - 0.25).abs() < 0.03, "{out}");
    // Policy gradient needs a trainable reference.
    assert_one_line_error(
        &[
            "rl",
            "--task",
            "halfspace-cot",
            "--param",
            "kappa=4",
            "--seeds",
            "1",
            "--coverage-samples",
            "0",
        ],
        &["reference"],
    );
    assert_one_line_error(
        &["rl", "--task", "arith", "--selectors", "dapo"],
        &["selector", "zero-variance"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn report_draws_a_run_directory_and_names_bad_lines() {
    let base = std::env::temp_dir().join(format!("autotune-cli-report-{}", std::process::id()));
    let dir = base.join("run");
    let (code, _, err) = autotune(&[
        "run",
        "--task",
        "halfspace-cot",
        "--param",
        "window=8",
        "--strategy",
        "autotune-filterboost",
        "--eps",
        "0.1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    for f in [
        "config.toml",
        "metrics.jsonl",
        "result.json",
        "comparison.json",
        "report.html",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // Damage the metrics: the report still draws, and says where the damage is.
    let metrics = dir.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text.push_str("{\"record\": \"eval\", \"strat");
    let lines = text.lines().count();
    std::fs::write(&metrics, text).unwrap();
    let html = base.join("out/page.html");
    let png = base.join("png");
    let (code, out, err) = autotune(&[
        "report",
        dir.to_str().unwrap(),
        "--out",
        html.to_str().unwrap(),
        "--png",
        png.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("metrics.jsonl:{lines}: truncated record")),
        "{err}"
    );
    assert!(
        out.contains("page.html") && out.contains("error-vs-demos.png"),
        "{out}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<figure id=\"fig-error-vs-demos\"><svg"));
    assert!(png.join("acceptance.png").is_file());
    // Not a run directory: one line, exit 2.
    assert_one_line_error(
        &["report", base.join("nope").to_str().unwrap()],
        &["is not a run directory"],
    );
    std::fs::remove_dir_all(&base).ok();
}

fn examples(name: &str) -> String {
    format!("{}/../../examples/tasks/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn own_tasks_run_end_to_end_and_export_for_trl_and_verl() {
    let base = std::env::temp_dir().join(format!("autotune-cli-tasks-{}", std::process::id()));
    let (sft, rl) = (base.join("sft.jsonl"), base.join("rl.jsonl"));
    std::fs::create_dir_all(&base).unwrap();
    let (code, out, err) = autotune(&[
        "run",
        "--tasks",
        &examples("arith.jsonl"),
        "--strategy",
        "autotune-cex",
        "--eps",
        "0.02",
        "--out",
        base.join("run").to_str().unwrap(),
        "--export-sft",
        sft.to_str().unwrap(),
        "--export-rl",
        rl.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reached"), "{out}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("run/result.json")).unwrap())
            .unwrap();
    let demos = result["final_ledger"]["teacher_calls"].as_u64().unwrap();
    // One SFT example per teacher call, each a user turn and the teacher's answer.
    let sft_lines: Vec<serde_json::Value> = std::fs::read_to_string(&sft)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sft_lines.len() as u64, demos);
    let m = &sft_lines[0]["messages"];
    assert_eq!(m[0]["role"], "user");
    assert_eq!(m[1]["role"], "assistant");
    assert!(m[1]["content"].as_str().unwrap().contains("\\boxed{"));
    // The RL set: every record of the file, with the final model's ranks and weights.
    let rl_lines: Vec<serde_json::Value> = std::fs::read_to_string(&rl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rl_lines.len(), 300);
    for r in &rl_lines {
        let a = &r["extra_info"]["autotune"];
        let w = a["weight"].as_f64().unwrap();
        // Counterexample mask: weight 1 exactly on prompts the model gets wrong.
        assert_eq!(w == 1.0, a["rank"] == 0, "{r}");
        assert!(r["reward_model"]["ground_truth"].is_string());
    }
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn bad_task_files_name_file_and_line_and_skip_bad_counts() {
    let dir = std::env::temp_dir().join(format!("autotune-cli-badtasks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("t.jsonl");
    std::fs::write(
        &f,
        "{\"prompt\": \"1+1?\", \"answer\": 2}\n{\"prompt\": \"x\"}\n{\"prompt\": \"2+2?\", \"answer\": 4}\n",
    )
    .unwrap();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "run",
            "--tasks",
            f.to_str().unwrap(),
            "--strategy",
            "uniform",
            "--eps",
            "0.1",
            "--out",
            dir.join("run").to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let a = args(&[]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    assert_one_line_error(
        &a,
        &["t.jsonl:2: plain record without `answer` (keys: prompt)"],
    );
    let b = args(&["--skip-bad"]);
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let (code, _, err) = autotune(&b);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 bad records skipped, 2 read"), "{err}");
    assert_one_line_error(
        &[
            "run",
            "--task",
            "skills",
            "--tasks",
            "x.jsonl",
            "--strategy",
            "uniform",
            "--eps",
            "0.1",
            "--out",
            "/tmp/x",
        ],
        &["two different tasks"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn verify_writes_one_verdict_per_record() {
    let dir = std::env::temp_dir().join(format!("autotune-cli-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.jsonl");
    std::fs::write(
        &input,
        "{\"gold\": \"3/4\", \"prediction\": \"so we get 0.75\"}\n{\"gold\": 5, \"prediction\": \"it is 6\"}\n\n{\"gold\": \"1e3\", \"prediction\": \"1,000\"}\n",
    )
    .unwrap();
    let out = dir.join("out.jsonl");
    let (code, _, err) = autotune(&[
        "verify",
        "--verifier",
        "numeric",
        "--in",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("3 verdicts, 2 correct"), "{err}");
    let v: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0]["correct"], true);
    assert_eq!(v[1]["correct"], false);
    assert_eq!(v[1]["extracted"], "6");
    std::fs::write(&input, "{\"gold\": 1}\n").unwrap();
    assert_one_line_error(
        &[
            "verify",
            "--verifier",
            "numeric",
            "--in",
            input.to_str().unwrap(),
        ],
        &["in.jsonl:1: expected `prediction`"],
    );
    assert_one_line_error(
        &[
            "verify",
            "--verifier",
            "nope",
            "--in",
            input.to_str().unwrap(),
        ],
        &["unknown verifier `nope`", "math", "code"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A child `autotune serve-model` on a free loopback port, killed on drop.
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Server {
    fn start(checkpoint: &std::path::Path) -> Server {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_autotune"))
            .args([
                "serve-model",
                checkpoint.to_str().unwrap(),
                "--port",
                "0",
                "--name",
                "tutor",
                "--allow-load",
            ])
            .stdout(std::process::Stdio::piped())
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

    /// POSTs `body` to `path` over plain HTTP/1.1; returns (status, body).
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
fn a_saved_student_is_served_over_the_openai_api() {
    let base = std::env::temp_dir().join(format!("autotune-cli-serve-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let ck = base.join("tutor.json");
    let (code, out, err) = autotune(&[
        "run",
        "--tasks",
        &examples("arith.jsonl"),
        "--strategy",
        "autotune-cex",
        "--eps",
        "0.01",
        "--out",
        base.join("run").to_str().unwrap(),
        "--save-model",
        ck.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("saved the student"), "{out}");
    let server = Server::start(&ck);
    // A prompt of the task file: the served student answers with the demonstration it
    // learned (the file's CoT for this record).
    let (status, body) = server.post(
        "/v1/chat/completions",
        r#"{"model": "tutor", "messages": [{"role": "user", "content": "What is 43 - 21?"}], "temperature": 0}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(
        content,
        "We compute the difference: 43 - 21 = 22. The answer is \\boxed{22}."
    );
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    // Errors are OpenAI-shaped, with the right status.
    let (status, body) = server.post(
        "/v1/chat/completions",
        r#"{"model": "other", "messages": [{"role": "user", "content": "x"}]}"#,
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("model_not_found"));
    let (status, body) = server.post("/v1/chat/completions", "{not json");
    assert_eq!(status, 400, "{body}");
    drop(server);
    // A checkpoint that is not one: a clear error.
    std::fs::write(base.join("bad.json"), "{}").unwrap();
    assert_one_line_error(
        &[
            "serve-model",
            base.join("bad.json").to_str().unwrap(),
            "--port",
            "0",
        ],
        &["bad.json: not an autotune checkpoint"],
    );
    std::fs::remove_dir_all(&base).ok();
}

/// The teacher over HTTP gives the run it gives in process, and a second run pays nothing.
#[test]
fn a_teacher_over_http_matches_in_process_and_the_cache_pays_nothing_twice() {
    let base = std::env::temp_dir().join(format!("autotune-cli-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let b = |p: &str| base.join(p).to_str().unwrap().to_string();
    let tasks = examples("arith.jsonl");
    let (code, _, err) = autotune(&[
        "run",
        "--tasks",
        &tasks,
        "--strategy",
        "autotune-cex",
        "--eps",
        "0.001",
        "--run-to-stop",
        "--out",
        &b("train"),
        "--save-model",
        &b("tutor.json"),
    ]);
    assert_eq!(code, 0, "{err}");
    let result = |dir: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(base.join(dir).join("result.json")).unwrap())
            .unwrap()
    };
    let run = |dir: &str, teacher: &[&str]| {
        let mut args = vec![
            "run",
            "--tasks",
            &tasks,
            "--strategy",
            "autotune-cex",
            "--eps",
            "0.02",
            "--seed",
            "4",
        ];
        args.extend_from_slice(teacher);
        let out = b(dir);
        args.extend_from_slice(&["--out", &out]);
        let (code, stdout, err) = autotune(&args);
        assert_eq!(code, 0, "{err}");
        (result(dir), stdout)
    };
    let ck = b("tutor.json");
    let (local, _) = run("local", &["--teacher-checkpoint", &ck]);
    let server = Server::start(base.join("tutor.json").as_path());
    let url = format!("http://{}/v1", server.addr);
    let cache = b("cache.sqlite");
    let http = [
        "--teacher-url",
        &url,
        "--teacher-model",
        "tutor",
        "--teacher-cache",
        &cache,
    ];
    let (first, _) = run("http1", &http);
    let (second, stdout) = run("http2", &http);
    // The student too over HTTP: it trains in process and generates through the server,
    // which gets its weights after every fit.
    let both = [
        "--teacher-url",
        &url,
        "--teacher-model",
        "tutor",
        "--teacher-cache",
        &cache,
        "--student-url",
        &url,
        "--student-model",
        "tutor",
    ];
    let (remote, _) = run("http3", &both);
    drop(server);
    for key in ["reached", "demos_to_eps", "final_error", "phases", "stop"] {
        assert_eq!(
            local[key], remote[key],
            "{key}: in process vs teacher and student over HTTP"
        );
    }
    for k in [
        "teacher_calls",
        "student_generations",
        "student_tokens",
        "verifier_calls",
    ] {
        assert_eq!(
            local["final_ledger"][k], remote["final_ledger"][k],
            "{k}: in process vs teacher and student over HTTP"
        );
    }
    // The student's generations went to the server (the teacher's all came from the cache).
    assert!(remote["final_ledger"]["api_requests"].as_u64().unwrap() > 0);
    assert_eq!(
        remote["final_ledger"]["teacher_cache_hits"],
        remote["final_ledger"]["teacher_calls"]
    );
    for key in ["reached", "demos_to_eps", "final_error", "phases", "stop"] {
        assert_eq!(local[key], first[key], "{key}: in process vs over HTTP");
        assert_eq!(first[key], second[key], "{key}: first vs cached run");
    }
    let l = |v: &serde_json::Value, k: &str| v["final_ledger"][k].as_u64().unwrap();
    assert_eq!(l(&local, "teacher_calls"), l(&first, "teacher_calls"));
    assert_eq!(l(&local, "teacher_tokens"), l(&first, "teacher_tokens"));
    assert_eq!(l(&local, "api_requests"), 0);
    // The first HTTP run paid for each distinct prompt once (repeats came from the cache).
    assert!(l(&first, "api_requests") > 0);
    assert_eq!(
        l(&first, "api_requests") + l(&first, "teacher_cache_hits"),
        l(&first, "teacher_calls")
    );
    // The second paid for nothing.
    assert_eq!(l(&second, "api_requests"), 0);
    assert_eq!(
        l(&second, "teacher_cache_hits"),
        l(&second, "teacher_calls")
    );
    assert!(stdout.contains("0 new teacher calls paid"), "{stdout}");
    std::fs::remove_dir_all(&base).ok();
}

/// The paper's strategies refuse bad constants, and a stochastic strategy on a deterministic
/// student, with one line naming the fix and exit code 2, before any run directory is made.
#[test]
fn paper_strategies_refuse_bad_input_with_exit_2() {
    let dir = std::env::temp_dir().join(format!("autotune-paper-bad-{}", std::process::id()));
    let out = dir.to_string_lossy().into_owned();
    let tasks = examples("arith.jsonl");
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec![
                "--task",
                "halfspace-cot",
                "--strategy",
                "autotune-paper",
                "--strategy-param",
                "c=0",
            ],
            &["`c`", "> 0"],
        ),
        (
            vec![
                "--task",
                "halfspace-cot",
                "--strategy",
                "autotune-paper",
                "--strategy-param",
                "n_prompt=0",
            ],
            &["`n_prompt`", "positive integer"],
        ),
        (
            vec!["--tasks", &tasks, "--strategy", "autotune-stoch"],
            &["autotune-stoch", "deterministic", "use autotune-paper"],
        ),
        (
            vec![
                "--task",
                "halfspace-cot",
                "--kappa",
                "0.5",
                "--strategy",
                "autotune-paper-rl",
            ],
            &["`kappa`", ">= 1"],
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["run", "--eps", "0.1", "--out", &out];
        all.extend(args.iter().copied());
        let (code, _, _) = autotune(&all);
        assert_eq!(code, 2, "{all:?}");
        assert_one_line_error(&all, want);
        assert!(!dir.exists(), "{all:?} made a run directory");
    }
}

/// Numbers a user gives are bounded before anything runs: a held-out set too large to hold,
/// a NaN test factor or time budget are one-line errors (exit 2), and no run directory is made.
#[test]
fn user_numbers_out_of_bounds_are_one_line_errors() {
    let dir = std::env::temp_dir().join(format!("autotune-bounds-{}", std::process::id()));
    let out = dir.to_string_lossy().into_owned();
    let base = [
        "--task",
        "halfspace-cot",
        "--strategy",
        "uniform",
        "--out",
        &out,
    ];
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["--eps", "1e-7"],
            &["over the limit of 10000000", "eps >="],
        ),
        (vec!["--eps", "1e-9"], &["over the limit of 10000000"]),
        (
            vec!["--eps", "0.1", "--test-factor", "NaN"],
            &["--test-factor", "at least 10"],
        ),
        (
            vec!["--eps", "0.1", "--test-factor", "5"],
            &["--test-factor", "at least 10"],
        ),
        (
            vec!["--eps", "0.1", "--max-seconds", "NaN"],
            &["--max-seconds", "positive"],
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["run"];
        args.extend(base);
        args.extend(extra.iter().copied());
        let (code, _, _) = autotune(&args);
        assert_eq!(code, 2, "{args:?}");
        assert_one_line_error(&args, want);
        assert!(!dir.exists(), "{args:?} made a run directory");
    }
    let args = [
        "compare",
        "--task",
        "halfspace-cot",
        "--strategies",
        "uniform",
        "--eps",
        "0.1,1e-8",
        "--out",
        &out,
    ];
    assert_one_line_error(&args, &["over the limit of 10000000"]);
    assert!(!dir.exists(), "compare made a run directory");
}

/// `run` prints why it stopped in words, not as a Rust value.
#[test]
fn stop_reasons_read_as_words() {
    let dir = std::env::temp_dir().join(format!("autotune-stop-words-{}", std::process::id()));
    let out = dir.to_string_lossy().into_owned();
    let (code, stdout, stderr) = autotune(&[
        "run",
        "--task",
        "halfspace-cot",
        "--strategy",
        "uniform",
        "--eps",
        "0.1",
        "--out",
        &out,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("stop: held-out target reached"), "{stdout}");
    assert!(!stdout.contains("Observer"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
    let (code, stdout, stderr) = autotune(&[
        "run",
        "--task",
        "halfspace-cot",
        "--strategy",
        "uniform",
        "--eps",
        "0.01",
        "--max-demos",
        "50",
        "--out",
        &out,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("stop: budget: demos"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A reader that goes away (`autotune ... | head -1`) ends the command quietly: no panic, no
/// exit code 101.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let path = std::env::temp_dir().join(format!("autotune-pipe-{}.jsonl", std::process::id()));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..50_000 {
        writeln!(f, r#"{{"gold": "{i}", "prediction": "{i}"}}"#).unwrap();
    }
    drop(f);
    let mut child = Command::new(env!("CARGO_BIN_EXE_autotune"))
        .args(["verify", "--verifier", "exact", "--in"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run autotune");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("correct"), "{first}");
    // The reader is dropped here: the rest of the output goes to a closed pipe.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    assert!(
        out.status.success() || out.status.code() == Some(141),
        "{:?}: {stderr}",
        out.status
    );
    std::fs::remove_file(&path).ok();
}

/// Commands started in the same second get their own default run directories, and
/// `--strategies all` says which strategies it leaves out.
#[test]
fn same_second_compares_get_their_own_run_directories() {
    let cwd = std::env::temp_dir().join(format!("autotune-same-second-{}", std::process::id()));
    std::fs::create_dir_all(&cwd).unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_autotune"))
                .args([
                    "compare",
                    "--task",
                    "halfspace-cot",
                    "--strategies",
                    "all",
                    "--eps",
                    "0.1",
                    "--seeds",
                    "1",
                ])
                .current_dir(&cwd)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run autotune")
        })
        .collect();
    for c in children {
        let c = c.wait_with_output().expect("run autotune");
        let stderr = String::from_utf8_lossy(&c.stderr);
        assert!(c.status.success(), "{stderr}");
        assert!(
            stderr.contains("note: `all` leaves out rft-uniform, autotune-rl"),
            "{stderr}"
        );
    }
    let dirs = std::fs::read_dir(cwd.join("autotune-runs"))
        .unwrap()
        .count();
    assert_eq!(dirs, 3, "three compares, three run directories");
    std::fs::remove_dir_all(&cwd).ok();
}

/// An RL strategy on a task file says what a task file can run, not flags it cannot take.
#[test]
fn an_rl_strategy_on_a_task_file_names_what_can_run_instead() {
    let dir = std::env::temp_dir().join(format!("autotune-rl-file-{}", std::process::id()));
    let out = dir.to_string_lossy().into_owned();
    let tasks = examples("arith.jsonl");
    for strategy in ["autotune-rl", "rft-uniform"] {
        let args = [
            "run",
            "--tasks",
            &tasks,
            "--strategy",
            strategy,
            "--eps",
            "0.1",
            "--out",
            &out,
        ];
        assert_one_line_error(&args, &["has none", "teacher strategy", "autotune-cex"]);
        let (_, _, err) = autotune(&args);
        assert!(!err.contains("arith: --param"), "{err}");
        assert!(!dir.exists(), "{args:?} made a run directory");
    }
}

/// A teacher that answers wrong (a student trained on 10 demonstrations, served as the
/// teacher): its demonstrations are checked as they arrive and not trained on, a prompt
/// rejected 3 times is not bought again, and the run stops with exit 3 and a one-line error
/// instead of buying its whole budget (300,000 demonstrations before) and exiting 0.
#[test]
fn a_wrong_teacher_is_caught_and_an_unreachable_target_exits_3() {
    let base = std::env::temp_dir().join(format!("autotune-cli-wrong-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let b = |p: &str| base.join(p).to_str().unwrap().to_string();
    let tasks = examples("arith.jsonl");
    let (code, _, err) = autotune(&[
        "run",
        "--tasks",
        &tasks,
        "--strategy",
        "uniform",
        "--eps",
        "0.1",
        "--max-demos",
        "10",
        "--run-to-stop",
        "--out",
        &b("weak"),
        "--save-model",
        &b("weak.json"),
    ]);
    assert_eq!(code, 0, "{err}");
    let weak = b("weak.json");
    for strategy in ["uniform", "autotune-cex"] {
        let out = b(strategy);
        let (code, stdout, err) = autotune(&[
            "run",
            "--tasks",
            &tasks,
            "--strategy",
            strategy,
            "--eps",
            "0.02",
            "--teacher-checkpoint",
            &weak,
            "--out",
            &out,
        ]);
        assert_eq!(code, 3, "{strategy}: {err}");
        let line = err.lines().last().unwrap_or_default();
        assert!(
            line.starts_with("error: ") && line.contains("cannot reach eps 0.02"),
            "{strategy}: {err}"
        );
        assert!(stdout.contains("rejected by the verifier"), "{stdout}");
        // The results are written all the same.
        let r: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(base.join(strategy).join("result.json")).unwrap(),
        )
        .unwrap();
        let l = &r["final_ledger"];
        let calls = l["teacher_calls"].as_u64().unwrap();
        let rejected = l["teacher_rejected"].as_u64().unwrap();
        assert!(
            calls <= 3 * 300,
            "{strategy}: {calls} teacher calls for 300 prompts"
        );
        assert!(
            rejected * 10 >= calls * 9,
            "{strategy}: {rejected} of {calls} rejected"
        );
        assert!(
            r["stop"]["gave-up"].is_object(),
            "{strategy}: {}",
            r["stop"]
        );
        assert!(!r["given_up"].as_array().unwrap().is_empty());
    }
    // The limit is a number of times: 0 is refused before anything runs.
    let (code, _, err) = autotune(&[
        "run",
        "--tasks",
        &tasks,
        "--strategy",
        "uniform",
        "--eps",
        "0.1",
        "--max-teach",
        "0",
        "--out",
        &b("zero"),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--max-teach 0"), "{err}");
    assert!(!base.join("zero").exists());
    let _ = std::fs::remove_dir_all(&base);
}

/// Issue 16's pre-flight case: examples/tasks/arith.jsonl with 5% of its gold answers broken
/// (15 of 300 fail their own verifier) and one wrong line in the teacher's file. The run
/// reports all 16 at load, skips them (`--skip-bad`), and buys no demonstration for them.
#[test]
fn preflight_skips_bad_golds_and_a_wrong_teacher_line_and_buys_nothing_for_them() {
    let base = std::env::temp_dir().join(format!("autotune-cli-preflight-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let records: Vec<serde_json::Value> = std::fs::read_to_string(examples("arith.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (mut tasks, mut teacher) = (String::new(), String::new());
    let mut bad_prompts = Vec::new();
    // Broken golds on 15 records whose prompt is asked once (a broken copy of a prompt asked
    // twice would also be a conflict, reported as such).
    let unique = |i: usize| {
        records
            .iter()
            .filter(|o| o["prompt"] == records[i]["prompt"])
            .count()
            == 1
    };
    let broken: Vec<usize> = (2..records.len())
        .filter(|&i| unique(i))
        .step_by(19)
        .take(15)
        .collect();
    assert_eq!(broken.len(), 15);
    for (i, r) in records.iter().enumerate() {
        let mut task =
            serde_json::json!({"id": r["id"], "prompt": r["prompt"], "answer": r["answer"]});
        let mut demo = serde_json::json!({"id": r["id"], "cot": r["cot"], "answer": r["answer"]});
        if broken.contains(&i) {
            // A gold the numeric verifier cannot read: it fails against itself.
            task["answer"] = "twenty-two".into();
            bad_prompts.push(r["prompt"].as_str().unwrap().to_string());
        } else if i == 1 {
            // The one wrong teacher line: a demonstration whose answer is off by one.
            let right: i64 = r["answer"].as_str().unwrap().parse().unwrap();
            demo["answer"] = (right + 1).to_string().into();
            demo["cot"] = format!("It is \\boxed{{{}}}.", right + 1).into();
            bad_prompts.push(r["prompt"].as_str().unwrap().to_string());
        }
        tasks += &format!("{task}\n");
        teacher += &format!("{demo}\n");
    }
    let (t, d, sft) = (
        base.join("tasks.jsonl"),
        base.join("teacher.jsonl"),
        base.join("sft.jsonl"),
    );
    std::fs::write(&t, tasks).unwrap();
    std::fs::write(&d, teacher).unwrap();
    let (code, _, err) = autotune(&[
        "run",
        "--tasks",
        t.to_str().unwrap(),
        "--teacher",
        d.to_str().unwrap(),
        "--verifier",
        "numeric",
        "--skip-bad",
        "--strategy",
        "uniform",
        "--eps",
        "0.05",
        "--out",
        base.join("run").to_str().unwrap(),
        "--export-sft",
        sft.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("16 bad records skipped, 284 read"), "{err}");
    assert_eq!(
        err.matches("fails its own verifier `numeric`").count(),
        15,
        "{err}"
    );
    assert!(
        err.contains("the teacher's demonstration for id `a1`"),
        "{err}"
    );
    // Every demonstration bought is in the SFT export, and none is for a skipped record.
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("run/result.json")).unwrap())
            .unwrap();
    let bought = result["final_ledger"]["teacher_calls"].as_u64().unwrap();
    let sft_prompts: Vec<String> = std::fs::read_to_string(&sft)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["messages"][0]["content"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(sft_prompts.len() as u64, bought);
    // uniform draws with replacement: prompts repeat, but only the 284 good ones occur.
    let distinct: std::collections::BTreeSet<&String> = sft_prompts.iter().collect();
    assert!(
        bought > 0 && distinct.len() <= 284,
        "{bought}, {}",
        distinct.len()
    );
    for p in &bad_prompts {
        assert!(
            !sft_prompts.iter().any(|s| s.contains(p.as_str())),
            "a demonstration was bought for the skipped `{p}`"
        );
    }
    std::fs::remove_dir_all(&base).ok();
}
