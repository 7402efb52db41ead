//! `autotune`: the command line. A thin layer over the library crates: parse, validate,
//! run, print and write files.

mod progress;
mod serve_model;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use autotune_core::Params;
use autotune_curriculum::{strategy_info, strategy_names, Budget, STRATEGIES};
use autotune_experiment::{
    compare, comparison_table, pretty_json, report_from_runs, run_one_full, CompareReport,
    CompareSpec, FileJournal, Provenance, RunConfig, RunDirWriter, RunSpec, JOURNAL_FILE,
    RATIO_COLUMN, REACHED_COLUMN, RESULT_JSON,
};
use autotune_tasks::{task_info, TASKS};
use clap::{Args, Parser, Subcommand};

use progress::Progress;

/// mimalloc: the neural student's training step allocates and frees many tensor buffers;
/// with glibc malloc it trains at 0.64x PyTorch's tokens/s, with mimalloc at 0.74x
/// (`bench/compare-pytorch.sh`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "autotune",
    version,
    about = "AutoTune: autocurriculum for chain-of-thought training (where the expensive supervision goes)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the built-in tasks with their parameters and defaults.
    Tasks,
    /// List the curricula with their parameters and defaults.
    Strategies,
    /// One strategy, one seed: writes a run directory (with result.json) into --out.
    Run(RunArgs),
    /// Many runs: every strategy x eps x seed, aggregated into a comparison table; writes a
    /// run directory with its report.
    Compare(CompareArgs),
    /// The main job on embedded defaults: compares all curricula on halfspace-cot and writes
    /// the run directory with its report.
    Demo(DemoArgs),
    /// Reinforcement learning with a verifier reward: policy-gradient training (GRPO-style)
    /// from the task's reference checkpoint, with the prompts that get rollouts chosen by each
    /// selector (uniform, zero-variance, autotune); rollouts and wall time to the held-out
    /// target.
    Rl(RlArgs),
    /// Measures the coverage of a task's reference policy pi_ref: per prompt, the fraction of
    /// samples the verifier accepts.
    Coverage(CoverageArgs),
    /// Draws a run directory as one self-contained HTML page (and PNGs with --png).
    Report(ReportArgs),
    /// Checks {"gold", "prediction", "tests"?} records with a verifier: one verdict per line.
    Verify(VerifyArgs),
    /// Serves a trained student (a checkpoint from `run --save-model`) through an
    /// OpenAI-compatible chat-completions API.
    ServeModel(ServeModelArgs),
    /// The curriculum as an HTTP service for external trainers (docs/openapi.yaml).
    Serve(ServeArgs),
    /// Continues a killed `run`, `compare` or `demo` from its run directory: every result in
    /// its journal is replayed (no teacher call is paid twice) and the run ends exactly as an
    /// uninterrupted one would.
    Resume(ResumeArgs),
}

