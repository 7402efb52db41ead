//! Writes the built-in `arith` task as a task file (issue 17: the neural student through the
//! file path against the built-in task): `N` prompts drawn from the task's own training
//! distribution (`prompts("train", seed)`, so the same problems in the same proportions), as
//!
//! - `tasks.jsonl`: `{"id", "prompt", "answer", "meta": {"digits"}}`, the prompt being the
//!   problem's text (`4821+37`) and the answer its value;
//! - `teacher.jsonl`: `{"id", "cot"}`, the built-in teacher's chain of thought followed by
//!   `=` and the answer (the answer token of the built-in trace becomes `=`; the numeric
//!   verifier reads the last number).
//!
//! Usage (`bench/arith-file/compare.sh` runs it):
//!
//! ```text
//! cargo run --release -p autotune-tasks --example arith_file -- OUT_DIR N [--seed S] [--param KEY=VALUE ...]
//! ```
//!
//! The `--param` values are the arith task's (`max_digits`, `mul_max_digits`, ...).

use std::io::Write;

use autotune_core::Params;
use autotune_tasks::arith;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: arith_file OUT_DIR N [--seed S] [--param KEY=VALUE ...]";
    let out = std::path::PathBuf::from(args.first().expect(usage));
    let n: usize = args.get(1).and_then(|x| x.parse().ok()).expect(usage);
    let mut seed = 0u64;
    let mut params = Vec::new();
    let mut i = 2;
    while i < args.len() {
        match args[i].as_str() {
            "--seed" => seed = args[i + 1].parse().expect("--seed takes an integer"),
            "--param" => params.push(args[i + 1].clone()),
            other => panic!("unknown argument {other}; {usage}"),
        }
        i += 2;
    }
    let params = Params::parse(&params).expect("KEY=VALUE parameters");
    let (task, _) = autotune_tasks::build_task("arith", &params, seed).expect("arith parameters");
    let prompts = task
        .prompts("train", seed)
        .and_then(|mut s| s.draw(n))
        .expect("prompts");
    std::fs::create_dir_all(&out).expect("the output directory");
    let file = |name: &str| {
        std::io::BufWriter::new(std::fs::File::create(out.join(name)).expect("a writable file"))
    };
    let (mut tasks, mut teacher) = (file("tasks.jsonl"), file("teacher.jsonl"));
    for (i, p) in prompts.iter().enumerate() {
        let problem = arith::problem_of(p).expect("an arith prompt");
        let answer = problem.answer().to_string();
        let id = format!("a{i}");
        let record = serde_json::json!({
            "id": id,
            "prompt": problem.text(),
            "answer": answer,
            "meta": {"digits": problem.digits()},
        });
        let demo = serde_json::json!({
            "id": id,
            "cot": format!("{}={answer}", arith::cot(&problem)),
        });
        writeln!(tasks, "{record}").expect("write");
        writeln!(teacher, "{demo}").expect("write");
    }
    tasks.flush().expect("write");
    teacher.flush().expect("write");
    println!("wrote {n} records to {}", out.display());
}
