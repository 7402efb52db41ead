//! The HTTP API end to end, on 127.0.0.1 with a temporary store.

use std::process::Command;

use autotune_service::load::{run_with_restart, Client, LoadConfig};
use autotune_service::{spawn, ServiceConfig};
use serde_json::{json, Value};

fn config(dir: &tempfile::TempDir) -> ServiceConfig {
    let mut c = ServiceConfig::new(dir.path().join("s.sqlite"));
    c.port = 0;
    c.workers = Some(2);
    c
}

fn prompts(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("p{i}"), "prompt": format!("q{i}"), "answer": i.to_string()}))
        .collect()
}

fn ok(r: Result<(u16, Value), String>) -> Value {
    let (s, v) = r.expect("transport");
    assert!((200..300).contains(&s), "status {s}: {v}");
    v
}

fn ids(v: &Value) -> Vec<String> {
    v["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

fn report(c: &Client, pool: &str, rs: &[(&str, u64, bool)]) -> Value {
    let results: Vec<Value> = rs
        .iter()
        .map(|(p, s, ok)| json!({"prompt_id": p, "sample": s, "correct": ok}))
        .collect();
    ok(c.post(
        &format!("/v1/pools/{pool}/outcomes"),
        &json!({ "results": results }),
    ))
}

#[test]
fn register_next_outcomes_state_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let svc = spawn(config(&dir)).unwrap();
    assert!(svc.addr().ip().is_loopback());
    let c = Client::new(&svc.url(), None);
    assert_eq!(ok(c.get("/healthz"))["status"], "ok");
    let r = c
        .post(
            "/v1/pools",
            &json!({"name": "math", "mask": {"strategy": "uniform"}, "prompts": prompts(10)}),
        )
        .unwrap();
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["added"], 10);
    // Idempotent by name and ids; new ids are added.
    let mut more = prompts(12);
    more.reverse();
    let v = ok(c.post(
        "/v1/pools",
        &json!({"name": "math", "mask": {"strategy": "uniform"}, "prompts": more}),
    ));
    assert_eq!(
        (
            v["created"].as_bool(),
            v["added"].as_u64(),
            v["existing"].as_u64(),
            v["prompts"].as_u64()
        ),
        (Some(false), Some(2), Some(10), Some(12))
    );
    let v = ok(c.post(
        "/v1/pools/math/next",
        &json!({"n": 5, "purpose": "rollouts", "k": 2}),
    ));
    let got = ids(&v);
    assert_eq!(got.len(), 5);
    assert_eq!(v["prompts"][0]["k"], 2);
    assert!(v["prompts"][0]["prompt"].is_string());
    // Leased prompts are not issued again while the lease lives.
    let v2 = ok(c.post(
        "/v1/pools/math/next",
        &json!({"n": 12, "purpose": "rollouts", "k": 2}),
    ));
    let got2 = ids(&v2);
    assert_eq!(got2.len(), 7);
    assert!(got2.iter().all(|p| !got.contains(p)));
    let r = report(
        &c,
        "math",
        &[(&got[0], 0, true), (&got[0], 1, false), (&got[1], 0, true)],
    );
    assert_eq!(r["accepted"], 3);
    let st = ok(c.get("/v1/pools/math/state?limit=100"));
    assert_eq!(st["counters"]["outcomes"], 3);
    assert_eq!(st["counters"]["correct"], 2);
    assert_eq!(st["ledger"]["verifier_calls"], 3);
    assert_eq!(st["counters"]["rollouts_leased"], 24);
    assert_eq!(st["prompts"], 12);
    assert_eq!(st["tested"], 2);
    assert_eq!(st["rank_histogram"], json!([0, 2]));
    let item = st["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == got[0].as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (item["rank"].as_u64(), item["max_rank"].as_u64()),
        (Some(1), Some(2))
    );
    // got[0] reported both of its k = 2 samples: its lease is released.
    assert_eq!(item["leased"], false);
    // Pagination.
    let page = ok(c.get("/v1/pools/math/state?offset=10&limit=5"));
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next_offset"].is_null());
    let page = ok(c.get("/v1/pools/math/state?offset=0&limit=5"));
    assert_eq!(page["next_offset"], 5);
    assert_eq!(ok(c.get("/v1/pools"))["pools"], json!(["math"]));
    svc.shutdown().unwrap();
}

