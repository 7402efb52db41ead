//! The durable completion cache (SQLite).
//!
//! **Key.** SHA-256 (hex) of a canonical JSON document
//! `{"v":1,"model":..,"messages":[..],"temperature":..,"top_p":..,"max_tokens":..,
//! "seed":..,"stop":..,"sample_index":..}`, fields in that order, where `messages` are the
//! messages actually sent (the configured system prompt included) and `seed` is the
//! configured base seed. The base URL, the API key, the timeout, the retry and rate-limit
//! settings and the prices are *not* part of the key: moving a server (or changing
//! provider for the same model name) does not invalidate results already paid for.
//!
//! **Durability.** WAL journal, `synchronous=FULL`, one transaction per completion,
//! committed before the completion is handed back. Several processes may share one file:
//! SQLite's locking serialises writers and a busy timeout makes them wait for each other.

use crate::types::{Completion, Message};
use crate::HttpError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a writer waits for another process holding the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Canonical description of one call; its SHA-256 is the cache key.
#[derive(Debug, Serialize)]
pub(crate) struct KeySource<'a> {
    pub v: u32,
    pub model: &'a str,
    pub messages: &'a [Message],
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: u32,
    pub seed: Option<u64>,
    pub stop: Option<&'a [String]>,
    pub sample_index: u32,
}

impl KeySource<'_> {
    /// The canonical JSON and its SHA-256 in lowercase hex.
    pub fn canonical_and_key(&self) -> (String, String) {
        // Serializing a struct of plain fields cannot fail.
        let json = serde_json::to_string(self).expect("key source serializes");
        let digest = Sha256::digest(json.as_bytes());
        let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
        (json, hex)
    }
}

/// A fresh completion to store.
pub(crate) struct Entry<'a> {
    pub key: &'a str,
    pub model: &'a str,
    pub request: &'a str,
    pub response: &'a str,
    pub completion: &'a Completion,
}

/// Whether SQLite refused for a lock held elsewhere.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::DatabaseBusy
                || f.code == rusqlite::ErrorCode::DatabaseLocked
    )
}

/// WAL, full synchronous commits, and the table.
fn setup(conn: &Connection) -> rusqlite::Result<()> {
    // journal_mode returns a row; "memory" for in-memory databases.
    let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE IF NOT EXISTS completions (
             key               TEXT PRIMARY KEY,
             model             TEXT NOT NULL,
             request           TEXT NOT NULL,
             response          TEXT NOT NULL,
             text              TEXT NOT NULL,
             finish_reason     TEXT,
             prompt_tokens     INTEGER NOT NULL,
             completion_tokens INTEGER NOT NULL,
             cost_usd          REAL NOT NULL,
             created_unix      REAL NOT NULL
         );",
    )
}

pub(crate) struct Cache {
    conn: Mutex<Connection>,
    label: String,
}

