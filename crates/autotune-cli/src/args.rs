//! The command line as clap types: one struct of arguments per command.

use std::path::PathBuf;

use autotune_curriculum::GrpoConfig;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "autotune",
    version,
    about = "AutoTune: autocurriculum for chain-of-thought training (where the expensive supervision goes)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
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
    /// Writes a model as a Hugging Face directory (model.safetensors, config.json) that
    /// transformers' AutoModelForCausalLM loads: GPT-2 for the built-in student's family,
    /// Llama or Qwen2 for that family.
    ExportHf(ExportHfArgs),
}

#[derive(Args)]
pub struct ExportHfArgs {
    /// A saved student (`run --save-model FILE`), a checkpoint directory of autotune-neural,
    /// or a Hugging Face model directory.
    pub source: PathBuf,
    /// The directory to write (created if needed).
    pub out: PathBuf,
    /// Replace a model already in the output directory.
    #[arg(long)]
    pub force: bool,
    /// Write the LoRA adapters of a saved student trained with `lora_rank` as a PEFT adapter
    /// directory (adapter_config.json, adapter_model.safetensors) instead of the merged model.
    #[arg(long, conflicts_with = "check")]
    pub adapter: bool,
    /// Also write OUT/autotune_check.json: this many held-out prompts (token ids) with the
    /// model's greedy continuations, for `scripts/check_hf_export.py` to compare with
    /// transformers'. The prompts come from a saved student's own task, or from --check-task.
    #[arg(long, default_value_t = 0)]
    pub check: usize,
    /// The built-in task whose held-out prompts the check uses, for a source that is not a
    /// saved student.
    #[arg(long, value_name = "TASK")]
    pub check_task: Option<String>,
    /// New tokens generated per prompt in the check (fewer when the context is shorter).
    #[arg(long, default_value_t = 32)]
    pub check_new_tokens: usize,
    /// Task parameter KEY=VALUE of --check-task (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", requires = "check_task")]
    pub params: Vec<String>,
    /// Seed of the check's held-out prompts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args)]
pub struct RlArgs {
    /// A built-in task with a trainable reference policy (arith with --param reference=FILE).
    #[arg(long, required_unless_present = "render")]
    pub task: Option<String>,
    /// Print the table of an earlier run's rl.json and exit.
    #[arg(long, value_name = "RL_JSON")]
    pub render: Option<PathBuf>,
    /// Comma-separated prompt selectors: uniform, zero-variance, autotune.
    #[arg(long, default_value = "uniform,zero-variance,autotune")]
    pub selectors: String,
    /// Target held-out error (0.05: 95% accuracy).
    #[arg(long, default_value_t = 0.05)]
    pub eps: f64,
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples per prompt (the group).
    #[arg(long, default_value_t = GrpoConfig::default().group)]
    pub group: usize,
    /// Groups per policy-gradient update.
    #[arg(long, default_value_t = GrpoConfig::default().prompts_per_step)]
    pub prompts_per_step: usize,
    /// Sampling temperature of the rollouts.
    #[arg(long, default_value_t = GrpoConfig::default().temperature)]
    pub temperature: f64,
    /// Learning rate of the policy-gradient step.
    #[arg(long, default_value_t = GrpoConfig::default().lr)]
    pub lr: f64,
    /// Rounds of drawing per update at most (filtering selectors draw again until the batch
    /// is full).
    #[arg(long, default_value_t = GrpoConfig::default().max_rounds)]
    pub max_rounds: usize,
    /// Steps per run at most.
    #[arg(long, default_value_t = GrpoConfig::default().max_steps)]
    pub max_steps: usize,
    /// Advantages are reward minus the group mean, not divided by the group's std.
    #[arg(long)]
    pub no_std: bool,
    /// Evaluate on the held-out prompts every this many steps.
    #[arg(long, default_value_t = 10)]
    pub eval_every: usize,
    /// Held-out prompts (at least 10/eps).
    #[arg(long, default_value_t = 1000)]
    pub heldout: usize,
    /// Stop a run after this many rollouts.
    #[arg(long)]
    pub max_rollouts: Option<u64>,
    /// Stop a run after this many wall seconds.
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// Samples per prompt to measure the coverage of pi_ref (0: skip).
    #[arg(long, default_value_t = 16)]
    pub coverage_samples: usize,
    #[arg(long, default_value_t = 512)]
    pub coverage_prompts: usize,
    /// Task parameter KEY=VALUE (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Output directory (rl.json, rl.txt, and rl-state/: each run's state after its last step,
    /// for `autotune resume DIR`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep each run's state every N steps (and at its end): a state holds the student's
    /// weights and AdamW moments (7.8 MB for arith's default model), and a resumed run does at
    /// most N steps again.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_every: u64,
}

#[derive(Args)]
pub struct CoverageArgs {
    #[arg(long)]
    pub task: String,
    /// halfspace-cot: the coverage parameter of the built-in pi_ref.
    #[arg(long)]
    pub kappa: Option<f64>,
    /// Task parameter KEY=VALUE (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
    #[arg(long, default_value_t = 512)]
    pub prompts: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args)]
