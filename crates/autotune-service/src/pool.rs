//! One prompt pool in memory: prompts, their outcomes per phase, leases, counters.
//!
//! Every method that changes state returns the [`Op`]s to persist; the caller submits them to
//! the store while still holding the pool's lock (so the disk sees writes in memory order) and
//! answers once they have committed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use autotune_core::Ledger;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::mask::{member_alphas, Mask, MaskSpec, PhaseTally, Scored};
use crate::samples::SampleSet;
use crate::store::{
    CompactPhase, CompactState, Counters, LeaseRow, Op, OutcomeRow, PoolRecord, PromptRow,
};

/// A prompt as registered.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PromptIn {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// What a lease is for.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Teacher,
    Rollouts,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Teacher => "teacher",
            Purpose::Rollouts => "rollouts",
        }
    }
}

#[derive(Clone, Debug)]
struct Lease {
    purpose: Purpose,
    expires: f64,
    /// Samples still expected before a rollout lease is released.
    remaining: u32,
}

struct PromptState {
    data: Arc<PromptIn>,
    /// Tallies by phase.
    tallies: Vec<PhaseTally>,
    /// The samples of every outcome recorded, by phase, to refuse double counting.
    seen: Vec<SampleSet>,
    /// Tokens of every outcome recorded.
    tokens: u64,
    /// Changed since the last compaction.
    dirty: bool,
    lease: Option<Lease>,
    /// Next sample index handed out in the current phase.
    next_sample: u32,
    samples_total: u64,
}

impl PromptState {
    fn new(data: PromptIn) -> Self {
        PromptState {
            data: Arc::new(data),
            tallies: Vec::new(),
            seen: Vec::new(),
            tokens: 0,
            dirty: false,
            lease: None,
            next_sample: 0,
            samples_total: 0,
        }
    }

    fn leased(&self, now: f64) -> bool {
        self.lease.as_ref().is_some_and(|l| l.expires > now)
    }
}

#[derive(Default)]
struct Totals {
    outcomes: u64,
    correct: u64,
    tokens: u64,
}

/// A pool in memory.
pub struct Pool {
    pub name: String,
    pub spec: MaskSpec,
    mask: Mask,
    seed: u64,
    lease_seconds: f64,
    /// Model version of every phase; the current phase is the last.
    versions: Vec<String>,
    prompts: Vec<PromptState>,
    index: HashMap<String, usize>,
    counters: Counters,
    totals: Totals,
    /// Idempotency key -> (store sequence number, response); the most recent
    /// [`IDEMPOTENCY_KEYS_KEPT`], oldest first in `idem_order`.
    idem: HashMap<String, (u64, Value)>,
    idem_order: VecDeque<String>,
    /// Keys evicted from memory and not yet deleted from the store (by the next compaction).
    idem_expired: Vec<String>,
    /// Prompts whose outcomes changed since the last compaction, and how many outcomes.
    dirty: Vec<usize>,
    since_compaction: u64,
    alphas: Vec<f64>,
    alphas_dirty: bool,
}

/// `POST /v1/pools/{name}/next`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextRequest {
    pub n: usize,
    pub purpose: Purpose,
    #[serde(default)]
    pub k: Option<u32>,
    #[serde(default)]
    pub lease_seconds: Option<f64>,
}

