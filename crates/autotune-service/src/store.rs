//! The durable store: one SQLite file (WAL, `synchronous=FULL`) written by one thread that
//! commits whatever writes are queued as one transaction (group commit).
//!
//! A request that changes state is answered only once the transaction holding its write has
//! committed: with `synchronous=FULL` the commit fsyncs the write-ahead log, so an answered
//! write survives `kill -9` and a power cut. Group commit pays one fsync for every write that
//! arrived while the previous commit was in flight, which is what keeps throughput up under many
//! concurrent clients.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::watch;

use crate::ServiceError;

/// One write, applied inside the writer's transaction.
#[derive(Debug)]
pub enum Op {
    CreatePool {
        name: String,
        mask: String,
        seed: u64,
        lease_seconds: f64,
    },
    AddPrompts {
        pool: String,
        rows: Vec<PromptRow>,
    },
    Lease {
        pool: String,
        counters: Counters,
        leases: Vec<LeaseRow>,
    },
    Outcomes {
        pool: String,
        counters: Counters,
        rows: Vec<OutcomeRow>,
        released: Vec<String>,
        idempotency: Option<(String, String)>,
    },
    Phase {
        pool: String,
        phase: u32,
        model_version: String,
    },
    /// A compaction: the state of every prompt whose outcomes changed since the last one
    /// replaces the pool's outcome rows (all of them are in these states, since writes apply
    /// in the order they were made in memory), and idempotency keys evicted from memory are
    /// deleted.
    Compact {
        pool: String,
        states: Vec<(String, CompactState)>,
        expired_keys: Vec<String>,
    },
}

/// What a prompt's outcomes add up to, stored in place of the outcome rows by a compaction.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompactState {
    /// Tokens of every outcome reported for the prompt.
    pub tokens: u64,
    pub phases: Vec<CompactPhase>,
}

/// One phase of a [`CompactState`]: its tally and the sample numbers reported (for duplicates).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompactPhase {
    pub phase: u32,
    pub correct: u32,
    pub samples: crate::samples::SampleSet,
}

#[derive(Debug, Clone)]
pub struct PromptRow {
    pub id: String,
    pub seq: u64,
    pub prompt: Option<String>,
    pub answer: Option<String>,
    pub meta: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LeaseRow {
    pub prompt_id: String,
    pub purpose: String,
    pub phase: u32,
    pub sample_base: u32,
    pub k: u32,
    pub expires: f64,
}

#[derive(Debug, Clone)]
pub struct OutcomeRow {
    pub prompt_id: String,
    pub phase: u32,
    pub sample: u32,
    pub correct: bool,
    pub tokens: Option<u64>,
}

/// Pool counters, written as absolute values (the pool lock orders them).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Counters {
    pub next_calls: u64,
    pub teacher_leased: u64,
    pub rollouts_leased: u64,
    pub prompts_leased: u64,
    pub duplicates: u64,
}

/// Everything the store holds, read back at start-up.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub pools: Vec<PoolRecord>,
}

#[derive(Debug, Default)]
pub struct PoolRecord {
    pub name: String,
    pub mask: String,
    pub seed: u64,
    pub lease_seconds: f64,
    pub counters: Counters,
    /// `(phase, model_version)`, by phase.
    pub phases: Vec<(u32, String)>,
    pub prompts: Vec<PromptRow>,
    /// Prompts' states written by compactions, then the outcome rows written since.
    pub compacted: Vec<(String, CompactState)>,
    pub outcomes: Vec<OutcomeRow>,
    pub leases: Vec<LeaseRow>,
    /// Oldest first.
    pub idempotency: Vec<(String, String)>,
}

/// What the writer has committed: jobs are numbered from 1 in queue order.
#[derive(Clone, Debug, Default)]
pub struct Committed {
    pub seq: u64,
    pub failed: Option<String>,
}

struct Job {
    seq: u64,
    ops: Vec<Op>,
}

struct Queue {
    next_seq: u64,
    tx: Option<mpsc::Sender<Job>>,
}

/// Handle to the writer thread.
pub struct Store {
    queue: Mutex<Queue>,
    committed: watch::Receiver<Committed>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The exclusive lock on `STORE.lock`, held while the store is open: a second service on
    /// the same store would keep its own copy of the state in memory and write over the
    /// first's.
    _lock: std::fs::File,
}

