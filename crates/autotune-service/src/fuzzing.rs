//! Not part of the service's API: the request bodies of every route, decoded and validated as
//! the routes do it, applied to one in-memory pool, without HTTP and without a store. The
//! fuzz targets (`fuzz/fuzz_targets/service_requests.rs`) drive it with arbitrary bodies.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{page_limit, phase_request, RegisterRequest};
use crate::error::ApiError;
use crate::pool::{NextRequest, OutcomesRequest, Pool};

/// An error as the API would answer it: the status, the error type and the message.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal {
            status: e.status.as_u16(),
            kind: e.kind,
            message: e.message,
            field: e.field,
        }
    }
}

/// `serde_json` on a body, as the routes' `Json` extractor decodes it.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| Refusal {
        status: 400,
        kind: "invalid_request",
        message: e.to_string(),
        field: None,
    })
}

/// One pool, fed request bodies.
pub struct Harness {
    pool: Option<Pool>,
    /// The clock the leases see (Unix seconds).
    pub now: f64,
    default_lease_seconds: f64,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Self {
        Harness {
            pool: None,
            now: 1.0e9,
            default_lease_seconds: 600.0,
        }
    }

    /// `POST /v1/pools`: creates the pool, or adds prompts to it.
    pub fn register(&mut self, body: &[u8]) -> Result<Value, Refusal> {
        let req: RegisterRequest = decode(body)?;
        let lease_seconds = req.check(self.default_lease_seconds)?;
        match &mut self.pool {
            None => {
                let (mut pool, _) = Pool::create(
                    req.name.clone(),
                    req.mask.clone(),
                    req.seed.unwrap_or(0),
                    lease_seconds,
                )?;
                let (added, _, _) = pool.add_prompts(req.prompts)?;
                self.pool = Some(pool);
                Ok(serde_json::json!({"created": true, "added": added}))
            }
            Some(p) => {
                if !p.same_mask(&req.mask) {
                    return Err(ApiError::conflict("another mask").into());
                }
                let (added, existing, _) = p.add_prompts(req.prompts)?;
                Ok(serde_json::json!({"created": false, "added": added, "existing": existing}))
            }
        }
    }

    fn pool(&mut self) -> Result<&mut Pool, Refusal> {
        self.pool
            .as_mut()
            .ok_or_else(|| ApiError::not_found("no pool").into())
    }

    /// `POST /v1/pools/{name}/next`.
    pub fn next(&mut self, body: &[u8]) -> Result<Value, Refusal> {
        let req: NextRequest = decode(body)?;
        let now = self.now;
        Ok(self.pool()?.next(&req, now)?.0)
    }

    /// `POST /v1/pools/{name}/outcomes`, with the idempotency replay.
    pub fn outcomes(&mut self, body: &[u8]) -> Result<Value, Refusal> {
        let req: OutcomesRequest = decode(body)?;
        let p = self.pool()?;
        if let Some((_, replay)) = req.idempotency_key.as_deref().and_then(|k| p.replay(k)) {
            return Ok(replay);
        }
        let key = req.idempotency_key.clone();
        let (body, _) = p.outcomes(req)?;
        if let Some(k) = key {
            p.remember(k, 0, body.clone());
        }
        Ok(body)
    }

    /// `POST /v1/pools/{name}/phase`.
    pub fn phase(&mut self, body: &[u8]) -> Result<Value, Refusal> {
        let req = phase_request(body)?;
        Ok(self.pool()?.advance(req)?.0)
    }

    /// `GET /v1/pools/{name}/state?offset=..&limit=..`.
    pub fn state(&mut self, offset: Option<usize>, limit: Option<usize>) -> Result<Value, Refusal> {
        let limit = page_limit(limit)?;
        let now = self.now;
        Ok(self.pool()?.state(offset.unwrap_or(0), limit, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MAX_PAGE;

    #[test]
    fn bodies_are_refused_with_client_errors() {
        let mut h = Harness::new();
        // Deep nesting stops at serde_json's limit of 128 levels: a 400, not a stack overflow.
        let deep = format!(
            r#"{{"name": "p", "mask": {{"strategy": "uniform"}}, "prompts": [{{"id": "a", "meta": {}}}]}}"#,
            "[".repeat(100_000)
        );
        let e = h.register(deep.as_bytes()).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("recursion limit exceeded"), "{e:?}");
        assert_eq!(
            h.next(br#"{"n": 1, "purpose": "teacher"}"#)
                .unwrap_err()
                .status,
            404
        );
        h.register(br#"{"name": "p", "mask": {"strategy": "uniform"}, "prompts": [{"id": "a"}]}"#)
            .unwrap();
        let e = h.next(br#"{"n": 0, "purpose": "teacher"}"#).unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (400, Some("n")));
        let e = h.phase(br#"{"expected_phase": 3}"#).unwrap_err();
        assert_eq!(e.status, 409);
        assert_eq!(h.phase(b" ").unwrap()["phase"], 1);
        assert_eq!(h.state(None, Some(MAX_PAGE + 1)).unwrap_err().status, 400);
        assert_eq!(
            h.state(Some(usize::MAX), None).unwrap()["items"],
            serde_json::json!([])
        );
    }
}
