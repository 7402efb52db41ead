//! A model server's responses: the chat-completions body parser and the error-message
//! extraction of non-2xx bodies. A parsed response, written back, parses the same.
#![no_main]

use autotune_http::fuzzing::{error_message, parse_response};
use autotune_http::MAX_ERROR_MESSAGE_CHARS;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    if let Ok((text, finish, usage)) = parse_response(data) {
        let mut body =
            json!({"choices": [{"message": {"content": text}, "finish_reason": finish}]});
        if let Some((p, c)) = usage {
            body["usage"] = json!({"prompt_tokens": p, "completion_tokens": c});
        }
        let again = parse_response(body.to_string().as_bytes()).expect("a written body parses");
        assert_eq!(again, (text, finish, usage));
    }
    let m = error_message(data);
    assert!(!m.is_empty());
    assert!(
        m.chars().count() <= MAX_ERROR_MESSAGE_CHARS + 20,
        "{}",
        m.len()
    );
});
