use autotune_core::{CoreError, ParamSpec, Params, Task};
pub const PARAMS: &[ParamSpec] = &[];
pub fn build(_: &Params, _: u64) -> Result<Box<dyn Task>, CoreError> {
    Err(CoreError::Invalid("stub".into()))
}
