//! `autotune serve-model CHECKPOINT --port P`: a trained student behind an OpenAI-compatible
//! chat-completions API (`POST /v1/chat/completions`, `GET /v1/models`, `GET /healthz`), so
//! that the HTTP clients are tested end to end against a real server with a real model.
//!
//! The prompt is the request's messages as the task reads them (one user message is its
//! content; a conversation is `role: content` lines), tokenised by the task. Greedy decoding
//! at temperature 0 (or when absent); at temperature > 0 the student samples, with the
//! request's `seed` (default 0) and the choice index fixing the randomness. `n` > 1 returns n
//! choices.
//!
//! With `--allow-load`, a trainer can push new weights: `POST /v1/admin/load` with
//! `{"slot", "version", "student"}` (the student's saved state) installs a student that is
//! then served as model `NAME/SLOT@vVERSION`, as a trainer syncs its weights to its rollout
//! engine. A request for another version of a slot is refused (409), so a generation never
//! comes from stale weights. Versions of a slot only go up: a push of an older version (a
//! late or replayed request) is refused with 409, and a push of the current version is
//! accepted again only with the same weights (a retried push whose answer was lost), so a
//! slot's version always names one set of weights.
//!
//! Limits and security, as `autotune serve`: binds 127.0.0.1 by default; `--allow-load` is
//! off by default; request bodies over [`DEFAULT_MAX_BODY_BYTES`] (pushes: over
//! [`DEFAULT_MAX_LOAD_BYTES`]) get 413; with a token (`--token-env VAR`), every route but
//! `/healthz` needs `Authorization: Bearer TOKEN` (401 otherwise). Errors are OpenAI-shaped:
//! `{"error": {"message", "type"}}`. The token is never logged.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use autotune_core::{Prompt, Student, Task};
pub use autotune_tasks::checkpoint::{Checkpoint, CHECKPOINT_FORMAT};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// Largest request body but a weight push: 8 MiB (as `autotune serve`).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;
/// Largest weight push (`POST /v1/admin/load`): 256 MiB.
pub const DEFAULT_MAX_LOAD_BYTES: usize = 256 << 20;

/// Everything `autotune serve-model` can set but the checkpoint.
#[derive(Clone)]
pub struct ServeOptions {
    /// Address to bind (`127.0.0.1:8000` by default: loopback only).
    pub addr: SocketAddr,
    /// Model name in the API (default: the checkpoint's file stem).
    pub name: Option<String>,
    /// Take pushed weights (`POST /v1/admin/load`); off by default.
    pub allow_load: bool,
    /// Bearer token required on every route but `/healthz` (none: no authentication).
    pub token: Option<String>,
    /// Largest request body (413 beyond), weight pushes excepted.
    pub max_body_bytes: usize,
    /// Largest weight push (413 beyond).
    pub max_load_bytes: usize,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("addr", &self.addr)
            .field("name", &self.name)
            .field("allow_load", &self.allow_load)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_load_bytes", &self.max_load_bytes)
            .finish()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            name: None,
            allow_load: false,
            token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_load_bytes: DEFAULT_MAX_LOAD_BYTES,
        }
    }
}

impl ServeOptions {
    /// Reads the bearer token from the environment variable `var` (`--token-env VAR`).
    pub fn with_token_env(mut self, var: &str) -> Result<Self> {
        match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => {
                self.token = Some(t.trim().to_string());
                Ok(self)
            }
            _ => anyhow::bail!("bearer token: environment variable `{var}` is not set or empty"),
        }
    }
}

/// A student pushed to a slot.
struct Pushed {
    version: u64,
    student: Arc<dyn Student>,
    /// Hash of the pushed state, to tell a retried push from other weights.
    digest: u64,
}

/// Pushed students by slot.
type Slots = std::collections::HashMap<String, Pushed>;

struct Model {
    name: String,
    task: Box<dyn Task>,
    student: Box<dyn Student>,
    allow_load: bool,
    token: Option<String>,
    max_body_bytes: usize,
    max_load_bytes: usize,
    /// Students pushed by trainers.
    slots: std::sync::RwLock<Slots>,
}

#[derive(Deserialize)]
struct LoadRequest {
    slot: String,
    version: u64,
    student: String,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    n: Option<usize>,
}

fn error(status: StatusCode, message: impl Into<String>, kind: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message.into(), "type": kind}})),
    )
        .into_response()
}

