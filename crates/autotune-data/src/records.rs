//! Task records from JSONL files, in the formats people already have:
//!
//! | format | a record |
//! |---|---|
//! | `plain` | `{"prompt": str, "answer": str or number, "cot"?: str, "id"?: str or int, "meta"?: obj, "verifier"?: str, "tests"?: str or [str]}` |
//! | `reasoning-gym` | `{"question": str, "answer": str or number, "metadata"?: obj}` |
//! | `trl-messages` | `{"messages": [{"role", "content"}...]}`: the prompt is every message before the last assistant message, whose content is the CoT |
//! | `trl-completion` | `{"prompt": str or messages, "completion": str or messages}`: the completion is the CoT |
//! | `verl` | `{"prompt": [{"role", "content"}...], "reward_model": {"ground_truth": ...}, "data_source"?, "ability"?, "extra_info"?: obj}` |
//!
//! `auto` (the default) tells the format of each record from its keys. Where a record has no
//! explicit answer (TRL records), the answer is the final answer of its CoT: the last
//! `\boxed{...}`, else what follows the last "answer is" / "Answer:", else the last number.
//! A record may name its verifier (`verifier` at the top level or in `meta`, `metadata` or
//! `extra_info`); otherwise the task's default applies.
//!
//! A bad record is an error `file:line: what is wrong`; with `skip_bad` it is skipped and
//! counted instead.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::DataError;

/// The record formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Auto,
    Plain,
    ReasoningGym,
    TrlMessages,
    TrlCompletion,
    Verl,
}

impl Format {
    pub const NAMES: [&'static str; 6] = [
        "auto",
        "plain",
        "reasoning-gym",
        "trl-messages",
        "trl-completion",
        "verl",
    ];

    pub fn parse(s: &str) -> Result<Self, DataError> {
        Ok(match s {
            "auto" => Format::Auto,
            "plain" => Format::Plain,
            "reasoning-gym" => Format::ReasoningGym,
            "trl-messages" => Format::TrlMessages,
            "trl-completion" => Format::TrlCompletion,
            "verl" => Format::Verl,
            _ => {
                return Err(DataError::Invalid(format!(
                    "unknown task format `{s}`; valid formats: {}",
                    Format::NAMES.join(", ")
                )))
            }
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = [
            Format::Auto,
            Format::Plain,
            Format::ReasoningGym,
            Format::TrlMessages,
            Format::TrlCompletion,
            Format::Verl,
        ]
        .iter()
        .position(|x| x == self)
        .unwrap_or(0);
        f.write_str(Format::NAMES[i])
    }
}

/// One task: a prompt and its reference answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskRecord {
    /// Unique within the file: the record's own id, or `line-N`.
    pub id: String,
    /// The prompt as text (chat messages are joined as `role: content` lines).
    pub prompt: String,
    /// The chat messages of the prompt, when the record had them.
    pub messages: Option<Vec<(String, String)>>,
    pub answer: String,
    /// A chain of thought that came with the record (a demonstration), if any.
    pub cot: Option<String>,
    /// The verifier this record asks for, if any.
    pub verifier: Option<String>,
    /// Unit tests for code records.
    pub tests: Option<String>,
    /// Everything else the record carried (`meta`, `metadata`, `extra_info`, ...).
    pub meta: Value,
    /// 1-based line in the file.
    pub line: usize,
    pub format: Format,
}

/// A file's records, and what was skipped.
#[derive(Clone, Debug, Default)]
pub struct Imported {
    pub records: Vec<TaskRecord>,
    /// `file:line: what is wrong` of each skipped record (with `skip_bad`).
    pub skipped: Vec<String>,
}

/// The final answer of a chain of thought: the last `\boxed{...}`, else what follows the last
/// "answer is" or "Answer:" up to the end of its sentence, else the last number.
pub fn final_answer(text: &str) -> Option<String> {
    if let Some(b) = last_boxed(text) {
        return Some(b);
    }
    let lower = text.to_ascii_lowercase();
    let pos = ["answer is", "answer:"]
        .iter()
        .filter_map(|k| lower.rfind(k).map(|p| p + k.len()))
        .max();
    if let Some(p) = pos {
        let rest = text[p..].trim_start_matches([' ', ':', '*', '$']);
        let end = rest.find(['\n']).unwrap_or(rest.len());
        let ans = rest[..end].trim().trim_end_matches(['.', '$', '*']).trim();
        if !ans.is_empty() {
            return Some(ans.to_string());
        }
    }
    autotune_verify::last_number(text)
}

/// The content of the last `\boxed{...}` (or `\fbox{...}`), braces balanced.
pub fn last_boxed(text: &str) -> Option<String> {
    let start = ["\\boxed{", "\\fbox{"]
        .iter()
        .filter_map(|k| text.rfind(k).map(|p| p + k.len()))
        .max()?;
    let mut depth = 1usize;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(text[start..start + i].trim().to_string());
                }
            }
            _ => {}
        }
    }
    None
}