/// Locks `{store}.lock` for this process, or says who holds it.
fn lock_store(path: &Path) -> Result<std::fs::File, ServiceError> {
    use std::io::{Read, Seek, Write};
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = std::path::PathBuf::from(name);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            return Err(ServiceError::InUse {
                path: path.to_path_buf(),
                holder: holder.trim().to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(ServiceError::Io(e)),
    }
    f.set_len(0)?;
    f.seek(std::io::SeekFrom::Start(0))?;
    f.write_all(format!("pid {}", std::process::id()).as_bytes())?;
    Ok(f)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pools (
    name TEXT PRIMARY KEY, mask TEXT NOT NULL, seed INTEGER NOT NULL, lease_seconds REAL NOT NULL,
    next_calls INTEGER NOT NULL DEFAULT 0, teacher_leased INTEGER NOT NULL DEFAULT 0,
    rollouts_leased INTEGER NOT NULL DEFAULT 0, prompts_leased INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS phases (
    pool TEXT NOT NULL, phase INTEGER NOT NULL, model_version TEXT NOT NULL,
    PRIMARY KEY (pool, phase));
CREATE TABLE IF NOT EXISTS prompts (
    pool TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,
    prompt TEXT, answer TEXT, meta TEXT, PRIMARY KEY (pool, id));
CREATE TABLE IF NOT EXISTS outcomes (
    pool TEXT NOT NULL, prompt_id TEXT NOT NULL, phase INTEGER NOT NULL, sample INTEGER NOT NULL,
    correct INTEGER NOT NULL, tokens INTEGER,
    PRIMARY KEY (pool, prompt_id, phase, sample)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    pool TEXT NOT NULL, prompt_id TEXT NOT NULL, purpose TEXT NOT NULL, phase INTEGER NOT NULL,
    sample_base INTEGER NOT NULL, k INTEGER NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (pool, prompt_id));
CREATE TABLE IF NOT EXISTS idempotency (
    pool TEXT NOT NULL, key TEXT NOT NULL, response TEXT NOT NULL, PRIMARY KEY (pool, key));
CREATE TABLE IF NOT EXISTS compacted (
    pool TEXT NOT NULL, prompt_id TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (pool, prompt_id)) WITHOUT ROWID;
";

fn open(path: &Path) -> Result<Connection, ServiceError> {
    let conn = Connection::open(path).map_err(|e| ServiceError::store(path, e))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .and_then(|_| conn.pragma_update(None, "synchronous", "FULL"))
        .and_then(|_| conn.busy_timeout(std::time::Duration::from_secs(5)))
        .and_then(|_| conn.execute_batch(SCHEMA))
        .map_err(|e| ServiceError::store(path, e))?;
    Ok(conn)
}

fn read_snapshot(conn: &Connection) -> rusqlite::Result<Snapshot> {
    let mut pools = Vec::new();
    let mut st = conn.prepare(
        "SELECT name, mask, seed, lease_seconds, next_calls, teacher_leased, rollouts_leased,
                prompts_leased, duplicates FROM pools ORDER BY name",
    )?;
    let rows = st.query_map([], |r| {
        Ok(PoolRecord {
            name: r.get(0)?,
            mask: r.get(1)?,
            seed: r.get::<_, i64>(2)? as u64,
            lease_seconds: r.get(3)?,
            counters: Counters {
                next_calls: r.get::<_, i64>(4)? as u64,
                teacher_leased: r.get::<_, i64>(5)? as u64,
                rollouts_leased: r.get::<_, i64>(6)? as u64,
                prompts_leased: r.get::<_, i64>(7)? as u64,
                duplicates: r.get::<_, i64>(8)? as u64,
            },
            ..Default::default()
        })
    })?;
    for p in rows {
        pools.push(p?);
    }
    for p in &mut pools {
        let mut st = conn.prepare_cached(
            "SELECT phase, model_version FROM phases WHERE pool = ?1 ORDER BY phase",
        )?;
        p.phases = st
            .query_map([&p.name], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = conn.prepare_cached(
            "SELECT id, seq, prompt, answer, meta FROM prompts WHERE pool = ?1 ORDER BY seq",
        )?;
        p.prompts = st
            .query_map([&p.name], |r| {
                Ok(PromptRow {
                    id: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                    prompt: r.get(2)?,
                    answer: r.get(3)?,
                    meta: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = conn.prepare_cached(
            "SELECT prompt_id, phase, sample, correct, tokens FROM outcomes WHERE pool = ?1",
        )?;
        p.outcomes = st
            .query_map([&p.name], |r| {
                Ok(OutcomeRow {
                    prompt_id: r.get(0)?,
                    phase: r.get(1)?,
                    sample: r.get(2)?,
                    correct: r.get(3)?,
                    tokens: r.get::<_, Option<i64>>(4)?.map(|t| t as u64),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = conn.prepare_cached(
            "SELECT prompt_id, purpose, phase, sample_base, k, expires FROM leases WHERE pool = ?1",
        )?;
        p.leases = st
            .query_map([&p.name], |r| {
                Ok(LeaseRow {
                    prompt_id: r.get(0)?,
                    purpose: r.get(1)?,
                    phase: r.get(2)?,
                    sample_base: r.get(3)?,
                    k: r.get(4)?,
                    expires: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st =
            conn.prepare_cached("SELECT prompt_id, state FROM compacted WHERE pool = ?1")?;
        p.compacted = st
            .query_map([&p.name], |r| {
                let (id, text): (String, String) = (r.get(0)?, r.get(1)?);
                let state = serde_json::from_str(&text).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Text,
                        format!("compacted state of prompt {id}: {e}").into(),
                    )
                })?;
                Ok((id, state))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = conn.prepare_cached(
            "SELECT key, response FROM idempotency WHERE pool = ?1 ORDER BY rowid",
        )?;
        p.idempotency = st
            .query_map([&p.name], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
    }
    Ok(Snapshot { pools })
}

fn set_counters(tx: &rusqlite::Transaction, pool: &str, c: &Counters) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE pools SET next_calls = ?2, teacher_leased = ?3, rollouts_leased = ?4,
                prompts_leased = ?5, duplicates = ?6 WHERE name = ?1",
    )?
    .execute(params![
        pool,
        c.next_calls as i64,
        c.teacher_leased as i64,
        c.rollouts_leased as i64,
        c.prompts_leased as i64,
        c.duplicates as i64
    ])?;
    Ok(())
}

fn apply(tx: &rusqlite::Transaction, op: &Op) -> rusqlite::Result<()> {
    match op {
        Op::CreatePool {
            name,
            mask,
            seed,
            lease_seconds,
        } => {
            tx.execute(
                "INSERT INTO pools (name, mask, seed, lease_seconds) VALUES (?1, ?2, ?3, ?4)",
                params![name, mask, *seed as i64, lease_seconds],
            )?;
            tx.execute(
                "INSERT INTO phases (pool, phase, model_version) VALUES (?1, 0, 'v0')",
                [name],
            )?;
        }
        Op::AddPrompts { pool, rows } => {
            let mut st = tx.prepare_cached(
                "INSERT INTO prompts (pool, id, seq, prompt, answer, meta) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in rows {
                st.execute(params![
                    pool,
                    r.id,
                    r.seq as i64,
                    r.prompt,
                    r.answer,
                    r.meta
                ])?;
            }
        }
        Op::Lease {
            pool,
            counters,
            leases,
        } => {
            set_counters(tx, pool, counters)?;
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO leases (pool, prompt_id, purpose, phase, sample_base, k, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for l in leases {
                st.execute(params![
                    pool,
                    l.prompt_id,
                    l.purpose,
                    l.phase,
                    l.sample_base,
                    l.k,
                    l.expires
                ])?;
            }
        }
        Op::Outcomes {
            pool,
            counters,
            rows,
            released,
            idempotency,
        } => {
            set_counters(tx, pool, counters)?;
            let mut st = tx.prepare_cached(
                "INSERT INTO outcomes (pool, prompt_id, phase, sample, correct, tokens)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in rows {
                st.execute(params![
                    pool,
                    r.prompt_id,
                    r.phase,
                    r.sample,
                    r.correct,
                    r.tokens.map(|t| t as i64)
                ])?;
            }
            let mut del =
                tx.prepare_cached("DELETE FROM leases WHERE pool = ?1 AND prompt_id = ?2")?;
            for id in released {
                del.execute(params![pool, id])?;
            }
            if let Some((key, response)) = idempotency {
                tx.execute(
                    "INSERT INTO idempotency (pool, key, response) VALUES (?1, ?2, ?3)",
                    params![pool, key, response],
                )?;
            }
        }
        Op::Phase {
            pool,
            phase,
            model_version,
        } => {
            tx.execute(
                "INSERT INTO phases (pool, phase, model_version) VALUES (?1, ?2, ?3)",
                params![pool, phase, model_version],
            )?;
            tx.execute("DELETE FROM leases WHERE pool = ?1", [pool])?;
        }
        Op::Compact {
            pool,
            states,
            expired_keys,
        } => {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO compacted (pool, prompt_id, state) VALUES (?1, ?2, ?3)",
            )?;
            for (id, state) in states {
                st.execute(params![
                    pool,
                    id,
                    serde_json::to_string(state).expect("json")
                ])?;
            }
            tx.execute("DELETE FROM outcomes WHERE pool = ?1", [pool])?;
            let mut del =
                tx.prepare_cached("DELETE FROM idempotency WHERE pool = ?1 AND key = ?2")?;
            for key in expired_keys {
                del.execute(params![pool, key])?;
            }
        }
    }
    Ok(())
}

/// Writes at most this many jobs per transaction.
const MAX_BATCH: usize = 1024;

fn writer(mut conn: Connection, rx: mpsc::Receiver<Job>, done: watch::Sender<Committed>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let last = batch.last().map(|j| j.seq).unwrap_or(0);
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for job in &batch {
                for op in &job.ops {
                    apply(&tx, op)?;
                }
            }
            tx.commit()
        })();
        match result {
            Ok(()) => done.send_modify(|c| c.seq = last),
            Err(e) => {
                // Memory has run ahead of the disk: refuse every later write until a restart
                // reloads the state from the store.
                done.send_modify(|c| c.failed = Some(format!("store write failed: {e}")));
                return;
            }
        }
    }
}

impl Store {
    /// Opens (or creates) the store and reads everything it holds.
    pub fn open(path: &Path) -> Result<(Arc<Store>, Snapshot), ServiceError> {
        let lock = lock_store(path)?;
        let conn = open(path)?;
        let snap = read_snapshot(&conn).map_err(|e| ServiceError::store(path, e))?;
        let (tx, rx) = mpsc::channel();
        let (done_tx, done_rx) = watch::channel(Committed::default());
        let thread = std::thread::Builder::new()
            .name("autotune-store".into())
            .spawn(move || writer(conn, rx, done_tx))
            .map_err(ServiceError::Io)?;
        Ok((
            Arc::new(Store {
                queue: Mutex::new(Queue {
                    next_seq: 1,
                    tx: Some(tx),
                }),
                committed: done_rx,
                thread: Mutex::new(Some(thread)),
                _lock: lock,
            }),
            snap,
        ))
    }

    /// Queues a write; returns its sequence number to [`Store::wait`] on. Call it while holding
    /// the lock of the state the write belongs to, so that writes reach the disk in the order
    /// they were applied in memory.
    pub fn submit(&self, ops: Vec<Op>) -> Result<u64, String> {
        if let Some(f) = self.committed.borrow().failed.clone() {
            return Err(f);
        }
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let seq = q.next_seq;
        let tx = q.tx.as_ref().ok_or("the service is shutting down")?;
        tx.send(Job { seq, ops })
            .map_err(|_| "the store writer has stopped".to_string())?;
        q.next_seq += 1;
        Ok(seq)
    }

    /// Waits until the write `seq` has committed.
    pub async fn wait(&self, seq: u64) -> Result<(), String> {
        let mut rx = self.committed.clone();
        let c = rx
            .wait_for(|c| c.seq >= seq || c.failed.is_some())
            .await
            .map_err(|_| "the store writer has stopped".to_string())?;
        if c.seq >= seq {
            Ok(())
        } else {
            Err(c.failed.clone().unwrap_or_default())
        }
    }

    /// Whether a write has failed (the service then refuses writes until restarted).
    pub fn failed(&self) -> Option<String> {
        self.committed.borrow().failed.clone()
    }

    /// Stops accepting writes, lets the writer commit what is queued, and joins it.
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).tx = None;
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// The outcomes a store holds for a pool, compacted or not (used by tests and tools that
/// inspect a store offline); `None` when there is no such pool.
pub fn stored_outcome_count(path: &Path, pool: &str) -> Result<Option<u64>, ServiceError> {
    let conn = Connection::open(path).map_err(|e| ServiceError::store(path, e))?;
    let exists: Option<i64> = conn
        .query_row("SELECT 1 FROM pools WHERE name = ?1", [pool], |r| r.get(0))
        .optional()
        .map_err(|e| ServiceError::store(path, e))?;
    if exists.is_none() {
        return Ok(None);
    }
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM outcomes WHERE pool = ?1",
            [pool],
            |r| r.get(0),
        )
        .map_err(|e| ServiceError::store(path, e))?;
    let mut compacted = 0u64;
    let mut st = conn
        .prepare("SELECT state FROM compacted WHERE pool = ?1")
        .map_err(|e| ServiceError::store(path, e))?;
    let states = st
        .query_map([pool], |r| r.get::<_, String>(0))
        .map_err(|e| ServiceError::store(path, e))?;
    for text in states {
        let text = text.map_err(|e| ServiceError::store(path, e))?;
        let state: CompactState =
            serde_json::from_str(&text).map_err(|e| ServiceError::Restore {
                path: path.to_path_buf(),
                message: format!("pool {pool}: a compacted state: {e}"),
            })?;
        compacted += state.phases.iter().map(|p| p.samples.len()).sum::<u64>();
    }
    Ok(Some(n as u64 + compacted))
}
