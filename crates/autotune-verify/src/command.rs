//! `cmd:PROGRAM ARGS`: an external verifier process, for a task library's own scorer.
//!
//! The program is started once, when the verifier is built, and lives as long as the
//! verifier. Each batch is written to its stdin as JSON lines, one item per line:
//!
//! ```text
//! {"gold": "42", "prediction": "... so the answer is 42", "tests": "...", "meta": {...}}
//! ```
//!
//! (`tests` and `meta`, the record's `meta`/`metadata`/`extra_info`, only when the record has
//! them), and the program answers one line per item, in order: `true` or `false`, `1` or `0`,
//! a score (correct when at least `min_score`, default 1), or an object
//! `{"correct": bool, "score"?: number, "reason"?: str}`. It must flush after each line.
//!
//! A process that exits, answers something else, or gives no verdict within `timeout`
//! seconds (default 60) for a batch is an error, not a wrong verdict: the run stops with it,
//! naming the program, what it answered and the last lines of its stderr. Verdicts of an
//! external process are not pure: a journaled run keeps them.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{check_options, parse_option, AnswerVerifier, Item, Verdict, VerifyError};

/// The prefix of an external verifier's name.
pub const COMMAND_PREFIX: &str = "cmd:";

/// Lines of the process's stderr kept for error messages.
const STDERR_LINES: usize = 20;

/// A running verifier process.
struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<std::io::Result<String>>,
    /// Set once the process failed: every later batch fails with it.
    failed: Option<String>,
}

/// An external verifier process (`cmd:PROGRAM ARGS`).
pub struct CommandVerifier {
    /// The command line as given (after `cmd:`).
    command: String,
    timeout: Duration,
    min_score: f64,
    process: Mutex<Process>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl CommandVerifier {
    /// Starts `command` (`PROGRAM ARGS`, split on whitespace) with the options `timeout`
    /// (seconds per batch) and `min_score`.
    pub fn start(command: &str, options: &[(String, String)]) -> Result<Self, VerifyError> {
        let name = format!("{COMMAND_PREFIX}{command}");
        check_options(&name, options, &["timeout", "min_score"])?;
        let mut timeout: f64 = 60.0;
        let mut min_score: f64 = 1.0;
        for (k, v) in options {
            match k.as_str() {
                "timeout" => {
                    timeout = parse_option(&name, k, v, "a positive number of seconds")?;
                    if !(timeout > 0.0 && timeout <= 86_400.0) {
                        return Err(bad(&name, format!("option `timeout={v}`: expected a positive number of seconds, at most 86400")));
                    }
                }
                "min_score" => {
                    min_score = parse_option(&name, k, v, "a number")?;
                    if !min_score.is_finite() {
                        return Err(bad(
                            &name,
                            format!("option `min_score={v}`: expected a number"),
                        ));
                    }
                }
                _ => unreachable!("checked above"),
            }
        }
        let words: Vec<&str> = command.split_whitespace().collect();
        let Some((program, args)) = words.split_first() else {
            return Err(bad(
                &name,
                "no program given: expected cmd:PROGRAM ARGS (e.g. cmd:python3 scorer.py)".into(),
            ));
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| bad(&name, format!("cannot start `{program}`: {e}")))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let end = line.is_err();
                if tx.send(line).is_err() || end {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let kept = Arc::clone(&stderr);
        let err_pipe = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
                if k.len() == STDERR_LINES {
                    k.pop_front();
                }
                k.push_back(line);
            }
        });
        Ok(Self {
            command: command.to_string(),
            timeout: Duration::from_secs_f64(timeout),
            min_score,
            process: Mutex::new(Process {
                stdin: child.stdin.take(),
                child,
                lines,
                failed: None,
            }),
            stderr,
        })
    }

    /// The error of a failed batch: what went wrong, the exit status if it exited, and the
    /// last lines of its stderr.
    fn failure(&self, p: &mut Process, what: String) -> String {
        // Give an exiting process a moment, so its status and last words are in.
        let mut status = None;
        for _ in 0..20 {
            if let Ok(Some(s)) = p.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut msg = format!("verifier process `{}` {what}", self.command);
        if let Some(s) = status {
            msg.push_str(&format!(" (it exited: {s})"));
        }
        let err = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        if !err.is_empty() {
            let tail: Vec<&str> = err.iter().map(String::as_str).collect();
            msg.push_str(&format!("; its stderr ends: {}", tail.join(" | ")));
        }
        msg
    }

    /// One verdict from one line of the process's answer.
    fn verdict(&self, line: &str) -> Option<Verdict> {
        let v: Value = serde_json::from_str(line.trim()).ok()?;
        let from_score = |s: f64| {
            if s >= self.min_score {
                Verdict::correct(None)
            } else {
                Verdict::wrong(None, format!("score {s} below {}", self.min_score))
            }
        };
        match v {
            Value::Bool(true) => Some(Verdict::correct(None)),
            Value::Bool(false) => Some(Verdict::wrong(None, "the verifier process said false")),
            Value::Number(n) => n.as_f64().filter(|s| s.is_finite()).map(from_score),
            Value::Object(o) => {
                let reason = o.get("reason").and_then(Value::as_str).map(str::to_string);
                let mut v = match (o.get("correct"), o.get("score")) {
                    (Some(Value::Bool(c)), _) => {
                        if *c {
                            Verdict::correct(None)
                        } else {
                            Verdict::wrong(None, "the verifier process said false")
                        }
                    }
                    (None, Some(s)) => from_score(s.as_f64().filter(|s| s.is_finite())?),
                    _ => return None,
                };
                if !v.correct {
                    v.reason = reason.or(v.reason);
                }
                Some(v)
            }
            _ => None,
        }
    }
}

