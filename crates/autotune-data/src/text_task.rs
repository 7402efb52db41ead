//! A task made of text records: prompts from a file, answers checked by real verifiers,
//! demonstrations from a file-backed teacher, and a memorising student.
//!
//! Text is tokenised one Unicode scalar value per token, so traces decode back to the exact
//! text. The prompt distribution D is uniform over the file's records: the train and test
//! streams draw from it independently, with replacement (`split=pool`), or the test stream
//! draws from the last `test_frac` of the records and the train stream from the rest
//! (`split=holdout`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use autotune_core::{
    stream_rng, CoreError, Prompt, PromptSource, PromptText, Result, Rng, Student, Task, Teacher,
    Token, Trace, Verifier,
};
use autotune_verify::{build_verifier, AnswerVerifier, Item, VerifyError};
use rand::Rng as _;
use serde_json::Value;

use crate::memo::MemoStudent;
use crate::records::{final_answer, read_tasks, Format, TaskRecord};
use crate::remote::{ChatTeacher, GeneratorTeacher, TextGenerator};
use crate::tokens::{decode, encode, trace_of};
use crate::DataError;

/// How a [`TextTask`] is built.
#[derive(Debug)]
pub struct TextTaskConfig {
    pub path: PathBuf,
    pub format: Format,
    /// Verifier for records that do not name one.
    pub verifier: String,
    /// `key=value` options for the verifiers.
    pub verifier_options: Vec<(String, String)>,
    /// JSONL of demonstrations `{"id", "cot", "answer"?}`; `None`: the records' own `cot`,
    /// else the gold answer alone.
    pub teacher: Option<PathBuf>,
    /// A model as the teacher instead: a chat-completions server, or a model in process.
    pub model_teacher: Option<ModelTeacher>,
    /// Students that generate over HTTP: (base URL, model name) of an
    /// `autotune serve-model --allow-load` server.
    pub student_server: Option<(String, String)>,
    /// Students made by a factory instead of the memorising student (the `file` task's
    /// neural student).
    pub student: Option<Arc<dyn TextStudentFactory>>,
    pub skip_bad: bool,
    /// `None`: train and test both draw from the whole pool. `Some(f)`: the last fraction
    /// `f` of the records is the test pool.
    pub holdout: Option<f64>,
    /// The dimension hint `d` the strategies size their default phases by; `None`: the
    /// training pool's size.
    pub dimension: Option<usize>,
}

/// Makes the students of a [`TextTask`] in place of the memorising student: the `file` task's
/// neural student, defined in `autotune-tasks` (which has the model) and handed in here.
/// Prompts and traces are text as tokens, one Unicode scalar value each ([`crate::encode`]);
/// a trace's answer is the tail [`crate::final_answer`] finds in its text.
pub trait TextStudentFactory: Send + Sync + std::fmt::Debug {
    fn new_student(&self, seed: u64) -> Box<dyn Student>;
    /// A student saved by its `Student::save`.
    fn load_student(&self, state: &str) -> Result<Box<dyn Student>>;
}

/// A model that teaches a text task.
pub enum ModelTeacher {
    /// An OpenAI-compatible server (with the client's cache, limits and retries).
    Chat(Box<autotune_http::ChatConfig>),
    /// A model in process.
    Generator(Box<dyn TextGenerator>),
}

impl std::fmt::Debug for ModelTeacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelTeacher::Chat(c) => write!(f, "Chat({} at {})", c.model, c.base_url),
            ModelTeacher::Generator(_) => f.write_str("Generator"),
        }
    }
}

enum AnyTeacher {
    File(FileTeacher),
    Chat(Box<ChatTeacher>),
    Model(GeneratorTeacher),
}

impl AnyTeacher {
    fn as_dyn(&self) -> &dyn Teacher {
        match self {
            AnyTeacher::File(t) => t,
            AnyTeacher::Chat(t) => t.as_ref(),
            AnyTeacher::Model(t) => t,
        }
    }
}

