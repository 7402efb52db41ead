//! Checkpoints of trained students (`autotune serve-model FILE`, `--teacher-checkpoint`):
//! the checkpoint JSON, the task parameters it carries, and the memorising student's state.
//! A student that loads must save and re-load to the same state.
#![no_main]

use autotune_core::Student;
use autotune_data::MemoStudent;
use autotune_tasks::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;

fn student_round_trip(state: &str) {
    let Ok(s) = MemoStudent::load(state) else {
        return;
    };
    let saved = s.save().expect("a loaded student saves");
    let again = MemoStudent::load(&saved).expect("a saved student loads");
    assert_eq!(again.save().as_deref(), Some(saved.as_str()));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    student_round_trip(text);
    let Ok(c) = Checkpoint::parse(text, "c.json") else {
        return;
    };
    if let Ok(info) = autotune_tasks::task_info(&c.task) {
        let _ = c.task_params.resolve("task", info.params);
    }
    student_round_trip(&c.student);
    let written = serde_json::to_string(&c).unwrap();
    let back = Checkpoint::parse(&written, "c.json").expect("a written checkpoint re-reads");
    assert_eq!(serde_json::to_string(&back).unwrap(), written);
});