fn complete(m: &Model, req: ChatRequest) -> Response {
    // `NAME` is the checkpoint; `NAME/SLOT@vVERSION` a student pushed to a slot.
    let pushed: Option<Arc<dyn Student>> = match &req.model {
        None => None,
        Some(name) if name == &m.name => None,
        Some(name) => {
            let slot = name
                .strip_prefix(&format!("{}/", m.name))
                .and_then(|r| r.rsplit_once("@v"))
                .and_then(|(slot, v)| v.parse::<u64>().ok().map(|v| (slot, v)));
            let Some((slot, version)) = slot else {
                return error(
                    StatusCode::NOT_FOUND,
                    format!(
                        "model `{name}` is not served here; this server serves `{}` (and `{}/SLOT@vN` for pushed students)",
                        m.name, m.name
                    ),
                    "model_not_found",
                );
            };
            let slots = m.slots.read().unwrap_or_else(|e| e.into_inner());
            match slots.get(slot) {
                Some(p) if p.version == version => Some(p.student.clone()),
                Some(Pushed { version: v, .. }) => {
                    return error(
                        StatusCode::CONFLICT,
                        format!("slot `{slot}` holds version {v}, not {version}"),
                        "stale_model",
                    )
                }
                None => {
                    return error(
                        StatusCode::NOT_FOUND,
                        format!("no student was pushed to slot `{slot}`"),
                        "model_not_found",
                    )
                }
            }
        }
    };
    let student: &dyn Student = match &pushed {
        Some(s) => s.as_ref(),
        None => m.student.as_ref(),
    };
    let n = req.n.unwrap_or(1);
    if n == 0 || n > 64 {
        return error(
            StatusCode::BAD_REQUEST,
            "`n` must be in 1..=64",
            "invalid_request_error",
        );
    }
    let messages: Vec<(String, String)> = req
        .messages
        .into_iter()
        .map(|m| (m.role, m.content))
        .collect();
    let text = autotune_data::join_messages(&messages);
    let tokens = match m.task.tokenize(&text) {
        Ok(t) => t,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                e.to_string(),
                "invalid_request_error",
            )
        }
    };
    let prompts = vec![Prompt { id: 0, tokens }; n];
    let temperature = req.temperature.unwrap_or(0.0);
    let traces = if temperature > 0.0 {
        student.sample_batch(&prompts, temperature, req.seed.unwrap_or(0))
    } else {
        student.generate_batch(&prompts)
    };
    let prompt_tokens = prompts[0].tokens.len();
    let mut completion_tokens = 0;
    let choices: Vec<Value> = traces
        .iter()
        .enumerate()
        .map(|(i, t)| {
            completion_tokens += t.len();
            json!({
                "index": i,
                "message": {"role": "assistant", "content": m.task.render_trace(t)},
                "finish_reason": "stop",
            })
        })
        .collect();
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Json(json!({
        "id": format!("chatcmpl-autotune-{created}"),
        "object": "chat.completion",
        "created": created,
        "model": req.model.as_deref().unwrap_or(&m.name),
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }))
    .into_response()
}

/// The JSON error for a body too large (413) or unreadable (400).
fn rejection(e: BytesRejection) -> Response {
    let status = e.status();
    let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "payload_too_large"
    } else {
        "invalid_request_error"
    };
    error(status, e.body_text(), kind)
}

async fn chat(State(m): State<Arc<Model>>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return rejection(e),
    };
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a chat-completions request: {e}"),
                "invalid_request_error",
            )
        }
    };
    match tokio::task::spawn_blocking(move || complete(&m, req)).await {
        Ok(r) => r,
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            "server_error",
        ),
    }
}

