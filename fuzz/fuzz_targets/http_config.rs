//! The HTTP client config (`--teacher-config FILE.toml`): TOML into `ChatConfig`, then
//! `validate`. A valid config must survive a TOML round trip and give an endpoint.
#![no_main]

use autotune_http::ChatConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = toml::from_str::<ChatConfig>(text) else {
        return;
    };
    if c.validate().is_err() {
        return;
    }
    let e = c.endpoint();
    assert!(e.starts_with("http://") || e.starts_with("https://"), "{e}");
    assert!(e.ends_with("/chat/completions"));
    let written = toml::to_string(&c).expect("a valid config serialises");
    let back: ChatConfig = toml::from_str(&written).expect("a written config re-reads");
    assert_eq!(back, c, "{written}");
    back.validate().expect("a re-read config validates");
});
