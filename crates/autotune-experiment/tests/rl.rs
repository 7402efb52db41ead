//! Policy-gradient training from a reference checkpoint on a tiny neural arith task: every
//! rollout is charged, accepted groups are never thrown away, batches never stall forever, and
//! runs are deterministic under the seed.

use autotune_core::{Demo, Params, Task};
use autotune_curriculum::{
    run_grpo, Budget, Control, CurriculumError, GrpoConfig, GrpoObserver, GrpoState, GrpoStep,
    Model, Selector,
};

/// The tiny arith, batch 16.
fn tiny() -> Params {
    let mut p = Params::parse(autotune_tasks::arith::TINY).unwrap();
    p.insert("batch", 16);
    p
}

/// A weak reference checkpoint: a student trained briefly on teacher demonstrations.
fn reference(dir: &std::path::Path) -> String {
    let (task, _) = autotune_tasks::build_task("arith", &tiny(), 0).unwrap();
    let prompts = task.prompts("train", 1).unwrap().draw(64).unwrap();
    let traces = task.teacher().demonstrate_batch(&prompts).unwrap();
    let demos: Vec<Demo> = prompts
        .into_iter()
        .zip(traces)
        .map(|(prompt, trace)| Demo { prompt, trace })
        .collect();
    let mut s = task.new_student(3);
    s.fit(&demos).unwrap();
    let path = dir.join("ref.json");
    std::fs::write(&path, s.save().unwrap()).unwrap();
    path.display().to_string()
}

fn task(path: &str) -> Box<dyn Task> {
    let mut p = tiny();
    p.insert("reference", path);
    autotune_tasks::build_task("arith", &p, 0).unwrap().0
}

struct Steps(Vec<GrpoStep>);
impl GrpoObserver for Steps {
    fn on_step(&mut self, step: &GrpoStep, _: &Model) -> Control {
        self.0.push(step.clone());
        Control::Continue
    }
}

fn train(
    task: &dyn Task,
    selector: Selector,
    max_rounds: usize,
) -> (Vec<GrpoStep>, autotune_core::Ledger, usize, usize) {
    let cfg = GrpoConfig {
        selector,
        group: 4,
        prompts_per_step: 4,
        temperature: 1.0,
        lr: 1e-3,
        max_rounds,
        max_steps: 3,
        normalize_std: true,
    };
    let mut obs = Steps(Vec::new());
    let out = run_grpo(task, &cfg, 5, &Budget::default(), None, &mut obs, None).unwrap();
    (obs.0, out.ledger, out.short_steps, out.stalled_steps)
}

#[test]
fn every_rollout_is_charged_and_no_accepted_group_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(&reference(dir.path()));
    let (pi, temp) = t.reference().expect("pi_ref from the checkpoint");
    assert_eq!(temp, 1.0);
    assert_eq!(
        pi.generate_batch(&t.prompts("test", 0).unwrap().draw(3).unwrap())
            .len(),
        3
    );

    // Uniform: B prompts, k samples each, one update per step, nothing else.
    let (steps, l, short, stalled) = train(t.as_ref(), Selector::Uniform, 8);
    assert_eq!(steps.len(), 3);
    assert_eq!((short, stalled), (0, 0));
    assert_eq!(l.prompts_drawn, 12);
    assert_eq!(l.student_generations, 3 * 4 * 4);
    assert_eq!(l.verifier_calls, l.student_generations);
    assert_eq!(l.training_steps, 3);
    assert_eq!(l.rollouts(), l.student_generations);
    assert_eq!((l.teacher_calls, l.reference_samples), (0, 0));

    for sel in [Selector::ZeroVariance, Selector::Autotune] {
        for rounds in [1, 8] {
            let (steps, l, short, stalled) = train(t.as_ref(), sel, rounds);
            let drawn: u64 = steps.iter().map(|s| s.drawn).sum();
            let sampled: u64 = steps.iter().map(|s| s.sampled).sum();
            assert_eq!(l.prompts_drawn, drawn, "{sel:?}");
            // Greedy tests (autotune only) plus k samples per prompt that got a group.
            let tests = if sel == Selector::Autotune { drawn } else { 0 };
            assert_eq!(l.student_generations, tests + 4 * sampled, "{sel:?}");
            assert_eq!(l.verifier_calls, l.student_generations, "{sel:?}");
            // The rounds are bounded, and a step with no group makes no update.
            assert!(steps.iter().all(|s| s.rounds <= rounds));
            assert_eq!(l.training_steps as usize, 3 - stalled, "{sel:?}");
            assert_eq!(
                short,
                steps.iter().filter(|s| s.short && s.groups > 0).count()
            );
            // Every accepted group is trained on, now or at a later step, or still waits.
            let accepted: usize = steps.iter().map(|s| s.accepted).sum();
            let trained: usize = steps.iter().map(|s| s.groups).sum();
            assert_eq!(
                accepted,
                trained + steps.last().unwrap().carried_out,
                "{sel:?}"
            );
            assert!(steps.iter().all(|s| s.groups <= 4));
        }
    }
}

