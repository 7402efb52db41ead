//! `autotune strategies`: the curricula with their parameters and defaults.

use autotune_curriculum::STRATEGIES;

pub fn run() {
    print!("{}", list_strategies());
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