fn bad(verifier: &str, message: String) -> VerifyError {
    VerifyError::Option {
        verifier: verifier.into(),
        message,
    }
}

/// One item as the process reads it.
fn wire(item: &Item) -> String {
    let mut o = serde_json::Map::new();
    o.insert("gold".into(), Value::String(item.gold.clone()));
    o.insert("prediction".into(), Value::String(item.prediction.clone()));
    if let Some(t) = &item.tests {
        o.insert("tests".into(), Value::String(t.clone()));
    }
    if let Some(m) = &item.meta {
        o.insert("meta".into(), m.clone());
    }
    let mut line = Value::Object(o).to_string();
    line.push('\n');
    line
}

impl AnswerVerifier for CommandVerifier {
    fn name(&self) -> &'static str {
        "cmd"
    }

    fn reads_meta(&self) -> bool {
        true
    }

    fn verify(&self, item: &Item) -> Verdict {
        match self.try_verify_batch(std::slice::from_ref(item)) {
            Ok(mut v) => v.pop().unwrap_or_default(),
            Err(e) => Verdict::wrong(None, e.to_string()),
        }
    }

    fn verify_batch(&self, items: &[Item]) -> Vec<Verdict> {
        match self.try_verify_batch(items) {
            Ok(v) => v,
            Err(e) => vec![Verdict::wrong(None, e.to_string()); items.len()],
        }
    }

    fn try_verify_batch(&self, items: &[Item]) -> Result<Vec<Verdict>, VerifyError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let fail = |message: String| VerifyError::Process {
            verifier: format!("{COMMAND_PREFIX}{}", self.command),
            message,
        };
        let mut p = self.process.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = &p.failed {
            return Err(fail(f.clone()));
        }
        // A line left over from the last batch: the process answers more lines than items,
        // and every verdict after it would be misplaced.
        if let Ok(extra) = p.lines.try_recv() {
            let what = format!(
                "answered more lines than items (`{}` after the last batch's verdicts)",
                extra
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect::<String>()
            );
            let msg = self.failure(&mut p, what);
            let _ = p.child.kill();
            let _ = p.child.wait();
            p.failed = Some(msg.clone());
            return Err(fail(msg));
        }
        let batch: String = items.iter().map(wire).collect();
        let deadline = Instant::now() + self.timeout;
        let mut out = Vec::with_capacity(items.len());
        // The batch is written from its own thread while this one reads, so a process that
        // answers before it has read everything cannot block both sides.
        let mut stdin = p.stdin.take();
        let result = std::thread::scope(|s| {
            let writer = s.spawn(move || {
                let r = match stdin.as_mut() {
                    Some(w) => w.write_all(batch.as_bytes()).and_then(|()| w.flush()),
                    None => Err(std::io::ErrorKind::BrokenPipe.into()),
                };
                (stdin, r)
            });
            let read = loop {
                if out.len() == items.len() {
                    break Ok(());
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match p.lines.recv_timeout(left) {
                    Ok(Ok(line)) => match self.verdict(&line) {
                        Some(v) => out.push(v),
                        None => {
                            break Err(format!(
                                "answered `{}` for item {} of a batch of {}: expected true, false, a score or {{\"correct\": ...}}, one line per item",
                                line.chars().take(200).collect::<String>(),
                                out.len() + 1,
                                items.len()
                            ))
                        }
                    },
                    Ok(Err(e)) => break Err(format!("could not be read: {e}")),
                    Err(RecvTimeoutError::Timeout) => {
                        break Err(format!(
                            "gave no verdict within {:.0} s ({} of {} items answered; option timeout=SECS)",
                            self.timeout.as_secs_f64(),
                            out.len(),
                            items.len()
                        ))
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        break Err(format!(
                            "closed its output after {} of {} verdicts",
                            out.len(),
                            items.len()
                        ))
                    }
                }
            };
            if read.is_err() {
                // Unblock a writer stuck on a process that stopped reading.
                let _ = p.child.kill();
            }
            let (stdin, written) = writer.join().expect("the writer does not panic");
            (read, stdin, written)
        });
        let (read, stdin, written) = result;
        p.stdin = stdin;
        let problem = match (read, written) {
            (Ok(()), _) => None,
            (Err(e), Err(w)) if w.kind() == std::io::ErrorKind::BrokenPipe => {
                Some(format!("{e}; it stopped reading its input"))
            }
            (Err(e), _) => Some(e),
        };
        if let Some(what) = problem {
            let msg = self.failure(&mut p, what);
            let _ = p.child.kill();
            let _ = p.child.wait();
            p.failed = Some(msg.clone());
            return Err(fail(msg));
        }
        Ok(out)
    }
}

impl Drop for CommandVerifier {
    fn drop(&mut self) {
        let p = self.process.get_mut().unwrap_or_else(|e| e.into_inner());
        // Closing stdin asks the process to finish; one that does not is killed.
        drop(p.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = p.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
}