#[test]
fn counterexample_mask_issues_only_rank_zero_prompts_and_resets_per_phase() {
    let dir = tempfile::tempdir().unwrap();
    let svc = spawn(config(&dir)).unwrap();
    let c = Client::new(&svc.url(), None);
    ok(c.post(
        "/v1/pools",
        &json!({"name": "cex", "mask": {"strategy": "autotune-cex"}, "prompts": prompts(20)}),
    ));
    let v = ok(c.post(
        "/v1/pools/cex/next",
        &json!({"n": 20, "purpose": "rollouts"}),
    ));
    assert_eq!(ids(&v).len(), 20);
    // Even prompts are answered right, odd ones wrong.
    let rs: Vec<(String, u64, bool)> = (0..20).map(|i| (format!("p{i}"), 0, i % 2 == 0)).collect();
    let rs_ref: Vec<(&str, u64, bool)> = rs.iter().map(|(p, s, b)| (p.as_str(), *s, *b)).collect();
    assert_eq!(report(&c, "cex", &rs_ref)["accepted"], 20);
    let v = ok(c.post(
        "/v1/pools/cex/next",
        &json!({"n": 20, "purpose": "teacher"}),
    ));
    let mut got: Vec<usize> = ids(&v).iter().map(|p| p[1..].parse().unwrap()).collect();
    got.sort();
    assert_eq!(got, (1..20).step_by(2).collect::<Vec<_>>());
    assert!(v["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["rank"] == 0 && p["weight"] == 1.0));
    let st = ok(c.get("/v1/pools/cex/state"));
    assert_eq!(st["counters"]["teacher_calls_leased"], 10);
    assert_eq!(st["ledger"]["teacher_calls"], 10);
    // A new model version: ranks restart, every prompt is untested again.
    let r = c
        .post(
            "/v1/pools/cex/phase",
            &json!({"model_version": "sft-1", "expected_phase": 0}),
        )
        .unwrap();
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["phase"], 1);
    let stale = c
        .post("/v1/pools/cex/phase", &json!({"expected_phase": 0}))
        .unwrap();
    assert_eq!(stale.0, 409);
    assert_eq!(stale.1["error"]["field"], "expected_phase");
    let v = ok(c.post(
        "/v1/pools/cex/next",
        &json!({"n": 20, "purpose": "rollouts"}),
    ));
    assert_eq!(ids(&v).len(), 20);
    // A late report for the old version is filed under phase 0 and does not change phase 1.
    let late = ok(c.post(
        "/v1/pools/cex/outcomes",
        &json!({"results": [{"prompt_id": "p1", "sample": 5, "correct": true, "model_version": "v0"}]}),
    ));
    assert_eq!(late["accepted"], 1);
    let st = ok(c.get("/v1/pools/cex/state"));
    assert_eq!(st["tested"], 0);
    assert_eq!(st["counters"]["outcomes"], 21);
    let unknown = c
        .post(
            "/v1/pools/cex/outcomes",
            &json!({"results": [{"prompt_id": "p1", "sample": 0, "correct": true, "model_version": "nope"}]}),
        )
        .unwrap();
    assert_eq!(unknown.0, 409);
}

#[test]
fn zero_variance_mask_skips_all_right_and_all_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let svc = spawn(config(&dir)).unwrap();
    let c = Client::new(&svc.url(), None);
    ok(c.post(
        "/v1/pools",
        &json!({"name": "zv", "mask": {"strategy": "zero-variance"}, "prompts": prompts(3)}),
    ));
    ok(c.post(
        "/v1/pools/zv/next",
        &json!({"n": 3, "purpose": "rollouts", "k": 2}),
    ));
    // p0 all right, p1 all wrong, p2 mixed.
    report(
        &c,
        "zv",
        &[
            ("p0", 0, true),
            ("p0", 1, true),
            ("p1", 0, false),
            ("p1", 1, false),
            ("p2", 0, true),
            ("p2", 1, false),
        ],
    );
    for _ in 0..5 {
        let v = ok(c.post("/v1/pools/zv/next", &json!({"n": 3, "purpose": "teacher"})));
        assert!(ids(&v).iter().all(|p| p == "p2"), "{v}");
        ok(c.post("/v1/pools/zv/phase", &json!({})));
        ok(c.post(
            "/v1/pools/zv/next",
            &json!({"n": 3, "purpose": "rollouts", "k": 2}),
        ));
        let ph = ok(c.get("/v1/pools/zv/state"))["phase"].as_u64().unwrap();
        let v0 = format!("v{ph}");
        let rs: Vec<Value> = [("p0", true), ("p0", true), ("p1", false), ("p1", false), ("p2", true), ("p2", false)]
            .iter()
            .enumerate()
            .map(|(j, (p, ok))| json!({"prompt_id": p, "sample": j % 2, "correct": ok, "model_version": v0}))
            .collect();
        ok(c.post("/v1/pools/zv/outcomes", &json!({ "results": rs })));
    }
}

