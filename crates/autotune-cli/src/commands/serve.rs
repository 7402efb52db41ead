//! `autotune serve`: the curriculum as an HTTP service for external trainers.

use anyhow::Result;

use crate::args::ServeArgs;

pub fn run(a: ServeArgs) -> Result<()> {
    let mut c = autotune_service::ServiceConfig::new(&a.store);
    c.bind = a.bind;
    c.port = a.port;
    c.max_body_bytes = a.max_body_mib << 20;
    c.lease_seconds = a.lease_seconds;
    c.compact_every = a.compact_every;
    if let Some(var) = &a.token_env {
        c = c.with_token_env(var)?;
    }
    autotune_service::serve(c)?;
    Ok(())
}
