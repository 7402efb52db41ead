//! The HTTP layer: routes, JSON errors, the bearer token, the body limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::mask::MaskSpec;
use crate::pool::{
    check_name, now_unix, NextRequest, OutcomesRequest, PhaseRequest, Pool, PromptIn,
    ReleaseRequest,
};
use crate::store::{Op, Store};

/// `Json` whose rejections are API errors.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| ApiJson(v))
            .map_err(ApiError::from)
    }
}

/// Shared state of the routes.
pub struct AppState {
    pub pools: RwLock<HashMap<String, Arc<Mutex<Pool>>>>,
    pub store: Arc<Store>,
    pub token: Option<String>,
    pub default_lease_seconds: f64,
    pub compact_every: u64,
}

type Shared = Arc<AppState>;

impl AppState {
    fn pool(&self, name: &str) -> Result<Arc<Mutex<Pool>>, ApiError> {
        self.pools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no pool named `{name}`")))
    }

    fn submit(&self, ops: Vec<Op>) -> Result<u64, ApiError> {
        self.store.submit(ops).map_err(ApiError::store)
    }

    async fn wait(&self, seq: u64) -> Result<(), ApiError> {
        self.store.wait(seq).await.map_err(ApiError::store)
    }
}

fn lock(p: &Mutex<Pool>) -> std::sync::MutexGuard<'_, Pool> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    pub(crate) name: String,
    pub(crate) mask: MaskSpec,
    #[serde(default)]
    pub(crate) prompts: Vec<PromptIn>,
    #[serde(default)]
    pub(crate) seed: Option<u64>,
    #[serde(default)]
    pub(crate) lease_seconds: Option<f64>,
}

impl RegisterRequest {
    /// Checks the name and returns the pool's lease time (`default` when not given).
    pub(crate) fn check(&self, default: f64) -> Result<f64, ApiError> {
        check_name(&self.name)?;
        let lease_seconds = self.lease_seconds.unwrap_or(default);
        if !(lease_seconds.is_finite() && lease_seconds > 0.0 && lease_seconds <= 7.0 * 86400.0) {
            return Err(ApiError::invalid(
                "lease_seconds",
                "lease_seconds must be in (0, 604800]",
            ));
        }
        Ok(lease_seconds)
    }
}

/// The body of `POST .../phase`: empty is `{}`.
pub(crate) fn phase_request(body: &[u8]) -> Result<PhaseRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PhaseRequest::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))
}

/// The page size of `GET .../state` (default 100, at most [`MAX_PAGE`]).
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(100);
    if limit > MAX_PAGE {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be at most {MAX_PAGE}"),
        ));
    }
    Ok(limit)
}

async fn register(
    State(st): State<Shared>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let lease_seconds = req.check(st.default_lease_seconds)?;
    let existing = st
        .pools
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&req.name)
        .cloned();
    let pool = match existing {
        Some(p) => p,
        None => {
            let created = {
                let mut pools = st.pools.write().unwrap_or_else(|p| p.into_inner());
                match pools.get(&req.name) {
                    Some(p) => Err(p.clone()),
                    None => {
                        let (mut pool, create) = Pool::create(
                            req.name.clone(),
                            req.mask.clone(),
                            req.seed.unwrap_or(0),
                            lease_seconds,
                        )?;
                        let (added, _, add) = pool.add_prompts(req.prompts.clone())?;
                        let mut ops = vec![create];
                        ops.extend(add);
                        let seq = st.submit(ops)?;
                        pools.insert(req.name.clone(), Arc::new(Mutex::new(pool)));
                        Ok((seq, added))
                    }
                }
            };
            match created {
                Ok((seq, added)) => {
                    st.wait(seq).await?;
                    let body = json!({"pool": req.name, "created": true, "added": added,
                                      "existing": 0, "prompts": added});
                    return Ok((StatusCode::CREATED, Json(body)).into_response());
                }
                Err(p) => p,
            }
        }
    };
    let (seq, body) = {
        let mut p = lock(&pool);
        if !p.same_mask(&req.mask) {
            return Err(ApiError::conflict(format!(
                "pool `{}` exists with another mask: {}",
                req.name,
                serde_json::to_string(&p.spec).unwrap_or_default()
            ))
            .with_field("mask"));
        }
        let (added, existing, op) = p.add_prompts(req.prompts)?;
        let seq = match op {
            Some(op) => Some(st.submit(vec![op])?),
            None => None,
        };
        let body = json!({"pool": req.name, "created": false, "added": added,
                          "existing": existing, "prompts": p.prompt_count()});
        (seq, body)
    };
    if let Some(seq) = seq {
        st.wait(seq).await?;
    }
    Ok((StatusCode::OK, Json(body)).into_response())
}