/// Demonstrations from a JSONL file keyed by prompt id, served only when asked.
pub struct FileTeacher {
    records: Arc<Vec<TaskRecord>>,
    demos: Option<HashMap<String, (String, String)>>,
    source: String,
    served: AtomicU64,
}

impl FileTeacher {
    /// Reads `path` (`{"id", "cot", "answer"?}` per line; the answer defaults to the final
    /// answer of the CoT); `None` serves the records' own CoTs.
    pub fn new(
        records: Arc<Vec<TaskRecord>>,
        path: Option<&Path>,
    ) -> std::result::Result<Self, DataError> {
        let Some(path) = path else {
            return Ok(Self {
                records,
                demos: None,
                source: "the task records".into(),
                served: AtomicU64::new(0),
            });
        };
        let (reader, file) = crate::records::open_lines(path)?;
        Self::from_reader(records, reader, &file)
    }

    /// [`FileTeacher::new`] on any reader of the teacher file; `file` names it in errors.
    pub fn from_reader<R: std::io::BufRead>(
        records: Arc<Vec<TaskRecord>>,
        reader: R,
        file: &str,
    ) -> std::result::Result<Self, DataError> {
        Ok(Self::from_demos(records, read_demos(reader, file)?, file))
    }

    /// A teacher serving `demos` (by record id), read from `file`.
    pub fn from_demos(records: Arc<Vec<TaskRecord>>, demos: Demos, file: &str) -> Self {
        Self {
            records,
            demos: Some(demos),
            source: file.to_string(),
            served: AtomicU64::new(0),
        }
    }

    /// Demonstrations served so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

/// A teacher file's demonstrations: record id -> (CoT, answer).
pub type Demos = HashMap<String, (String, String)>;

/// Reads a teacher file (`{"id", "cot", "answer"?}` per line); `file` names it in errors.
pub fn read_demos<R: std::io::BufRead>(
    reader: R,
    file: &str,
) -> std::result::Result<Demos, DataError> {
    {
        let mut demos = HashMap::new();
        crate::records::each_line(reader, file, |line, value| {
            let bad = |message: String| DataError::BadRecord {
                file: file.to_string(),
                line,
                message,
            };
            let v = value.map_err(bad)?;
            let id = match v.get("id") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(bad("expected `id` (a string or a number)".into())),
            };
            let cot = v
                .get("cot")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("expected `cot` (a string)".into()))?
                .to_string();
            let answer = match v.get("answer") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(_) => return Err(bad("`answer` must be a string or a number".into())),
                None => final_answer(&cot)
                    .ok_or_else(|| bad("no `answer`, and no final answer in `cot`".into()))?,
            };
            if demos.insert(id.clone(), (cot, answer)).is_some() {
                return Err(bad(format!("duplicate id `{id}`")));
            }
            Ok(())
        })?;
        Ok(demos)
    }
}

