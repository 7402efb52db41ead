//! The `math` verifier: extraction of the final answer from free text, LaTeX and plain
//! expression parsing, and equivalence. A verdict must never panic, and must be the same when
//! asked twice (the symbolic comparison is deterministic).
#![no_main]

use autotune_verify::{AnswerVerifier, Item, MathVerifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (gold, pred) = text.split_once('\u{0}').unwrap_or(("", &text));
    let v = MathVerifier::default();
    for item in [
        Item::new(gold, pred),
        Item::new(pred, gold),
        Item::new(pred, format!("The answer is $\\boxed{{{pred}}}$.")),
    ] {
        let a = v.verify(&item);
        let b = v.verify(&item);
        assert_eq!(a, b, "{item:?}");
        if a.correct {
            assert!(a.reason.is_none());
        } else {
            assert!(a.reason.is_some());
        }
    }
});
