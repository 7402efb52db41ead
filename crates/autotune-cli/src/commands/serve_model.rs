//! `autotune serve-model`: a trained student behind an OpenAI-compatible API.

use anyhow::Result;

use crate::args::ServeModelArgs;
use crate::serve_model::{serve, ServeOptions};

pub fn run(a: ServeModelArgs) -> Result<()> {
    let mut o = ServeOptions {
        addr: std::net::SocketAddr::new(a.bind, a.port),
        name: a.name,
        allow_load: a.allow_load,
        ..Default::default()
    };
    if let Some(var) = &a.token_env {
        o = o.with_token_env(var)?;
    }
    serve(&a.checkpoint, o, |addr| {
        println!("serving {} on http://{addr}/v1", a.checkpoint.display());
    })
}
