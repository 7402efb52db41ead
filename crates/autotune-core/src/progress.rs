//! Training progress from inside a student's fit, for progress bars: a process-wide hook that
//! front ends install, and a per-thread label naming the run whose fit is reporting.
//!
//! Reports are best effort and only for display; nothing is measured through them.

use std::cell::RefCell;
use std::sync::RwLock;

/// A student's progress within one fit.
#[derive(Clone, Debug, PartialEq)]
pub struct FitProgress {
    /// The run reporting (set by [`with_label`]; empty outside one).
    pub label: String,
    /// Steps done in this fit, and the fit's planned steps.
    pub step: usize,
    pub steps: usize,
    /// Mean training loss over the steps since the last report.
    pub loss: f64,
    /// The learning rate of the last step.
    pub lr: f64,
    /// Accuracy on the student's validation prompts, when it evaluates during fits.
    pub validation_accuracy: Option<f64>,
}

type Hook = Box<dyn Fn(&FitProgress) + Send + Sync>;

static HOOK: RwLock<Option<Hook>> = RwLock::new(None);

thread_local! {
    static LABEL: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Installs the hook that receives every [`FitProgress`] (replacing any earlier one).
pub fn set_hook(hook: impl Fn(&FitProgress) + Send + Sync + 'static) {
    *HOOK.write().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
}

/// Whether a hook is installed (students skip building reports otherwise).
pub fn enabled() -> bool {
    HOOK.read().map(|h| h.is_some()).unwrap_or(false)
}

/// Runs `f` with `label` as this thread's run label.
pub fn with_label<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let old = LABEL.with(|l| std::mem::replace(&mut *l.borrow_mut(), label.to_string()));
    let out = f();
    LABEL.with(|l| *l.borrow_mut() = old);
    out
}

/// The current thread's run label.
pub fn label() -> String {
    LABEL.with(|l| l.borrow().clone())
}

/// Sends `p` to the hook, if one is installed.
pub fn report(p: &FitProgress) {
    if let Ok(h) = HOOK.read() {
        if let Some(h) = h.as_ref() {
            h(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_nest_and_restore() {
        assert_eq!(label(), "");
        with_label("a", || {
            assert_eq!(label(), "a");
            with_label("b", || assert_eq!(label(), "b"));
            assert_eq!(label(), "a");
        });
        assert_eq!(label(), "");
    }
}
