//! `autotune strategies`: the curricula with their parameters and defaults.

use autotune_curriculum::STRATEGIES;

pub fn run() {
    print!("{}", list_strategies());
}

fn list_strategies() -> String {
    let mut s = String::new();
    for t in STRATEGIES {
        let mut needs = Vec::new();
        if t.needs_reference {
            needs.push("a task with pi_ref (no teacher)");
        }
        if t.needs_sampling {
            needs.push("a student that samples at a temperature");
        }
        if !t.in_all {
            needs.push("asked for by name (not in `all`)");
        }
        s += &format!("{}\n  {}\n", t.name, t.summary);
        if !needs.is_empty() {
            s += &format!("  needs: {}\n", needs.join("; "));
        }
        for p in t.params {
            s += &format!(
                "    --strategy-param {}={:<12} {}\n",
                p.key, p.default, p.help
            );
        }
    }
    s
}
