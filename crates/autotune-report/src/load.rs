//! Reading a run directory, tolerant of damage: every file that cannot be read, and every
//! line of `metrics.jsonl` that cannot be parsed, becomes a [`Problem`] naming the file and
//! line; the report draws whatever the rest allows.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use autotune_experiment::{
    CompareReport, EndRecord, EvalRecord, MetricRecord, PhaseRecord, RunSummary, COMPARISON_JSON,
    CONFIG_FILE, METRICS_FILE,
};

use crate::ReportError;

/// Something in the run directory that could not be read.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Path of the file, as given.
    pub file: String,
    /// 1-based line, where the problem is on one line.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Everything read from a run directory.
#[derive(Debug, Default)]
pub struct RunData {
    pub dir: PathBuf,
    /// `config.toml` as written.
    pub config_text: Option<String>,
    pub config: Option<toml::Value>,
    pub phases: Vec<PhaseRecord>,
    pub evals: Vec<EvalRecord>,
    pub ends: Vec<EndRecord>,
    pub comparison: Option<CompareReport>,
    pub problems: Vec<Problem>,
}

/// Largest metrics file read: 1 GiB (bigger ones are refused, not loaded into memory).
pub const MAX_METRICS_BYTES: u64 = 1 << 30;
/// Largest `config.toml` read: 16 MiB (a run writes a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Largest `comparison.json` read: 256 MiB (a run writes well under 1 MiB).
pub const MAX_COMPARISON_BYTES: u64 = 256 << 20;

