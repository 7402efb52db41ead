//! AutoTune's curriculum as an HTTP service for external trainers (`autotune serve`).
//!
//! A trainer (verl, TRL, a script) registers a **pool** of prompts with a **mask**, asks for the
//! next prompts to spend rollouts or teacher calls on, and reports the verifier's outcome of
//! every sample; the service keeps the ranks and weights of the paper's masks
//! (`docs/paper-algorithms.md`) and chooses by them. The OpenAPI description is
//! `docs/openapi.yaml`; Python adapters are in `examples/service/`.
//!
//! ```
//! use autotune_service::{service_strategies, MaskSpec};
//!
//! // The masks a pool can be registered with, checked as the API checks a request.
//! assert!(service_strategies().contains(&"autotune-bbm"));
//! assert!(MaskSpec::named("autotune-cex").resolve().is_ok());
//! assert!(MaskSpec::named("no-such-mask").resolve().is_err());
//! ```
//!
//! # Phases, ranks and weights
//! A pool's **phase** is its model version (`v0`, then whatever `POST .../phase` names). An
//! outcome belongs to the phase current when it is reported, or to the phase whose
//! `model_version` it carries (late reports from a straggler are filed where they belong).
//! - Single-model masks (`uniform`, `autotune-cex`, `zero-variance`, `learnability`): the rank
//!   of a prompt is the number of correct samples of the current phase, out of `max_rank`
//!   samples; a new phase starts every prompt untested again. `autotune-cex` weighs 1 exactly
//!   at rank 0, `zero-variance` 1 strictly between all wrong and all right, `learnability`
//!   `4 p (1 - p)`.
//! - Ensemble masks (`autotune-bbm`, `autotune-filterboost`): every phase is a member whose
//!   verdict is the majority of its samples; the rank counts members that are right among the
//!   `max_rank` members that tested the prompt. Boost-by-majority uses `w_i(r) / max_r w_i(r)`
//!   with `i = max_rank`; FilterBoost/MadaBoost use the margin `F = sum_j a_j (2 c_j - 1)` with
//!   `a_j` from member `j`'s edge measured on the prompts it tested.
//!
//! Untested prompts weigh 1 (FilterBoost: 1/2, its weight at margin 0), so the first batches
//! are uniform, as in the spec's phase 0.
//!
//! # Choosing, leasing
//! `next` draws `n` prompts without replacement with probability proportional to their weight
//! (Efraimidis-Spirakis keys), among prompts with weight > 0 and no live lease, from the RNG
//! stream `next/{pool}/{call number}` of the pool's seed: the same calls give the same batches,
//! restarts included. Every prompt returned is **leased** (default 600 s) so that concurrent
//! trainers get different prompts; a rollout lease of `k` samples ends when `k` outcomes for it
//! arrive, any lease ends at its expiry (a crashed trainer's prompts come back) or at the next
//! phase. Each rollout lease hands out sample indices `sample_base .. sample_base + k`, so
//! that trainers never report the same `(prompt, phase, sample)` twice by accident; a second
//! report of one is a duplicate, answered but not counted.
//!
//! # Durability
//! State lives in memory and in one SQLite file (WAL, `synchronous=FULL`). Every write is
//! applied in memory under the pool's lock, queued to the single writer thread in that order,
//! and **answered only after the transaction that holds it commits**; the writer commits
//! everything queued as one transaction (group commit), so one fsync covers many requests.
//! `synchronous=NORMAL` would already survive `kill -9` in WAL mode (the log is in the OS page
//! cache), but not a power cut or kernel crash; FULL makes an acknowledged outcome survive both,
//! and group commit makes it cheap. An outcome submission with an `idempotency_key` is stored
//! with its answer in the same transaction: a retry gets the first answer back (`replayed`)
//! and counts nothing twice. If a commit ever fails, memory is ahead of the disk: the service
//! then answers 503 to every write and `/healthz` reports it until restarted, when the state is
//! read back from the file.
//!
//! A restart reads the store back, so what it reads is kept bounded: after every
//! `compact_every` outcomes (default 100,000; `autotune serve --compact-every N`) a pool writes
//! the state of each prompt whose outcomes changed (per phase: the correct count and the sample
//! numbers reported, as ranges) and deletes its outcome rows, in the same ordered stream as
//! every other write. A restart then reads one state per prompt and at most `compact_every`
//! rows. Sample numbers kept as ranges still refuse every duplicate; idempotency keys are kept
//! for the 100,000 most recent reports of a pool, and an older key's retry is answered as
//! duplicates (nothing is counted twice) rather than replayed.
//!
//! # Limits and security
//! Binds 127.0.0.1 by default; request bodies over `max_body_bytes` (8 MiB) get 413; with a
//! token set, every route but `/healthz` needs `Authorization: Bearer TOKEN` (401 otherwise).
//! Errors are `{"error": {"message", "type", "field"?}}` with 400 (naming the field), 401, 404,
//! 409 (another mask for an existing pool, a prompt id re-registered with other content, an
//! unknown `model_version`, a stale `expected_phase`), 413, 503.

