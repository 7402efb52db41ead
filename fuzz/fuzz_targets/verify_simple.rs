//! Answer extraction and equivalence of the `exact`, `numeric` and `choice` verifiers:
//! `parse_number`, `last_number`, `ChoiceVerifier::extract` and every verdict.
#![no_main]

use autotune_verify::{
    build_verifier, last_number, parse_number, AnswerVerifier, ChoiceVerifier, Item,
    NumericVerifier,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (gold, pred) = text.split_once('\u{0}').unwrap_or((&text, ""));

    for s in [gold, pred] {
        for percent_as_fraction in [false, true] {
            if let Some(x) = parse_number(s, percent_as_fraction) {
                assert!(x.is_finite(), "parse_number({s:?}) = {x}");
                // A parsed number, written out, re-parses the same.
                let again = parse_number(&format!("{x}"), false);
                assert_eq!(again, Some(x), "{s:?} -> {x}");
            }
        }
        if let Some(t) = last_number(s) {
            assert!(s.contains(t.as_str()));
            assert!(parse_number(&t, false).is_some());
        }
    }

    // Every verifier's verdict, with every option value.
    let item = Item::new(gold, pred);
    let swapped = Item::new(pred, gold);
    for ws in ["exact", "trim", "collapse", "remove"] {
        for case in ["sensitive", "insensitive"] {
            let opts = [
                ("whitespace".to_string(), ws.to_string()),
                ("case".to_string(), case.to_string()),
            ];
            let v = build_verifier("exact", &opts).unwrap();
            // Exact equality is symmetric and reflexive.
            assert_eq!(v.verify(&item).correct, v.verify(&swapped).correct);
            assert!(v.verify(&Item::new(gold, gold)).correct);
        }
    }
    for (extract, percent) in [("last", "number"), ("whole", "fraction")] {
        let opts = [
            ("extract".to_string(), extract.to_string()),
            ("percent".to_string(), percent.to_string()),
        ];
        let v = NumericVerifier::from_options(&opts).unwrap();
        let verdict = v.verify(&item);
        if verdict.correct {
            assert!(verdict.extracted.is_some());
        }
        if !v.extract_last && parse_number(gold, v.percent_as_fraction).is_some() {
            // A number is its own answer.
            assert!(v.verify(&Item::new(gold, gold)).correct, "{gold:?}");
        }
    }
    for letters in [None, Some("ABCD"), Some("xyz")] {
        let opts: Vec<(String, String)> = letters
            .map(|l| vec![("letters".to_string(), l.to_string())])
            .unwrap_or_default();
        let v = ChoiceVerifier::from_options(&opts).unwrap();
        if let Some(c) = v.extract(pred) {
            assert!(v.letters.contains(&c));
            assert!(v.verify(&Item::new(c.to_string(), pred)).correct);
        }
        let _ = v.verify(&item);
    }
});
