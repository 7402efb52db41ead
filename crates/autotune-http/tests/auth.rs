//! The API key: sent as a Bearer token, never stored, never shown.
//! (Its own test binary: it sets an environment variable, which must not race with
//! other tests reading the environment.)

mod common;

use autotune_http::{ChatClient, ChatConfig, ChatRequest, HttpError};
use common::{Fault, MockServer};

const VAR: &str = "AUTOTUNE_HTTP_TEST_API_KEY";
const KEY: &str = "sk-test-0123456789abcdef";

#[test]
fn bearer_key_from_the_environment_is_sent_but_never_stored_or_shown() {
    std::env::set_var(VAR, KEY);
    let server = MockServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.sqlite");
    let mut c = ChatConfig::new(server.base_url(), "m");
    c.api_key_env = Some(VAR.into());
    c.cache = Some(cache.clone());
    c.max_retries = 0;
    let client = ChatClient::new(c.clone()).unwrap();

    client.complete(&ChatRequest::user("hello")).unwrap();
    let seen = server.requests();
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(!format!("{client:?}").contains(KEY));

    // A server that echoes the key in its error message: the error shows it redacted.
    server.script([Fault::Status {
        code: 401,
        headers: vec![],
        body: format!(r#"{{"error":{{"message":"Incorrect API key provided: {KEY}"}}}}"#),
    }]);
    let err = client.complete(&ChatRequest::user("again")).unwrap_err();
    assert!(matches!(err, HttpError::Status { status: 401, .. }));
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
    drop(client);

    // The cache files hold no trace of the key.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "key found in cache file"
        );
    }

    // An unset variable is reported by name, without any value.
    std::env::remove_var(VAR);
    let err = ChatClient::new(c).unwrap_err();
    assert!(matches!(err, HttpError::MissingApiKey { ref var } if var == VAR));
}