fn keys(o: &Map<String, Value>) -> String {
    let mut k: Vec<&str> = o.keys().map(String::as_str).collect();
    k.sort_unstable();
    if k.is_empty() {
        "none".into()
    } else {
        k.join(", ")
    }
}

/// A string or a number as text.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Chat messages: `[{"role": str, "content": str}, ...]`.
fn messages_of(v: &Value, what: &str) -> Result<Vec<(String, String)>, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("`{what}` must be a list of {{\"role\", \"content\"}} messages"))?;
    arr.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.get("role").and_then(Value::as_str);
            let content = m.get("content").and_then(Value::as_str);
            match (role, content) {
                (Some(r), Some(c)) => Ok((r.to_string(), c.to_string())),
                _ => Err(format!(
                    "`{what}[{i}]` must be an object with string `role` and `content`"
                )),
            }
        })
        .collect()
}

/// Chat messages as one prompt text: a lone user message is its content, a conversation is
/// `role: content` lines. Text tasks and `autotune serve-model` read prompts the same way.
pub fn join_messages(m: &[(String, String)]) -> String {
    if m.len() == 1 && m[0].0 == "user" {
        return m[0].1.clone();
    }
    m.iter()
        .map(|(r, c)| format!("{r}: {c}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn tests_of(v: Option<&Value>) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(String::from)
                    .ok_or_else(|| "`tests` must be a string or a list of strings".to_string())
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Some(v.join("\n"))),
        Some(_) => Err("`tests` must be a string or a list of strings".into()),
    }
}

fn detect(o: &Map<String, Value>) -> Result<Format, String> {
    if o.contains_key("messages") {
        Ok(Format::TrlMessages)
    } else if o.contains_key("reward_model") {
        Ok(Format::Verl)
    } else if o.contains_key("completion") {
        Ok(Format::TrlCompletion)
    } else if o.contains_key("question") {
        Ok(Format::ReasoningGym)
    } else if o.contains_key("prompt") {
        Ok(Format::Plain)
    } else {
        Err(format!(
            "cannot tell the record's format from its keys ({}); expected `prompt` and `answer`, `question` and `answer`, `messages`, `prompt` and `completion`, or verl's `prompt` and `reward_model`",
            keys(o)
        ))
    }
}

fn required_text(o: &Map<String, Value>, key: &str, fmt: Format) -> Result<String, String> {
    match o.get(key) {
        Some(v) => text_of(v).ok_or_else(|| format!("`{key}` must be a string or a number")),
        None => Err(format!("{fmt} record without `{key}` (keys: {})", keys(o))),
    }
}

