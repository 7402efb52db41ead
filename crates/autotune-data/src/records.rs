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
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
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

/// Longest line read (longer lines are refused, not loaded): 16 MiB.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// A 1-based line number and the line's JSON value, or what is wrong with the line.
pub type JsonLine = (usize, std::result::Result<Value, String>);

/// The JSONL lines of a reader, one at a time: `(1-based line, the value or what is wrong
/// with the line)` for every non-blank line. A line longer than the limit
/// ([`MAX_LINE_BYTES`] by default), not UTF-8 or not JSON is an error message, and the lines
/// after it are still read; only a failing reader (an I/O error) ends the lines, as an `Err`.
///
/// Memory is bounded by the limit: a longer line is never held whole. Reading stops at the
/// limit and the line is reported at once; the rest of it is skipped (read and dropped)
/// only when the next line is asked for.
pub struct JsonLines<R> {
    reader: R,
    limit: usize,
    line: usize,
    buf: Vec<u8>,
    /// The last line was too long: its rest is skipped before the next line is read.
    skip_rest: bool,
    done: bool,
}

impl<R: BufRead> JsonLines<R> {
    /// Lines of at most [`MAX_LINE_BYTES`] bytes.
    pub fn new(reader: R) -> Self {
        Self::with_limit(reader, MAX_LINE_BYTES)
    }

    /// Lines of at most `limit` bytes (the newline not counted).
    pub fn with_limit(reader: R, limit: usize) -> Self {
        Self {
            reader,
            limit,
            line: 0,
            buf: Vec::new(),
            skip_rest: false,
            done: false,
        }
    }

    /// Reads and drops everything up to and including the next newline.
    fn skip_line(&mut self) -> io::Result<()> {
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok(());
            }
            match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.reader.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let n = chunk.len();
                    self.reader.consume(n);
                }
            }
        }
    }

    /// The next raw line: `Ok(None)` at the end, `Ok(Some(false))` for a line longer than the
    /// limit (nothing of it kept), `Ok(Some(true))` with the line in `buf`.
    fn next_raw(&mut self) -> io::Result<Option<bool>> {
        if std::mem::take(&mut self.skip_rest) {
            self.skip_line()?;
        }
        self.buf.clear();
        let cap = u64::try_from(self.limit)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let n = (&mut self.reader)
            .take(cap)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            return Ok(Some(true));
        }
        if self.buf.len() > self.limit {
            // Stopped at the limit in the middle of the line.
            self.buf.clear();
            if self.buf.capacity() > 1 << 20 {
                self.buf.shrink_to(1 << 20);
            }
            self.skip_rest = true;
            return Ok(Some(false));
        }
        // The last line, without a newline.
        Ok(Some(true))
    }
}

impl<R: BufRead> Iterator for JsonLines<R> {
    type Item = io::Result<JsonLine>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let whole = match self.next_raw() {
                Ok(Some(w)) => w,
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            let line = self.line;
            if !whole {
                return Some(Ok((
                    line,
                    Err(format!(
                        "line longer than the {} bytes allowed; not read",
                        self.limit
                    )),
                )));
            }
            let value = match std::str::from_utf8(&self.buf) {
                Err(e) => Err(format!("not UTF-8 ({e})")),
                Ok(s) if s.trim().is_empty() => continue,
                Ok(s) => serde_json::from_str(s).map_err(|e| format!("not JSON ({e})")),
            };
            return Some(Ok((line, value)));
        }
        None
    }
}

/// Opens `path` for [`JsonLines`].
fn open(path: &Path) -> Result<BufReader<File>, DataError> {
    File::open(path)
        .map(|f| BufReader::with_capacity(1 << 16, f))
        .map_err(|e| DataError::Io {
            path: path.display().to_string(),
            source: e,
        })
}

/// Every line of `reader`, a read error as a [`DataError::Io`] naming `file`.
pub(crate) fn each_line<R: BufRead>(
    reader: R,
    file: &str,
    mut f: impl FnMut(usize, std::result::Result<Value, String>) -> Result<(), DataError>,
) -> Result<(), DataError> {
    for item in JsonLines::new(reader) {
        let (line, value) = item.map_err(|e| DataError::Io {
            path: file.to_string(),
            source: e,
        })?;
        f(line, value)?;
    }
    Ok(())
}

