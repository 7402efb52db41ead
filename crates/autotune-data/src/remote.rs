//! Teachers backed by models: a chat-completions server over HTTP (with its durable cache),
//! or a model in process. Either writes a completion for a record's prompt; the completion
//! is the chain of thought, and its final answer (`\boxed{}`, "answer is", last number) is
//! the answer the verifier reads.

use std::sync::Arc;

use autotune_core::{ApiUsage, CoreError, Policy, Prompt, Result, Teacher, Trace};
use autotune_http::{ChatClient, ChatRequest, Message};

use crate::memo::MemoStudent;
use crate::records::{final_answer, TaskRecord};
use crate::tokens::{decode, encode, trace_of};

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
pub fn demo_trace(text: &str) -> Trace {
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
    /// A model's answers can be wrong: the engine checks each one.
    fn verified(&self) -> bool {
        false
    }

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
        Some(api_of(self.client.usage()))
    }
}

/// A teacher that is a model in process.
pub struct GeneratorTeacher {
    pub(crate) records: Arc<Vec<TaskRecord>>,
    pub(crate) generator: Box<dyn TextGenerator>,
}

impl Teacher for GeneratorTeacher {
    /// A model's answers can be wrong: the engine checks each one.
    fn verified(&self) -> bool {
        false
    }

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

/// A student that learns in process and generates over HTTP: after every `fit` it pushes its
/// weights to an `autotune serve-model --allow-load` server (as a trainer syncs its rollout
/// engine) and then generates through the server's chat API, as model `NAME/SLOT@vVERSION`,
/// so no generation comes from stale weights. Generations are not cached on disk (a new
/// version is a new model).
pub struct RemoteStudent {
    local: MemoStudent,
    records: Arc<Vec<TaskRecord>>,
    base_url: String,
    model: String,
    slot: String,
    version: u64,
    client: Option<ChatClient>,
    /// Usage of the clients of earlier versions (their pushes included).
    retired: ApiUsage,
}

fn api_of(u: autotune_http::Usage) -> ApiUsage {
    ApiUsage {
        requests: u.requests,
        cache_hits: u.cache_hits,
        tokens: u.prompt_tokens + u.completion_tokens,
        cost_usd: u.cost_usd,
    }
}

impl RemoteStudent {
    pub fn new(records: Arc<Vec<TaskRecord>>, base_url: &str, model: &str, slot: String) -> Self {
        Self {
            local: MemoStudent::default(),
            records,
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            slot,
            version: 0,
            client: None,
            retired: ApiUsage::default(),
        }
    }