/// Parses one record (`line` for ids and errors).
pub fn parse_record(v: Value, line: usize, format: Format) -> Result<TaskRecord, String> {
    let Value::Object(o) = v else {
        return Err("expected a JSON object".into());
    };
    let fmt = if format == Format::Auto {
        detect(&o)?
    } else {
        format
    };
    let mut meta = Map::new();
    for k in ["meta", "metadata", "extra_info"] {
        if let Some(m) = o.get(k) {
            meta.insert(k.to_string(), m.clone());
        }
    }
    for k in ["data_source", "ability"] {
        if let Some(m) = o.get(k) {
            meta.insert(k.to_string(), m.clone());
        }
    }
    let (prompt, messages, answer, cot) = match fmt {
        Format::Plain => {
            let prompt = required_text(&o, "prompt", fmt)?;
            let answer = required_text(&o, "answer", fmt)?;
            let cot = match o.get("cot") {
                None | Some(Value::Null) => None,
                Some(v) => Some(text_of(v).ok_or("`cot` must be a string")?),
            };
            (prompt, None, answer, cot)
        }
        Format::ReasoningGym => {
            let prompt = required_text(&o, "question", fmt)?;
            let answer = required_text(&o, "answer", fmt)?;
            (prompt, None, answer, None)
        }
        Format::TrlMessages => {
            let msgs = messages_of(o.get("messages").unwrap_or(&Value::Null), "messages")?;
            let last = msgs
                .iter()
                .rposition(|(r, _)| r == "assistant")
                .ok_or("`messages` has no assistant message to take the answer from")?;
            if last == 0 {
                return Err("`messages` has no prompt before the assistant message".into());
            }
            let cot = msgs[last].1.clone();
            let answer = match o.get("answer") {
                Some(a) => text_of(a).ok_or("`answer` must be a string or a number")?,
                None => final_answer(&cot).ok_or(
                    "no `answer`, and no final answer in the assistant message (\\boxed{}, \"answer is\" or a number)",
                )?,
            };
            let prompt_msgs = msgs[..last].to_vec();
            (
                join_messages(&prompt_msgs),
                Some(prompt_msgs),
                answer,
                Some(cot),
            )
        }
        Format::TrlCompletion => {
            let p = o.get("prompt").ok_or_else(|| {
                format!(
                    "trl-completion record without `prompt` (keys: {})",
                    keys(&o)
                )
            })?;
            let (prompt, messages) = match p {
                Value::String(s) => (s.clone(), None),
                other => {
                    let m = messages_of(other, "prompt")?;
                    (join_messages(&m), Some(m))
                }
            };
            let c = o.get("completion").ok_or("record without `completion`")?;
            let cot = match c {
                Value::String(s) => s.clone(),
                other => {
                    let m = messages_of(other, "completion")?;
                    m.into_iter().map(|(_, c)| c).collect::<Vec<_>>().join("\n")
                }
            };
            let answer = match o.get("answer") {
                Some(a) => text_of(a).ok_or("`answer` must be a string or a number")?,
                None => final_answer(&cot).ok_or(
                    "no `answer`, and no final answer in the completion (\\boxed{}, \"answer is\" or a number)",
                )?,
            };
            (prompt, messages, answer, Some(cot))
        }
        Format::Verl => {
            let p = o
                .get("prompt")
                .ok_or_else(|| format!("verl record without `prompt` (keys: {})", keys(&o)))?;
            let (prompt, messages) = match p {
                Value::String(s) => (s.clone(), None),
                other => {
                    let m = messages_of(other, "prompt")?;
                    (join_messages(&m), Some(m))
                }
            };
            let gt = o
                .get("reward_model")
                .and_then(|r| r.get("ground_truth"))
                .ok_or("verl record without `reward_model.ground_truth`")?;
            let answer = match gt {
                Value::Array(a) if !a.is_empty() => text_of(&a[0]),
                v => text_of(v),
            }
            .ok_or("`reward_model.ground_truth` must be a string or a number")?;
            (prompt, messages, answer, None)
        }
        Format::Auto => unreachable!("detected above"),
    };
    if prompt.trim().is_empty() {
        return Err("empty prompt".into());
    }
    let id = o
        .get("id")
        .or_else(|| o.get("extra_info").and_then(|e| e.get("index")))
        .and_then(text_of)
        .unwrap_or_else(|| format!("line-{line}"));
    let verifier = o
        .get("verifier")
        .or_else(|| {
            ["meta", "metadata", "extra_info"]
                .iter()
                .find_map(|k| o.get(*k)?.get("verifier"))
        })
        .map(|v| {
            v.as_str()
                .map(String::from)
                .ok_or("`verifier` must be a string")
        })
        .transpose()?;
    let tests = tests_of(o.get("tests"))?;
    Ok(TaskRecord {
        id,
        prompt,
        messages,
        answer,
        cot,
        verifier,
        tests,
        meta: Value::Object(meta),
        line,
        format: fmt,
    })
}

/// Longest line read (longer lines are refused, not loaded).
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// A 1-based line number and the line's JSON value, or what is wrong with the line.
pub(crate) type JsonLine = (usize, std::result::Result<Value, String>);

/// The JSONL lines of a file: `(1-based line, the value or what is wrong with the line)` for
/// every non-blank line. A line longer than [`MAX_LINE_BYTES`], not UTF-8 or not JSON is an
/// error message; only an unreadable file fails as a whole.
pub(crate) fn json_lines(path: &Path) -> Result<Vec<JsonLine>, DataError> {
    let text = std::fs::read(path).map_err(|e| DataError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let mut out = Vec::new();
    for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
        let value = (|| {
            if raw.len() > MAX_LINE_BYTES {
                return Err(format!(
                    "line of {} bytes, more than the {MAX_LINE_BYTES} allowed",
                    raw.len()
                ));
            }
            let s = std::str::from_utf8(raw).map_err(|e| format!("not UTF-8 ({e})"))?;
            if s.trim().is_empty() {
                return Ok(None);
            }
            serde_json::from_str(s)
                .map(Some)
                .map_err(|e| format!("not JSON ({e})"))
        })();
        match value {
            Ok(None) => {}
            Ok(Some(v)) => out.push((i + 1, Ok(v))),
            Err(e) => out.push((i + 1, Err(e))),
        }
    }
    Ok(out)
}