/// Reads every record of a JSONL file. Blank lines are ignored; ids must be unique.
///
/// The file is read one line at a time (lines of at most [`MAX_LINE_BYTES`]); the number of
/// records is not limited (a million small records take a few hundred MB).
pub fn read_tasks(path: &Path, format: Format, skip_bad: bool) -> Result<Imported, DataError> {
    read_tasks_from(open(path)?, &path.display().to_string(), format, skip_bad)
}

/// [`read_tasks`] on any reader; `file` names it in errors.
pub fn read_tasks_from<R: BufRead>(
    reader: R,
    file: &str,
    format: Format,
    skip_bad: bool,
) -> Result<Imported, DataError> {
    let mut out = Imported::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    each_line(reader, file, |line, value| {
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
                Ok(())
            }
            Err(message) if skip_bad => {
                out.skipped.push(format!("{file}:{line}: {message}"));
                Ok(())
            }
            Err(message) => Err(DataError::BadRecord {
                file: file.to_string(),
                line,
                message,
            }),
        }
    })?;
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
    read_verify_items_from(open(path)?, &path.display().to_string())
}

/// [`read_verify_items`] on any reader; `file` names it in errors.
pub fn read_verify_items_from<R: BufRead>(
    reader: R,
    file: &str,
) -> Result<Vec<autotune_verify::Item>, DataError> {
    let mut out = Vec::new();
    each_line(reader, file, |line, value| {
        let bad = |message: String| DataError::BadRecord {
            file: file.to_string(),
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
            meta: o.get("meta").cloned(),
        });
        Ok(())
    })?;
    Ok(out)
}