    fn push(&mut self) -> Result<()> {
        use autotune_core::Student as _;
        let state = self
            .local
            .save()
            .ok_or_else(|| CoreError::Student("the student cannot be saved".into()))?;
        let body =
            serde_json::json!({"slot": self.slot, "version": self.version, "student": state});
        // The client of the new version pushes it, then generates as it. A push is retried
        // with the same bytes: the server takes a repeat of the current version's weights as
        // the first (the answer to the first may have been lost) and refuses older versions,
        // so a slot never goes back to stale weights.
        let mut cfg = autotune_http::ChatConfig::new(
            self.base_url.clone(),
            format!("{}/{}@v{}", self.model, self.slot, self.version),
        );
        cfg.temperature = 0.0;
        cfg.max_retries = 3;
        let client =
            ChatClient::new(cfg).map_err(|e| CoreError::Student(format!("student server: {e}")))?;
        // Counted in the client's usage, as its requests.
        client
            .post_json("admin/load", &body.to_string())
            .map_err(|e| {
                CoreError::Student(format!(
                    "pushing the weights of version {}: {e}",
                    self.version
                ))
            })?;
        if let Some(old) = self.client.replace(client) {
            let u = api_of(old.usage());
            self.retired.requests += u.requests;
            self.retired.cache_hits += u.cache_hits;
            self.retired.tokens += u.tokens;
            self.retired.cost_usd += u.cost_usd;
        }
        Ok(())
    }
}

impl RemoteStudent {
    /// One generation per prompt from the model server, or the error of one that failed
    /// after the client's retries. Untrained (nothing on the server yet), the local student
    /// answers.
    fn generations(&self, prompts: &[Prompt]) -> Vec<std::result::Result<Trace, String>> {
        let Some(client) = &self.client else {
            return self
                .local
                .generate_batch(prompts)
                .into_iter()
                .map(Ok)
                .collect();
        };
        let requests: Vec<ChatRequest> = prompts
            .iter()
            .map(|p| match self.records.get(p.id as usize) {
                Some(r) if encode(&r.prompt) == p.tokens => ChatRequest::new(messages_of(r)),
                _ => ChatRequest::user(decode(&p.tokens)),
            })
            .collect();
        let send = |rs: &[ChatRequest]| -> Vec<std::result::Result<Trace, String>> {
            client
                .complete_batch(rs)
                .into_iter()
                .map(|c| c.map(|c| demo_trace(&c.text)).map_err(|e| e.to_string()))
                .collect()
        };
        // The first few requests go alone: a server that fails them after their retries is
        // not asked the rest of the batch (each would wait through its own retries).
        let probe = requests.len().min(PROBE_REQUESTS);
        let mut out = send(&requests[..probe]);
        if out.iter().any(|g| g.is_err()) {
            let skipped = requests.len() - probe;
            out.extend((0..skipped).map(|_| {
                Err("not sent: the batch's first requests failed after their retries".to_string())
            }));
            return out;
        }
        out.extend(send(&requests[probe..]));
        out
    }
}

/// Requests of a batch sent before the rest, to find a failing server early.
const PROBE_REQUESTS: usize = 8;

impl Policy for RemoteStudent {
    fn generate_batch(&self, prompts: &[Prompt]) -> Vec<Trace> {
        // Where the caller cannot stop, a generation that failed after the client's retries
        // is an empty answer, which the verifier rejects; runs call `try_generate_batch` and
        // stop instead.
        self.generations(prompts)
            .into_iter()
            .map(|g| g.unwrap_or_else(|_| Trace::new(Vec::new(), 0)))
            .collect()
    }

    fn try_generate_batch(&self, prompts: &[Prompt]) -> Result<Vec<Trace>> {
        let all = self.generations(prompts);
        let failed = all.iter().filter(|g| g.is_err()).count();
        if let Some(Err(first)) = all.iter().find(|g| g.is_err()) {
            return Err(CoreError::Student(format!(
                "the student's model server failed {failed} of {} generations after its retries \
                 (first: {first}); the run stops rather than read them as wrong answers",
                all.len()
            )));
        }
        Ok(all.into_iter().flatten().collect())
    }

    fn try_sample_batch(
        &self,
        prompts: &[Prompt],
        _temperature: f64,
        _seed: u64,
    ) -> Result<Vec<Trace>> {
        // A remote student samples as it generates (with the server's own settings).
        self.try_generate_batch(prompts)
    }

    fn api_usage(&self) -> Option<ApiUsage> {
        let cur = self
            .client
            .as_ref()
            .map(|c| api_of(c.usage()))
            .unwrap_or_default();
        Some(ApiUsage {
            requests: self.retired.requests + cur.requests,
            cache_hits: self.retired.cache_hits + cur.cache_hits,
            tokens: self.retired.tokens + cur.tokens,
            cost_usd: self.retired.cost_usd + cur.cost_usd,
        })
    }
}

impl autotune_core::Student for RemoteStudent {
    fn fit(&mut self, new_demos: &[autotune_core::Demo]) -> Result<autotune_core::FitStats> {
        let stats = self.local.fit(new_demos)?;
        self.version += 1;
        self.push()?;
        Ok(stats)
    }

    fn save(&self) -> Option<String> {
        self.local.save()
    }
}