#[derive(Args)]
struct RlArgs {
    /// A built-in task with a trainable reference policy (arith with --param reference=FILE).
    #[arg(long, required_unless_present = "render")]
    task: Option<String>,
    /// Print the table of an earlier run's rl.json and exit.
    #[arg(long, value_name = "RL_JSON")]
    render: Option<PathBuf>,
    /// Comma-separated prompt selectors: uniform, zero-variance, autotune.
    #[arg(long, default_value = "uniform,zero-variance,autotune")]
    selectors: String,
    /// Target held-out error (0.05: 95% accuracy).
    #[arg(long, default_value_t = 0.05)]
    eps: f64,
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Samples per prompt (the group).
    #[arg(long, default_value_t = 8)]
    group: usize,
    /// Groups per policy-gradient update.
    #[arg(long, default_value_t = 32)]
    prompts_per_step: usize,
    /// Sampling temperature of the rollouts.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Learning rate of the policy-gradient step.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Rounds of drawing per update at most (filtering selectors draw again until the batch
    /// is full).
    #[arg(long, default_value_t = 8)]
    max_rounds: usize,
    /// Steps per run at most.
    #[arg(long, default_value_t = 2000)]
    max_steps: usize,
    /// Advantages are reward minus the group mean, not divided by the group's std.
    #[arg(long)]
    no_std: bool,
    /// Evaluate on the held-out prompts every this many steps.
    #[arg(long, default_value_t = 10)]
    eval_every: usize,
    /// Held-out prompts (at least 10/eps).
    #[arg(long, default_value_t = 1000)]
    heldout: usize,
    /// Stop a run after this many rollouts.
    #[arg(long)]
    max_rollouts: Option<u64>,
    /// Stop a run after this many wall seconds.
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Samples per prompt to measure the coverage of pi_ref (0: skip).
    #[arg(long, default_value_t = 16)]
    coverage_samples: usize,
    #[arg(long, default_value_t = 512)]
    coverage_prompts: usize,
    /// Task parameter KEY=VALUE (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Output directory (rl.json, rl.txt).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct CoverageArgs {
    #[arg(long)]
    task: String,
    /// halfspace-cot: the coverage parameter of the built-in pi_ref.
    #[arg(long)]
    kappa: Option<f64>,
    /// Task parameter KEY=VALUE (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    #[arg(long, default_value_t = 16)]
    samples: usize,
    #[arg(long, default_value_t = 512)]
    prompts: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct ResumeArgs {
    /// The run directory of the killed command.
    dir: PathBuf,
}

#[derive(Args, Clone)]
struct Common {
    /// Task parameter KEY=VALUE (repeatable); see `autotune tasks`.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Strategy parameter KEY=VALUE (repeatable); see `autotune strategies`.
    #[arg(long = "strategy-param", value_name = "KEY=VALUE")]
    strategy_params: Vec<String>,
    /// Coverage of the reference policy pi_ref for the RL strategies (rft-uniform,
    /// autotune-rl) on the theory testbeds: pi_ref finds a correct CoT with probability about
    /// 1/K per sample. The same as `--param kappa=K`. `compare` also takes a list (e.g.
    /// 4,16,64): one comparison per kappa, and the burn-in table of rollouts against kappa and
    /// eps.
    #[arg(long, value_name = "K")]
    kappa: Option<String>,
    /// Held-out prompts per run: ceil(TEST_FACTOR / eps); at least 10.
    #[arg(long, default_value_t = 10.0)]
    test_factor: f64,
    /// Stop a run after this many teacher demonstrations (default: 20 d / eps).
    #[arg(long)]
    max_demos: Option<u64>,
    /// Stop a run after this many verifier calls.
    #[arg(long)]
    max_verifier_calls: Option<u64>,
    /// Stop a run after this many wall seconds.
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Keep running after held-out error reaches eps, to the strategy's own stop
    /// (certificate, phases or budget).
    #[arg(long)]
    run_to_stop: bool,
    /// Your own tasks: a JSONL file of records (plain, reasoning-gym, TRL or verl); the same
    /// as `--task file --param path=FILE`.
    #[arg(long, value_name = "FILE")]
    tasks: Option<PathBuf>,
    /// Record format of --tasks: auto, plain, reasoning-gym, trl-messages, trl-completion, verl.
    #[arg(long)]
    format: Option<String>,
    /// Verifier of --tasks records that name none: exact, numeric, choice, math, code.
    #[arg(long)]
    verifier: Option<String>,
    /// File-backed teacher for --tasks: JSONL of {"id", "cot", "answer"?}.
    #[arg(long, value_name = "FILE")]
    teacher: Option<PathBuf>,
    /// Skip (and count) bad records of --tasks instead of stopping at the first.
    #[arg(long)]
    skip_bad: bool,
    /// An OpenAI-compatible server as the teacher of --tasks, e.g. http://127.0.0.1:8000/v1.
    #[arg(long, value_name = "URL")]
    teacher_url: Option<String>,
    /// The teacher server's model name (with --teacher-url).
    #[arg(long)]
    teacher_model: Option<String>,
    /// SQLite cache of the teacher's completions (default autotune-cache/teacher.sqlite).
    #[arg(long, value_name = "FILE")]
    teacher_cache: Option<PathBuf>,
    /// TOML client configuration of the teacher server (sampling, limits, retries, prices).
    #[arg(long, value_name = "FILE")]
    teacher_config: Option<PathBuf>,
    /// A saved student (`run --save-model`) as the teacher of --tasks, in process.
    #[arg(long, value_name = "FILE")]
    teacher_checkpoint: Option<PathBuf>,
    /// Students of --tasks generate over HTTP through an `autotune serve-model --allow-load`
    /// server, which gets their weights after every fit.
    #[arg(long, value_name = "URL")]
    student_url: Option<String>,
    /// The student server's model name (with --student-url).
    #[arg(long)]
    student_model: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    /// A built-in task (see `autotune tasks`), or use --tasks FILE.
    #[arg(long)]
    task: Option<String>,
    #[arg(long)]
    strategy: String,
    /// Target held-out error.
    #[arg(long, allow_hyphen_values = true)]
    eps: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run directory (created).
    #[arg(long)]
    out: PathBuf,
    /// Write the teacher demonstrations the run bought as TRL SFT data (JSONL).
    #[arg(long, value_name = "FILE")]
    export_sft: Option<PathBuf>,
    /// TRL style of --export-sft: messages or prompt-completion.
    #[arg(long, default_value = "messages")]
    sft_style: String,
    /// Write the task's prompt pool with the curriculum's ranks and weights under the final
    /// model as verl-style RL records (JSONL; file tasks).
    #[arg(long, value_name = "FILE")]
    export_rl: Option<PathBuf>,
    /// Save the trained student as a checkpoint (for `autotune serve-model`; single-model
    /// strategies).
    #[arg(long, value_name = "FILE")]
    save_model: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct CompareArgs {
    /// A built-in task (see `autotune tasks`), or use --tasks FILE.
    #[arg(long)]
    task: Option<String>,
    /// Comma-separated strategies, or `all`.
    #[arg(long, default_value = "all")]
    strategies: String,
    /// Comma-separated target errors, e.g. 0.1,0.01,0.001.
    #[arg(long, allow_hyphen_values = true)]
    eps: String,
    /// Number of seeds (seed, seed+1, ...).
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run directory (default: autotune-runs/compare-TASK-TIME).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the comparison as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// One run per strategy and seed at the smallest eps; the larger eps are read off its
    /// checkpoints (held-out set and schedule of the smallest eps)
    #[arg(long)]
    nested_eps: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct DemoArgs {
    /// Run directory for the demo (config, metrics, comparison, report.html).
    #[arg(long, default_value = "autotune-runs/demo")]
    out: PathBuf,
    /// Seeds.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
}

#[derive(Args)]
struct ReportArgs {
    /// A run directory written by `run`, `compare` or `demo`.
    dir: PathBuf,
    /// The HTML file (default: DIR/report.html).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write every plot as PNG into this directory.
    #[arg(long, value_name = "DIR")]
    png: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long, default_value_t = autotune_service::DEFAULT_PORT)]
    port: u16,
    /// Address to bind (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// The SQLite store (created if missing); a restart on the same store loses nothing that
    /// was acknowledged.
    #[arg(long, default_value = "autotune-service.sqlite")]
    store: PathBuf,
    /// Require `Authorization: Bearer <token>` with the token read from this environment
    /// variable.
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// Largest request body accepted, in MiB.
    #[arg(long, default_value_t = 8)]
    max_body_mib: usize,
    /// Default lease of a pool's issued prompts, in seconds.
    #[arg(long, default_value_t = 600.0)]
    lease_seconds: f64,
}

#[derive(Args)]
struct ServeModelArgs {
    /// A checkpoint written by `autotune run --save-model FILE`.
    checkpoint: PathBuf,
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Address to bind (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Model name in the API (default: the checkpoint's file stem).
    #[arg(long)]
    name: Option<String>,
    /// Take new weights from trainers (`POST /v1/admin/load`), served as NAME/SLOT@vN.
    #[arg(long)]
    allow_load: bool,
    /// Require `Authorization: Bearer <token>` with the token read from this environment
    /// variable.
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
}

#[derive(Args)]
struct VerifyArgs {
    /// exact, numeric, choice, math or code.
    #[arg(long)]
    verifier: String,
    /// Verifier option KEY=VALUE (repeatable), e.g. case=insensitive, rel_tol=1e-4, timeout=5.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// JSONL of {"gold", "prediction", "tests"?} records.
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// Verdicts, one JSON line per record ({"correct", "extracted", "reason"}); default stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Tasks => {
            print!("{}", list_tasks());
            Ok(())
        }
        Cmd::Strategies => {
            print!("{}", list_strategies());
            Ok(())
        }
        Cmd::Resume(a) => cmd_resume(a),
        Cmd::Run(a) => cmd_run(a),
        Cmd::Compare(a) => cmd_compare(a),
        Cmd::Demo(a) => cmd_demo(a),
        Cmd::Report(a) => cmd_report(a),
        Cmd::Rl(a) => cmd_rl(a),
        Cmd::Coverage(a) => cmd_coverage(a),
        Cmd::Verify(a) => cmd_verify(a),
        Cmd::Serve(a) => {
            let mut c = autotune_service::ServiceConfig::new(&a.store);
            c.bind = a.bind;
            c.port = a.port;
            c.max_body_bytes = a.max_body_mib << 20;
            c.lease_seconds = a.lease_seconds;
            if let Some(var) = &a.token_env {
                c = c.with_token_env(var)?;
            }
            autotune_service::serve(c)?;
            Ok(())
        }
        Cmd::ServeModel(a) => {
            let mut o = serve_model::ServeOptions {
                addr: std::net::SocketAddr::new(a.bind, a.port),
                name: a.name,
                allow_load: a.allow_load,
                ..Default::default()
            };
            if let Some(var) = &a.token_env {
                o = o.with_token_env(var)?;
            }
            serve_model::serve(&a.checkpoint, o, |addr| {
                println!("serving {} on http://{addr}/v1", a.checkpoint.display());
            })
        }
    }
}

fn list_tasks() -> String {
    let mut s = String::new();
    for t in TASKS {
        s += &format!("{}\n  {}\n", t.name, t.summary);
        for p in t.params {
            s += &format!("    --param {}={:<12} {}\n", p.key, p.default, p.help);
        }
    }
    s
}

fn list_strategies() -> String {
    let mut s = String::new();
    for t in STRATEGIES {
        s += &format!("{}\n  {}\n", t.name, t.summary);
        for p in t.params {
            s += &format!(
                "    --strategy-param {}={:<12} {}\n",
                p.key, p.default, p.help
            );
        }
    }
    s
}

/// Parses `0.1,0.01`: every value a number in (0, 1).
fn parse_eps_list(s: &str) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let v: f64 = item.trim().parse().ok().filter(|v: &f64| *v > 0.0 && *v < 1.0).with_context(|| {
            format!("malformed eps list `{s}`: `{}` is not a number in (0, 1); expected e.g. 0.1,0.01,0.001", item.trim())
        })?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

/// A strategy list; `all` is every strategy that learns from the teacher, and the RL
/// strategies too when the task has a reference policy (`with_rl`).
fn parse_strategies(s: &str, with_rl: bool) -> Result<Vec<String>> {
    if s.trim() == "all" {
        return Ok(STRATEGIES
            .iter()
            .filter(|s| with_rl || !s.needs_reference)
            .map(|s| s.name.to_string())
            .collect());
    }
    let mut out: Vec<String> = Vec::new();
    for name in s.split(',').map(str::trim) {
        if name.is_empty() {
            bail!(
                "malformed strategy list `{s}`; valid strategies: {}",
                strategy_names()
            );
        }
        strategy_info(name)?;
        if !out.iter().any(|o| o == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// The task and its parameters: `--task` with `--param`, or `--tasks FILE` (the `file`
/// task) with its flags.
fn task_and_params(task: &Option<String>, c: &Common) -> Result<(String, Params)> {
    let mut params = Params::parse(&c.params)?;
    if let Some(k) = &c.kappa {
        let k: f64 = k.trim().parse().map_err(|_| {
            anyhow::anyhow!("--kappa {k}: expected one number >= 1 (a list only with compare)")
        })?;
        insert_kappa(&mut params, task.as_deref().unwrap_or("file"), k)?;
    }
    // The `file` task's parameters set by flags: one list, both to refuse them with another
    // task and to pass them on.
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let file_params: [(&str, Option<String>); 12] = [
        ("path", path(&c.tasks)),
        ("format", c.format.clone()),
        ("verifier", c.verifier.clone()),
        ("teacher", path(&c.teacher)),
        ("skip_bad", c.skip_bad.then(|| "true".to_string())),
        ("teacher_url", c.teacher_url.clone()),
        ("teacher_model", c.teacher_model.clone()),
        ("teacher_cache", path(&c.teacher_cache)),
        ("teacher_config", path(&c.teacher_config)),
        ("teacher_checkpoint", path(&c.teacher_checkpoint)),
        ("student_url", c.student_url.clone()),
        ("student_model", c.student_model.clone()),
    ];
    let file_flags = file_params[1..].iter().any(|(_, v)| v.is_some());
    match (task.as_deref(), &c.tasks) {
        (None, None) => bail!("give a task: --task NAME (see `autotune tasks`) or --tasks FILE"),
        (Some(t), Some(_)) if t != "file" => {
            bail!("--task {t} and --tasks FILE are two different tasks; give one")
        }
        (Some(t), None) if t != "file" && file_flags => {
            bail!(
                "--format, --verifier, --skip-bad, --teacher* and --student-* are for --tasks FILE"
            )
        }
        _ => {}
    }
    for (k, v) in file_params {
        if let Some(v) = v {
            params.0.insert(k.into(), v);
        }
    }
    let name = task.clone().unwrap_or_else(|| "file".into());
    if name == "file" {
        // Open the file once up front: bad records are reported before any run starts.
        let info = task_info("file")?;
        let resolved = params.resolve("task `file`", info.params)?;
        let t = autotune_tasks::file::open(&resolved)?;
        for s in &t.skipped {
            eprintln!("warning: skipped {s}");
        }
        if !t.skipped.is_empty() {
            eprintln!(
                "warning: {} bad records skipped, {} read",
                t.skipped.len(),
                t.records().len()
            );
        }
    }
    Ok((name, params))
}

/// Checks the task name and its parameters before any work starts.
fn check_task(task: &str, params: &Params) -> Result<()> {
    let info = task_info(task)?;
    params.resolve(&format!("task `{task}`"), info.params)?;
    Ok(())
}

fn budget(c: &Common) -> Budget {
    Budget {
        max_demos: c.max_demos,
        max_verifier_calls: c.max_verifier_calls,
        max_seconds: c.max_seconds,
    }
}

/// Fills the default demo budget, 20 d / eps, once the task's dimension is known.
/// The task as the runs will build it (seed 0), for what the command checks up front.
fn instance(task: &str, params: &Params) -> Result<Box<dyn autotune_core::Task>> {
    Ok(autotune_tasks::build_task(task, params, 0)?.0)
}

fn default_max_demos(b: &mut Budget, task: &dyn autotune_core::Task, eps: f64) {
    if b.max_demos.is_none() {
        b.max_demos = Some((20.0 * task.dimension() as f64 / eps).ceil() as u64);
    }
}

/// Refuses, before any run directory is made, a strategy that samples a reference policy on
/// a task that has none.
fn check_reference<'a>(
    task: &dyn autotune_core::Task,
    strategies: impl IntoIterator<Item = &'a String>,
) -> Result<()> {
    if task.reference().is_some() {
        return Ok(());
    }
    for s in strategies {
        if strategy_info(s)?.needs_reference {
            return Err(autotune_curriculum::no_reference(s, task.name()).into());
        }
    }
    Ok(())
}

/// `--kappa K` as the task parameter `kappa` of a task that has one.
fn insert_kappa(params: &mut Params, task: &str, kappa: f64) -> Result<()> {
    if !task_info(task)?.params.iter().any(|p| p.key == "kappa") {
        bail!(
            "--kappa is for tasks with a built-in reference policy of known coverage \
             (halfspace-cot); task {task} has none"
        );
    }
    if params.raw("kappa").is_some() {
        bail!("--kappa and --param kappa=... both given; give one");
    }
    params.insert("kappa", kappa);
    Ok(())
}

/// `DIR`, or `autotune-runs/KIND-TASK-TIME`.
fn run_dir(out: Option<PathBuf>, kind: &str, task: &str) -> PathBuf {
    out.unwrap_or_else(|| {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(':', "");
        PathBuf::from(format!("autotune-runs/{kind}-{task}-{stamp}"))
    })
}

/// Where this run directory came from.
fn provenance() -> Provenance {
    let quote = |a: String| {
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
            format!("'{}'", a.replace('\'', "'\\''"))
        } else {
            a
        }
    };
    let mut args: Vec<String> = invocation_args().into_iter().map(quote).collect();
    if let Some(first) = args.first_mut() {
        *first = "autotune".into();
    }
    Provenance {
        autotune_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: env!("AUTOTUNE_GIT_COMMIT").into(),
        rustc: env!("AUTOTUNE_RUSTC").into(),
        target: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
        threads: rayon::current_num_threads(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        command: args.join(" "),
    }
}

/// Opens the run directory of a command: takes its lock, starts its journal (or, resuming,
/// reads it back), records how the command was invoked, and writes `config.toml`.
fn open_run_dir(dir: &Path, spec: &CompareSpec) -> Result<(RunDirWriter, FileJournal)> {
    let config = RunConfig::resolve(provenance(), spec)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if !resuming() && same_command_ran_here(dir) {
        // The same command into the same directory again (e.g. `autotune demo` twice):
        // continue its run rather than refuse it; what was paid for is replayed.
        eprintln!(
            "{} holds a run of this same command: continuing it (as `autotune resume`)",
            dir.display()
        );
        let _ = RESUMED.set(std::env::args().collect());
    }
    let journal = if resuming() {
        let (journal, summary) = FileJournal::resume(dir)?;
        if let Some((offset, what)) = &summary.dropped {
            eprintln!(
                "warning: {}: dropped the torn last record at byte offset {offset} ({what})",
                dir.join(JOURNAL_FILE).display()
            );
        }
        eprintln!(
            "resuming {}: {} journaled results ({} teacher demonstrations) to replay",
            dir.display(),
            summary.records,
            summary.teacher_prompts
        );
        journal
    } else {
        let journal = FileJournal::create(dir)?;
        let inv = Invocation {
            format: INVOCATION_FORMAT.into(),
            args: std::env::args().collect(),
            cwd: std::env::current_dir()
                .context("reading the current directory")?
                .display()
                .to_string(),
        };
        write_synced(
            &dir.join(INVOCATION_FILE),
            &serde_json::to_string_pretty(&inv)?,
        )?;
        journal
    };
    let writer = RunDirWriter::create(dir, &config)
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok((writer, journal))
}

/// Writes `contents` to `path` durably (temporary file, sync, rename).
fn write_synced(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::io::Write::write_all(&mut f, contents.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Prints what a resumed command replayed and what it did anew.
fn journal_summary(journal: &FileJournal) {
    if resuming() {
        eprintln!(
            "resumed: {} results replayed from the journal, {} new ones journaled",
            journal.replayed(),
            journal.appended()
        );
    }
}

/// `DIR/invocation.json`: how the command of a run directory was invoked, for `resume`.
const INVOCATION_FILE: &str = "invocation.json";
const INVOCATION_FORMAT: &str = "autotune-invocation-v1";

#[derive(serde::Serialize, serde::Deserialize)]
struct Invocation {
    format: String,
    /// The command line (the program first).
    args: Vec<String>,
    /// The directory it was run from (relative paths in `args` are relative to it).
    cwd: String,
}

/// The command line being resumed (set once by `resume`).
static RESUMED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

fn resuming() -> bool {
    RESUMED.get().is_some()
}

/// The command line of this run: the resumed one, or this process's.
fn invocation_args() -> Vec<String> {
    RESUMED
        .get()
        .cloned()
        .unwrap_or_else(|| std::env::args().collect())
}

/// Whether `dir` holds a journaled run of this very command line, run from this directory.
fn same_command_ran_here(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(INVOCATION_FILE)) else {
        return false;
    };
    let Ok(inv) = serde_json::from_str::<Invocation>(&text) else {
        return false;
    };
    let here = std::env::current_dir().map(|d| d.display().to_string());
    inv.format == INVOCATION_FORMAT
        && inv
            .args
            .iter()
            .skip(1)
            .eq(std::env::args().skip(1).collect::<Vec<_>>().iter())
        && here.is_ok_and(|h| h == inv.cwd)
}

fn cmd_resume(a: ResumeArgs) -> Result<()> {
    let dir = std::fs::canonicalize(&a.dir)
        .with_context(|| format!("{}: no such run directory", a.dir.display()))?;
    let path = dir.join(INVOCATION_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: cannot read it; only run directories of `run`, `compare` and `demo` can be resumed",
            path.display()
        )
    })?;
    let inv: Invocation = serde_json::from_str(&text)
        .with_context(|| format!("{}: not an invocation record", path.display()))?;
    if inv.format != INVOCATION_FORMAT {
        bail!(
            "{}: format `{}`, expected `{INVOCATION_FORMAT}`",
            path.display(),
            inv.format
        );
    }
    let cli = Cli::try_parse_from(&inv.args).map_err(|e| {
        anyhow::anyhow!(
            "{}: the recorded command line does not parse: {e}",
            path.display()
        )
    })?;
    std::env::set_current_dir(&inv.cwd).with_context(|| {
        format!(
            "{}: the run's working directory {} (its relative paths start there)",
            path.display(),
            inv.cwd
        )
    })?;
    RESUMED
        .set(inv.args.clone())
        .map_err(|_| anyhow::anyhow!("resume runs once per process"))?;
    match cli.cmd {
        Cmd::Run(mut r) => {
            r.out = dir;
            cmd_run(r)
        }
        Cmd::Compare(mut c) => {
            c.out = Some(dir);
            cmd_compare(c)
        }
        Cmd::Demo(mut d) => {
            d.out = dir;
            cmd_demo(d)
        }
        _ => bail!(
            "{}: only `run`, `compare` and `demo` can be resumed",
            path.display()
        ),
    }
}

/// Draws the report of `dir`; a failure to draw is a warning, the results are already safe.
fn write_report(dir: &Path) {
    match autotune_report::write_report(dir, None, None) {
        Ok(w) => {
            for p in &w.problems {
                eprintln!("warning: {p}");
            }
            println!("report: {}", w.html.display());
        }
        Err(e) => eprintln!("warning: no report drawn: {e}"),
    }
}

/// The comparison table, coloured when stdout is a terminal that takes colours (and
/// `NO_COLOR` is unset), plain otherwise.
fn print_table(report: &CompareReport) {
    let t = comparison_table(report);
    if !console::colors_enabled() {
        print!("{}", t.render(&|_, _, cell| cell));
        return;
    }
    let paint = |row: Option<usize>, col: usize, cell: String| -> String {
        let style = match (row, col) {
            (None, _) => console::Style::new().bold(),
            (Some(_), 0) => console::Style::new().cyan(),
            (Some(_), RATIO_COLUMN) if cell.ends_with("more") => console::Style::new().red(),
            (Some(_), RATIO_COLUMN) => console::Style::new().green().bold(),
            (Some(r), REACHED_COLUMN) if !t.all_reached[r] => console::Style::new().red().bold(),
            _ => console::Style::new(),
        };
        style.apply_to(cell).to_string()
    };
    let text = t.render(&paint);
    let mut lines = text.lines();
    if let Some(title) = lines.next() {
        println!("{}", console::style(title).dim());
    }
    for l in lines {
        println!("{l}");
    }
}

fn cmd_run(a: RunArgs) -> Result<()> {
    let eps = parse_eps_list(&a.eps)?;
    if eps.len() != 1 {
        bail!("`run` takes one eps, got `{}`", a.eps);
    }
    let eps = eps[0];
    let (task, task_params) = task_and_params(&a.task, &a.common)?;
    check_task(&task, &task_params)?;
    strategy_info(&a.strategy)?;
    let sft_style = autotune_data::SftStyle::parse(&a.sft_style).with_context(|| {
        format!(
            "--sft-style `{}`: expected messages or prompt-completion",
            a.sft_style
        )
    })?;
    let t = instance(&task, &task_params)?;
    check_reference(t.as_ref(), [&a.strategy])?;
    let mut b = budget(&a.common);
    default_max_demos(&mut b, t.as_ref(), eps);
    let spec = RunSpec {
        task: task.clone(),
        task_params,
        strategy: a.strategy.clone(),
        strategy_params: Params::parse(&a.common.strategy_params)?,
        eps,
        seed: a.seed,
        test_factor: a.common.test_factor,
        budget: b,
        stop_at_eps: !a.common.run_to_stop,
        also_eps: Vec::new(),
    };
    let cspec = CompareSpec {
        task: spec.task.clone(),
        task_params: spec.task_params.clone(),
        strategies: vec![spec.strategy.clone()],
        strategy_params: spec.strategy_params.clone(),
        eps: vec![eps],
        seeds: 1,
        base_seed: spec.seed,
        test_factor: spec.test_factor,
        budget: spec.budget.clone(),
        stop_at_eps: spec.stop_at_eps,
        nested_eps: false,
    };
    let (writer, journal) = open_run_dir(&a.out, &cspec)?;
    let progress = Progress::new(1);
    let start = std::time::Instant::now();
    let (res, art) = run_one_full(
        &spec,
        |r| {
            writer.record(r);
            progress.record(r);
        },
        Some(&journal),
    )?;
    progress.finish();
    journal.sync()?;
    journal_summary(&journal);
    if let Some(path) = &a.export_sft {
        let examples: Vec<_> = art
            .demos
            .iter()
            .map(|d| {
                let p = art.task.describe(&d.prompt);
                autotune_data::SftExample {
                    prompt: p.text,
                    messages: p.messages,
                    completion: art.task.render_trace(&d.trace),
                }
            })
            .collect();
        std::fs::write(path, autotune_data::export_sft(&examples, sft_style))
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "wrote {} SFT examples to {}",
            examples.len(),
            path.display()
        );
    }
    if let Some(path) = &a.save_model {
        let autotune_curriculum::Model::Single(Some(student)) = &art.model else {
            bail!(
                "--save-model saves single-model strategies (autotune-cex, uniform, zero-variance, learnability); `{}` built an ensemble or no model",
                spec.strategy
            );
        };
        let state = student
            .save()
            .with_context(|| format!("the students of task `{task}` cannot be saved"))?;
        let ck = serve_model::Checkpoint {
            format: serve_model::CHECKPOINT_FORMAT.into(),
            task: task.clone(),
            task_params: res.task_params.clone(),
            seed: spec.seed,
            strategy: spec.strategy.clone(),
            student: state,
        };
        std::fs::write(path, serde_json::to_string(&ck)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("saved the student to {}", path.display());
    }
    if let Some(path) = &a.export_rl {
        let pool = art.task.pool().with_context(|| {
            format!(
                "--export-rl needs a task with a finite prompt pool (--tasks FILE); `{task}` is a generator"
            )
        })?;
        let scores = autotune_curriculum::score_prompts(
            art.task.as_ref(),
            &res.strategy_config,
            eps,
            spec.seed,
            &art.model,
            res.summary.phases,
            &pool,
        )?;
        let prompts: Vec<autotune_data::RlPrompt> = pool
            .iter()
            .zip(scores)
            .map(|(p, s)| {
                let d = art.task.describe(p);
                autotune_data::RlPrompt {
                    id: d.id,
                    prompt: d.text,
                    messages: d.messages,
                    ground_truth: d.gold.unwrap_or_default(),
                    rank: s.rank,
                    max_rank: s.max_rank,
                    weight: s.weight,
                }
            })
            .collect();
        let selected = prompts.iter().filter(|p| p.weight > 0.0).count();
        std::fs::write(
            path,
            autotune_data::export_rl_prompts(&format!("autotune:{}", art.task.name()), &prompts),
        )
        .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "wrote {} RL prompts ({selected} with weight > 0) to {}",
            prompts.len(),
            path.display()
        );
    }
    writer.write(RESULT_JSON, &pretty_json(&res))?;
    let report = report_from_runs(&cspec, vec![res.clone()], start.elapsed().as_secs_f64());
    writer.finish(&report)?;
    let l = &res.summary.final_ledger;
    println!(
        "{} on {} (eps {}, seed {}): {} | demos to eps: {} | final held-out error {:.4} on {} prompts | stop: {:?}",
        res.summary.strategy,
        res.task,
        res.summary.eps,
        res.summary.seed,
        if res.summary.reached { "reached" } else { "NOT reached" },
        res.summary.demos_to_eps.map_or("-".into(), |d| d.to_string()),
        res.summary.final_error,
        res.heldout_prompts,
        res.summary.stop
    );
    println!(
        "ledger: teacher calls {} ({} tokens), verifier calls {}, student generations {} ({} tokens), training steps {}, prompts drawn {}, {:.2} s",
        l.teacher_calls, l.teacher_tokens, l.verifier_calls, l.student_generations, l.student_tokens, l.training_steps, l.prompts_drawn, l.wall_seconds
    );
    if l.reference_samples > 0 {
        println!(
            "pi_ref: {} samples ({} tokens), {} demonstrations found, {} prompts unsolved | rollouts (pi_ref samples + student generations): {}",
            l.reference_samples,
            l.reference_tokens,
            l.reference_demos,
            l.reference_unsolved,
            l.rollouts()
        );
    }
    if l.api_requests + l.api_cache_hits > 0 {
        println!(
            "model servers: {} requests, {} answered from the cache ({} of them teacher calls: {} new teacher calls paid), {} tokens, ${:.4}",
            l.api_requests,
            l.api_cache_hits,
            l.teacher_cache_hits,
            l.teacher_calls - l.teacher_cache_hits.min(l.teacher_calls),
            l.api_tokens,
            l.api_cost_usd
        );
    }
    println!("wrote {}", a.out.display());
    write_report(&a.out);
    Ok(())
}

/// Runs a comparison into the run directory `dir`: metrics as they happen, then the
/// comparison files, the table on stdout and the report.
fn run_compare(spec: &CompareSpec, dir: &Path, json: Option<&Path>) -> Result<CompareReport> {
    let (writer, journal) = open_run_dir(dir, spec)?;
    let progress = Progress::new(spec.runs()?.len() as u64);
    let report = compare(
        spec,
        &|r| {
            writer.record(r);
            progress.record(r);
        },
        Some(&journal),
    )?;
    progress.finish();
    journal.sync()?;
    journal_summary(&journal);
    writer.finish(&report)?;
    print_table(&report);
    println!("total wall time {:.1} s", report.total_wall_seconds);
    if let Some(path) = json {
        if let Some(parent) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, pretty_json(&report))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!("run directory: {}", dir.display());
    write_report(dir);
    Ok(report)
}

fn cmd_compare(a: CompareArgs) -> Result<()> {
    if let Some(list) = a.common.kappa.as_deref().filter(|k| k.contains(',')) {
        return cmd_burn_in(&a, list);
    }
    compare_report(a).map(|_| ())
}

fn compare_report(a: CompareArgs) -> Result<CompareReport> {
    let eps = parse_eps_list(&a.eps)?;
    let (task, task_params) = task_and_params(&a.task, &a.common)?;
    check_task(&task, &task_params)?;
    let t = instance(&task, &task_params)?;
    let strategies = parse_strategies(&a.strategies, t.reference().is_some())?;
    check_reference(t.as_ref(), &strategies)?;
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let mut b = budget(&a.common);
    let min_eps = eps.iter().copied().fold(1.0, f64::min);
    default_max_demos(&mut b, t.as_ref(), min_eps);
    let spec = CompareSpec {
        task,
        task_params,
        strategies,
        strategy_params: Params::parse(&a.common.strategy_params)?,
        eps,
        seeds: a.seeds,
        base_seed: a.seed,
        test_factor: a.common.test_factor,
        budget: b,
        stop_at_eps: !a.common.run_to_stop,
        nested_eps: a.nested_eps,
    };
    let dir = run_dir(a.out, "compare", &spec.task);
    run_compare(&spec, &dir, a.json.as_deref())
}

/// `compare --kappa K1,K2,...`: one comparison per kappa in `DIR/kappa-K`, then the burn-in
/// table (rollouts to eps against kappa and eps, split into pi_ref samples and student
/// generations) on stdout and in `DIR/burn-in.txt` and `.json`.
fn cmd_burn_in(a: &CompareArgs, list: &str) -> Result<()> {
    let kappas: Vec<f64> = list
        .split(',')
        .map(|k| {
            k.trim()
                .parse::<f64>()
                .ok()
                .filter(|k| k.is_finite() && *k >= 1.0)
                .ok_or_else(|| anyhow::anyhow!("--kappa {list}: `{k}` is not a number >= 1"))
        })
        .collect::<Result<_>>()?;
    let dir = run_dir(
        a.out.clone(),
        "burn-in",
        a.task.as_deref().unwrap_or("file"),
    );
    let mut reports = Vec::new();
    for &k in &kappas {
        let mut one = CompareArgs {
            task: a.task.clone(),
            strategies: a.strategies.clone(),
            eps: a.eps.clone(),
            seeds: a.seeds,
            seed: a.seed,
            out: Some(dir.join(format!("kappa-{k}"))),
            json: None,
            nested_eps: a.nested_eps,
            common: a.common.clone(),
        };
        one.common.kappa = Some(k.to_string());
        println!("\n== kappa = {k} ==");
        reports.push((k, compare_report(one)?));
    }
    let text = autotune_experiment::burn_in_table(&reports);
    println!("\n{text}");
    std::fs::write(dir.join("burn-in.txt"), &text)
        .with_context(|| format!("writing {}", dir.join("burn-in.txt").display()))?;
    let rows = autotune_experiment::burn_in_rows(&reports);
    let json = pretty_json(&rows);
    std::fs::write(dir.join("burn-in.json"), &json)?;
    if let Some(path) = &a.json {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!("burn-in table: {}", dir.join("burn-in.txt").display());
    Ok(())
}

fn cmd_rl(a: RlArgs) -> Result<()> {
    if let Some(path) = &a.render {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: autotune_experiment::RlReport = serde_json::from_str(&text)
            .with_context(|| format!("{}: not the rl.json of `autotune rl`", path.display()))?;
        if let Some(c) = &report.coverage {
            println!("{}", autotune_experiment::coverage_text(c));
        }
        print!("{}", autotune_experiment::rl_table(&report));
        return Ok(());
    }
    let task = a
        .task
        .clone()
        .expect("clap requires --task without --render");
    let selectors = a
        .selectors
        .split(',')
        .map(|s| Ok(autotune_curriculum::Selector::parse(s.trim())?))
        .collect::<Result<Vec<_>>>()?;
    let task_params = Params::parse(&a.params)?;
    check_task(&task, &task_params)?;
    let spec = autotune_experiment::RlSpec {
        task: task.clone(),
        task_params,
        selectors,
        grpo: autotune_curriculum::GrpoConfig {
            selector: autotune_curriculum::Selector::Uniform,
            group: a.group,
            prompts_per_step: a.prompts_per_step,
            temperature: a.temperature,
            lr: a.lr,
            max_rounds: a.max_rounds,
            max_steps: a.max_steps,
            normalize_std: !a.no_std,
        },
        eps: a.eps,
        seeds: a.seeds,
        base_seed: a.seed,
        heldout: a.heldout,
        eval_every: a.eval_every,
        budget: Budget {
            max_demos: None,
            max_verifier_calls: None,
            max_seconds: a.max_seconds,
        },
        max_rollouts: a.max_rollouts,
        coverage_samples: a.coverage_samples,
        coverage_prompts: a.coverage_prompts,
    };
    let dir = run_dir(a.out.clone(), "rl", &task);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let report = autotune_experiment::run_rl(&spec, &|sel, seed, step, err| {
        if let Some(e) = err {
            eprintln!(
                "[{} seed {seed}] step {}: rollouts {}, held-out error {e:.4}, groups {}{}",
                sel.name(),
                step.step + 1,
                step.ledger.rollouts(),
                step.groups,
                if step.short { " (short batch)" } else { "" }
            );
        }
    })?;
    let mut text = String::new();
    if let Some(c) = &report.coverage {
        text.push_str(&autotune_experiment::coverage_text(c));
        text.push('\n');
    }
    text.push_str(&autotune_experiment::rl_table(&report));
    text.push_str(&format!(
        "total wall time {:.1} s\n",
        report.total_wall_seconds
    ));
    print!("{text}");
    std::fs::write(dir.join("rl.txt"), &text)?;
    std::fs::write(dir.join("rl.json"), pretty_json(&report))?;
    println!("wrote {} and rl.json", dir.join("rl.txt").display());
    Ok(())
}

fn cmd_coverage(a: CoverageArgs) -> Result<()> {
    let mut params = Params::parse(&a.params)?;
    if let Some(k) = a.kappa {
        insert_kappa(&mut params, &a.task, k)?;
    }
    check_task(&a.task, &params)?;
    let (task, _) = autotune_tasks::build_task(&a.task, &params, a.seed)?;
    let c = autotune_experiment::measure_coverage(task.as_ref(), a.prompts, a.samples, a.seed)?;
    print!("{}", autotune_experiment::coverage_text(&c));
    Ok(())
}

fn cmd_demo(a: DemoArgs) -> Result<()> {
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let task_params = Params::default();
    let eps = vec![0.01, 0.001];
    let mut b = Budget::default();
    default_max_demos(
        &mut b,
        instance("halfspace-cot", &task_params)?.as_ref(),
        0.001,
    );
    let spec = CompareSpec {
        task: "halfspace-cot".into(),
        task_params,
        strategies: STRATEGIES
            .iter()
            .filter(|s| !s.needs_reference)
            .map(|s| s.name.to_string())
            .collect(),
        strategy_params: Params::default(),
        eps,
        seeds: a.seeds,
        base_seed: 0,
        test_factor: 10.0,
        budget: b,
        stop_at_eps: true,
        nested_eps: false,
    };
    println!("AutoTune demo: all curricula on halfspace-cot (window 32, d = 33), eps 0.01 and 0.001, {} seeds", a.seeds);
    run_compare(&spec, &a.out, None)?;
    Ok(())
}

fn cmd_verify(a: VerifyArgs) -> Result<()> {
    let options: Vec<(String, String)> = Params::parse(&a.options)?.0.into_iter().collect();
    let verifier = autotune_verify::build_verifier(&a.verifier, &options)?;
    let items = autotune_data::read_verify_items(&a.input)?;
    let start = std::time::Instant::now();
    let verdicts = verifier.verify_batch(&items);
    let secs = start.elapsed().as_secs_f64();
    let mut out = String::with_capacity(verdicts.len() * 48);
    for v in &verdicts {
        out += &serde_json::to_string(v)?;
        out.push('\n');
    }
    match &a.out {
        Some(path) => {
            std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{out}"),
    }
    let correct = verdicts.iter().filter(|v| v.correct).count();
    eprintln!(
        "{}: {} verdicts, {correct} correct, in {secs:.3} s ({:.0} verdicts/s, {} threads)",
        a.verifier,
        verdicts.len(),
        verdicts.len() as f64 / secs.max(1e-9),
        rayon::current_num_threads()
    );
    Ok(())
}

fn cmd_report(a: ReportArgs) -> Result<()> {
    let w = autotune_report::write_report(&a.dir, a.out.as_deref(), a.png.as_deref())?;
    for p in &w.problems {
        eprintln!("warning: {p}");
    }
    println!("wrote {}", w.html.display());
    for p in &w.pngs {
        println!("wrote {}", p.display());
    }
    Ok(())
}