/// Opens a JSONL file for [`each_line`]: the reader and the name errors give.
pub(crate) fn open_lines(path: &Path) -> Result<(BufReader<File>, String), DataError> {
    Ok((open(path)?, path.display().to_string()))
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

    /// A reader that claims an endless line: `a` forever, never a newline.
    struct Endless;

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf.fill(b'a');
            Ok(buf.len())
        }
    }

    /// `n` bytes of `a`, then `tail`.
    struct LongLine {
        left: u64,
        tail: io::Cursor<Vec<u8>>,
    }

    impl Read for LongLine {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.left == 0 {
                return self.tail.read(buf);
            }
            let k = (buf.len() as u64).min(self.left) as usize;
            buf[..k].fill(b'a');
            self.left -= k as u64;
            Ok(k)
        }
    }

    #[test]
    fn an_endless_line_is_refused_at_the_limit_without_reading_it() {
        // The reader never ends: reading it whole would never return (or run out of memory).
        let e = read_tasks_from(BufReader::new(Endless), "big.jsonl", Format::Auto, false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("big.jsonl:1: line longer than the {MAX_LINE_BYTES} bytes allowed; not read")
        );
        let e = read_verify_items_from(BufReader::new(Endless), "v.jsonl")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("v.jsonl:1: line longer than"), "{e}");
        let teacher = crate::FileTeacher::from_reader(
            std::sync::Arc::new(Vec::new()),
            BufReader::new(Endless),
            "teacher.jsonl",
        );
        match teacher {
            Err(e) => assert!(
                e.to_string()
                    .starts_with("teacher.jsonl:1: line longer than"),
                "{e}"
            ),
            Ok(_) => panic!("an endless teacher line was read"),
        }
        let mut lines = JsonLines::with_limit(BufReader::new(Endless), 10);
        let (n, v) = lines.next().unwrap().unwrap();
        assert_eq!(n, 1);
        assert!(v.unwrap_err().contains("longer than the 10 bytes"));
    }

    #[test]
    fn lines_after_a_too_long_line_are_read() {
        // A 40 MiB line (over the 16 MiB limit) between two good records: skipped in bounded
        // memory, the next line is line 3.
        let tail = b"\n{\"prompt\": \"b\", \"answer\": 2}\n".to_vec();
        let mut reader =
            io::Cursor::new(b"{\"prompt\": \"a\", \"answer\": 1}\n".to_vec()).chain(LongLine {
                left: 40 << 20,
                tail: io::Cursor::new(tail),
            });
        let r =
            read_tasks_from(BufReader::new(&mut reader), "t.jsonl", Format::Auto, true).unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.records[1].line, 3);
        assert_eq!(r.skipped.len(), 1);
        assert!(r.skipped[0].starts_with("t.jsonl:2: line longer than"));
    }

    #[test]
    fn the_line_limit_is_exact() {
        let lines = |text: &str, limit: usize| -> Vec<(usize, bool)> {
            JsonLines::with_limit(io::Cursor::new(text.as_bytes().to_vec()), limit)
                .map(|l| l.unwrap())
                .map(|(n, v)| (n, v.is_ok()))
                .collect()
        };
        // `"abcd"` is 6 bytes: a limit of 6 reads it, 5 refuses it, with or without newline,
        // and CRLF line ends are read.
        assert_eq!(lines("\"abcd\"\n1\n", 6), [(1, true), (2, true)]);
        assert_eq!(lines("\"abcd\"", 6), [(1, true)]);
        assert_eq!(lines("\"abcd\"\n1", 5), [(1, false), (2, true)]);
        assert_eq!(lines("\"abcd\"", 5), [(1, false)]);
        assert_eq!(lines("1\r\n\r\n  \n2\r\n", 5), [(1, true), (4, true)]);
        assert_eq!(lines("", 5), []);
        assert_eq!(lines("\n\n", 0), []);
    }

    /// Peak resident memory of this process, in bytes (Linux).
    fn peak_rss() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kb * 1024)
    }

    /// A real 2 GiB file with a 2 GiB line (a sparse file: it takes no disk), then a record.
    /// Reads 2 GiB, so not run by default: `cargo test --release -p autotune-data -- --ignored`.
    #[test]
    #[ignore]
    fn a_two_gigabyte_line_is_skipped_in_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("huge.jsonl");
        let f = File::create(&p).unwrap();
        f.set_len(2 << 30).unwrap();
        drop(f);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        use std::io::Write;
        f.write_all(b"\n{\"prompt\": \"b\", \"answer\": 2}\n")
            .unwrap();
        drop(f);
        let e = read_tasks(&p, Format::Auto, false).unwrap_err().to_string();
        assert!(
            e.ends_with("huge.jsonl:1: line longer than the 16777216 bytes allowed; not read"),
            "{e}"
        );
        let r = read_tasks(&p, Format::Auto, true).unwrap();
        assert_eq!((r.records.len(), r.records[0].line), (1, 2));
        if let Some(peak) = peak_rss() {
            assert!(peak < 512 << 20, "peak memory {peak} bytes");
        }
    }

    #[test]
    fn a_million_records_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("million.jsonl");
        let mut w = io::BufWriter::new(File::create(&p).unwrap());
        for i in 0..1_000_000 {
            use std::io::Write;
            writeln!(w, "{{\"prompt\": \"{i}+1?\", \"answer\": {}}}", i + 1).unwrap();
        }
        drop(w);
        let r = read_tasks(&p, Format::Auto, false).unwrap();
        assert_eq!(r.records.len(), 1_000_000);
        assert_eq!(r.records[999_999].id, "line-1000000");
        assert_eq!(r.records[999_999].answer, "1000000");
    }

    #[test]
    fn deep_nesting_is_an_error_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("deep.jsonl");
        let deep = format!(
            "{{\"prompt\": \"p\", \"answer\": 1, \"meta\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        std::fs::write(
            &p,
            format!("{{\"prompt\": \"q\", \"answer\": 1}}\n{deep}\n"),
        )
        .unwrap();
        let e = read_tasks(&p, Format::Auto, false).unwrap_err().to_string();
        assert!(
            e.contains("deep.jsonl:2: not JSON (recursion limit exceeded"),
            "{e}"
        );
        let deep_item = format!(
            "{{\"gold\": 1, \"prediction\": {}",
            "{\"a\": ".repeat(50_000)
        );
        std::fs::write(
            &p,
            format!("{{\"gold\": 1, \"prediction\": 1}}\n\n{deep_item}\n"),
        )
        .unwrap();
        let e = read_verify_items(&p).unwrap_err().to_string();
        assert!(e.contains("deep.jsonl:3: not JSON (recursion limit"), "{e}");
        // Nesting within serde_json's limit of 128 is read.
        let ok = format!(
            "{{\"prompt\": \"p\", \"answer\": 1, \"meta\": {}{}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        std::fs::write(&p, ok).unwrap();
        assert_eq!(
            read_tasks(&p, Format::Auto, false).unwrap().records.len(),
            1
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
