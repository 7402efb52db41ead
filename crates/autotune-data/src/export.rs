//! Export of what a run collected, for the trainers people use.
//!
//! - SFT data as TRL JSONL: `{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}`
//!   (conversational) or `{"prompt": str, "completion": str}` (prompt-completion), one per
//!   teacher demonstration the run bought, in the order it bought them.
//! - RL prompt sets as verl-style records: `{"data_source", "prompt": [messages], "ability",
//!   "reward_model": {"style": "rule", "ground_truth"}, "extra_info": {"index", "split",
//!   "autotune": {"rank", "max_rank", "weight", "selected"}}}`, one per prompt of the pool,
//!   with the curriculum's rank (members or samples right) and mask weight under the final
//!   model, so a trainer can sample by weight or keep `selected` prompts only.

use serde::Serialize;
use serde_json::{json, Value};

/// The two TRL dataset styles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SftStyle {
    Messages,
    PromptCompletion,
}

impl SftStyle {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "messages" => Some(SftStyle::Messages),
            "prompt-completion" => Some(SftStyle::PromptCompletion),
            _ => None,
        }
    }
}

/// One SFT example: the prompt (as chat messages, or text) and the teacher's completion.
pub fn sft_line(
    prompt: &str,
    messages: Option<&[(String, String)]>,
    completion: &str,
    style: SftStyle,
) -> String {
    let v = match style {
        SftStyle::Messages => {
            let mut m: Vec<Value> = match messages {
                Some(ms) => ms
                    .iter()
                    .map(|(r, c)| json!({"role": r, "content": c}))
                    .collect(),
                None => vec![json!({"role": "user", "content": prompt})],
            };
            m.push(json!({"role": "assistant", "content": completion}));
            json!({ "messages": m })
        }
        SftStyle::PromptCompletion => json!({"prompt": prompt, "completion": completion}),
    };
    v.to_string()
}

/// One teacher demonstration as a trainer sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct SftExample {
    pub prompt: String,
    /// The prompt's chat messages, when it came as a conversation.
    pub messages: Option<Vec<(String, String)>>,
    pub completion: String,
}

/// SFT JSONL, one line per example.
pub fn export_sft(examples: &[SftExample], style: SftStyle) -> String {
    let mut out = String::new();
    for e in examples {
        out += &sft_line(&e.prompt, e.messages.as_deref(), &e.completion, style);
        out.push('\n');
    }
    out
}

/// One prompt of an RL prompt set.
#[derive(Clone, Debug, Serialize)]
pub struct RlPrompt {
    pub id: String,
    pub prompt: String,
    pub messages: Option<Vec<(String, String)>>,
    pub ground_truth: String,
    /// Members (or samples) right on this prompt under the final model; `None`: untested.
    pub rank: Option<usize>,
    pub max_rank: usize,
    /// The mask's weight (acceptance probability) of this prompt.
    pub weight: f64,
}

/// verl-style JSONL of an RL prompt set.
pub fn export_rl_prompts(data_source: &str, prompts: &[RlPrompt]) -> String {
    let mut out = String::new();
    for p in prompts {
        let messages: Vec<Value> = match &p.messages {
            Some(ms) => ms
                .iter()
                .map(|(r, c)| json!({"role": r, "content": c}))
                .collect(),
            None => vec![json!({"role": "user", "content": p.prompt})],
        };
        let v = json!({
            "data_source": data_source,
            "prompt": messages,
            "ability": "reasoning",
            "reward_model": {"style": "rule", "ground_truth": p.ground_truth},
            "extra_info": {
                "index": p.id,
                "split": "train",
                "autotune": {
                    "rank": p.rank,
                    "max_rank": p.max_rank,
                    "weight": p.weight,
                    "selected": p.weight > 0.0,
                }
            }
        });
        out += &v.to_string();
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_record, Format};

    /// Exported records are read back by our own importer as the same task.
    #[test]
    fn exports_round_trip_through_the_importer() {
        let ex = |p: &str, c: &str| SftExample {
            prompt: p.into(),
            messages: None,
            completion: c.into(),
        };
        let sft = export_sft(
            &[ex("What is 2+3?", "2+3 = 5. The answer is \\boxed{5}.")],
            SftStyle::Messages,
        );
        let r = parse_record(serde_json::from_str(sft.trim()).unwrap(), 1, Format::Auto).unwrap();
        assert_eq!(
            (r.format, r.prompt.as_str(), r.answer.as_str()),
            (Format::TrlMessages, "What is 2+3?", "5")
        );
        let pc = export_sft(&[ex("q", "so 7")], SftStyle::PromptCompletion);
        let r = parse_record(serde_json::from_str(pc.trim()).unwrap(), 1, Format::Auto).unwrap();
        assert_eq!((r.format, r.answer.as_str()), (Format::TrlCompletion, "7"));
        let rl = export_rl_prompts(
            "autotune:test",
            &[RlPrompt {
                id: "a1".into(),
                prompt: "q?".into(),
                messages: None,
                ground_truth: "12".into(),
                rank: Some(0),
                max_rank: 3,
                weight: 1.0,
            }],
        );
        let v: Value = serde_json::from_str(rl.trim()).unwrap();
        assert_eq!(v["extra_info"]["autotune"]["max_rank"], 3);
        let r = parse_record(v, 1, Format::Auto).unwrap();
        assert_eq!(
            (r.format, r.id.as_str(), r.answer.as_str()),
            (Format::Verl, "a1", "12")
        );
    }
}