fn load(m: &Model, body: &[u8]) -> Response {
    if !m.allow_load {
        return error(
            StatusCode::FORBIDDEN,
            "this server does not take new weights (start it with --allow-load)",
            "permission_denied",
        );
    }
    let req: LoadRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"slot\", \"version\", \"student\"}}: {e}"),
                "invalid_request_error",
            )
        }
    };
    if req.slot.is_empty() || req.slot.contains(['/', '@']) {
        return error(
            StatusCode::BAD_REQUEST,
            "`slot` must be a non-empty name without `/` or `@`",
            "invalid_request_error",
        );
    }
    let digest = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        req.student.hash(&mut h);
        h.finish()
    };
    let served = format!("{}/{}@v{}", m.name, req.slot, req.version);
    // Versions only go up, and a version names one set of weights: an older push (late or
    // replayed) is refused, the same push again (a retry whose answer was lost) is answered
    // as the first was. Checked before the (slow) load and again under the write lock.
    let check = |slots: &Slots| -> Option<Response> {
        let cur = slots.get(&req.slot)?;
        if req.version < cur.version {
            Some(error(
                StatusCode::CONFLICT,
                format!(
                    "slot `{}` holds version {}; version {} is older and was not installed",
                    req.slot, cur.version, req.version
                ),
                "stale_version",
            ))
        } else if req.version == cur.version {
            Some(if cur.digest == digest {
                Json(json!({"model": served, "unchanged": true})).into_response()
            } else {
                error(
                    StatusCode::CONFLICT,
                    format!(
                        "slot `{}` already holds other weights as version {}; push a new version",
                        req.slot, req.version
                    ),
                    "version_taken",
                )
            })
        } else {
            None
        }
    };
    if let Some(r) = check(&m.slots.read().unwrap_or_else(|e| e.into_inner())) {
        return r;
    }
    let student = match m.task.load_student(&req.student) {
        Ok(s) => s,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                e.to_string(),
                "invalid_request_error",
            )
        }
    };
    let mut slots = m.slots.write().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = check(&slots) {
        return r;
    }
    slots.insert(
        req.slot.clone(),
        Pushed {
            version: req.version,
            student: Arc::from(student),
            digest,
        },
    );
    Json(json!({"model": served})).into_response()
}

async fn admin_load(State(m): State<Arc<Model>>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return rejection(e),
    };
    match tokio::task::spawn_blocking(move || load(&m, &body)).await {
        Ok(r) => r,
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            "server_error",
        ),
    }
}

/// The checkpoint's model and every pushed student at its current version.
async fn models(State(m): State<Arc<Model>>) -> Response {
    let mut data = vec![json!({"id": m.name, "object": "model", "owned_by": "autotune"})];
    let slots = m.slots.read().unwrap_or_else(|e| e.into_inner());
    let mut pushed: Vec<String> = slots
        .iter()
        .map(|(slot, p)| format!("{}/{slot}@v{}", m.name, p.version))
        .collect();
    pushed.sort();
    data.extend(
        pushed
            .into_iter()
            .map(|id| json!({"id": id, "object": "model", "owned_by": "autotune"})),
    );
    Json(json!({"object": "list", "data": data})).into_response()
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

/// With a token, every route but `/healthz` needs `Authorization: Bearer TOKEN`; then a body
/// announced larger than the route's limit is refused (413). Both before any body is read.
async fn guard(State(m): State<Arc<Model>>, req: Request, next: Next) -> Response {
    if let Some(token) = &m.token {
        if req.uri().path() != "/healthz" {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
                let mut r = error(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong bearer token (Authorization: Bearer ...)",
                    "unauthorized",
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return r;
            }
        }
    }
    let limit = if req.uri().path() == "/v1/admin/load" {
        m.max_load_bytes
    } else {
        m.max_body_bytes
    };
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes"),
            "payload_too_large",
        );
    }
    next.run(req).await
}

fn router(model: Arc<Model>) -> Router {
    let (max_body_bytes, max_load_bytes) = (model.max_body_bytes, model.max_load_bytes);
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        // The route's own limit replaces the default below.
        .route(
            "/v1/admin/load",
            post(admin_load).layer(DefaultBodyLimit::max(max_load_bytes)),
        )
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route: POST /v1/chat/completions, GET /v1/models, POST /v1/admin/load, GET /healthz",
                "not_found",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(model.clone(), guard))
        .with_state(model)
}

/// Serves `checkpoint` with `options` until interrupted; `on_ready` gets the bound address.
pub fn serve(
    checkpoint: &Path,
    options: ServeOptions,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let ck = Checkpoint::read(checkpoint)?;
    let (task, student) = ck.load()?;
    let name = options.name.clone().unwrap_or_else(|| {
        checkpoint
            .file_stem()
            .map_or("autotune".into(), |s| s.to_string_lossy().into_owned())
    });
    let model = Arc::new(Model {
        name,
        task,
        student,
        allow_load: options.allow_load,
        token: options.token.clone(),
        max_body_bytes: options.max_body_bytes,
        max_load_bytes: options.max_load_bytes,
        slots: Default::default(),
    });
    let app = router(model);
    let addr = options.addr;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the server runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        on_ready(listener.local_addr()?);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving")
    })
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