impl Cache {
    /// Open (creating if needed) the cache file, or an in-memory cache for `None`.
    pub fn open(path: Option<&Path>) -> Result<Cache, HttpError> {
        let label = path.map_or_else(|| ":memory:".to_string(), |p| p.display().to_string());
        let err = |e: rusqlite::Error| HttpError::Cache {
            path: label.clone(),
            message: e.to_string(),
        };
        let conn = match path {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| HttpError::Cache {
                        path: label.clone(),
                        message: format!("cannot create directory {}: {e}", dir.display()),
                    })?;
                }
                Connection::open(p).map_err(err)?
            }
            None => Connection::open_in_memory().map_err(err)?,
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // Switching to WAL and creating the table take an exclusive lock, and SQLite answers
        // "database is locked" at once (without its busy handler) when another process or
        // thread is setting up the same new file: retry until the busy timeout.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match setup(&conn) {
                Ok(()) => break,
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(err(e)),
            }
        }
        Ok(Cache {
            conn: Mutex::new(conn),
            label,
        })
    }

    fn err(&self, e: rusqlite::Error) -> HttpError {
        HttpError::Cache {
            path: self.label.clone(),
            message: e.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection half-written
        // (each statement is atomic), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored completion for `key`, marked `cached` and with zero cost.
    pub fn get(&self, key: &str) -> Result<Option<Completion>, HttpError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT text, prompt_tokens, completion_tokens, finish_reason
             FROM completions WHERE key = ?1",
            params![key],
            |r| {
                Ok(Completion {
                    text: r.get(0)?,
                    prompt_tokens: r.get::<_, i64>(1)?.max(0) as u64,
                    completion_tokens: r.get::<_, i64>(2)?.max(0) as u64,
                    finish_reason: r.get(3)?,
                    cached: true,
                    cost_usd: 0.0,
                })
            },
        )
        .optional()
        .map_err(|e| self.err(e))
    }

    /// Store a fresh completion, committed before returning. If another process stored
    /// the same key meanwhile, the first entry is kept.
    pub fn put(&self, e: &Entry<'_>) -> Result<(), HttpError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let c = e.completion;
        let conn = self.lock();
        conn.execute(
            "INSERT INTO completions (key, model, request, response, text, finish_reason,
                 prompt_tokens, completion_tokens, cost_usd, created_unix)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(key) DO NOTHING",
            params![
                e.key,
                e.model,
                e.request,
                e.response,
                c.text,
                c.finish_reason,
                c.prompt_tokens.min(i64::MAX as u64) as i64,
                c.completion_tokens.min(i64::MAX as u64) as i64,
                c.cost_usd,
                now
            ],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Number of stored completions.
    pub fn len(&self) -> Result<u64, HttpError> {
        let conn = self.lock();
        conn.query_row("SELECT COUNT(*) FROM completions", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n.max(0) as u64)
        .map_err(|e| self.err(e))
    }

    /// The raw response JSON stored for `key`.
    pub fn raw_response(&self, key: &str) -> Result<Option<String>, HttpError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT response FROM completions WHERE key = ?1",
            params![key],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source<'a>(messages: &'a [Message], sample_index: u32) -> KeySource<'a> {
        KeySource {
            v: 1,
            model: "m",
            messages,
            temperature: 0.7,
            top_p: 1.0,
            max_tokens: 16,
            seed: None,
            stop: None,
            sample_index,
        }
    }

    #[test]
    fn key_depends_on_every_field() {
        let msgs = [Message::user("hi")];
        let (json, base) = source(&msgs, 0).canonical_and_key();
        assert_eq!(base.len(), 64);
        assert!(json.starts_with(r#"{"v":1,"model":"m","messages":[{"role":"user""#));
        assert_eq!(
            source(&msgs, 0).canonical_and_key().1,
            base,
            "deterministic"
        );
        let other_msgs = [Message::user("hi!")];
        let stop = vec!["\n".to_string()];
        let variants = [
            source(&msgs, 1),
            source(&other_msgs, 0),
            KeySource {
                model: "m2",
                ..source(&msgs, 0)
            },
            KeySource {
                temperature: 0.8,
                ..source(&msgs, 0)
            },
            KeySource {
                top_p: 0.9,
                ..source(&msgs, 0)
            },
            KeySource {
                max_tokens: 17,
                ..source(&msgs, 0)
            },
            KeySource {
                seed: Some(0),
                ..source(&msgs, 0)
            },
            KeySource {
                stop: Some(&stop),
                ..source(&msgs, 0)
            },
        ];
        let mut keys: Vec<String> = variants.iter().map(|s| s.canonical_and_key().1).collect();
        keys.push(base);
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "every field changes the key");
    }

    #[test]
    fn put_get_roundtrip_in_memory_and_first_write_wins() {
        let cache = Cache::open(None).unwrap();
        assert_eq!(cache.get("k").unwrap(), None);
        let c = Completion {
            text: "answer".into(),
            prompt_tokens: 3,
            completion_tokens: 5,
            finish_reason: Some("stop".into()),
            cached: false,
            cost_usd: 0.25,
        };
        let entry = Entry {
            key: "k",
            model: "m",
            request: "{}",
            response: r#"{"choices":[]}"#,
            completion: &c,
        };
        cache.put(&entry).unwrap();
        let second = Completion {
            text: "other".into(),
            ..c.clone()
        };
        cache
            .put(&Entry {
                completion: &second,
                ..entry
            })
            .unwrap();
        let got = cache.get("k").unwrap().unwrap();
        assert_eq!(got.text, "answer");
        assert!(got.cached);
        assert_eq!(got.cost_usd, 0.0);
        assert_eq!((got.prompt_tokens, got.completion_tokens), (3, 5));
        assert_eq!(cache.len().unwrap(), 1);
        assert_eq!(
            cache.raw_response("k").unwrap().as_deref(),
            Some(r#"{"choices":[]}"#)
        );
    }
}