impl RunData {
    /// Reads `dir`. Fails only when `dir` is not a readable directory; damaged or missing
    /// files are recorded in `problems`.
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        if !dir.is_dir() {
            return Err(ReportError::NotARunDir(dir.display().to_string()));
        }
        let mut d = RunData {
            dir: dir.to_path_buf(),
            ..Default::default()
        };
        d.load_config();
        d.load_metrics();
        d.load_comparison();
        Ok(d)
    }

    fn problem(&mut self, file: &str, line: Option<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.dir.join(file).display().to_string(),
            line,
            message: message.into(),
        });
    }

    /// The file's text, read up to `limit` bytes: a longer file (or one that never ends, such
    /// as a link to a device) is a problem, not an allocation of its whole size.
    fn read(&mut self, name: &str, limit: u64, what_is_lost: &str) -> Option<String> {
        let path = self.dir.join(name);
        let read = std::fs::File::open(&path).and_then(|f| {
            let mut bytes = Vec::new();
            f.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
            Ok(bytes)
        });
        match read {
            Ok(bytes) if bytes.len() as u64 > limit => {
                self.problem(
                    name,
                    None,
                    format!("more than the {limit} bytes this report reads; {what_is_lost}"),
                );
                None
            }
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(s) => Some(s),
                Err(e) => {
                    let at = e.utf8_error().valid_up_to();
                    let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
                    self.problem(name, Some(line), format!("not UTF-8 text; {what_is_lost}"));
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.problem(name, None, format!("missing; {what_is_lost}"));
                None
            }
            Err(e) => {
                self.problem(name, None, format!("cannot be read ({e}); {what_is_lost}"));
                None
            }
        }
    }

    fn load_config(&mut self) {
        let Some(text) = self.read(
            CONFIG_FILE,
            MAX_CONFIG_BYTES,
            "the configuration is not shown",
        ) else {
            return;
        };
        match text.parse::<toml::Value>() {
            Ok(v) => self.config = Some(v),
            Err(e) => {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                let msg = e.message().to_string();
                self.problem(
                    CONFIG_FILE,
                    line,
                    format!("not valid TOML ({msg}); shown as text only"),
                );
            }
        }
        self.config_text = Some(text);
    }

    fn load_metrics(&mut self) {
        let path = self.dir.join(METRICS_FILE);
        if let Ok(m) = std::fs::metadata(&path) {
            if m.len() > MAX_METRICS_BYTES {
                self.problem(
                    METRICS_FILE,
                    None,
                    format!(
                        "{} bytes, more than the {} this report reads; per-phase plots are not drawn",
                        m.len(),
                        MAX_METRICS_BYTES
                    ),
                );
                return;
            }
        }
        let Some(text) = self.read(
            METRICS_FILE,
            MAX_METRICS_BYTES,
            "per-phase plots cannot be drawn",
        ) else {
            return;
        };
        let ends_with_newline = text.ends_with('\n');
        let lines: Vec<&str> = text.split('\n').collect();
        let last = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            let n = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<MetricRecord>(line) {
                Ok(MetricRecord::Phase(p)) => self.phases.push(p),
                Ok(MetricRecord::Eval(e)) => self.evals.push(e),
                Ok(MetricRecord::End(e)) => self.ends.push(e),
                Err(e) => {
                    let what = if n == last && !ends_with_newline {
                        "truncated record (the file ends in the middle of this line)"
                    } else {
                        "not a metrics record"
                    };
                    self.problem(
                        METRICS_FILE,
                        Some(n),
                        format!(
                            "{what}: {e}; expected one JSON object per line with \"record\": \"phase\", \"eval\" or \"end\"; line skipped"
                        ),
                    );
                }
            }
        }
        if self.phases.is_empty() && self.evals.is_empty() && self.ends.is_empty() {
            self.problem(
                METRICS_FILE,
                None,
                "holds no record; per-phase plots cannot be drawn",
            );
        }
    }

    fn load_comparison(&mut self) {
        let Some(text) = self.read(
            COMPARISON_JSON,
            MAX_COMPARISON_BYTES,
            "the bill is computed from the end records of metrics.jsonl",
        ) else {
            return;
        };
        match serde_json::from_str::<CompareReport>(&text) {
            Ok(c) => self.comparison = Some(c),
            Err(e) => {
                let line = e.line();
                self.problem(
                    COMPARISON_JSON,
                    Some(line),
                    format!("not a comparison ({e}); the bill is computed from the end records of metrics.jsonl"),
                );
            }
        }
    }

    /// The finished runs: from `comparison.json`, else from the end records.
    pub fn summaries(&self) -> Vec<RunSummary> {
        match &self.comparison {
            Some(c) => c.runs.clone(),
            None => self.ends.iter().map(|e| e.summary.clone()).collect(),
        }
    }

    /// Strategies in the order the run asked for them.
    pub fn strategies(&self) -> Vec<String> {
        if let Some(c) = &self.comparison {
            return c.strategies.clone();
        }
        let from_config = self
            .config
            .as_ref()
            .and_then(|c| c.get("experiment")?.get("strategies")?.as_array().cloned())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect::<Vec<_>>()
            });
        if let Some(s) = from_config.filter(|s| !s.is_empty()) {
            return s;
        }
        let mut out: Vec<String> = Vec::new();
        let names = self
            .phases
            .iter()
            .map(|p| &p.run.strategy)
            .chain(self.evals.iter().map(|e| &e.run.strategy))
            .chain(self.ends.iter().map(|e| &e.summary.strategy));
        for s in names {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }

    /// Target errors, largest first.
    pub fn eps(&self) -> Vec<f64> {
        let mut e: Vec<f64> = match &self.comparison {
            Some(c) => c.eps.clone(),
            None => self
                .evals
                .iter()
                .map(|e| e.run.eps)
                .chain(self.phases.iter().map(|p| p.run.eps))
                .chain(self.ends.iter().map(|e| e.summary.eps))
                .collect(),
        };
        e.sort_by(|a, b| b.total_cmp(a));
        e.dedup();
        e
    }

    /// The task's name and dimension, where known.
    pub fn task(&self) -> (String, Option<usize>) {
        if let Some(c) = &self.comparison {
            return (c.task.clone(), Some(c.dimension));
        }
        let t = self.config.as_ref().and_then(|c| c.get("task"));
        let name = t
            .and_then(|t| t.get("name")?.as_str().map(String::from))
            .unwrap_or_else(|| "unknown task".into());
        let d = t
            .and_then(|t| t.get("dimension")?.as_integer())
            .map(|d| d as usize);
        (name, d)
    }

    /// A string field of `config.toml`'s `[provenance]`.
    pub fn provenance(&self, key: &str) -> Option<String> {
        let v = self.config.as_ref()?.get("provenance")?.get(key)?;
        Some(match v.as_str() {
            Some(s) => s.to_string(),
            None => v.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(d: &RunData) -> String {
        d.problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[cfg(unix)]
    #[test]
    fn files_that_never_end_are_refused_at_their_limit() {
        // A config.toml that is a link to /dev/zero has no size to check beforehand: it is
        // read up to its limit, then refused, instead of filling memory.
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join(CONFIG_FILE)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join(COMPARISON_JSON)).unwrap();
        let d = RunData::load(dir.path()).unwrap();
        let p = problems(&d);
        assert!(
            p.contains(&format!(
                "config.toml: more than the {MAX_CONFIG_BYTES} bytes this report reads"
            )),
            "{p}"
        );
        assert!(
            p.contains(&format!(
                "comparison.json: more than the {MAX_COMPARISON_BYTES} bytes this report reads"
            )),
            "{p}"
        );
        assert!(d.config_text.is_none() && d.comparison.is_none());
    }

    #[test]
    fn deep_nesting_is_a_problem_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let deep = "[".repeat(100_000);
        std::fs::write(
            dir.path().join(METRICS_FILE),
            format!("\n{{\"record\": \"end\", \"x\": {deep}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(COMPARISON_JSON),
            format!("\n\n{{\"x\": {deep}"),
        )
        .unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), format!("\na = {deep}")).unwrap();
        // serde_json's limit of 128 levels (or, where the value is skipped, its iterative
        // skipping) makes each a problem with its file and line, not a stack overflow.
        let d = RunData::load(dir.path()).unwrap();
        let p = problems(&d);
        assert!(
            p.contains("metrics.jsonl:2: not a metrics record: recursion limit exceeded"),
            "{p}"
        );
        assert!(p.contains("comparison.json:3: not a comparison ("), "{p}");
        assert!(
            p.contains("config.toml:2: not valid TOML (recursion limit exceeded)"),
            "{p}"
        );
    }
}