#[test]
fn idempotency_keys_and_duplicate_samples_are_not_double_counted() {
    let dir = tempfile::tempdir().unwrap();
    let svc = spawn(config(&dir)).unwrap();
    let c = Client::new(&svc.url(), None);
    ok(c.post(
        "/v1/pools",
        &json!({"name": "i", "mask": {"strategy": "learnability"}, "prompts": prompts(4)}),
    ));
    let body = json!({"idempotency_key": "k1", "results": [
        {"prompt_id": "p0", "sample": 0, "correct": true},
        {"prompt_id": "p1", "sample": 0, "correct": false}]});
    let a = ok(c.post("/v1/pools/i/outcomes", &body));
    assert_eq!(
        (a["accepted"].as_u64(), a["replayed"].as_bool()),
        (Some(2), Some(false))
    );
    let b = ok(c.post("/v1/pools/i/outcomes", &body));
    assert_eq!(
        (b["accepted"].as_u64(), b["replayed"].as_bool()),
        (Some(2), Some(true))
    );
    // Same samples without a key: duplicates, answered but not counted.
    let d = report(&c, "i", &[("p0", 0, true), ("p2", 0, true)]);
    assert_eq!(
        (d["accepted"].as_u64(), d["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(d["duplicate_indices"], json!([0]));
    let st = ok(c.get("/v1/pools/i/state"));
    assert_eq!(st["counters"]["outcomes"], 3);
    assert_eq!(st["counters"]["duplicates"], 1);
    // The key survives a restart.
    svc.shutdown().unwrap();
    let svc = spawn(config(&dir)).unwrap();
    let c = Client::new(&svc.url(), None);
    let e = ok(c.post("/v1/pools/i/outcomes", &body));
    assert_eq!(e["replayed"], true);
    assert_eq!(ok(c.get("/v1/pools/i/state"))["counters"]["outcomes"], 3);
}

#[test]
fn restart_keeps_outcomes_phases_leases_and_the_rng_stream() {
    let dir = tempfile::tempdir().unwrap();
    let draws = |c: &Client| {
        ids(&ok(c.post(
            "/v1/pools/r/next",
            &json!({"n": 3, "purpose": "teacher", "lease_seconds": 0.001}),
        )))
    };
    let (before, after_restart);
    {
        let svc = spawn(config(&dir)).unwrap();
        let c = Client::new(&svc.url(), None);
        ok(c.post(
            "/v1/pools",
            &json!({"name": "r", "seed": 7, "mask": {"strategy": "autotune-bbm", "phases": 3}, "prompts": prompts(50)}),
        ));
        report(&c, "r", &[("p0", 0, true), ("p1", 0, false)]);
        ok(c.post("/v1/pools/r/phase", &json!({"model_version": "m1"})));
        report(&c, "r", &[("p0", 0, false)]);
        ok(c.post(
            "/v1/pools/r/next",
            &json!({"n": 2, "purpose": "rollouts", "k": 3, "lease_seconds": 3600}),
        ));
        before = ok(c.get("/v1/pools/r/state?limit=50"));
        draws(&c);
        std::thread::sleep(std::time::Duration::from_millis(5));
        after_restart = draws(&c);
        svc.shutdown().unwrap();
    }
    // A second store replays the same calls: the draw after a restart equals the draw without.
    let svc = spawn(config(&dir)).unwrap();
    let c = Client::new(&svc.url(), None);
    let after = ok(c.get("/v1/pools/r/state?limit=50"));
    for key in ["phase", "model_versions", "rank_histogram", "mask"] {
        assert_eq!(before[key], after[key], "{key}");
    }
    assert_eq!(
        before["counters"]["outcomes"],
        after["counters"]["outcomes"]
    );
    assert_eq!(before["leased"], 2);
    assert_eq!(after["leased"], 2);
    // p0: member v0 right, member m1 wrong -> rank 1 of 2 (the K = 3 boundary).
    let p0 = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "p0")
        .unwrap()
        .clone();
    assert_eq!(
        (
            p0["rank"].as_u64(),
            p0["max_rank"].as_u64(),
            p0["weight"].as_f64()
        ),
        (Some(1), Some(2), Some(1.0))
    );
    std::thread::sleep(std::time::Duration::from_millis(5));
    drop(svc);
    // The RNG stream is a function of the seed and the call number, so a second store with the
    // same history, restarted between the two teacher draws, draws the same second batch.
    let dir2 = tempfile::tempdir().unwrap();
    let svc = spawn(config(&dir2)).unwrap();
    let c = Client::new(&svc.url(), None);
    ok(c.post(
        "/v1/pools",
        &json!({"name": "r", "seed": 7, "mask": {"strategy": "autotune-bbm", "phases": 3}, "prompts": prompts(50)}),
    ));
    report(&c, "r", &[("p0", 0, true), ("p1", 0, false)]);
    ok(c.post("/v1/pools/r/phase", &json!({"model_version": "m1"})));
    report(&c, "r", &[("p0", 0, false)]);
    ok(c.post(
        "/v1/pools/r/next",
        &json!({"n": 2, "purpose": "rollouts", "k": 3, "lease_seconds": 3600}),
    ));
    draws(&c);
    svc.shutdown().unwrap();
    let svc = spawn(config(&dir2)).unwrap();
    let c = Client::new(&svc.url(), None);
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(draws(&c), after_restart);
}

#[test]
fn limits_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.token = Some("s3cret".into());
    cfg.max_body_bytes = 64 * 1024;
    let svc = spawn(cfg).unwrap();
    let anon = Client::new(&svc.url(), None);
    let wrong = Client::new(&svc.url(), Some("nope"));
    let c = Client::new(&svc.url(), Some("s3cret"));
    // /healthz is open; everything else needs the token.
    assert_eq!(anon.get("/healthz").unwrap().0, 200);
    for cl in [&anon, &wrong] {
        let (s, v) = cl.get("/v1/pools").unwrap();
        assert_eq!(s, 401);
        assert_eq!(v["error"]["type"], "unauthorized");
    }
    let (s, v) = c.get("/v1/pools/none/state").unwrap();
    assert_eq!((s, v["error"]["type"].as_str()), (404, Some("not_found")));
    assert_eq!(
        c.post(
            "/v1/pools/none/next",
            &json!({"n": 1, "purpose": "teacher"})
        )
        .unwrap()
        .0,
        404
    );
    let big = json!({"name": "big", "mask": {"strategy": "uniform"},
                     "prompts": [{"id": "x", "prompt": "a".repeat(100 * 1024)}]});
    let (s, v) = c.post("/v1/pools", &big).unwrap();
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (413, Some("payload_too_large"))
    );
    // 400s name the field.
    let (s, v) = c
        .post(
            "/v1/pools",
            &json!({"name": "m", "mask": {"strategy": "bogus"}}),
        )
        .unwrap();
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("mask.strategy"))
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("autotune-cex"));
    let (s, v) = c
        .post(
            "/v1/pools",
            &json!({"name": "bad name", "mask": {"strategy": "uniform"}}),
        )
        .unwrap();
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("name")));
    ok(c.post(
        "/v1/pools",
        &json!({"name": "m", "mask": {"strategy": "uniform"}, "prompts": prompts(2)}),
    ));
    let (s, v) = c
        .post("/v1/pools/m/next", &json!({"purpose": "teacher"}))
        .unwrap();
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("n")));
    let (s, v) = c
        .post("/v1/pools/m/next", &json!({"n": 0, "purpose": "teacher"}))
        .unwrap();
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("n")));
    let (s, v) = c
        .post(
            "/v1/pools/m/outcomes",
            &json!({"results": [{"prompt_id": "p0", "sample": 0, "correct": "yes"}]}),
        )
        .unwrap();
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("results[0].correct"))
    );
    let (s, v) = c
        .post(
            "/v1/pools/m/outcomes",
            &json!({"results": [{"prompt_id": "zz", "sample": 0, "correct": true}]}),
        )
        .unwrap();
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("results[0].prompt_id"))
    );
    let (s, _) = c.post_raw("/v1/pools/m/outcomes", "{not json").unwrap();
    assert_eq!(s, 400);
    // Conflicts: another mask, a prompt id with other content.
    let (s, v) = c
        .post(
            "/v1/pools",
            &json!({"name": "m", "mask": {"strategy": "autotune-cex"}}),
        )
        .unwrap();
    assert_eq!((s, v["error"]["field"].as_str()), (409, Some("mask")));
    let (s, _) = c.post("/v1/pools", &json!({"name": "m", "mask": {"strategy": "uniform"}, "prompts": [{"id": "p0", "prompt": "changed"}]})).unwrap();
    assert_eq!(s, 409);
    let (s, v) = c.get("/v1/nowhere").unwrap();
    assert_eq!((s, v["error"]["type"].as_str()), (404, Some("not_found")));
}

