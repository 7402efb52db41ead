//! The service's request bodies: each route's JSON decoded and validated as the route does
//! it, applied to an in-memory pool (no HTTP, no store). The input is a sequence of requests
//! separated by 0xFE bytes, each starting with a byte that picks the route. Every refusal must
//! be a 4xx naming what is wrong, and every answer must keep the pool's books straight.
#![no_main]

use std::collections::HashSet;

use autotune_service::fuzzing::Harness;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const POOL: &str = r#"{"name": "p", "mask": {"strategy": "STRATEGY"}, "seed": 3,
  "prompts": [{"id": "a", "prompt": "1+1"}, {"id": "b"}, {"id": "c", "answer": "2"}]}"#;
const STRATEGIES: [&str; 6] = [
    "uniform",
    "autotune-cex",
    "zero-variance",
    "learnability",
    "autotune-filterboost",
    "autotune-bbm",
];

fn unit(x: &Value) -> bool {
    x.as_f64().is_some_and(|w| (0.0..=1.0).contains(&w))
}

fuzz_target!(|data: &[u8]| {
    let mut h = Harness::new();
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    if first & 1 == 1 {
        let strategy = STRATEGIES[usize::from(first >> 1) % STRATEGIES.len()];
        h.register(POOL.replace("STRATEGY", strategy).as_bytes())
            .expect("the fixed pool registers");
    }
    let mut registered: usize = if first & 1 == 1 { 3 } else { 0 };
    for req in rest.split(|b| *b == 0xFE) {
        let Some((&op, body)) = req.split_first() else {
            continue;
        };
        let result = match op % 6 {
            0 => h.register(body).inspect(|v| {
                registered += v["added"].as_u64().unwrap() as usize;
            }),
            1 => h.next(body).inspect(|v| {
                let prompts = v["prompts"].as_array().unwrap();
                let req: Value = serde_json::from_slice(body).unwrap();
                let n = if req.is_array() { &req[0] } else { &req["n"] };
                assert!(prompts.len() as u64 <= n.as_u64().unwrap());
                assert!(prompts.len() as u64 <= v["eligible"].as_u64().unwrap());
                let ids: HashSet<&str> =
                    prompts.iter().map(|p| p["id"].as_str().unwrap()).collect();
                assert_eq!(ids.len(), prompts.len(), "a prompt twice in one batch");
                for p in prompts {
                    let w = &p["weight"];
                    assert!(unit(w) && w.as_f64().unwrap() > 0.0, "{w}");
                }
            }),
            2 => h.outcomes(body).inspect(|v| {
                if v["replayed"] == false {
                    // serde also reads a struct from a JSON array (`[[...], "key"]`).
                    let req: Value = serde_json::from_slice(body).unwrap();
                    let results = if req.is_array() {
                        &req[0]
                    } else {
                        &req["results"]
                    };
                    let n = results.as_array().unwrap().len() as u64;
                    assert_eq!(
                        v["accepted"].as_u64().unwrap() + v["duplicates"].as_u64().unwrap(),
                        n
                    );
                }
            }),
            3 => h.phase(body),
            4 => {
                let num = |b: &[u8]| {
                    b.iter().take(8).fold(0usize, |a, x| {
                        a.wrapping_mul(256).wrapping_add(usize::from(*x))
                    })
                };
                let (o, l) = body.split_at(body.len() / 2);
                let offset = (!o.is_empty()).then(|| num(o));
                let limit = (!l.is_empty()).then(|| num(l) % 20_000);
                h.state(offset, limit).inspect(|v| {
                    let prompts = v["prompts"].as_u64().unwrap();
                    assert_eq!(prompts as usize, registered);
                    assert_eq!(
                        v["tested"].as_u64().unwrap() + v["untested"].as_u64().unwrap(),
                        prompts
                    );
                    assert!(
                        v["leased"].as_u64().unwrap() + v["eligible"].as_u64().unwrap() <= prompts
                    );
                    assert!(v["total_weight"].as_f64().is_some_and(f64::is_finite));
                    for p in v["items"].as_array().unwrap() {
                        assert!(unit(&p["weight"]), "{p}");
                    }
                })
            }
            _ => {
                h.now += f64::from(body.first().copied().unwrap_or(1)) * 10.0;
                Ok(Value::Null)
            }
        };
        if let Err(e) = result {
            assert!(
                matches!(e.status, 400 | 404 | 409),
                "a refusal must be a client error: {e:?}"
            );
            assert!(!e.message.is_empty());
        }
    }
});
