//! The `file` task: prompts and answers from a JSONL file (plain, reasoning-gym, TRL or verl
//! records), checked by real verifiers, taught by a file-backed teacher, learned by the
//! memorising student or the neural one (`student=neural`, `text_student`, feature `neural`). See
//! `autotune_data` for the formats.

use std::path::PathBuf;

use autotune_core::{CoreError, ParamSpec, Params, Result, Task};
use autotune_data::{Format, ModelTeacher, TextTask, TextTaskConfig};
use autotune_http::ChatConfig;

const OWN_PARAMS: &[ParamSpec] = &[
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
        help: "verifier of records that name none: exact, numeric, choice, math, code, or cmd:PROGRAM ARGS (an external scorer process fed JSON lines)",
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
        key: "teacher_url",
        default: "",
        help: "an OpenAI-compatible server as the teacher, e.g. http://127.0.0.1:8000/v1 (with teacher_model)",
    },
    ParamSpec {
        key: "teacher_model",
        default: "",
        help: "the teacher server's model name",
    },
    ParamSpec {
        key: "teacher_cache",
        default: "",
        help: "SQLite cache of the teacher's completions (default: autotune-cache/teacher.sqlite)",
    },
    ParamSpec {
        key: "teacher_config",
        default: "",
        help: "TOML file with the full client configuration (sampling, limits, retries, prices, cache); overrides the three above",
    },
    ParamSpec {
        key: "teacher_checkpoint",
        default: "",
        help: "a saved student (run --save-model) as the teacher, in process",
    },
    ParamSpec {
        key: "student_url",
        default: "",
        help: "students generate over HTTP: an `autotune serve-model --allow-load` server, weights pushed after every fit (with student_model)",
    },
    ParamSpec {
        key: "student_model",
        default: "",
        help: "the student server's model name",
    },
    ParamSpec {
        key: "skip_bad",
        default: "false",
        help: "skip (and count) bad records instead of stopping at the first",
    },
    ParamSpec {
        key: "d",
        default: "auto",
        help: "the dimension hint d that default phase sizes follow (uniform's checkpoints grow by d/8 at the least, autotune-cex's batch is d/8, the default budget 20 d/eps); auto: the training pool's size",
    },
    ParamSpec {
        key: "test_frac",
        default: "0",
        help: "0: train and test draw from the whole pool; f in (0,1): the last fraction f of the records is the test pool",
    },
    ParamSpec {
        key: "student",
        default: "memo",
        help: "memo (a lookup table of the demonstrations: fast, measures coverage, not learning) or neural (a transformer trained on the demonstrations' text; its size and training are the parameters below)",
    },
    ParamSpec {
        key: "model",
        default: "",
        help: "neural student: a Hugging Face model directory (GPT-2, Llama, Qwen2 with tokenizer.json) to start from; empty: from scratch over bytes",
    },
    ParamSpec {
        key: "max_len",
        default: "512",
        help: "neural student: longest prompt plus generation in tokens (prompts are cut to half of it)",
    },
    ParamSpec {
        key: "tied_head",
        default: "false",
        help: "neural student from scratch: the output head is the token embedding (no head bias), as GPT-2's; such a student exports to GPT-2 at any width (false: a head of its own with a bias, exportable when the width is at least the 259 byte tokens)",
    },
    ParamSpec {
        key: "max_memory",
        default: "auto",
        help: "neural student: refuse a model whose training (weights, gradients, AdamW moments, 20 bytes a parameter) needs more than this (8G, 512M, bytes; auto: the machine's available memory)",
    },
    ParamSpec {
        key: "lora_rank",
        default: "0",
        help: "neural student with model=DIR: train LoRA adapters of this rank instead of every weight (0: full fine-tuning)",
    },
    ParamSpec {
        key: "lora_alpha",
        default: "auto",
        help: "neural student: the LoRA scale numerator; adapters add (lora_alpha / lora_rank) A B (auto: twice the rank)",
    },
    ParamSpec {
        key: "lora_targets",
        default: "all",
        help: "neural student: comma-separated modules that get adapters, named as in the checkpoint (Llama/Qwen2: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj; GPT-2: c_attn,attn.c_proj,c_fc,mlp.c_proj,c_proj); all: every one",
    },
    ParamSpec {
        key: "chat",
        default: "auto",
        help: "neural student: render prompts with the model's chat template (auto: when it has one; on; off)",
    },
];

/// The task's parameters: the file, its verifier and teacher, the student, and the neural
/// student's size and training ([`crate::training::TRAINING_PARAMS`]).
pub const PARAMS: &[ParamSpec] = &ParamSpec::concat::<
    { OWN_PARAMS.len() + crate::training::TRAINING_PARAMS.len() },
>(&[OWN_PARAMS, crate::training::TRAINING_PARAMS]);

pub fn build(p: &Params, seed: u64) -> Result<Box<dyn Task>> {
    Ok(Box::new(open_seeded(p, seed)?))
}

/// Opens the task file described by resolved parameters `p`.
pub fn open(p: &Params) -> Result<TextTask> {
    open_seeded(p, 0)
}