#[test]
fn training_is_deterministic_and_needs_a_trainable_reference() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(&reference(dir.path()));
    let (a, la, ..) = train(t.as_ref(), Selector::Autotune, 4);
    let (b, lb, ..) = train(t.as_ref(), Selector::Autotune, 4);
    assert_eq!(la.student_generations, lb.student_generations);
    let r = |s: &[GrpoStep]| {
        s.iter()
            .map(|s| (s.groups, s.mean_reward.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(r(&a), r(&b));

    let (plain, _) = autotune_tasks::build_task("arith", &tiny(), 0).unwrap();
    let mut obs = Steps(Vec::new());
    let e = run_grpo(
        plain.as_ref(),
        &GrpoConfig::default(),
        0,
        &Budget::default(),
        None,
        &mut obs,
        None,
    )
    .map(|_| ())
    .expect_err("no reference")
    .to_string();
    assert!(e.contains("reference=CHECKPOINT"), "{e}");
    // halfspace-cot's pi_ref is not a student: the policy-gradient trainer refuses it.
    let (h, _) =
        autotune_tasks::build_task("halfspace-cot", &Params::parse(&["kappa=4"]).unwrap(), 0)
            .unwrap();
    assert!(run_grpo(
        h.as_ref(),
        &GrpoConfig::default(),
        0,
        &Budget::default(),
        None,
        &mut obs,
        None
    )
    .is_err());
    // A checkpoint of another model is a clear error naming the file.
    let mut p = Params::parse(autotune_tasks::arith::TINY).unwrap();
    p.insert("d_model", 32);
    p.insert("reference", dir.path().join("ref.json").display());
    let e = autotune_tasks::build_task("arith", &p, 0)
        .map(|_| ())
        .expect_err("mismatch")
        .to_string();
    assert!(e.contains("ref.json") && e.contains("model"), "{e}");
}

/// The RL curricula with a neural pi_ref: rejection sampling from the checkpoint, no teacher.
#[test]
fn rejection_sampling_from_a_neural_reference_trains_a_fresh_student() {
    let dir = tempfile::tempdir().unwrap();
    let path = reference(dir.path());
    let mut task_params = tiny();
    task_params.insert("reference", &path);
    task_params.insert("min_steps", 5);
    for strategy in ["rft-uniform", "autotune-rl"] {
        let spec = autotune_experiment::RunSpec {
            task: "arith".into(),
            task_params: task_params.clone(),
            strategy: strategy.into(),
            strategy_params: Params::parse(&["max_samples=4"]).unwrap(),
            eps: 0.2,
            seed: 1,
            test_factor: 10.0,
            budget: Budget {
                max_demos: Some(40),
                max_verifier_calls: None,
                max_seconds: None,
                max_teach: None,
            },
            stop_at_eps: true,
            also_eps: Vec::new(),
        };
        let r = autotune_experiment::run_one(&autotune_tasks::BuiltinTasks, &spec, |_| {}).unwrap();
        let l = &r.summary.final_ledger;
        assert_eq!(l.teacher_calls, 0, "{strategy}");
        assert!(
            l.reference_samples > 0 && l.reference_demos > 0,
            "{strategy}: {l:?}"
        );
        assert!(l.reference_samples <= 4 * (l.reference_demos + l.reference_unsolved));
        assert_eq!(r.checkpoints.last().unwrap().demos, l.reference_demos);
        assert!(l.training_steps > 0);
    }
}

/// Keeps every state it is given.
struct Keeper(Vec<GrpoState>);
impl GrpoObserver for Keeper {
    fn on_step(&mut self, _: &GrpoStep, _: &Model) -> Control {
        Control::Continue
    }
    fn keeps_state(&self, _: usize, _: bool) -> bool {
        true
    }
    fn keep(&mut self, state: &GrpoState) -> Result<(), CurriculumError> {
        self.0.push(state.clone());
        Ok(())
    }
}

/// A run resumed from the state it kept after any step goes on exactly as the uninterrupted
/// run: the same steps (wall time aside) and the same student at the end.
#[test]
fn a_run_resumed_from_any_kept_state_goes_on_as_the_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(&reference(dir.path()));
    for selector in [Selector::Uniform, Selector::Autotune] {
        let cfg = GrpoConfig {
            selector,
            group: 4,
            prompts_per_step: 4,
            max_steps: 5,
            ..GrpoConfig::default()
        };
        let run = |resume: Option<GrpoState>| {
            let mut k = Keeper(Vec::new());
            run_grpo(
                t.as_ref(),
                &cfg,
                5,
                &Budget::default(),
                None,
                &mut k,
                resume,
            )
            .unwrap();
            k.0
        };
        let strip = |s: &GrpoState| {
            let mut v = serde_json::to_value(&s.steps).unwrap();
            for step in v.as_array_mut().unwrap() {
                step["ledger"]["wall_seconds"] = serde_json::Value::Null;
            }
            v
        };
        let whole = run(None);
        assert_eq!(whole.len(), 5);
        for k in 0..4 {
            let resumed = run(Some(whole[k].clone()));
            assert_eq!(resumed.len(), 4 - k, "{selector:?} from step {k}");
            let last = resumed.last().unwrap();
            assert_eq!(
                strip(last),
                strip(&whole[4]),
                "{selector:?} resumed after step {k}"
            );
            assert_eq!(
                autotune_tasks::neural::NeuralStudent::state_difference(
                    &last.student,
                    &whole[4].student
                )
                .unwrap(),
                None,
                "{selector:?} resumed after step {k}: the student"
            );
        }
    }
}
