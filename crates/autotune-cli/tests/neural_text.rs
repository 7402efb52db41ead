//! The neural student on a task file (`--tasks FILE --student neural`), end to end: a
//! transformer trained from scratch over the text's bytes learns the demonstrations, both
//! strategies reach eps, and the neural student's parameters are refused without it.

use std::path::Path;
use std::process::Command;

mod common;

use common::{copy_digit_tasks as tasks, hf_model};

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

#[test]
fn lora_fine_tunes_a_checkpoint_and_exports_a_peft_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tasks(tmp.path());
    let model = hf_model(tmp.path());
    let saved = tmp.path().join("student.json");
    let run = |extra: &[&str], out: &str, save: &Path| {
        let out = tmp.path().join(out);
        let mut args = vec![
            "run",
            "--tasks",
            file.to_str().unwrap(),
            "--verifier",
            "numeric",
            "--student",
            "neural",
            "--model",
            model.to_str().unwrap(),
            "--strategy",
            "uniform",
            "--eps",
            "0.1",
            "--max-demos",
            "16",
            "--param",
            "max_len=96",
            "--param",
            "min_steps=4",
            "--param",
            "max_steps=4",
            "--save-model",
            save.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        autotune(&args)
    };
    let (code, _, stderr) = run(
        &[
            "--param",
            "lora_rank=4",
            "--param",
            "lora_targets=q_proj,v_proj",
        ],
        "lora",
        &saved,
    );
    assert_eq!(code, 0, "{stderr}");

    // The saved student's adapters as a PEFT adapter directory.
    let adapter = tmp.path().join("adapter");
    let export = |args: &[&str]| {
        let mut all = vec!["export-hf"];
        all.extend_from_slice(args);
        autotune(&all)
    };
    let (code, stdout, stderr) = export(&[
        saved.to_str().unwrap(),
        adapter.to_str().unwrap(),
        "--adapter",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("rank 4, alpha 8, 4 modules"), "{stdout}");
    let base = autotune_neural::NeuralModel::load_hf(&model).unwrap();
    let (lora, _) = autotune_neural::read_peft_adapter(&adapter, base.config()).unwrap();
    assert_eq!((lora.rank, lora.alpha), (4, 8.0));
    assert_eq!(
        lora.targets,
        vec!["q_proj".to_string(), "v_proj".to_string()]
    );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["base_model_name_or_path"], model.to_str().unwrap());
    // Not twice without --force; the merged model exports as before.
    let (code, _, stderr) = export(&[
        saved.to_str().unwrap(),
        adapter.to_str().unwrap(),
        "--adapter",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--force"), "{stderr}");
    let merged = tmp.path().join("merged");
    let (code, _, stderr) = export(&[saved.to_str().unwrap(), merged.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        merged.join("tokenizer.json").is_file() && merged.join("chat_template.jinja").is_file()
    );
    // The base's tokenizer and chat template travel with the export.
    let tok = autotune_neural::Tokenizer::from_hf_dir(&merged).unwrap();
    assert!(tok.has_chat_template());
    let merged = autotune_neural::NeuralModel::load_hf(&merged).unwrap();
    assert_eq!(merged.num_params(), base.num_params());

    // A student that trained every weight has no adapter to export.
    let full = tmp.path().join("full.json");
    let (code, _, stderr) = run(&[], "full", &full);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = export(&[
        full.to_str().unwrap(),
        tmp.path().join("none").to_str().unwrap(),
        "--adapter",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("no lora_rank"), "{stderr}");
    // The LoRA student is saved as its adapters over the base's digest, not every weight.
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(
        size(&saved) * 2 < size(&full),
        "LoRA student {} bytes, full {} bytes",
        size(&saved),
        size(&full)
    );

    // Bad LoRA parameters: one line each, before any run.
    for (param, want) in [
        ("lora_targets=c_attn", "no target module `c_attn`"),
        ("lora_alpha=-1", "lora_alpha"),
        ("lora_rank=x", "lora_rank"),
    ] {
        let (code, _, stderr) = run(
            &["--param", "lora_rank=4", "--param", param],
            "bad",
            &tmp.path().join("bad.json"),
        );
        assert_ne!(code, 0, "{param}");
        assert!(stderr.contains(want), "{param}: {stderr}");
    }
}

/// A student trained from scratch on a task file is exported with the byte tokenizer, which
/// reads back with the ids the student was trained on. A student with its own head (and
/// bias) exports when its width is at least the 259 byte tokens (the bias moves into GPT-2's
/// final norm); one with `tied_head=true` at any width.
#[test]
fn a_byte_student_is_exported_with_its_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tasks(tmp.path());
    // `run` of a byte student (width 32) saved to NAME.json, with `extra` parameters.
    let run = |name: &str, extra: &[&str]| {
        let saved = tmp.path().join(format!("{name}.json"));
        let out = tmp.path().join(format!("{name}-run"));
        let mut args = vec![
            "run",
            "--tasks",
            file.to_str().unwrap(),
            "--verifier",
            "numeric",
            "--student",
            "neural",
            "--strategy",
            "uniform",
            "--eps",
            "0.1",
            "--max-demos",
            "16",
            "--save-model",
            saved.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        for p in [
            "d_model=32",
            "layers=1",
            "heads=2",
            "max_len=64",
            "batch=8",
            "min_steps=10",
            "max_steps=10",
        ] {
            args.extend(["--param", p]);
        }
        for p in extra {
            args.extend(["--param", p]);
        }
        let (code, _, stderr) = autotune(&args);
        assert_eq!(code, 0, "{stderr}");
        saved
    };
    let export = |saved: &Path, name: &str| {
        let hf = tmp.path().join(name);
        let (code, stdout, stderr) =
            autotune(&["export-hf", saved.to_str().unwrap(), hf.to_str().unwrap()]);
        (code, stdout, stderr, hf)
    };
    // Its own head with a bias, narrower than the 259 byte tokens: refused with the reason.
    let narrow = run("narrow", &[]);
    let (code, _, stderr, _) = export(&narrow, "narrow-hf");
    assert_ne!(code, 0);
    assert!(stderr.contains("larger than the width"), "{stderr}");
    // A tied head exports at any width.
    let tied = run("tied", &["tied_head=true"]);
    let (code, stdout, stderr, hf) = export(&tied, "tied-hf");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("tokenizer: the byte tokenizer"), "{stdout}");
    let tok = autotune_neural::Tokenizer::from_hf_dir(&hf).unwrap();
    let text = "Copy the digit: 7 (item 1)";
    assert_eq!(
        tok.encode(text).unwrap(),
        text.bytes().map(u32::from).collect::<Vec<_>>()
    );
    assert_eq!(tok.eos(), vec![autotune_neural::BYTE_EOS]);
    let model = autotune_neural::NeuralModel::load_hf(&hf).unwrap();
    assert_eq!(model.config().vocab, autotune_neural::BYTE_VOCAB);
    assert!(model.config().tied_head);
}