pub struct ResumeArgs {
    /// The run directory of the killed command.
    pub dir: PathBuf,
}

#[derive(Args, Clone)]
pub struct Common {
    /// Task parameter KEY=VALUE (repeatable); see `autotune tasks`.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Strategy parameter KEY=VALUE (repeatable); see `autotune strategies`.
    #[arg(long = "strategy-param", value_name = "KEY=VALUE")]
    pub strategy_params: Vec<String>,
    /// Coverage of the reference policy pi_ref for the RL strategies (rft-uniform,
    /// autotune-rl) on the theory testbeds: pi_ref finds a correct CoT with probability about
    /// 1/K per sample. The same as `--param kappa=K`. `compare` also takes a list (e.g.
    /// 4,16,64): one comparison per kappa, and the burn-in table of rollouts against kappa and
    /// eps.
    #[arg(long, value_name = "K")]
    pub kappa: Option<String>,
    /// Held-out prompts per run: ceil(TEST_FACTOR / eps); at least 10.
    #[arg(long, default_value_t = autotune_experiment::DEFAULT_TEST_FACTOR)]
    pub test_factor: f64,
    /// Stop a run after this many teacher demonstrations (default: 20 d / eps).
    #[arg(long)]
    pub max_demos: Option<u64>,
    /// Stop a run after this many verifier calls.
    #[arg(long)]
    pub max_verifier_calls: Option<u64>,
    /// Buy one prompt from the teacher at most this many times (default 3); a run whose filter
    /// keeps choosing such prompts stops, and one that then misses eps exits with an error.
    #[arg(long)]
    pub max_teach: Option<u32>,
    /// Stop a run after this many wall seconds.
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// Keep running after held-out error reaches eps, to the strategy's own stop
    /// (certificate, phases or budget).
    #[arg(long)]
    pub run_to_stop: bool,
    /// Your own tasks: a JSONL file of records (plain, reasoning-gym, TRL or verl); the same
    /// as `--task file --param path=FILE`.
    #[arg(long, value_name = "FILE")]
    pub tasks: Option<PathBuf>,
    /// Record format of --tasks: auto, plain, reasoning-gym, trl-messages, trl-completion, verl.
    #[arg(long)]
    pub format: Option<String>,
    /// Verifier of --tasks records that name none: exact, numeric, choice, math, code, or
    /// "cmd:PROGRAM ARGS" (an external scorer fed JSON lines; options with
    /// --param verifier_options="timeout=60;min_score=1").
    #[arg(long)]
    pub verifier: Option<String>,
    /// File-backed teacher for --tasks: JSONL of {"id", "cot", "answer"?}.
    #[arg(long, value_name = "FILE")]
    pub teacher: Option<PathBuf>,
    /// Skip (and count) bad records of --tasks instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
    /// An OpenAI-compatible server as the teacher of --tasks, e.g. http://127.0.0.1:8000/v1.
    #[arg(long, value_name = "URL")]
    pub teacher_url: Option<String>,
    /// The teacher server's model name (with --teacher-url).
    #[arg(long)]
    pub teacher_model: Option<String>,
    /// SQLite cache of the teacher's completions (default autotune-cache/teacher.sqlite).
    #[arg(long, value_name = "FILE")]
    pub teacher_cache: Option<PathBuf>,
    /// TOML client configuration of the teacher server (sampling, limits, retries, prices).
    #[arg(long, value_name = "FILE")]
    pub teacher_config: Option<PathBuf>,
    /// A saved student (`run --save-model`) as the teacher of --tasks, in process.
    #[arg(long, value_name = "FILE")]
    pub teacher_checkpoint: Option<PathBuf>,
    /// Students of --tasks generate over HTTP through an `autotune serve-model --allow-load`
    /// server, which gets their weights after every fit.
    #[arg(long, value_name = "URL")]
    pub student_url: Option<String>,
    /// The student server's model name (with --student-url).
    #[arg(long)]
    pub student_model: Option<String>,
    /// The student of --tasks: memo (a lookup table of the demonstrations; fast, measures
    /// coverage rather than learning) or neural (a transformer trained on the demonstrations'
    /// text; its size and training are --param values, see `autotune tasks`).
    #[arg(long, value_name = "memo|neural")]
    pub student: Option<String>,
    /// The neural student starts from this Hugging Face model directory (GPT-2, Llama or
    /// Qwen2 with its tokenizer.json); without it, it is trained from scratch over bytes.
    #[arg(long, value_name = "HF_DIR")]
    pub model: Option<PathBuf>,
    /// The neural student refuses a model whose training (weights, gradients, AdamW moments,
    /// an inference copy: 20 bytes a parameter) needs more than this: 8G, 512M, or bytes
    /// (default: the machine's available memory).
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,
}

