//! Requests, completions and usage counters.

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// One completion to make.
///
/// `sample_index` tells apart the k samples of one prompt: each index is its own cache
/// entry (and, with a configured `seed`, is sent seed `seed + sample_index`), so k samples
/// at temperature > 0 are k different answers, not one cached answer k times.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    #[serde(default)]
    pub sample_index: u32,
}

impl ChatRequest {
    /// Sample 0 of these messages.
    pub fn new(messages: Vec<Message>) -> Self {
        ChatRequest {
            messages,
            sample_index: 0,
        }
    }

    /// Sample 0 of a single user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(vec![Message::user(content)])
    }

    /// The same messages, sample `sample_index`.
    pub fn with_sample_index(mut self, sample_index: u32) -> Self {
        self.sample_index = sample_index;
        self
    }
}

/// A chat completion, fresh or from the cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// `choices[0].message.content`.
    pub text: String,
    /// Tokens as reported by the server when the completion was paid for (estimated as
    /// characters / 4 if the server reported no `usage`). Also filled on cache hits.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// `choices[0].finish_reason` (`stop`, `length`, ...), if the server sent one.
    pub finish_reason: Option<String>,
    /// Whether this came from the cache (no request was made).
    pub cached: bool,
    /// What this call cost: the priced usage for a fresh completion, 0 for a cache hit.
    pub cost_usd: f64,
}

/// Cumulative counters of a [`crate::ChatClient`] since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// HTTP requests actually sent, retries included.
    pub requests: u64,
    /// Completions received from the server (not from the cache).
    pub paid_completions: u64,
    /// Completions answered from the cache, with no request.
    pub cache_hits: u64,
    /// Prompt tokens of paid completions (cache hits add nothing).
    pub prompt_tokens: u64,
    /// Completion tokens of paid completions.
    pub completion_tokens: u64,
    /// Money spent on paid completions, in US dollars.
    pub cost_usd: f64,
    /// Attempts after the first, over all requests.
    pub retries: u64,
    /// Requests that ended in an error.
    pub failures: u64,
}

impl Usage {
    /// Counters accumulated since `earlier` (a previous snapshot of the same client).
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            requests: self.requests - earlier.requests,
            paid_completions: self.paid_completions - earlier.paid_completions,
            cache_hits: self.cache_hits - earlier.cache_hits,
            prompt_tokens: self.prompt_tokens - earlier.prompt_tokens,
            completion_tokens: self.completion_tokens - earlier.completion_tokens,
            cost_usd: self.cost_usd - earlier.cost_usd,
            retries: self.retries - earlier.retries,
            failures: self.failures - earlier.failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_serialize_as_openai_strings() {
        let m = serde_json::to_string(&Message::assistant("x")).unwrap();
        assert_eq!(m, r#"{"role":"assistant","content":"x"}"#);
        let r: ChatRequest =
            serde_json::from_str(r#"{"messages":[{"role":"system","content":"s"}]}"#).unwrap();
        assert_eq!(r.sample_index, 0);
        assert_eq!(r.messages[0], Message::system("s"));
    }

    #[test]
    fn usage_difference() {
        let a = Usage {
            requests: 3,
            cache_hits: 1,
            cost_usd: 0.5,
            ..Usage::default()
        };
        let b = Usage {
            requests: 5,
            cache_hits: 4,
            cost_usd: 0.75,
            ..a
        };
        let d = b.since(&a);
        assert_eq!((d.requests, d.cache_hits), (2, 3));
        assert!((d.cost_usd - 0.25).abs() < 1e-12);
    }
}