/// Reads every record of a JSONL file. Blank lines are ignored; ids must be unique.
pub fn read_tasks(path: &Path, format: Format, skip_bad: bool) -> Result<Imported, DataError> {
    let file = path.display().to_string();
    let mut out = Imported::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (line, value) in json_lines(path)? {
        let parsed = value.and_then(|v| {
            let r = parse_record(v, line, format)?;
            if let Some(first) = seen.get(&r.id) {
                return Err(format!("duplicate id `{}` (first at line {first})", r.id));
            }
            Ok(r)
        });
        match parsed {
            Ok(r) => {
                seen.insert(r.id.clone(), line);
                out.records.push(r);
            }
            Err(message) if skip_bad => out.skipped.push(format!("{file}:{line}: {message}")),
            Err(message) => {
                return Err(DataError::BadRecord {
                    file,
                    line,
                    message,
                })
            }
        }
    }
    if out.records.is_empty() {
        return Err(DataError::Invalid(format!(
            "{file}: no task records{}",
            if out.skipped.is_empty() {
                String::new()
            } else {
                format!(" ({} bad records skipped)", out.skipped.len())
            }
        )));
    }
    Ok(out)
}

/// Reads `{"gold", "prediction", "tests"?}` records for `autotune verify`. `gold` and
/// `prediction` may be strings or numbers; `tests` a string or a list of strings.
pub fn read_verify_items(path: &Path) -> Result<Vec<autotune_verify::Item>, DataError> {
    let file = path.display().to_string();
    let mut out = Vec::new();
    for (line, value) in json_lines(path)? {
        let bad = |message: String| DataError::BadRecord {
            file: file.clone(),
            line,
            message,
        };
        let v = value.map_err(bad)?;
        let Value::Object(o) = v else {
            return Err(bad(
                "expected a JSON object with `gold` and `prediction`".into()
            ));
        };
        let field = |k: &str| -> Result<String, DataError> {
            match o.get(k) {
                Some(v) => {
                    text_of(v).ok_or_else(|| bad(format!("`{k}` must be a string or a number")))
                }
                None => Err(bad(format!("expected `{k}` (keys: {})", keys(&o)))),
            }
        };
        out.push(autotune_verify::Item {
            gold: field("gold")?,
            prediction: field("prediction")?,
            tests: tests_of(o.get("tests")).map_err(bad)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Result<TaskRecord, String> {
        parse_record(v, 7, Format::Auto)
    }

    #[test]
    fn every_format_is_recognised() {
        let r = rec(json!({"prompt": "2+2?", "answer": 4, "cot": "2+2=4", "id": 9, "meta": {"verifier": "numeric"}})).unwrap();
        assert_eq!(
            (r.format, r.id.as_str(), r.answer.as_str()),
            (Format::Plain, "9", "4")
        );
        assert_eq!(r.verifier.as_deref(), Some("numeric"));
        assert_eq!(r.cot.as_deref(), Some("2+2=4"));

        let r = rec(json!({"question": "Sort 3 1 2", "answer": "1 2 3", "metadata": {"source_dataset": "x"}})).unwrap();
        assert_eq!((r.format, r.id.as_str()), (Format::ReasoningGym, "line-7"));
        assert_eq!(r.meta["metadata"]["source_dataset"], "x");

        let r = rec(json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 6*7?"},
            {"role": "assistant", "content": "6*7 = 42. The answer is \\boxed{42}."}
        ]}))
        .unwrap();
        assert_eq!(r.format, Format::TrlMessages);
        assert_eq!(r.answer, "42");
        assert_eq!(r.prompt, "system: Be brief.\nuser: What is 6*7?");
        assert_eq!(r.messages.as_ref().unwrap().len(), 2);

        let r = rec(json!({"prompt": "Half of 9?", "completion": "9/2 so the answer is 4.5."}))
            .unwrap();
        assert_eq!(
            (r.format, r.answer.as_str()),
            (Format::TrlCompletion, "4.5")
        );

        let r = rec(json!({
            "data_source": "openai/gsm8k",
            "prompt": [{"role": "user", "content": "How many legs do 3 cats have?"}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": "12"},
            "extra_info": {"index": 31, "split": "train"}
        }))
        .unwrap();
        assert_eq!(
            (r.format, r.id.as_str(), r.answer.as_str()),
            (Format::Verl, "31", "12")
        );
        assert_eq!(r.prompt, "How many legs do 3 cats have?");
        assert_eq!(r.meta["data_source"], "openai/gsm8k");
    }

    #[test]
    fn bad_records_say_what_is_wrong() {
        for (v, want) in [
            (json!([1, 2]), "expected a JSON object"),
            (
                json!({"x": 1}),
                "cannot tell the record's format from its keys (x)",
            ),
            (
                json!({"prompt": "p"}),
                "plain record without `answer` (keys: prompt)",
            ),
            (
                json!({"prompt": "p", "answer": [1]}),
                "`answer` must be a string or a number",
            ),
            (json!({"prompt": " ", "answer": 1}), "empty prompt"),
            (
                json!({"messages": [{"role": "user", "content": "q"}]}),
                "no assistant message",
            ),
            (
                json!({"messages": [{"role": "user"}]}),
                "`messages[0]` must be an object",
            ),
            (
                json!({"prompt": [{"role": "user", "content": "q"}], "reward_model": {}}),
                "without `reward_model.ground_truth`",
            ),
            (
                json!({"prompt": "q", "completion": "no digits here"}),
                "no final answer in the completion",
            ),
            (
                json!({"prompt": "q", "answer": 1, "tests": 3}),
                "`tests` must be a string or a list",
            ),
        ] {
            let e = rec(v.clone()).unwrap_err();
            assert!(e.contains(want), "{v}: `{e}` lacks `{want}`");
        }
    }

    #[test]
    fn final_answers_from_chains_of_thought() {
        assert_eq!(
            final_answer("so \\boxed{\\frac{1}{2}} done").as_deref(),
            Some("\\frac{1}{2}")
        );
        assert_eq!(
            final_answer("x \\boxed{1} then \\boxed{{2}}").as_deref(),
            Some("{2}")
        );
        assert_eq!(
            final_answer("The answer is: 7 apples.\nok").as_deref(),
            Some("7 apples")
        );
        assert_eq!(
            final_answer("**Answer:** $x = 3$").as_deref(),
            Some("x = 3")
        );
        assert_eq!(final_answer("we get 3, then 4").as_deref(), Some("4"));
        assert_eq!(final_answer("nothing"), None);
        assert_eq!(final_answer("\\boxed{unclosed"), None);
    }

    #[test]
    fn verify_items_name_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.jsonl");
        std::fs::write(&p, "{\"gold\": 3, \"prediction\": \"it is 3\"}\n{\"gold\": \"x\", \"prediction\": \"y\", \"tests\": [\"assert 1\", \"assert 2\"]}\n").unwrap();
        let items = read_verify_items(&p).unwrap();
        assert_eq!(items[0].gold, "3");
        assert_eq!(items[1].tests.as_deref(), Some("assert 1\nassert 2"));
        std::fs::write(&p, "{\"gold\": 3, \"prediction\": \"a\"}\n{\"gold\": 1}\n").unwrap();
        let e = read_verify_items(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("v.jsonl:2: expected `prediction` (keys: gold)"),
            "{e}"
        );
    }

    #[test]
    fn files_name_the_bad_line_or_skip_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        std::fs::write(
            &p,
            "{\"prompt\": \"a\", \"answer\": 1}\n\n{\"prompt\": \"b\"}\nnot json\n{\"id\": 1, \"prompt\": \"c\", \"answer\": 2}\n{\"id\": 1, \"prompt\": \"d\", \"answer\": 2}\n",
        )
        .unwrap();
        let e = read_tasks(&p, Format::Auto, false).unwrap_err().to_string();
        assert!(
            e.ends_with("t.jsonl:3: plain record without `answer` (keys: prompt)"),
            "{e}"
        );
        let ok = read_tasks(&p, Format::Auto, true).unwrap();
        assert_eq!(ok.records.len(), 2);
        assert_eq!(ok.skipped.len(), 3);
        assert!(
            ok.skipped[1].contains("t.jsonl:4: not JSON"),
            "{:?}",
            ok.skipped
        );
        assert!(
            ok.skipped[2].contains("t.jsonl:6: duplicate id `1` (first at line 5)"),
            "{:?}",
            ok.skipped
        );
        let forced = read_tasks(&p, Format::Verl, true).unwrap_err().to_string();
        assert!(
            forced.contains("no task records (6 bad records skipped)")
                || forced.contains("bad records skipped"),
            "{forced}"
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,200}") {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = parse_record(v, 1, Format::Auto);
            }
            let _ = final_answer(&s);
        }
    }
}