#[derive(Args)]
pub struct RunArgs {
    /// A built-in task (see `autotune tasks`), or use --tasks FILE.
    #[arg(long)]
    pub task: Option<String>,
    #[arg(long)]
    pub strategy: String,
    /// Target held-out error.
    #[arg(long, allow_hyphen_values = true)]
    pub eps: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run directory (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Write the teacher demonstrations the run bought as TRL SFT data (JSONL).
    #[arg(long, value_name = "FILE")]
    pub export_sft: Option<PathBuf>,
    /// TRL style of --export-sft: messages or prompt-completion.
    #[arg(long, default_value = "messages")]
    pub sft_style: String,
    /// Write the task's prompt pool with the curriculum's ranks and weights under the final
    /// model as verl-style RL records (JSONL; file tasks).
    #[arg(long, value_name = "FILE")]
    pub export_rl: Option<PathBuf>,
    /// Save the trained student as a checkpoint (for `autotune serve-model`; single-model
    /// strategies).
    #[arg(long, value_name = "FILE")]
    pub save_model: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct CompareArgs {
    /// A built-in task (see `autotune tasks`), or use --tasks FILE.
    #[arg(long)]
    pub task: Option<String>,
    /// Comma-separated strategies, or `all`.
    #[arg(long, default_value = "all")]
    pub strategies: String,
    /// Comma-separated target errors, e.g. 0.1,0.01,0.001.
    #[arg(long, allow_hyphen_values = true)]
    pub eps: String,
    /// Number of seeds (seed, seed+1, ...).
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run directory (default: autotune-runs/compare-TASK-TIME).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the comparison as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// One run per strategy and seed at the smallest eps; the larger eps are read off its
    /// checkpoints (held-out set and schedule of the smallest eps)
    #[arg(long)]
    pub nested_eps: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Run directory for the demo (config, metrics, comparison, report.html).
    #[arg(long, default_value = "autotune-runs/demo")]
    pub out: PathBuf,
    /// Seeds.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
}

#[derive(Args)]
pub struct ReportArgs {
    /// A run directory written by `run`, `compare` or `demo`.
    pub dir: PathBuf,
    /// The HTML file (default: DIR/report.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write every plot as PNG into this directory.
    #[arg(long, value_name = "DIR")]
    pub png: Option<PathBuf>,
}

#[derive(Args)]
pub struct ServeArgs {
    #[arg(long, default_value_t = autotune_service::DEFAULT_PORT)]
    pub port: u16,
    /// Address to bind (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// The SQLite store (created if missing); a restart on the same store loses nothing that
    /// was acknowledged.
    #[arg(long, default_value = "autotune-service.sqlite")]
    pub store: PathBuf,
    /// Require `Authorization: Bearer <token>` with the token read from this environment
    /// variable.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// Largest request body accepted, in MiB.
    #[arg(long, default_value_t = 8)]
    pub max_body_mib: usize,
    /// Default lease of a pool's issued prompts, in seconds.
    #[arg(long, default_value_t = 600.0)]
    pub lease_seconds: f64,
    /// Compact a pool's stored outcomes after this many new ones (their rows become each
    /// prompt's tallies and sample ranges): a restart reads at most this many rows.
    #[arg(long, default_value_t = autotune_service::DEFAULT_COMPACT_EVERY,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub compact_every: u64,
}

#[derive(Args)]
pub struct ServeModelArgs {
    /// A checkpoint written by `autotune run --save-model FILE`.
    pub checkpoint: PathBuf,
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to bind (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Model name in the API (default: the checkpoint's file stem).
    #[arg(long)]
    pub name: Option<String>,
    /// Take new weights from trainers (`POST /v1/admin/load`), served as NAME/SLOT@vN.
    #[arg(long)]
    pub allow_load: bool,
    /// Require `Authorization: Bearer <token>` with the token read from this environment
    /// variable.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// exact, numeric, choice, math, code, or "cmd:PROGRAM ARGS" (an external scorer).
    #[arg(long)]
    pub verifier: String,
    /// Verifier option KEY=VALUE (repeatable), e.g. case=insensitive, rel_tol=1e-4, timeout=5.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// JSONL of {"gold", "prediction", "tests"?} records.
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// Verdicts, one JSON line per record ({"correct", "extracted", "reason"}); default stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}
