//! The neural checkpoint's `config.json`: `CheckpointMeta::parse` (format version, vocabulary,
//! model config, parameter count). An accepted config must agree with the model it describes:
//! small ones are built and their parameters counted.
#![no_main]

use autotune_neural::{CheckpointMeta, NeuralModel};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(meta) = CheckpointMeta::parse(text) else {
        return;
    };
    assert_eq!(meta.config.num_params(), Some(meta.num_params));
    let written = serde_json::to_string(&meta).unwrap();
    assert_eq!(CheckpointMeta::parse(&written).as_ref(), Ok(&meta));
    if meta.num_params <= 20_000 && meta.config.n_layers <= 4 {
        let model = NeuralModel::new(meta.config.clone(), 0).expect("an accepted config builds");
        assert_eq!(model.num_params(), meta.num_params);
    }
});