impl Teacher for FileTeacher {
    fn demonstrate_batch(&self, prompts: &[Prompt]) -> Result<Vec<Trace>> {
        let out = prompts
            .iter()
            .map(|p| {
                let r = self.records.get(p.id as usize).ok_or_else(|| {
                    CoreError::Teacher(format!("no task record for prompt {}", p.id))
                })?;
                match &self.demos {
                    Some(d) => d.get(&r.id).map(|(c, a)| trace_of(c, a)).ok_or_else(|| {
                        CoreError::Teacher(format!(
                            "{} has no demonstration for prompt id `{}`",
                            self.source, r.id
                        ))
                    }),
                    None => Ok(trace_of(r.cot.as_deref().unwrap_or(""), &r.answer)),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        self.served.fetch_add(out.len() as u64, Ordering::Relaxed);
        Ok(out)
    }
}

/// Verdicts with each record's own verifier (or the task's default).
struct RecordVerifier {
    records: Arc<Vec<TaskRecord>>,
    default: String,
    verifiers: HashMap<String, Box<dyn AnswerVerifier>>,
}

impl Verifier for RecordVerifier {
    fn pure(&self) -> bool {
        self.verifiers.values().all(|v| v.pure())
    }

    fn verify_batch(&self, prompts: &[Prompt], answers: &[&[Token]]) -> Vec<bool> {
        // Only an external verifier can fail; its failure stops a run through
        // `try_verify_batch`, and reads as wrong answers here.
        self.try_verify_batch(prompts, answers)
            .unwrap_or_else(|_| vec![false; prompts.len()])
    }

    fn try_verify_batch(
        &self,
        prompts: &[Prompt],
        answers: &[&[Token]],
    ) -> autotune_core::Result<Vec<bool>> {
        let mut out = vec![false; prompts.len()];
        let mut groups: HashMap<&str, (Vec<usize>, Vec<Item>)> = HashMap::new();
        for (i, (p, a)) in prompts.iter().zip(answers).enumerate() {
            let Some(r) = self.records.get(p.id as usize) else {
                continue;
            };
            let name = r.verifier.as_deref().unwrap_or(&self.default);
            let Some(v) = self.verifiers.get(name) else {
                continue;
            };
            let g = groups.entry(name).or_default();
            g.0.push(i);
            g.1.push(item(v.as_ref(), r, decode(a), r.tests.clone()));
        }
        for (name, (idx, items)) in groups {
            let v = &self.verifiers[name];
            let verdicts = v
                .try_verify_batch(&items)
                .map_err(|e| autotune_core::CoreError::Verifier(e.to_string()))?;
            for (i, verdict) in idx.into_iter().zip(verdicts) {
                out[i] = verdict.correct;
            }
        }
        Ok(out)
    }
}

/// Draws record indices uniformly from `range`, with replacement.
struct PoolSource {
    records: Arc<Vec<TaskRecord>>,
    range: std::ops::Range<usize>,
    rng: Rng,
}

impl PromptSource for PoolSource {
    fn draw(&mut self, n: usize) -> Result<Vec<Prompt>> {
        Ok((0..n)
            .map(|_| {
                let i = self.rng.gen_range(self.range.clone());
                Prompt {
                    id: i as u64,
                    tokens: encode(&self.records[i].prompt),
                }
            })
            .collect())
    }
}

/// Checks a file's records before anything is spent on them, and returns `(line, what is
/// wrong)` for each record no student could ever pass:
/// - its gold answer fails its own verifier (given as the prediction, the gold must be
///   accepted: a gold the verifier cannot read makes every answer wrong). Records checked by
///   `code` are left out: checking them runs every gold program against its tests;
/// - it has the same prompt as another record whose answer the verifier does not accept for
///   it (conflicting records: a student answers one prompt one way, so one of them always
///   fails). Every record of such a group is reported.
pub fn preflight(
    records: &[TaskRecord],
    verifiers: &HashMap<String, Box<dyn AnswerVerifier>>,
    default: &str,
) -> Result<Vec<(usize, String)>, VerifyError> {
    let name_of = |r: &TaskRecord| r.verifier.clone().unwrap_or_else(|| default.to_string());
    let mut problems: Vec<(usize, String)> = Vec::new();
    // Gold against itself, one batch per verifier.
    let mut groups: HashMap<String, Vec<&TaskRecord>> = HashMap::new();
    for r in records {
        let name = name_of(r);
        if name != "code" {
            groups.entry(name).or_default().push(r);
        }
    }
    for (name, rs) in &groups {
        let Some(v) = verifiers.get(name) else {
            continue;
        };
        let items: Vec<Item> = rs
            .iter()
            .map(|r| item(v.as_ref(), r, r.answer.clone(), None))
            .collect();
        for (r, verdict) in rs.iter().zip(v.try_verify_batch(&items)?) {
            if !verdict.correct {
                problems.push((
                    r.line,
                    format!(
                        "the gold answer `{}` fails its own verifier `{name}`{}",
                        shorten(&r.answer),
                        verdict
                            .reason
                            .map_or(String::new(), |why| format!(" ({why})"))
                    ),
                ));
            }
        }
    }
    // Records with the same prompt must agree on the answer.
    let mut by_prompt: HashMap<&str, Vec<&TaskRecord>> = HashMap::new();
    for r in records {
        by_prompt.entry(r.prompt.as_str()).or_default().push(r);
    }
    for rs in by_prompt.values().filter(|rs| rs.len() > 1) {
        let first = rs[0];
        let Some(v) = verifiers.get(&name_of(first)) else {
            continue;
        };
        let items: Vec<Item> = rs[1..]
            .iter()
            .map(|r| Item {
                gold: first.answer.clone(),
                ..item(v.as_ref(), r, r.answer.clone(), r.tests.clone())
            })
            .collect();
        let conflict = v.try_verify_batch(&items)?.iter().any(|v| !v.correct);
        if conflict {
            let lines: Vec<String> = rs.iter().map(|r| r.line.to_string()).collect();
            for r in rs {
                problems.push((
                    r.line,
                    format!(
                        "conflicting records: lines {} have the same prompt and different answers (this one `{}`)",
                        lines.join(", "),
                        shorten(&r.answer)
                    ),
                ));
            }
        }
    }
    problems.sort_by_key(|(line, _)| *line);
    problems.dedup_by_key(|(line, _)| *line);
    Ok(problems)
}

/// What `v` checks for record `r`: its gold against `prediction`, with the record's `meta` for
/// verifiers that read it.
fn item(v: &dyn AnswerVerifier, r: &TaskRecord, prediction: String, tests: Option<String>) -> Item {
    Item {
        gold: r.answer.clone(),
        prediction,
        tests,
        meta: v.reads_meta().then(|| r.meta.clone()),
    }
}

/// The records whose demonstration in the teacher file `file` its verifier rejects against the
/// gold: `(record line, what is wrong)`. A student trained on such a demonstration learns a
/// wrong answer, and buying it again buys the same one. `code` records are left out.
pub fn check_demos(
    records: &[TaskRecord],
    demos: &Demos,
    file: &str,
    verifiers: &HashMap<String, Box<dyn AnswerVerifier>>,
    default: &str,
) -> Result<Vec<(usize, String)>, VerifyError> {
    // One batch per verifier (one exchange with an external scorer, not one per record).
    let mut groups: HashMap<&str, Vec<(&TaskRecord, &String)>> = HashMap::new();
    for r in records {
        let name = r.verifier.as_deref().unwrap_or(default);
        if name == "code" || !verifiers.contains_key(name) {
            continue;
        }
        if let Some((_, answer)) = demos.get(&r.id) {
            groups.entry(name).or_default().push((r, answer));
        }
    }
    let mut out = Vec::new();
    for (name, rs) in groups {
        let v = &verifiers[name];
        let items: Vec<Item> = rs
            .iter()
            .map(|(r, answer)| item(v.as_ref(), r, (*answer).clone(), None))
            .collect();
        for ((r, answer), verdict) in rs.iter().zip(v.try_verify_batch(&items)?) {
            if !verdict.correct {
                out.push((
                    r.line,
                    format!(
                        "the teacher's demonstration for id `{}` ({file}) answers `{}`, which the verifier `{name}` rejects against the gold `{}`",
                        r.id,
                        shorten(answer),
                        shorten(&r.answer)
                    ),
                ));
            }
        }
    }
    out.sort_by_key(|(line, _)| *line);
    Ok(out)
}

/// At most 60 characters of an answer, for messages.
fn shorten(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= 60 {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(57).collect::<String>())
    }
}

/// A task read from a JSONL file (see [`crate::read_tasks`] for the formats).
pub struct TextTask {
    name: String,
    records: Arc<Vec<TaskRecord>>,
    teacher: AnyTeacher,
    verifier: RecordVerifier,
    train: std::ops::Range<usize>,
    test: std::ops::Range<usize>,
    dimension: Option<usize>,
    /// Bad records skipped while reading (`file:line: message`).
    pub skipped: Vec<String>,
    student_server: Option<(String, String)>,
    student: Option<Arc<dyn TextStudentFactory>>,
    students_made: AtomicU64,
}

impl TextTask {
    pub fn open(cfg: TextTaskConfig) -> std::result::Result<Self, DataError> {
        let mut imported = read_tasks(&cfg.path, cfg.format, cfg.skip_bad)?;
        let mut verifiers = HashMap::new();
        let records = &imported.records;
        let mut names: Vec<&str> = records
            .iter()
            .filter_map(|r| r.verifier.as_deref())
            .collect();
        names.push(&cfg.verifier);
        for name in names {
            if !verifiers.contains_key(name) {
                let v = build_verifier(name, &cfg.verifier_options).map_err(|e| {
                    let at = records
                        .iter()
                        .find(|r| r.verifier.as_deref() == Some(name))
                        .map_or(String::new(), |r| {
                            format!("{}:{}: ", cfg.path.display(), r.line)
                        });
                    DataError::Invalid(format!("{at}{e}"))
                })?;
                verifiers.insert(name.to_string(), v);
            }
        }
        let teacher_demos = match (&cfg.model_teacher, cfg.teacher.as_deref()) {
            (None, Some(path)) => {
                let (reader, file) = crate::records::open_lines(path)?;
                Some((read_demos(reader, &file)?, file))
            }
            _ => None,
        };
        let mut problems = preflight(records, &verifiers, &cfg.verifier)?;
        if let Some((demos, file)) = &teacher_demos {
            problems.extend(check_demos(
                records,
                demos,
                file,
                &verifiers,
                &cfg.verifier,
            )?);
            problems.sort_by_key(|(line, _)| *line);
            problems.dedup_by_key(|(line, _)| *line);
        }
        if !problems.is_empty() {
            let file = cfg.path.display().to_string();
            if !cfg.skip_bad {
                let (line, what) = &problems[0];
                let more = match problems.len() {
                    1 => String::new(),
                    n => format!(" ({} more records like it)", n - 1),
                };
                return Err(DataError::Invalid(format!(
                    "{file}:{line}: {what}{more}; no student can pass such a record, so a run would spend its whole budget on it: fix it, or give --skip-bad to skip it"
                )));
            }
            let bad: std::collections::HashSet<usize> = problems.iter().map(|(l, _)| *l).collect();
            imported
                .skipped
                .extend(problems.iter().map(|(l, w)| format!("{file}:{l}: {w}")));
            imported.records.retain(|r| !bad.contains(&r.line));
            if imported.records.is_empty() {
                return Err(DataError::Invalid(format!(
                    "{file}: no record passed the pre-flight checks ({} skipped)",
                    imported.skipped.len()
                )));
            }
        }
        let records = Arc::new(imported.records);
        let n = records.len();
        let (train, test) = match cfg.holdout {
            None => (0..n, 0..n),
            Some(f) if f > 0.0 && f < 1.0 => {
                let k = ((n as f64) * (1.0 - f)).round() as usize;
                if k == 0 || k == n {
                    return Err(DataError::Invalid(format!(
                        "{}: {n} records cannot be split with test_frac {f}",
                        cfg.path.display()
                    )));
                }
                (0..k, k..n)
            }
            Some(f) => {
                return Err(DataError::Invalid(format!(
                    "test_frac must be in (0, 1), got {f}"
                )))
            }
        };
        Ok(Self {
            name: format!("file:{}", cfg.path.display()),
            dimension: cfg.dimension,
            teacher: match cfg.model_teacher {
                None => AnyTeacher::File(match teacher_demos {
                    Some((demos, file)) => FileTeacher::from_demos(records.clone(), demos, &file),
                    None => FileTeacher::new(records.clone(), None)?,
                }),
                Some(ModelTeacher::Chat(c)) => AnyTeacher::Chat(Box::new(ChatTeacher {
                    records: records.clone(),
                    client: autotune_http::ChatClient::new(*c)
                        .map_err(|e| DataError::Invalid(format!("teacher server: {e}")))?,
                })),
                Some(ModelTeacher::Generator(g)) => AnyTeacher::Model(GeneratorTeacher {
                    records: records.clone(),
                    generator: g,
                }),
            },
            verifier: RecordVerifier {
                records: records.clone(),
                default: cfg.verifier.clone(),
                verifiers,
            },
            records,
            train,
            test,
            skipped: imported.skipped,
            student_server: cfg.student_server,
            student: cfg.student,
            students_made: AtomicU64::new(0),
        })
    }

    pub fn records(&self) -> &[TaskRecord] {
        &self.records
    }

    /// The file teacher (for its count of served demonstrations), if that is the teacher.
    pub fn file_teacher(&self) -> Option<&FileTeacher> {
        match &self.teacher {
            AnyTeacher::File(t) => Some(t),
            _ => None,
        }
    }
}

impl Task for TextTask {
    fn name(&self) -> &str {
        &self.name
    }

    /// The number of distinct prompts the student may have to learn.
    fn dimension(&self) -> usize {
        self.dimension.unwrap_or(self.train.len())
    }

    fn prompts(&self, split: &str, seed: u64) -> Result<Box<dyn PromptSource>> {
        let range = match split {
            "train" => self.train.clone(),
            "test" => self.test.clone(),
            other => return Err(CoreError::Invalid(format!("unknown split `{other}`"))),
        };
        Ok(Box::new(PoolSource {
            records: self.records.clone(),
            range,
            rng: stream_rng(seed, &format!("text-{split}")),
        }))
    }

    fn teacher(&self) -> &dyn Teacher {
        self.teacher.as_dyn()
    }

    fn verifier(&self) -> &dyn Verifier {
        &self.verifier
    }

    fn new_student(&self, seed: u64) -> Box<dyn Student> {
        if let Some(f) = &self.student {
            return f.new_student(seed);
        }
        match &self.student_server {
            None => Box::new(MemoStudent::default()),
            Some((url, model)) => {
                // A slot per student: ensemble members and parallel runs do not collide.
                let n = self.students_made.fetch_add(1, Ordering::Relaxed);
                let slot = format!("{}-{seed:x}-{n}", std::process::id());
                Box::new(crate::remote::RemoteStudent::new(
                    self.records.clone(),
                    url,
                    model,
                    slot,
                ))
            }
        }
    }

    fn student_name(&self) -> Option<String> {
        Some(match (&self.student, &self.student_server) {
            (Some(f), _) => format!("{f:?}"),
            (None, Some((url, model))) => format!("model {model} at {url}"),
            (None, None) => "memorising (a lookup table of the demonstrations)".into(),
        })
    }

    fn render(&self, tokens: &[Token]) -> String {
        decode(tokens)
    }

    fn tokenize(&self, text: &str) -> Result<Vec<Token>> {
        Ok(encode(text))
    }

    fn load_student(&self, state: &str) -> Result<Box<dyn Student>> {
        if let Some(f) = &self.student {
            return f.load_student(state);
        }
        Ok(Box::new(MemoStudent::load(state)?))
    }

    /// The teacher's text: its CoT alone when the CoT already states the final answer
    /// (traces carry the answer again as their tail for the verifier).
    fn render_trace(&self, trace: &Trace) -> String {
        let text = decode(&trace.steps);
        let answer = decode(trace.answer());
        if let Some((cot, tail)) = text.rsplit_once('\n') {
            if tail == answer && final_answer(cot).as_deref() == Some(answer.as_str()) {
                return cot.to_string();
            }
        }
        text
    }

    fn describe(&self, prompt: &Prompt) -> PromptText {
        match self.records.get(prompt.id as usize) {
            Some(r) => PromptText {
                id: r.id.clone(),
                text: r.prompt.clone(),
                messages: r.messages.clone(),
                gold: Some(r.answer.clone()),
            },
            None => PromptText {
                id: prompt.id.to_string(),
                text: decode(&prompt.tokens),
                messages: None,
                gold: None,
            },
        }
    }

    fn pool(&self) -> Option<Vec<Prompt>> {
        Some(
            self.train
                .clone()
                .map(|i| Prompt {
                    id: i as u64,
                    tokens: encode(&self.records[i].prompt),
                })
                .collect(),
        )
    }
}