/// One result of `POST /v1/pools/{name}/outcomes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeIn {
    pub prompt_id: String,
    pub sample: u32,
    pub correct: bool,
    #[serde(default)]
    pub tokens: Option<u64>,
    #[serde(default)]
    pub model_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomesRequest {
    pub results: Vec<OutcomeIn>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/pools/{name}/release`: leases to end now.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    pub prompt_ids: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PhaseRequest {
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default)]
    pub expected_phase: Option<u32>,
}

/// Most prompts one `next` may return.
pub const MAX_N: usize = 10_000;
/// Idempotency keys a pool remembers, most recent first: an older key's retry is answered as
/// duplicates (its outcomes are already counted: sample numbers refuse them), not replayed.
pub const IDEMPOTENCY_KEYS_KEPT: usize = 100_000;
/// Most samples per prompt one `next` may lease.
pub const MAX_K: u32 = 4096;
/// Most bytes in an id, a model version or an idempotency key.
pub const MAX_ID_BYTES: usize = 512;

fn bad(field: impl Into<String>, msg: impl Into<String>) -> ApiError {
    ApiError::invalid(field, msg)
}

pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Checks a pool name: 1 to 128 of `[A-Za-z0-9._-]`.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(bad(
            "name",
            "a pool name is 1 to 128 characters of A-Z a-z 0-9 . _ -",
        ));
    }
    Ok(())
}

fn check_id(field: String, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(bad(field, format!("must be 1 to {MAX_ID_BYTES} bytes")));
    }
    Ok(())
}

impl Pool {
    /// A new, empty pool and the op that creates it.
    pub fn create(
        name: String,
        spec: MaskSpec,
        seed: u64,
        lease_seconds: f64,
    ) -> Result<(Pool, Op), ApiError> {
        let mask = spec.resolve().map_err(|(f, m)| bad(f, m))?;
        let mask_json = serde_json::to_string(&spec).expect("mask spec serialises");
        let pool = Pool {
            name: name.clone(),
            spec,
            mask,
            seed,
            lease_seconds,
            versions: vec!["v0".into()],
            prompts: Vec::new(),
            index: HashMap::new(),
            counters: Counters::default(),
            totals: Totals::default(),
            idem: HashMap::new(),
            idem_order: VecDeque::new(),
            idem_expired: Vec::new(),
            dirty: Vec::new(),
            since_compaction: 0,
            alphas: Vec::new(),
            alphas_dirty: true,
        };
        Ok((
            pool,
            Op::CreatePool {
                name,
                mask: mask_json,
                seed,
                lease_seconds,
            },
        ))
    }

    /// Rebuilds a pool from the store.
    pub fn restore(rec: PoolRecord) -> Result<Pool, String> {
        let spec: MaskSpec = serde_json::from_str(&rec.mask)
            .map_err(|e| format!("pool {}: stored mask: {e}", rec.name))?;
        let (mut pool, _) = Pool::create(rec.name.clone(), spec, rec.seed, rec.lease_seconds)
            .map_err(|e| format!("pool {}: stored mask: {}", rec.name, e.message))?;
        pool.counters = rec.counters;
        pool.versions = rec.phases.into_iter().map(|(_, v)| v).collect();
        if pool.versions.is_empty() {
            pool.versions.push("v0".into());
        }
        for p in rec.prompts {
            let meta = match p.meta {
                Some(m) => Some(
                    serde_json::from_str(&m)
                        .map_err(|e| format!("pool {}: prompt {}: meta: {e}", rec.name, p.id))?,
                ),
                None => None,
            };
            pool.index.insert(p.id.clone(), pool.prompts.len());
            pool.prompts.push(PromptState::new(PromptIn {
                id: p.id,
                prompt: p.prompt,
                answer: p.answer,
                meta,
            }));
        }
        let current = pool.phase();
        for (id, state) in rec.compacted {
            let Some(&i) = pool.index.get(&id) else {
                return Err(format!(
                    "pool {}: compacted state of unknown prompt {id}",
                    rec.name
                ));
            };
            pool.restore_compacted(i, state)
                .map_err(|e| format!("pool {}: prompt {id}: {e}", rec.name))?;
        }
        for o in rec.outcomes {
            let Some(&i) = pool.index.get(&o.prompt_id) else {
                return Err(format!(
                    "pool {}: outcome for unknown prompt {}",
                    rec.name, o.prompt_id
                ));
            };
            pool.record(i, o.phase, o.sample, o.correct, o.tokens);
            if o.phase == current {
                let p = &mut pool.prompts[i];
                p.next_sample = p.next_sample.max(o.sample.saturating_add(1));
            }
        }
        for l in rec.leases {
            let Some(&i) = pool.index.get(&l.prompt_id) else {
                continue;
            };
            if l.phase != current {
                continue;
            }
            let p = &mut pool.prompts[i];
            p.next_sample = p.next_sample.max(l.sample_base.saturating_add(l.k));
            let purpose = if l.purpose == "teacher" {
                Purpose::Teacher
            } else {
                Purpose::Rollouts
            };
            let reported = p.seen.get(current as usize).map_or(0, |s| {
                s.count_in(l.sample_base, l.sample_base.saturating_add(l.k))
            });
            let remaining = l.k.saturating_sub(reported.min(u64::from(u32::MAX)) as u32);
            p.lease = Some(Lease {
                purpose,
                expires: l.expires,
                remaining,
            });
        }
        for (key, resp) in rec.idempotency {
            let v: Value = serde_json::from_str(&resp)
                .map_err(|e| format!("pool {}: idempotency record: {e}", rec.name))?;
            pool.remember(key, 0, v);
        }
        // The outcome rows replayed above are still rows in the store: the next compaction
        // comes that much sooner.
        Ok(pool)
    }

    /// Loads a prompt's compacted state (before any outcome row of it is replayed).
    fn restore_compacted(&mut self, i: usize, state: CompactState) -> Result<(), String> {
        let current = self.phase();
        let p = &mut self.prompts[i];
        if !p.seen.is_empty() {
            return Err("two compacted states".into());
        }
        for ph in state.phases {
            if ph.phase > current || !ph.samples.is_valid() {
                return Err(format!("a compacted phase {} that is not valid", ph.phase));
            }
            let n = ph.samples.len();
            if u64::from(ph.correct) > n || n > u64::from(u32::MAX) {
                return Err(format!("phase {}: {} correct of {n}", ph.phase, ph.correct));
            }
            let k = ph.phase as usize;
            if p.seen.len() <= k {
                p.seen.resize(k + 1, SampleSet::default());
            }
            if p.tallies.len() <= k {
                p.tallies.resize(k + 1, PhaseTally::default());
            }
            if ph.phase == current {
                p.next_sample = p.next_sample.max(ph.samples.end());
            }
            p.tallies[k].samples += n as u32;
            p.tallies[k].correct += ph.correct;
            p.samples_total += n;
            self.totals.outcomes += n;
            self.totals.correct += u64::from(ph.correct);
            p.seen[k] = ph.samples;
        }
        p.tokens = state.tokens;
        self.totals.tokens += state.tokens;
        self.alphas_dirty = true;
        Ok(())
    }

    /// Outcomes recorded since the last compaction (replayed rows included).
    pub fn outcomes_since_compaction(&self) -> u64 {
        self.since_compaction
    }

    /// The compaction op: the state of every prompt changed since the last one, and the
    /// idempotency keys evicted from memory. Submit it under the pool's lock like any write.
    pub fn compact(&mut self) -> Op {
        let mut states = Vec::with_capacity(self.dirty.len());
        for i in std::mem::take(&mut self.dirty) {
            let p = &mut self.prompts[i];
            p.dirty = false;
            let phases = p
                .seen
                .iter()
                .zip(&p.tallies)
                .enumerate()
                .filter(|(_, (s, _))| !s.is_empty())
                .map(|(k, (s, t))| CompactPhase {
                    phase: k as u32,
                    correct: t.correct,
                    samples: s.clone(),
                })
                .collect();
            states.push((
                p.data.id.clone(),
                CompactState {
                    tokens: p.tokens,
                    phases,
                },
            ));
        }
        self.since_compaction = 0;
        Op::Compact {
            pool: self.name.clone(),
            states,
            expired_keys: std::mem::take(&mut self.idem_expired),
        }
    }

    /// Prompts registered.
    pub fn prompt_count(&self) -> usize {
        self.prompts.len()
    }

    pub fn phase(&self) -> u32 {
        (self.versions.len() - 1) as u32
    }

    fn record(&mut self, i: usize, phase: u32, sample: u32, correct: bool, tokens: Option<u64>) {
        let p = &mut self.prompts[i];
        let ph = phase as usize;
        if p.seen.len() <= ph {
            p.seen.resize(ph + 1, SampleSet::default());
        }
        if !p.seen[ph].insert(sample) {
            return;
        }
        if p.tallies.len() <= ph {
            p.tallies.resize(ph + 1, PhaseTally::default());
        }
        p.tokens += tokens.unwrap_or(0);
        if !p.dirty {
            p.dirty = true;
            self.dirty.push(i);
        }
        self.since_compaction += 1;
        p.tallies[ph].samples += 1;
        p.tallies[ph].correct += u32::from(correct);
        p.samples_total += 1;
        self.totals.outcomes += 1;
        self.totals.correct += u64::from(correct);
        self.totals.tokens += tokens.unwrap_or(0);
        self.alphas_dirty = true;
    }

    fn refresh_alphas(&mut self) {
        if !self.alphas_dirty || !self.mask.is_ensemble() {
            return;
        }
        let members = self.versions.len();
        let mut stats = vec![(0u64, 0u64); members];
        for p in &self.prompts {
            for (j, t) in p.tallies.iter().enumerate().take(members) {
                if t.samples > 0 {
                    stats[j].0 += 1;
                    stats[j].1 += u64::from(!t.verdict());
                }
            }
        }
        self.alphas = member_alphas(&stats);
        self.alphas_dirty = false;
    }

    fn score_of(&self, p: &PromptState) -> Scored {
        self.mask
            .score(&p.tallies, self.phase() as usize, &self.alphas)
    }

    /// Registers more prompts (idempotent by id: a known id with the same content is skipped, a
    /// known id with other content is a conflict). Returns (added, existing, op).
    pub fn add_prompts(
        &mut self,
        prompts: Vec<PromptIn>,
    ) -> Result<(usize, usize, Option<Op>), ApiError> {
        let mut fresh = HashSet::new();
        let mut existing = 0;
        for (j, p) in prompts.iter().enumerate() {
            check_id(format!("prompts[{j}].id"), &p.id)?;
            if let Some(&i) = self.index.get(&p.id) {
                if *self.prompts[i].data != *p {
                    return Err(ApiError::conflict(format!(
                        "prompt `{}` is already registered with other content",
                        p.id
                    ))
                    .with_field(format!("prompts[{j}]")));
                }
                existing += 1;
            } else if !fresh.insert(p.id.as_str()) {
                return Err(bad(
                    format!("prompts[{j}].id"),
                    format!("duplicate id `{}` in this request", p.id),
                ));
            }
        }
        let mut rows = Vec::new();
        for p in prompts {
            if self.index.contains_key(&p.id) {
                continue;
            }
            let seq = self.prompts.len() as u64;
            rows.push(PromptRow {
                id: p.id.clone(),
                seq,
                prompt: p.prompt.clone(),
                answer: p.answer.clone(),
                meta: p.meta.as_ref().map(|m| m.to_string()),
            });
            self.index.insert(p.id.clone(), self.prompts.len());
            self.prompts.push(PromptState::new(p));
        }
        self.alphas_dirty = true;
        let added = rows.len();
        let op = (added > 0).then(|| Op::AddPrompts {
            pool: self.name.clone(),
            rows,
        });
        Ok((added, existing, op))
    }

    /// Chooses up to `n` prompts by the mask: weighted sampling without replacement
    /// (Efraimidis-Spirakis keys `u^(1/w)`), among prompts with weight > 0 and no live lease,
    /// with the RNG stream `next/{pool}/{call}` of the pool's seed. Leases them.
    pub fn next(&mut self, req: &NextRequest, now: f64) -> Result<(Value, Op), ApiError> {
        if req.n == 0 || req.n > MAX_N {
            return Err(bad("n", format!("n must be between 1 and {MAX_N}")));
        }
        let k = match (req.purpose, req.k) {
            (_, Some(k)) if k == 0 || k > MAX_K => {
                return Err(bad("k", format!("k must be between 1 and {MAX_K}")))
            }
            (Purpose::Teacher, _) => 0,
            (Purpose::Rollouts, k) => k.unwrap_or(1),
        };
        let lease_seconds = req.lease_seconds.unwrap_or(self.lease_seconds);
        if !(lease_seconds.is_finite() && lease_seconds > 0.0 && lease_seconds <= 7.0 * 86400.0) {
            return Err(bad("lease_seconds", "lease_seconds must be in (0, 604800]"));
        }
        self.refresh_alphas();
        let call = self.counters.next_calls;
        let mut rng = autotune_core::stream_rng(self.seed, &format!("next/{}/{call}", self.name));
        let mut keyed: Vec<(f64, usize, Scored)> = Vec::new();
        for (i, p) in self.prompts.iter().enumerate() {
            if p.leased(now) {
                continue;
            }
            let s = self.score_of(p);
            if s.weight > 0.0 {
                let u: f64 = 1.0 - rng.gen::<f64>();
                keyed.push((u.ln() / s.weight, i, s));
            }
        }
        let eligible = keyed.len();
        let take = req.n.min(eligible);
        if take > 0 && take < keyed.len() {
            keyed.select_nth_unstable_by(take - 1, |a, b| b.0.total_cmp(&a.0));
            keyed.truncate(take);
        }
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
        let phase = self.phase();
        let expires = now + lease_seconds;
        let mut out = Vec::with_capacity(take);
        let mut leases = Vec::with_capacity(take);
        for (_, i, s) in keyed {
            let p = &mut self.prompts[i];
            let base = p.next_sample;
            p.next_sample = p.next_sample.saturating_add(k);
            p.lease = Some(Lease {
                purpose: req.purpose,
                expires,
                remaining: k,
            });
            leases.push(LeaseRow {
                prompt_id: p.data.id.clone(),
                purpose: req.purpose.as_str().into(),
                phase,
                sample_base: base,
                k,
                expires,
            });
            let mut item = serde_json::to_value(&*p.data).expect("prompt serialises");
            let obj = item.as_object_mut().expect("object");
            obj.insert("rank".into(), json!(s.rank));
            obj.insert("max_rank".into(), json!(s.max_rank));
            obj.insert("weight".into(), json!(s.weight));
            obj.insert("sample_base".into(), json!(base));
            obj.insert("k".into(), json!(k));
            out.push(item);
        }
        self.counters.next_calls += 1;
        self.counters.prompts_leased += out.len() as u64;
        match req.purpose {
            Purpose::Teacher => self.counters.teacher_leased += out.len() as u64,
            Purpose::Rollouts => self.counters.rollouts_leased += out.len() as u64 * u64::from(k),
        }
        let body = json!({
            "pool": self.name,
            "phase": phase,
            "model_version": self.versions.last(),
            "purpose": req.purpose,
            "eligible": eligible,
            "lease_expires_unix": expires,
            "prompts": out,
        });
        Ok((
            body,
            Op::Lease {
                pool: self.name.clone(),
                counters: self.counters,
                leases,
            },
        ))
    }

    /// A stored answer for an idempotency key: `(store sequence to wait for, response)`.
    pub fn replay(&self, key: &str) -> Option<(u64, Value)> {
        self.idem.get(key).map(|(seq, v)| {
            let mut v = v.clone();
            v["replayed"] = json!(true);
            (*seq, v)
        })
    }

    /// Records outcomes. `seq_hint` is the store sequence number the op will get (for replays
    /// of the idempotency key while the write is in flight); the caller submits the op.
    pub fn outcomes(&mut self, req: OutcomesRequest) -> Result<(Value, Op), ApiError> {
        if let Some(key) = &req.idempotency_key {
            check_id("idempotency_key".into(), key)?;
        }
        let current = self.phase();
        let mut resolved = Vec::with_capacity(req.results.len());
        for (j, r) in req.results.iter().enumerate() {
            let Some(&i) = self.index.get(&r.prompt_id) else {
                return Err(ApiError::invalid(
                    format!("results[{j}].prompt_id"),
                    format!("unknown prompt `{}` in pool `{}`", r.prompt_id, self.name),
                ));
            };
            let phase = match &r.model_version {
                None => current,
                Some(v) => match self.versions.iter().position(|x| x == v) {
                    Some(ph) => ph as u32,
                    None => {
                        return Err(ApiError::conflict(format!(
                            "model_version `{v}` is not a phase of pool `{}` (current: `{}`)",
                            self.name, self.versions[current as usize]
                        ))
                        .with_field(format!("results[{j}].model_version")))
                    }
                },
            };
            resolved.push((i, phase));
        }
        let mut rows = Vec::new();
        let mut duplicate_indices = Vec::new();
        let mut released = Vec::new();
        for (j, (r, (i, phase))) in req.results.iter().zip(resolved).enumerate() {
            let before = self.totals.outcomes;
            self.record(i, phase, r.sample, r.correct, r.tokens);
            if self.totals.outcomes == before {
                duplicate_indices.push(j);
                continue;
            }
            rows.push(OutcomeRow {
                prompt_id: r.prompt_id.clone(),
                phase,
                sample: r.sample,
                correct: r.correct,
                tokens: r.tokens,
            });
            if phase == current {
                let p = &mut self.prompts[i];
                p.next_sample = p.next_sample.max(r.sample.saturating_add(1));
                if let Some(l) = &mut p.lease {
                    if l.purpose == Purpose::Rollouts {
                        l.remaining = l.remaining.saturating_sub(1);
                        if l.remaining == 0 {
                            p.lease = None;
                            released.push(r.prompt_id.clone());
                        }
                    }
                }
            }
        }
        self.counters.duplicates += duplicate_indices.len() as u64;
        let body = json!({
            "accepted": rows.len(),
            "duplicates": duplicate_indices.len(),
            "duplicate_indices": duplicate_indices,
            "phase": current,
            "replayed": false,
        });
        let idempotency = req
            .idempotency_key
            .map(|k| (k, serde_json::to_string(&body).expect("json")));
        Ok((
            body,
            Op::Outcomes {
                pool: self.name.clone(),
                counters: self.counters,
                rows,
                released,
                idempotency,
            },
        ))
    }

    /// Ends the leases of `prompt_ids` now: prompts leased and never used (a trainer that
    /// stopped, a batch fetched ahead and never trained) are eligible again at once instead of
    /// at expiry. Outcomes already reported stay. Every id must be in the pool; ids without a
    /// live lease are counted in `not_leased`.
    pub fn release(&mut self, req: ReleaseRequest, now: f64) -> Result<(Value, Op), ApiError> {
        let mut found = Vec::with_capacity(req.prompt_ids.len());
        for (j, id) in req.prompt_ids.iter().enumerate() {
            let Some(&i) = self.index.get(id) else {
                return Err(ApiError::invalid(
                    format!("prompt_ids[{j}]"),
                    format!("unknown prompt `{id}` in pool `{}`", self.name),
                ));
            };
            found.push(i);
        }
        let mut released = Vec::new();
        let (mut live, mut not_leased) = (0usize, 0usize);
        for i in found {
            let p = &mut self.prompts[i];
            if p.leased(now) {
                live += 1;
            } else {
                not_leased += 1;
            }
            // An expired lease is dropped too (its store row with it).
            if p.lease.take().is_some() {
                released.push(p.data.id.clone());
            }
        }
        let body = json!({"released": live, "not_leased": not_leased});
        Ok((
            body,
            Op::Outcomes {
                pool: self.name.clone(),
                counters: self.counters,
                rows: Vec::new(),
                released,
                idempotency: None,
            },
        ))
    }

    /// Remembers the response of an idempotency key once its op has a sequence number.
    pub fn remember(&mut self, key: String, seq: u64, body: Value) {
        if self.idem.insert(key.clone(), (seq, body)).is_none() {
            self.idem_order.push_back(key);
        }
        while self.idem_order.len() > IDEMPOTENCY_KEYS_KEPT {
            if let Some(old) = self.idem_order.pop_front() {
                self.idem.remove(&old);
                self.idem_expired.push(old);
            }
        }
    }

    /// Advances to the next phase (model version): ranks of single-model masks restart from the
    /// new model's outcomes, and every lease is dropped.
    pub fn advance(&mut self, req: PhaseRequest) -> Result<(Value, Op), ApiError> {
        let current = self.phase();
        if let Some(e) = req.expected_phase {
            if e != current {
                return Err(ApiError::conflict(format!(
                    "expected phase {e}, but pool `{}` is in phase {current}",
                    self.name
                ))
                .with_field("expected_phase"));
            }
        }
        let next = current + 1;
        let version = req.model_version.unwrap_or_else(|| format!("v{next}"));
        check_id("model_version".into(), &version)?;
        if self.versions.contains(&version) {
            return Err(ApiError::conflict(format!(
                "model_version `{version}` is already a phase of pool `{}`",
                self.name
            ))
            .with_field("model_version"));
        }
        self.versions.push(version.clone());
        for p in &mut self.prompts {
            p.lease = None;
            p.next_sample = 0;
        }
        self.alphas_dirty = true;
        Ok((
            json!({"pool": self.name, "phase": next, "model_version": version}),
            Op::Phase {
                pool: self.name.clone(),
                phase: next,
                model_version: version,
            },
        ))
    }

    /// The pool's state, with one page of prompts.
    pub fn state(&mut self, offset: usize, limit: usize, now: f64) -> Value {
        self.refresh_alphas();
        let mut hist: Vec<u64> = Vec::new();
        let (mut untested, mut leased, mut eligible, mut total_weight) = (0u64, 0u64, 0u64, 0.0);
        let current = self.phase() as usize;
        let mut current_outcomes = 0u64;
        for p in &self.prompts {
            let s = self.score_of(p);
            current_outcomes += p.tallies.get(current).map_or(0, |t| u64::from(t.samples));
            if s.max_rank == 0 {
                untested += 1;
            } else {
                let r = s.rank as usize;
                if hist.len() <= r {
                    hist.resize(r + 1, 0);
                }
                hist[r] += 1;
            }
            if p.leased(now) {
                leased += 1;
            } else if s.weight > 0.0 {
                eligible += 1;
            }
            total_weight += s.weight;
        }
        let page: Vec<Value> = self
            .prompts
            .iter()
            .skip(offset)
            .take(limit)
            .map(|p| {
                let s = self.score_of(p);
                json!({
                    "id": p.data.id,
                    "rank": s.rank,
                    "max_rank": s.max_rank,
                    "weight": s.weight,
                    "samples": p.tallies.get(current).map_or(0, |t| t.samples),
                    "samples_all_phases": p.samples_total,
                    "leased": p.leased(now),
                })
            })
            .collect();
        let end = offset.saturating_add(page.len());
        let ledger = Ledger {
            teacher_calls: self.counters.teacher_leased,
            verifier_calls: self.totals.outcomes,
            student_generations: self.totals.outcomes,
            student_tokens: self.totals.tokens,
            prompts_drawn: self.counters.prompts_leased,
            ..Ledger::default()
        };
        json!({
            "pool": self.name,
            "mask": self.spec,
            "phase": current,
            "model_version": self.versions.last(),
            "model_versions": self.versions,
            "prompts": self.prompts.len(),
            "tested": self.prompts.len() as u64 - untested,
            "untested": untested,
            "leased": leased,
            "eligible": eligible,
            "total_weight": total_weight,
            "rank_histogram": hist,
            "counters": {
                "outcomes": self.totals.outcomes,
                "outcomes_current_phase": current_outcomes,
                "correct": self.totals.correct,
                "tokens": self.totals.tokens,
                "duplicates": self.counters.duplicates,
                "next_calls": self.counters.next_calls,
                "prompts_leased": self.counters.prompts_leased,
                "teacher_calls_leased": self.counters.teacher_leased,
                "rollouts_leased": self.counters.rollouts_leased,
            },
            "ledger": ledger,
            "items": page,
            "offset": offset,
            "limit": limit,
            "next_offset": (end < self.prompts.len()).then_some(end),
        })
    }

    /// Same mask as `spec`?
    pub fn same_mask(&self, spec: &MaskSpec) -> bool {
        self.spec == *spec
    }
}
