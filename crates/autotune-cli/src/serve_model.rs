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
//! comes from stale weights.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use autotune_core::{Prompt, Student, Task};
pub use autotune_tasks::checkpoint::{Checkpoint, CHECKPOINT_FORMAT};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// Pushed students: slot -> (version, student).
type Slots = std::collections::HashMap<String, (u64, Arc<dyn Student>)>;

struct Model {
    name: String,
    task: Box<dyn Task>,
    student: Box<dyn Student>,
    allow_load: bool,
    /// Students pushed by trainers: slot -> (version, student).
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
                Some((v, s)) if *v == version => Some(s.clone()),
                Some((v, _)) => {
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

async fn chat(State(m): State<Arc<Model>>, body: axum::body::Bytes) -> Response {
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
    m.slots
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(req.slot.clone(), (req.version, Arc::from(student)));
    Json(json!({"model": format!("{}/{}@v{}", m.name, req.slot, req.version)})).into_response()
}

async fn admin_load(State(m): State<Arc<Model>>, body: axum::body::Bytes) -> Response {
    match tokio::task::spawn_blocking(move || load(&m, &body)).await {
        Ok(r) => r,
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            "server_error",
        ),
    }
}

async fn models(State(m): State<Arc<Model>>) -> Response {
    Json(json!({"object": "list", "data": [{"id": m.name, "object": "model", "owned_by": "autotune"}]}))
        .into_response()
}

/// Serves `checkpoint` on `addr` until interrupted; `on_ready` gets the bound address.
pub fn serve(
    checkpoint: &Path,
    name: Option<String>,
    allow_load: bool,
    addr: SocketAddr,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let ck = Checkpoint::read(checkpoint)?;
    let (task, student) = ck.load()?;
    let name = name.unwrap_or_else(|| {
        checkpoint
            .file_stem()
            .map_or("autotune".into(), |s| s.to_string_lossy().into_owned())
    });
    let model = Arc::new(Model {
        name,
        task,
        student,
        allow_load,
        slots: Default::default(),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/v1/admin/load", post(admin_load))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(64 << 20))
        .with_state(model);
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
