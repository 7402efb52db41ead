//! `autotune tasks`: the built-in tasks with their parameters and defaults.

use autotune_tasks::TASKS;

pub fn run() {
    print!("{}", list_tasks());
}

fn list_tasks() -> String {
    let mut s = String::new();
    for t in TASKS {
        s += &format!("{}\n  {}\n", t.name, t.summary);
        if t.needs_neural && !autotune_tasks::NEURAL_BUILT {
            s += &format!(
                "  (needs the neural student, not in this build: `{}`)\n",
                autotune_tasks::NEURAL_FEATURE
            );
        }
        for p in t.params {
            s += &format!("    --param {}={:<12} {}\n", p.key, p.default, p.help);
        }
    }
    s
}