/// [`open`], the neural student's initialisation drawn from `seed`.
fn open_seeded(p: &Params, seed: u64) -> Result<TextTask> {
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
    let set = |k: &str| p.raw(k).filter(|v| !v.is_empty());
    let model_teacher = match (
        set("teacher_config"),
        set("teacher_url"),
        set("teacher_checkpoint"),
    ) {
        (None, None, None) => None,
        (Some(cfg), None, None) => {
            let text = std::fs::read_to_string(cfg)
                .map_err(|e| CoreError::Input(format!("reading {cfg}: {e}")))?;
            let c: ChatConfig = toml::from_str(&text).map_err(|e| {
                CoreError::Input(format!("{cfg}: not a teacher client configuration: {e}"))
            })?;
            Some(ModelTeacher::Chat(Box::new(c)))
        }
        (None, Some(url), None) => {
            let model = set("teacher_model").ok_or_else(|| {
                CoreError::Invalid(
                    "teacher_url needs teacher_model (the server's model name)".into(),
                )
            })?;
            let mut c = ChatConfig::new(url, model);
            c.temperature = 0.0;
            let cache =
                PathBuf::from(set("teacher_cache").unwrap_or("autotune-cache/teacher.sqlite"));
            if let Some(dir) = cache.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| CoreError::Input(format!("creating {}: {e}", dir.display())))?;
            }
            c.cache = Some(cache);
            Some(ModelTeacher::Chat(Box::new(c)))
        }
        (None, None, Some(ck)) => Some(ModelTeacher::Generator(Box::new(
            crate::checkpoint::CheckpointModel::open(std::path::Path::new(ck))?,
        ))),
        _ => {
            return Err(CoreError::Invalid(
                "give one teacher: teacher_config, teacher_url or teacher_checkpoint".into(),
            ))
        }
    };
    let student_server = match (set("student_url"), set("student_model")) {
        (None, None) => None,
        (Some(u), Some(m)) => Some((u.to_string(), m.to_string())),
        _ => {
            return Err(CoreError::Invalid(
                "student_url and student_model go together".into(),
            ))
        }
    };
    if model_teacher.is_some() && teacher.is_some() {
        return Err(CoreError::Invalid(
            "give one teacher: a demonstrations file (teacher) or a model".into(),
        ));
    }
    let student: Option<std::sync::Arc<dyn autotune_data::TextStudentFactory>> =
        match p.raw("student").unwrap_or("memo") {
            "memo" => {
                for key in ["model"] {
                    if p.raw(key).is_some_and(|v| !v.is_empty()) {
                        return Err(CoreError::Invalid(format!(
                            "{key} is a parameter of the neural student: add --param student=neural"
                        )));
                    }
                }
                None
            }
            "neural" => {
                if student_server.is_some() {
                    return Err(CoreError::Invalid(
                        "student=neural trains in process; student_url is another student".into(),
                    ));
                }
                #[cfg(feature = "neural")]
                {
                    Some(std::sync::Arc::new(
                        crate::text_student::NeuralTextFactory::new(p, seed)?,
                    ))
                }
                #[cfg(not(feature = "neural"))]
                {
                    let _ = seed;
                    return Err(crate::neural_missing("student=neural"));
                }
            }
            other => {
                return Err(CoreError::BadParam {
                    key: "student".into(),
                    value: other.into(),
                    expected: "memo or neural".into(),
                })
            }
        };
    let skip_bad: bool = p.get_checked("skip_bad", "true or false", |_: bool| true)?;
    let dimension = match p.raw("d").unwrap_or("auto").trim() {
        "auto" => None,
        text => Some(
            text.parse::<usize>()
                .ok()
                .filter(|d| (1..=1 << 30).contains(d))
                .ok_or_else(|| CoreError::BadParam {
                    key: "d".into(),
                    value: text.into(),
                    expected: "auto or an integer in 1..=2^30".into(),
                })?,
        ),
    };
    let test_frac: f64 = p.get_checked("test_frac", "a number in [0, 1)", |f: f64| {
        (0.0..1.0).contains(&f)
    })?;
    let task = TextTask::open(TextTaskConfig {
        path: PathBuf::from(path),
        format,
        verifier: p.raw("verifier").unwrap_or("math").to_string(),
        verifier_options,
        teacher,
        model_teacher,
        student_server,
        student,
        skip_bad,
        holdout: (test_frac > 0.0).then_some(test_frac),
        dimension,
    })?;
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(extra: &[&str]) -> Result<Box<dyn Task>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let text: String = (0..20)
            .map(|i| {
                format!(
                    "{{\"id\": \"r{i}\", \"prompt\": \"{i}+1?\", \"answer\": {}}}\n",
                    i + 1
                )
            })
            .collect();
        std::fs::write(&path, text).unwrap();
        let mut args = vec![
            format!("path={}", path.display()),
            "verifier=numeric".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let (task, _) = crate::build_task("file", &Params::parse(&args)?, 0)?;
        Ok(task)
    }

    /// `d` sets the dimension hint the default phase sizes follow; by default it is the
    /// training pool's size.
    #[test]
    fn the_dimension_hint_is_the_pool_size_unless_given() {
        assert_eq!(open(&[]).unwrap().dimension(), 20);
        assert_eq!(open(&["test_frac=0.25"]).unwrap().dimension(), 15);
        assert_eq!(open(&["d=64"]).unwrap().dimension(), 64);
        for bad in ["d=0", "d=x"] {
            let e = open(&[bad]).err().unwrap().to_string();
            assert!(e.contains("`d`") || e.contains(" d"), "{bad}: {e}");
        }
    }
}