async fn list_pools(State(st): State<Shared>) -> Json<Value> {
    let pools = st.pools.read().unwrap_or_else(|p| p.into_inner());
    let mut names: Vec<&String> = pools.keys().collect();
    names.sort();
    Json(json!({ "pools": names }))
}

async fn next(
    State(st): State<Shared>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<NextRequest>,
) -> Result<Json<Value>, ApiError> {
    let pool = st.pool(&name)?;
    let (seq, body) = {
        let mut p = lock(&pool);
        let (body, op) = p.next(&req, now_unix())?;
        (st.submit(vec![op])?, body)
    };
    st.wait(seq).await?;
    Ok(Json(body))
}

async fn outcomes(
    State(st): State<Shared>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<OutcomesRequest>,
) -> Result<Json<Value>, ApiError> {
    let pool = st.pool(&name)?;
    let (seq, body) = {
        let mut p = lock(&pool);
        if let Some(replay) = req.idempotency_key.as_deref().and_then(|k| p.replay(k)) {
            replay
        } else {
            let key = req.idempotency_key.clone();
            let (body, op) = p.outcomes(req)?;
            let mut ops = vec![op];
            if p.outcomes_since_compaction() >= st.compact_every {
                ops.push(p.compact());
            }
            let seq = st.submit(ops)?;
            if let Some(k) = key {
                p.remember(k, seq, body.clone());
            }
            (seq, body)
        }
    };
    st.wait(seq).await?;
    Ok(Json(body))
}

async fn release(
    State(st): State<Shared>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ReleaseRequest>,
) -> Result<Json<Value>, ApiError> {
    let pool = st.pool(&name)?;
    let (seq, body) = {
        let mut p = lock(&pool);
        let (body, op) = p.release(req, now_unix())?;
        (st.submit(vec![op])?, body)
    };
    st.wait(seq).await?;
    Ok(Json(body))
}

async fn phase(
    State(st): State<Shared>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let pool = st.pool(&name)?;
    let req = phase_request(&body)?;
    let (seq, body) = {
        let mut p = lock(&pool);
        let (body, op) = p.advance(req)?;
        (st.submit(vec![op])?, body)
    };
    st.wait(seq).await?;
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateQuery {
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Most prompts one state page lists.
pub const MAX_PAGE: usize = 10_000;

async fn get_state(
    State(st): State<Shared>,
    Path(name): Path<String>,
    q: Result<Query<StateQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) =
        q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let limit = page_limit(q.limit)?;
    let pool = st.pool(&name)?;
    let body = lock(&pool).state(q.offset.unwrap_or(0), limit, now_unix());
    Ok(Json(body))
}

async fn healthz(State(st): State<Shared>) -> Response {
    match st.store.failed() {
        None => Json(json!({"status": "ok"})).into_response(),
        Some(f) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "store_failed", "message": f})),
        )
            .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see docs/openapi.yaml")
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

async fn auth(State(st): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(token) = &st.token {
        if req.uri().path() != "/healthz" {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let ok = given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes()));
            if !ok {
                let mut r = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing or wrong bearer token (Authorization: Bearer ...)",
                )
                .into_response();
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return r;
            }
        }
    }
    next.run(req).await
}

/// The router.
pub fn router(state: Shared, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/pools", post(register).get(list_pools))
        .route("/v1/pools/{name}/next", post(next))
        .route("/v1/pools/{name}/outcomes", post(outcomes))
        .route("/v1/pools/{name}/phase", post(phase))
        .route("/v1/pools/{name}/release", post(release))
        .route("/v1/pools/{name}/state", get(get_state))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
        assert!(!same_secret(b"a", b""));
    }
}
