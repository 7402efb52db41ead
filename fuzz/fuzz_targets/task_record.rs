//! Task-file records: `parse_record` in every format (and format detection), and the text
//! helpers it uses on chains of thought: `final_answer`, `last_boxed`, `join_messages`.
#![no_main]

use autotune_data::{final_answer, join_messages, last_boxed, parse_record, Format};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const FORMATS: [Format; 6] = [
    Format::Auto,
    Format::Plain,
    Format::ReasoningGym,
    Format::TrlMessages,
    Format::TrlCompletion,
    Format::Verl,
];

fn balanced(s: &str) -> bool {
    let mut depth = 0i64;
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    // The text helpers take any text.
    if let Some(b) = last_boxed(text) {
        assert!(text.contains(b.as_str()), "boxed content not in the text");
        assert!(balanced(&b), "boxed content with unbalanced braces: {b:?}");
    }
    if let Some(a) = final_answer(text) {
        assert!(text.contains(a.as_str()), "final answer not in the text");
    }
    let messages: Vec<(String, String)> = text
        .split('\u{1}')
        .map(|m| match m.split_once(':') {
            Some((r, c)) => (r.to_string(), c.to_string()),
            None => ("user".to_string(), m.to_string()),
        })
        .collect();
    let joined = join_messages(&messages);
    if messages.len() == 1 && messages[0].0 == "user" {
        assert_eq!(joined, messages[0].1);
    } else {
        for (r, c) in &messages {
            assert!(joined.contains(&format!("{r}: {c}")));
        }
    }

    // Records: any JSON value, in every format.
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    for format in FORMATS {
        let Ok(r) = parse_record(v.clone(), 7, format) else {
            continue;
        };
        assert_ne!(r.format, Format::Auto);
        if format != Format::Auto {
            assert_eq!(r.format, format);
        } else {
            // Auto is the detected format, parsed as such.
            assert_eq!(parse_record(v.clone(), 7, r.format).as_ref(), Ok(&r));
        }
        assert_eq!(r.line, 7);
        assert!(!r.prompt.trim().is_empty());
        assert!(!r.id.is_empty() || v.get("id").is_some() || v.get("extra_info").is_some());
        serde_json::to_string(&r).expect("a record serialises");
        // The record written back as a plain record reads back the same.
        let plain = json!({"id": r.id, "prompt": r.prompt, "answer": r.answer, "cot": r.cot});
        let back = parse_record(plain, 1, Format::Auto).expect("a plain record re-reads");
        assert_eq!(
            (back.format, &back.id, &back.prompt, &back.answer, &back.cot),
            (Format::Plain, &r.id, &r.prompt, &r.answer, &r.cot)
        );
    }
});