mod api;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod load;
mod mask;
mod pool;
mod samples;
mod store;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use thiserror::Error;

pub use mask::{service_strategies, Mask, MaskSpec, DEFAULT_POOL_EPS};
pub use store::stored_outcome_count;

/// Errors of the service.
#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("store {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store {path}: cannot restore the state: {message}")]
    Restore { path: PathBuf, message: String },
    /// Another service holds the store (its `.lock` file is locked).
    #[error("store {} is in use by another autotune serve ({holder}): two services must not write one store; stop the other or give another --store", path.display())]
    InUse { path: PathBuf, holder: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("bearer token: environment variable `{0}` is not set or empty")]
    TokenEnv(String),
    #[error("the service stopped abnormally: {0}")]
    Stopped(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("load test: {0}")]
    Load(String),
}

impl ServiceError {
    fn store(path: &Path, source: rusqlite::Error) -> Self {
        ServiceError::Store {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Everything `autotune serve` can set.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Address to bind (default 127.0.0.1: loopback only).
    pub bind: IpAddr,
    /// Port (0: any free port; see [`RunningService::addr`]).
    pub port: u16,
    /// The SQLite file (created if missing).
    pub store: PathBuf,
    /// Bearer token required on every route but `/healthz` (none: no authentication).
    pub token: Option<String>,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Default lease of a pool whose registration names none.
    pub lease_seconds: f64,
    /// Tokio worker threads (None: one per core).
    pub workers: Option<usize>,
    /// A pool compacts its stored outcomes after this many new ones: the rows are replaced by
    /// each prompt's tallies and sample ranges, so that a restart reads at most this many rows
    /// plus one state per prompt (default [`DEFAULT_COMPACT_EVERY`]).
    pub compact_every: u64,
}

/// Default of [`ServiceConfig::compact_every`].
pub const DEFAULT_COMPACT_EVERY: u64 = 100_000;

/// Default port of `autotune serve`.
pub const DEFAULT_PORT: u16 = 8470;
/// Default request body limit: 8 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;

impl ServiceConfig {
    /// Defaults: 127.0.0.1:8470, no token, 8 MiB bodies, 600 s leases.
    pub fn new(store: impl Into<PathBuf>) -> Self {
        ServiceConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            store: store.into(),
            token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            lease_seconds: 600.0,
            workers: None,
            compact_every: DEFAULT_COMPACT_EVERY,
        }
    }

    /// Reads the bearer token from the environment variable `var` (`--token-env VAR`).
    pub fn with_token_env(mut self, var: &str) -> Result<Self, ServiceError> {
        match std::env::var(var) {
            Ok(t) if !t.is_empty() => {
                self.token = Some(t);
                Ok(self)
            }
            _ => Err(ServiceError::TokenEnv(var.to_string())),
        }
    }
}

/// A service running on background threads (for tests and embedding).
pub struct RunningService {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServiceError>>>,
}

impl RunningService {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, finishes the requests in flight, commits what is queued,
    /// and closes the store.
    pub fn shutdown(mut self) -> Result<(), ServiceError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), ServiceError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| ServiceError::Stopped("server thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// Opens the store, binds, and serves on background threads.
pub fn spawn(config: ServiceConfig) -> Result<RunningService, ServiceError> {
    let (store, snapshot) = store::Store::open(&config.store)?;
    let mut pools = std::collections::HashMap::new();
    for rec in snapshot.pools {
        let name = rec.name.clone();
        let pool = pool::Pool::restore(rec).map_err(|message| ServiceError::Restore {
            path: config.store.clone(),
            message,
        })?;
        pools.insert(name, Arc::new(Mutex::new(pool)));
    }
    let addr = SocketAddr::new(config.bind, config.port);
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServiceError::Bind { addr, source })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let state = Arc::new(api::AppState {
        pools: RwLock::new(pools),
        store: store.clone(),
        token: config.token.clone(),
        default_lease_seconds: config.lease_seconds,
        compact_every: config.compact_every.max(1),
    });
    let app = api::router(state, config.max_body_bytes);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all().thread_name("autotune-service");
    if let Some(w) = config.workers {
        rt.worker_threads(w.max(1));
    }
    let rt = rt.build()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("autotune-service-main".into())
        .spawn(move || {
            let served = rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop_rx.await;
                    })
                    .await
            });
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
            store.close();
            served.map_err(ServiceError::Io)
        })?;
    Ok(RunningService {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// `autotune serve`: binds, prints `autotune-service listening on http://ADDR` on stdout,
/// serves until SIGINT or SIGTERM, then shuts down gracefully. Blocking.
pub fn serve(config: ServiceConfig) -> Result<(), ServiceError> {
    let running = spawn(config)?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "autotune-service listening on {}", running.url())?;
        out.flush()?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r,
                _ = term.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await
        }
    })?;
    running.shutdown()
}
