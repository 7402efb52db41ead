//! The `file` task: prompts and answers from a JSONL file (plain, reasoning-gym, TRL or verl
//! records), checked by real verifiers, taught by a file-backed teacher, learned by the
//! memorising student. See `autotune_data` for the formats.

use std::path::PathBuf;

use autotune_core::{CoreError, ParamSpec, Params, Result, Task};
use autotune_data::{Format, TextTask, TextTaskConfig};

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        key: "path",
        default: "",
        help: "the JSONL task file (required; `autotune run --tasks FILE` sets it)",
    },
    ParamSpec {
        key: "format",
        default: "auto",
        help: "auto, plain, reasoning-gym, trl-messages, trl-completion or verl",
    },
    ParamSpec {
        key: "verifier",
        default: "math",
        help: "verifier of records that name none: exact, numeric, choice, math or code",
    },
    ParamSpec {
        key: "verifier_options",
        default: "",
        help: "options for the verifiers, `k=v;k=v` (e.g. `case=insensitive`)",
    },
    ParamSpec {
        key: "teacher",
        default: "",
        help: "JSONL of demonstrations {id, cot, answer?}; empty: the records' own cot (or the gold answer)",
    },
    ParamSpec {
        key: "skip_bad",
        default: "false",
        help: "skip (and count) bad records instead of stopping at the first",
    },
    ParamSpec {
        key: "test_frac",
        default: "0",
        help: "0: train and test draw from the whole pool; f in (0,1): the last fraction f of the records is the test pool",
    },
];

pub fn build(p: &Params, _seed: u64) -> Result<Box<dyn Task>> {
    Ok(Box::new(open(p)?))
}

/// Opens the task file described by resolved parameters `p`.
pub fn open(p: &Params) -> Result<TextTask> {
    let path = p.raw("path").unwrap_or("");
    if path.is_empty() {
        return Err(CoreError::Invalid(
            "the `file` task needs a task file: --tasks FILE (or --param path=FILE)".into(),
        ));
    }
    let format = Format::parse(p.raw("format").unwrap_or("auto"))?;
    let verifier_options = p
        .raw("verifier_options")
        .unwrap_or("")
        .split(';')
        .filter(|s| !s.trim().is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| CoreError::BadParam {
                    key: "verifier_options".into(),
                    value: kv.into(),
                    expected: "k=v items separated by `;`".into(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let teacher = p
        .raw("teacher")
        .filter(|t| !t.is_empty())
        .map(PathBuf::from);
    let skip_bad: bool = p.get_checked("skip_bad", "true or false", |_: bool| true)?;
    let test_frac: f64 = p.get_checked("test_frac", "a number in [0, 1)", |f: f64| {
        (0.0..1.0).contains(&f)
    })?;
    let task = TextTask::open(&TextTaskConfig {
        path: PathBuf::from(path),
        format,
        verifier: p.raw("verifier").unwrap_or("math").to_string(),
        verifier_options,
        teacher,
        skip_bad,
        holdout: (test_frac > 0.0).then_some(test_frac),
    })?;
    Ok(task)
}