#[test]
fn concurrent_clients_get_disjoint_leases_and_every_ack_counts() {
    let dir = tempfile::tempdir().unwrap();
    let svc = spawn(config(&dir)).unwrap();
    let url = svc.url();
    let c = Client::new(&url, None);
    ok(c.post(
        "/v1/pools",
        &json!({"name": "cc", "mask": {"strategy": "uniform"}, "prompts": prompts(400)}),
    ));
    let leased: Vec<Vec<String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..16)
            .map(|_| {
                let url = url.clone();
                s.spawn(move || {
                    let c = Client::new(&url, None);
                    let mut mine = Vec::new();
                    for _ in 0..5 {
                        let v = ok(c.post("/v1/pools/cc/next", &json!({"n": 5, "purpose": "rollouts", "k": 1})));
                        let got = ids(&v);
                        let rs: Vec<Value> = v["prompts"].as_array().unwrap().iter()
                            .map(|p| json!({"prompt_id": p["id"], "sample": p["sample_base"], "correct": true}))
                            .collect();
                        let r = ok(c.post("/v1/pools/cc/outcomes", &json!({"results": rs})));
                        assert_eq!(r["accepted"].as_u64(), Some(got.len() as u64));
                        mine.extend(got);
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<&String> = leased.iter().flatten().collect();
    assert_eq!(all.len(), 400);
    let st = ok(c.get("/v1/pools/cc/state"));
    assert_eq!(st["counters"]["outcomes"], 400);
    // Uniform mask: each prompt was leased by one client at a time; with 400 prompts and 400
    // draws, each lease ends when its one sample is reported, so ids may repeat, but the
    // sample indices never collide: no duplicates.
    assert_eq!(st["counters"]["duplicates"], 0);
}

/// The CI-sized load test: 8 clients x 2 s against the real binary, SIGKILL, restart, count.
#[test]
fn load_then_sigkill_then_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("load.sqlite");
    let launch = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_autotune-service"));
        // Compactions during the load: the SIGKILL may land in one.
        c.args(["--port", "0", "--compact-every", "500", "--store"])
            .arg(&store);
        c
    };
    let cfg = LoadConfig {
        clients: 8,
        seconds: 2.0,
        prompts: 512,
        ..LoadConfig::default()
    };
    let (rep, ver) = run_with_restart(launch, &cfg).unwrap();
    assert!(rep.acknowledged_outcomes > 100, "{}", rep.render());
    assert_eq!(rep.errors, 0, "{}", rep.render());
    assert!(ver.ok(), "{ver:?}");
    assert_eq!(ver.stored, rep.acknowledged_outcomes);
    // The file itself, read offline, agrees.
    assert_eq!(
        autotune_service::stored_outcome_count(&store, "load").unwrap(),
        Some(rep.acknowledged_outcomes)
    );
    // And the binary refuses bad flags with exit code 2.
    let bad = Command::new(env!("CARGO_BIN_EXE_autotune-service"))
        .arg("--nope")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// Two services on one store would each keep the state in memory and write over each other's:
/// the second is refused with the holder's pid, and the store is free again once the first
/// stops.
#[test]
fn a_second_service_on_the_same_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = spawn(config(&dir)).unwrap();
    let Err(e) = spawn(config(&dir)) else {
        panic!("a second service opened the same store");
    };
    let msg = e.to_string();
    assert!(
        msg.contains("in use by another autotune serve")
            && msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    drop(first);
    spawn(config(&dir)).unwrap();
}

#[test]
fn released_leases_are_eligible_again_and_stay_released_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let svc = spawn(config(&dir)).unwrap();
        let c = Client::new(&svc.url(), None);
        ok(c.post(
            "/v1/pools",
            &json!({"name": "rel", "mask": {"strategy": "uniform"}, "prompts": prompts(4)}),
        ));
        let got = ids(&ok(c.post(
            "/v1/pools/rel/next",
            &json!({"n": 4, "purpose": "rollouts", "k": 2, "lease_seconds": 3600}),
        )));
        assert_eq!(got.len(), 4);
        // Everything is leased: nothing more to draw.
        let none = ok(c.post(
            "/v1/pools/rel/next",
            &json!({"n": 4, "purpose": "rollouts", "k": 2}),
        ));
        assert_eq!(ids(&none).len(), 0);
        // One prompt used (both samples reported: its lease ends by itself); two released
        // unused; one released twice in the same request (the second is not leased).
        report(&c, "rel", &[(&got[0], 0, true), (&got[0], 1, false)]);
        let r = ok(c.post(
            "/v1/pools/rel/release",
            &json!({"prompt_ids": [&got[1], &got[2], &got[2], &got[0]]}),
        ));
        assert_eq!(
            (r["released"].as_u64(), r["not_leased"].as_u64()),
            (Some(2), Some(2))
        );
        let state = ok(c.get("/v1/pools/rel/state"));
        assert_eq!(state["leased"], 1);
        assert_eq!(state["counters"]["outcomes"], 2);
        // An unknown id refuses the whole request, naming it.
        let (status, e) = c
            .post(
                "/v1/pools/rel/release",
                &json!({"prompt_ids": [&got[3], "nope"]}),
            )
            .unwrap();
        assert_eq!(status, 400, "{e}");
        assert_eq!(e["error"]["field"], "prompt_ids[1]");
        assert_eq!(ok(c.get("/v1/pools/rel/state"))["leased"], 1);
        svc.shutdown().unwrap();
    }
    // After a restart the released leases stay released: three prompts are eligible.
    let svc = spawn(config(&dir)).unwrap();
    let c = Client::new(&svc.url(), None);
    assert_eq!(ok(c.get("/v1/pools/rel/state"))["leased"], 1);
    let again = ids(&ok(c.post(
        "/v1/pools/rel/next",
        &json!({"n": 4, "purpose": "rollouts", "k": 1}),
    )));
    assert_eq!(again.len(), 3);
}

/// The same history on a store that compacts every 7 outcomes and on one that never does: after
/// a restart both answer the same state, the same duplicates (of samples now held only as
/// ranges) and the same idempotency replays, and the compacting store keeps fewer outcome rows.
#[test]
fn compaction_keeps_every_count_duplicate_lease_and_replay_across_a_restart() {
    let history = |c: &Client| {
        ok(c.post(
            "/v1/pools",
            &json!({"name": "c", "seed": 3, "mask": {"strategy": "autotune-bbm", "phases": 3}, "prompts": prompts(20)}),
        ));
        for round in 0..3u64 {
            let rs: Vec<(String, u64, bool)> = (0..10)
                .map(|i| (format!("p{i}"), round, (i + round) % 3 == 0))
                .collect();
            let rs: Vec<(&str, u64, bool)> =
                rs.iter().map(|(p, s, c)| (p.as_str(), *s, *c)).collect();
            report(c, "c", &rs);
        }
        // A duplicate, a gap in the sample numbers, and one under an idempotency key.
        report(c, "c", &[("p1", 0, true), ("p2", 7, true)]);
        ok(c.post(
            "/v1/pools/c/outcomes",
            &json!({"idempotency_key": "k1", "results": [{"prompt_id": "p3", "sample": 9, "correct": true, "tokens": 11}]}),
        ));
        ok(c.post("/v1/pools/c/phase", &json!({"model_version": "m1"})));
        report(
            c,
            "c",
            &[("p0", 0, true), ("p4", 0, false), ("p4", 1, true)],
        );
        // A straggler's late report for the first model.
        ok(c.post(
            "/v1/pools/c/outcomes",
            &json!({"results": [{"prompt_id": "p5", "sample": 3, "correct": false, "model_version": "v0"}]}),
        ));
        let leased = ids(&ok(c.post(
            "/v1/pools/c/next",
            &json!({"n": 2, "purpose": "rollouts", "k": 3, "lease_seconds": 3600}),
        )));
        report(c, "c", &[(leased[0].as_str(), 5, true)]);
        ok(c.get("/v1/pools/c/state?limit=50"))
    };
    let run = |compact_every: u64| {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(&dir);
        cfg.compact_every = compact_every;
        let before = {
            let svc = spawn(cfg.clone()).unwrap();
            let state = history(&Client::new(&svc.url(), None));
            svc.shutdown().unwrap();
            state
        };
        let conn = rusqlite::Connection::open(&cfg.store).unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM outcomes", [], |r| r.get(0))
            .unwrap();
        drop(conn);
        let svc = spawn(cfg.clone()).unwrap();
        let c = Client::new(&svc.url(), None);
        let after = ok(c.get("/v1/pools/c/state?limit=50"));
        assert_eq!(before, after, "compact_every {compact_every}");
        // Samples reported before the restart are still duplicates, in both phases.
        let dup = ok(c.post(
            "/v1/pools/c/outcomes",
            &json!({"results": [
                {"prompt_id": "p1", "sample": 2, "correct": true, "model_version": "v0"},
                {"prompt_id": "p2", "sample": 7, "correct": false, "model_version": "v0"},
                {"prompt_id": "p0", "sample": 0, "correct": true},
            ]}),
        ));
        assert_eq!(dup["duplicates"], 3, "{dup}");
        let late = ok(c.post(
            "/v1/pools/c/outcomes",
            &json!({"results": [{"prompt_id": "p5", "sample": 3, "correct": true, "model_version": "v0"}]}),
        ));
        assert_eq!(late["duplicates"], 1, "{late}");
        let replay = ok(c.post(
            "/v1/pools/c/outcomes",
            &json!({"idempotency_key": "k1", "results": [{"prompt_id": "p3", "sample": 9, "correct": true, "tokens": 11}]}),
        ));
        assert_eq!(replay["replayed"], true, "{replay}");
        let end = ok(c.get("/v1/pools/c/state?limit=50"));
        svc.shutdown().unwrap();
        let stored = autotune_service::stored_outcome_count(&cfg.store, "c")
            .unwrap()
            .unwrap();
        assert_eq!(Some(stored), end["counters"]["outcomes"].as_u64());
        (after, end, rows)
    };
    let (never, never_end, never_rows) = run(u64::MAX);
    let (every7, every7_end, every7_rows) = run(7);
    assert_eq!(never, every7);
    assert_eq!(never_end, every7_end);
    assert_eq!(never["counters"]["outcomes"], 37);
    assert_eq!(never_rows, 37);
    assert!(
        every7_rows < 7,
        "{every7_rows} outcome rows left after compaction"
    );
}
