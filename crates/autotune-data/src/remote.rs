//! Teachers backed by models: a chat-completions server over HTTP (with its durable cache),
//! or a model in process. Either writes a completion for a record's prompt; the completion
//! is the chain of thought, and its final answer (`\boxed{}`, "answer is", last number) is
//! the answer the verifier reads.

use std::sync::Arc;

use autotune_core::{ApiUsage, CoreError, Prompt, Result, Teacher, Trace};
use autotune_http::{ChatClient, ChatRequest, Message};

use crate::records::{final_answer, TaskRecord};
use crate::text_task::trace_of;

/// Writes completions for prompts given as text and, where the record had them, chat
/// messages: a model in process (e.g. a saved student).
pub trait TextGenerator: Send + Sync {
    fn complete_batch(&self, prompts: &[TextPrompt<'_>]) -> Result<Vec<String>>;
}

/// A prompt as text, with its chat messages where the record had them.
#[derive(Clone, Copy, Debug)]
pub struct TextPrompt<'a> {
    pub text: &'a str,
    pub messages: Option<&'a [(String, String)]>,
}

/// A completion as a demonstration: the whole text is the CoT; its final answer is the tail
/// the verifier reads (empty, hence rejected, when the text states none).
fn demo_trace(text: &str) -> Trace {
    let answer = final_answer(text).unwrap_or_default();
    trace_of(text, &answer)
}

fn record<'a>(records: &'a [TaskRecord], p: &Prompt) -> Result<&'a TaskRecord> {
    records
        .get(p.id as usize)
        .ok_or_else(|| CoreError::Teacher(format!("no task record for prompt {}", p.id)))
}

fn messages_of(r: &TaskRecord) -> Vec<Message> {
    match &r.messages {
        Some(ms) => ms
            .iter()
            .map(|(role, c)| match role.as_str() {
                "system" => Message::system(c.clone()),
                "assistant" => Message::assistant(c.clone()),
                _ => Message::user(c.clone()),
            })
            .collect(),
        None => vec![Message::user(r.prompt.clone())],
    }
}

/// A teacher behind an OpenAI-compatible server. Every completion goes through the client's
/// on-disk cache, so a re-run pays for nothing twice; the ledger reads the client's usage.
pub struct ChatTeacher {
    pub(crate) records: Arc<Vec<TaskRecord>>,
    pub(crate) client: ChatClient,
}

impl Teacher for ChatTeacher {
    fn demonstrate_batch(&self, prompts: &[Prompt]) -> Result<Vec<Trace>> {
        let requests = prompts
            .iter()
            .map(|p| Ok(ChatRequest::new(messages_of(record(&self.records, p)?))))
            .collect::<Result<Vec<_>>>()?;
        self.client
            .complete_batch(&requests)
            .into_iter()
            .zip(prompts)
            .map(|(c, p)| {
                c.map(|c| demo_trace(&c.text)).map_err(|e| {
                    CoreError::Teacher(format!(
                        "teacher {} for prompt `{}`: {e}",
                        self.client.config().model,
                        self.records
                            .get(p.id as usize)
                            .map_or(p.id.to_string(), |r| r.id.clone())
                    ))
                })
            })
            .collect()
    }

    fn api_usage(&self) -> Option<ApiUsage> {
        let u = self.client.usage();
        Some(ApiUsage {
            requests: u.requests,
            cache_hits: u.cache_hits,
            tokens: u.prompt_tokens + u.completion_tokens,
            cost_usd: u.cost_usd,
        })
    }
}

/// A teacher that is a model in process.
pub struct GeneratorTeacher {
    pub(crate) records: Arc<Vec<TaskRecord>>,
    pub(crate) generator: Box<dyn TextGenerator>,
}

impl Teacher for GeneratorTeacher {
    fn demonstrate_batch(&self, prompts: &[Prompt]) -> Result<Vec<Trace>> {
        let recs = prompts
            .iter()
            .map(|p| record(&self.records, p))
            .collect::<Result<Vec<_>>>()?;
        let inputs: Vec<TextPrompt<'_>> = recs
            .iter()
            .map(|r| TextPrompt {
                text: r.prompt.as_str(),
                messages: r.messages.as_deref(),
            })
            .collect();
        Ok(self
            .generator
            .complete_batch(&inputs)?
            .iter()
            .map(|t| demo_trace(t))
            .collect())
    }
}
