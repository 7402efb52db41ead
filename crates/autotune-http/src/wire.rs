//! The OpenAI chat-completions wire format: request body and defensive response parsing.

use crate::error::{truncate_chars, MAX_ERROR_MESSAGE_CHARS};
use crate::types::Message;
use serde::Serialize;
use serde_json::Value;

/// Body of `POST /chat/completions`.
#[derive(Debug, Serialize)]
pub(crate) struct RequestBody<'a> {
    pub model: &'a str,
    pub messages: &'a [Message],
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<&'a [String]>,
}

/// What the client needs from a successful response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed {
    pub text: String,
    pub finish_reason: Option<String>,
    /// `(prompt_tokens, completion_tokens)` if the server reported usage.
    pub usage: Option<(u64, u64)>,
}

fn snippet(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(200)];
    truncate_chars(&String::from_utf8_lossy(head), 120)
}

/// Parse a 2xx body. Every failure names what is missing; nothing here panics.
pub(crate) fn parse_response(bytes: &[u8]) -> Result<Parsed, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "body is not valid JSON ({e}); {} bytes starting `{}`",
            bytes.len(),
            snippet(bytes)
        )
    })?;
    if !v.is_object() {
        return Err(format!("body is not a JSON object: `{}`", snippet(bytes)));
    }
    let Some(choices) = v.get("choices") else {
        let hint = error_message_from_json(&v)
            .map(|m| format!(" (server error: {m})"))
            .unwrap_or_default();
        return Err(format!("missing field `choices`{hint}"));
    };
    let choices = choices
        .as_array()
        .ok_or_else(|| "field `choices` is not an array".to_string())?;
    let first = choices
        .first()
        .ok_or_else(|| "field `choices` is empty".to_string())?;
    let message = first
        .get("message")
        .ok_or_else(|| "missing field `choices[0].message`".to_string())?;
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => return Err("missing field `choices[0].message.content`".into()),
        Some(_) => return Err("field `choices[0].message.content` is not a string".into()),
    };
    let finish_reason = first
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    let usage = v.get("usage").and_then(|u| {
        let p = u.get("prompt_tokens")?.as_u64()?;
        let c = u.get("completion_tokens")?.as_u64()?;
        Some((p, c))
    });
    Ok(Parsed {
        text,
        finish_reason,
        usage,
    })
}

fn error_message_from_json(v: &Value) -> Option<String> {
    let e = v.get("error")?;
    match e {
        Value::String(s) => Some(s.clone()),
        Value::Object(_) => e
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| Some(e.to_string())),
        other => Some(other.to_string()),
    }
}

/// The server's error message from a non-2xx body: `error.message` if the body is the
/// usual JSON, else the body text; truncated.
pub(crate) fn error_message(bytes: &[u8]) -> String {
    let text = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| error_message_from_json(&v))
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).trim().to_string());
    let text = if text.is_empty() {
        "(empty body)".to_string()
    } else {
        text
    };
    truncate_chars(&text, MAX_ERROR_MESSAGE_CHARS)
}

/// Rough token count of messages: characters / 4 plus a few per message.
pub(crate) fn estimate_prompt_tokens(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| (m.content.chars().count() as u64).div_ceil(4) + 4)
        .sum()
}

/// Rough token count of a completion text.
pub(crate) fn estimate_text_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(body: &str) -> String {
        match parse_response(body.as_bytes()) {
            Err(m) => m,
            other => panic!("expected an error for {body:?}, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_full_response() {
        let p = parse_response(
            br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"42"},
                "finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":2}}"#,
        )
        .unwrap();
        assert_eq!(p.text, "42");
        assert_eq!(p.finish_reason.as_deref(), Some("stop"));
        assert_eq!(p.usage, Some((7, 2)));
        let p = parse_response(br#"{"choices":[{"message":{"content":""}}]}"#).unwrap();
        assert_eq!(
            (p.text.as_str(), p.finish_reason, p.usage),
            ("", None, None)
        );
    }

    #[test]
    fn every_malformed_body_names_the_problem() {
        assert!(malformed("").contains("not valid JSON"));
        assert!(malformed(r#"{"choices":[{"mess"#).contains("not valid JSON"));
        assert!(malformed("[1,2]").contains("not a JSON object"));
        assert!(malformed("{}").contains("missing field `choices`"));
        assert!(malformed(r#"{"error":{"message":"overloaded"}}"#).contains("overloaded"));
        assert!(malformed(r#"{"choices":{}}"#).contains("not an array"));
        assert!(malformed(r#"{"choices":[]}"#).contains("is empty"));
        assert!(malformed(r#"{"choices":[{}]}"#).contains("choices[0].message`"));
        assert!(malformed(r#"{"choices":[{"message":{}}]}"#).contains("message.content"));
        assert!(
            malformed(r#"{"choices":[{"message":{"content":null}}]}"#).contains("message.content")
        );
        assert!(malformed(r#"{"choices":[{"message":{"content":3}}]}"#).contains("not a string"));
        // Binary garbage does not panic either.
        assert!(parse_response(&[0xff, 0xfe, 0x00, 0x80]).is_err());
    }

    #[test]
    fn error_messages_are_extracted_and_truncated() {
        assert_eq!(
            error_message(br#"{"error":{"message":"slow down"}}"#),
            "slow down"
        );
        assert_eq!(error_message(b"  plain text  "), "plain text");
        assert_eq!(error_message(b""), "(empty body)");
        let long = "x".repeat(10_000);
        assert!(error_message(long.as_bytes()).chars().count() < MAX_ERROR_MESSAGE_CHARS + 20);
    }

    #[test]
    fn request_body_omits_absent_options() {
        let msgs = [Message::user("q")];
        let body = RequestBody {
            model: "m",
            messages: &msgs,
            temperature: 0.5,
            top_p: 1.0,
            max_tokens: 8,
            seed: None,
            stop: None,
        };
        let v = serde_json::to_value(&body).unwrap();
        assert!(v.get("seed").is_none() && v.get("stop").is_none());
        assert_eq!(v["messages"][0]["role"], "user");
        assert_eq!(estimate_prompt_tokens(&msgs), 5);
    }
}
