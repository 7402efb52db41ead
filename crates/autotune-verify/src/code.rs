//! The `code` verifier: runs a Python program against unit tests in a sandboxed subprocess.
//!
//! # What it checks
//!
//! * `item.prediction` is a model output: a program, or text with fenced code blocks. The
//!   program is the last block labelled `python`, `py` or `python3`; failing that, the last
//!   unlabelled fenced block; failing that, the whole text.
//! * `item.tests` holds Python unit tests, run after the program in the same namespace:
//!   - plain statements, typically `assert f(2) == 4` lines;
//!   - or HumanEval style: the tests define `def check(candidate): ...` and do not call it;
//!     the verifier then calls `check(F)`, where `F` is named by a line `# entry_point: NAME`
//!     in the tests, or else is the last top-level function the program defines;
//!   - `unittest` works when the tests end with
//!     `assert unittest.main(exit=False, argv=["t"]).result.wasSuccessful()`
//!     (a `SystemExit`, whoever raises it, is a failure: see below).
//!
//!   An item without tests is an incorrect verdict (`no unit tests`).
//! * `item.gold` (a reference solution, where the task has one) is not used.
//! * The program runs with `__name__ == "solution"`, so an `if __name__ == "__main__":` block
//!   (example usage, `input()` calls) does not run, as in the HumanEval harness. Its stdin is
//!   empty.
//!
//! The verdict is correct iff the program and the tests run to completion, the process exits
//! with status 0 within the limits, and the runner's end-of-tests line (keyed by a per-run
//! nonce) is there: a program that leaves early with `sys.exit(0)` or `os._exit(0)` before the
//! tests ran is not correct. Everything else is incorrect with a reason:
//!
//! | reason | when |
//! |---|---|
//! | `test failed: AssertionError: ...` | an exception while the tests ran (the exception line, truncated) |
//! | `syntax error: SyntaxError: ... (program.py line N)` | the program does not compile |
//! | `program raised: ZeroDivisionError: ...` | an exception while the program's top level ran |
//! | `timeout after 5.0 s` | wall clock ran out (the whole sandbox is killed) |
//! | `memory limit (512 MB) exceeded: MemoryError` | RLIMIT_AS refused an allocation |
//! | `process limit (32) reached: BlockingIOError: ...` | fork or thread creation refused (RLIMIT_NPROC) |
//! | `network blocked: OSError: [Errno 101] Network is unreachable` | any connection, DNS included |
//! | `write outside the sandbox blocked: OSError: [Errno 30] Read-only file system: ...` | a write outside the working directory |
//! | `permission denied by the sandbox: PermissionError: ...` | an operation the sandbox uid may not do (`os.setuid(0)`, a 0700 directory) |
//! | `disk limit (64 MB) exceeded: ...` | the working directory's tmpfs is full, or a file passed RLIMIT_FSIZE |
//! | `output limit (1024 KiB) exceeded` | stdout or stderr passed the cap (the sandbox is killed) |
//! | `CPU time limit exceeded` | RLIMIT_CPU (several busy threads can reach it before the wall clock) |
//! | `crashed: killed by signal 11 (SIGSEGV)` | a signal ended the process |
//! | `exited with status 3 before the tests finished` / `program exited (SystemExit) during the tests` | the run ended early |
//! | `python3 not found` / `sandbox setup failed: ...` | the host cannot run the verifier |
//!
//! # The sandbox (Linux)
//!
//! Layers, in the order they are set up (root mode, `isolation=root`, which is what runs on
//! this project's machines and CI):
//!
//! 1. **Throwaway directory**: a fresh temporary directory holds the runner, the program and
//!    the tests (read-only to the program); the working directory (also `HOME` and `TMPDIR`) is
//!    a tmpfs of `disk_mb` MB and 4096 inodes mounted inside the sandbox's mount namespace, so
//!    it can never fill the host's disk and disappears with the run. The temporary directory
//!    is deleted after every verdict, timeouts included.
//! 2. **Clean process**: `python3 -I -B` (isolated mode: no user site, no `PYTHON*` variables),
//!    an environment with `PATH`, `HOME`, `TMPDIR`, `LANG` only (nothing inherited, so no
//!    secrets), no inherited file descriptors, a new session, `no_new_privs` (setuid binaries
//!    do not gain privileges).
//! 3. **Namespaces**: network (only a down loopback: no connection reaches the host, loopback
//!    included, and no DNS), mount, PID, IPC and UTS.
//! 4. **Read-only host**: inside the mount namespace every host mount is remounted read-only
//!    (`/tmp` and `/dev/shm` included); only the tmpfs working directory is writable. A fresh
//!    `/proc` shows only the sandbox's processes.
//! 5. **Unprivileged uid**: the program runs under a uid of its own (`2000000000 + ...`, one
//!    per concurrent run) with no groups and no capabilities: it owns no file of the host,
//!    cannot enter `/root`, cannot signal or trace any other process, and RLIMIT_NPROC (which
//!    the kernel does not apply to root) counts only its own processes. Where the interpreter
//!    lives under a directory that uid cannot enter (pyenv under a 0700 `/root`), an empty
//!    tmpfs covers that directory in the sandbox and only the interpreter's own directories
//!    are bind-mounted back, read-only.
//! 6. **rlimits**: RLIMIT_AS (`memory_mb`, per process), RLIMIT_CPU (timeout + 1 s),
//!    RLIMIT_NPROC (`processes`), RLIMIT_FSIZE (`disk_mb`), RLIMIT_NOFILE 256, RLIMIT_CORE 0,
//!    RLIMIT_MEMLOCK 0.
//! 7. **Supervision**: a wall-clock timeout; stdout and stderr read through `poll` into
//!    buffers capped at `output_kib`; at the end of every run, whatever happened, the
//!    namespace's PID 1 (Python) is killed, which makes the kernel kill and reap every other
//!    process of the namespace (whatever session or process group it moved to), and then
//!    every process still owned by the run's uid is killed (a helper takes that uid and
//!    signals -1) until none is left. A keeper process between the verifier and Python reaps
//!    Python, so no zombie is left to the host's PID 1 (which, on these machines, does not
//!    reap).
//!
//! What it does not protect against: kernel exploits (there is no seccomp filter); reading
//! world-readable host files (the host is visible read-only: `/etc/passwd`, the source tree);
//! CPU and memory bandwidth taken from other work on the host while a run lasts; memory is
//! limited per process, so a run may hold up to `processes` x `memory_mb` of address space at
//! once (no cgroup); a program that inspects the interpreter's frames can find the nonce, and
//! one that overrides `__eq__` or patches builtins can fool asserts (a reward hack, not an
//! escape).
//!
//! Not root: `userns` makes the same namespaces inside an unprivileged user
//! namespace (same read-only view, tmpfs, PID namespace and rlimits; no uid switch, so the
//! program runs as the caller's uid, and RLIMIT_NPROC is set to the caller's current process
//! count plus `processes`). Where user namespaces are refused too,
//! `guard` falls back to rlimits, a throwaway directory, a new session and a
//! Python audit hook that refuses sockets, DNS, process creation, ctypes and writes outside the
//! directory: defense in depth, not a boundary. [`CodeVerifier::isolation`] says which one a
//! verifier uses.
//!
//! # Options
//!
//! `timeout=SECONDS` (default 5), `memory_mb=N` (default 512, at least 64), `python=PATH`
//! (default `python3`, looked up on the verifier's `PATH`, version-manager shims resolved),
//! `processes=N` (default 32), `disk_mb=N` (default 64), `output_kib=N` (default 1024),
//! `isolation=auto|root|userns|guard` (default auto: `root` when running as root, else
//! `userns` where the kernel allows it, else `guard`; forcing `root` needs root).

mod sandbox;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::{check_options, parse_option, AnswerVerifier, Item, Verdict, VerifyError};

use sandbox::{Interpreter, Isolation};

const RUNNER: &str = include_str!("code/runner.py");

/// Resource limits of one sandboxed run.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxLimits {
    /// Wall clock, from spawn to the end of the tests.
    pub timeout_seconds: f64,
    /// Address space per process (RLIMIT_AS).
    pub memory_mb: u64,
    /// Processes and threads of the run (RLIMIT_NPROC).
    pub max_processes: u64,
    /// Size of the working directory's tmpfs, and of any one file (RLIMIT_FSIZE).
    pub disk_mb: u64,
    /// Cap on stdout, and separately on stderr; past it the run is killed.
    pub output_kib: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            timeout_seconds: 5.0,
            memory_mb: 512,
            max_processes: 32,
            disk_mb: 64,
            output_kib: 1024,
        }
    }
}

/// Runs a Python program against unit tests in a sandboxed subprocess (module docs: the
/// format, the verdicts, the layers of the sandbox).
#[derive(Debug, Default)]
pub struct CodeVerifier {
    pub limits: SandboxLimits,
    /// The interpreter to run (`python3` by default).
    pub python: Option<String>,
    /// Forces an isolation level (option `isolation=`); `None` picks the strongest this host
    /// allows.
    force_isolation: Option<Isolation>,
    interpreter: OnceLock<Result<Interpreter, String>>,
    isolation: OnceLock<Isolation>,
}

impl Clone for CodeVerifier {
    fn clone(&self) -> Self {
        Self {
            limits: self.limits.clone(),
            python: self.python.clone(),
            force_isolation: self.force_isolation,
            interpreter: self.interpreter.clone(),
            isolation: self.isolation.clone(),
        }
    }
}

fn bad(key: &str, value: &str, expected: &str) -> VerifyError {
    VerifyError::Option {
        verifier: "code".into(),
        message: format!("option `{key}={value}`: expected {expected}"),
    }
}

impl CodeVerifier {
    pub fn new(limits: SandboxLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    pub fn from_options(options: &[(String, String)]) -> Result<Self, VerifyError> {
        check_options(
            "code",
            options,
            &[
                "timeout",
                "memory_mb",
                "python",
                "processes",
                "disk_mb",
                "output_kib",
                "isolation",
            ],
        )?;
        let mut v = Self::default();
        for (k, val) in options {
            match k.as_str() {
                "timeout" => {
                    let expected = "a number of seconds in (0, 3600]";
                    let t: f64 = parse_option("code", k, val, expected)?;
                    if !(t > 0.0 && t <= 3600.0) {
                        return Err(bad(k, val, expected));
                    }
                    v.limits.timeout_seconds = t;
                }
                "memory_mb" => {
                    let expected = "an integer number of MB in [64, 1048576]";
                    let m: u64 = parse_option("code", k, val, expected)?;
                    if !(64..=1 << 20).contains(&m) {
                        return Err(bad(k, val, expected));
                    }
                    v.limits.memory_mb = m;
                }
                "processes" => {
                    let expected = "an integer in [1, 4096]";
                    let n: u64 = parse_option("code", k, val, expected)?;
                    if !(1..=4096).contains(&n) {
                        return Err(bad(k, val, expected));
                    }
                    v.limits.max_processes = n;
                }
                "disk_mb" => {
                    let expected = "an integer number of MB in [1, 65536]";
                    let n: u64 = parse_option("code", k, val, expected)?;
                    if !(1..=65536).contains(&n) {
                        return Err(bad(k, val, expected));
                    }
                    v.limits.disk_mb = n;
                }
                "output_kib" => {
                    let expected = "an integer number of KiB in [1, 1048576]";
                    let n: u64 = parse_option("code", k, val, expected)?;
                    if !(1..=1 << 20).contains(&n) {
                        return Err(bad(k, val, expected));
                    }
                    v.limits.output_kib = n;
                }
                "isolation" => {
                    v.force_isolation = match val.as_str() {
                        "auto" => None,
                        "root" => Some(Isolation::Root),
                        "userns" => Some(Isolation::UserNamespace),
                        "guard" => Some(Isolation::PythonGuard),
                        _ => return Err(bad(k, val, "auto, root, userns or guard")),
                    };
                }
                "python" => {
                    if val.trim().is_empty() || val.contains('\0') {
                        return Err(bad(k, val, "a program name or path"));
                    }
                    v.python = Some(val.clone());
                }
                _ => unreachable!("checked by check_options"),
            }
        }
        Ok(v)
    }

    fn python(&self) -> &str {
        self.python.as_deref().unwrap_or("python3")
    }

    /// The interpreter's real executable, resolved on first use; `Err` says why it cannot
    /// run (`python3 not found`, ...).
    pub fn interpreter(&self) -> Result<&std::path::Path, String> {
        self.resolved().map(|i| i.executable.as_path())
    }

    fn resolved(&self) -> Result<&Interpreter, String> {
        self.interpreter
            .get_or_init(|| sandbox::probe_interpreter(self.python()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The isolation this verifier uses: `root`, `userns` or `guard` (module docs), decided on
    /// first use unless the `isolation` option forces one.
    pub fn isolation(&self) -> &'static str {
        self.isolation_level().name()
    }

    /// What [`CodeVerifier::isolation`] amounts to, in words.
    pub fn isolation_description(&self) -> &'static str {
        self.isolation_level().describe()
    }

    fn isolation_level(&self) -> Isolation {
        if let Some(i) = self.force_isolation {
            return i;
        }
        *self.isolation.get_or_init(|| {
            // SAFETY: geteuid cannot fail.
            if unsafe { libc::geteuid() } == 0 {
                return Isolation::Root;
            }
            let Ok(interp) = self.resolved() else {
                return Isolation::UserNamespace;
            };
            let probe = self.run_with(interp, "x = 1", "assert x == 1", Isolation::UserNamespace);
            if probe.correct {
                Isolation::UserNamespace
            } else {
                Isolation::PythonGuard
            }
        })
    }

    fn run_with(
        &self,
        interp: &Interpreter,
        program: &str,
        tests: &str,
        isolation: Isolation,
    ) -> Verdict {
        let nonce = nonce();
        let spec = sandbox::RunSpec {
            interpreter: interp,
            runner: RUNNER,
            program,
            tests,
            nonce: &nonce,
            timeout: Duration::from_secs_f64(self.limits.timeout_seconds),
            memory_mb: self.limits.memory_mb,
            max_processes: self.limits.max_processes,
            disk_mb: self.limits.disk_mb,
            output_bytes: (self.limits.output_kib * 1024) as usize,
        };
        let extracted = Some(program.to_string());
        match sandbox::run(&spec, isolation) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Verdict::wrong(
                extracted,
                format!("{} not found", interp.executable.display()),
            ),
            Err(e) => Verdict::wrong(extracted, format!("sandbox setup failed: {e}")),
            Ok(outcome) => match judge(&outcome, &nonce, &self.limits) {
                None => Verdict::correct(extracted),
                Some(reason) => Verdict::wrong(extracted, reason),
            },
        }
    }
}

impl AnswerVerifier for CodeVerifier {
    fn name(&self) -> &'static str {
        "code"
    }

    fn verify(&self, item: &Item) -> Verdict {
        let program = extract_program(&item.prediction);
        let tests = item.tests.as_deref().unwrap_or("");
        if tests.trim().is_empty() {
            return Verdict::wrong(Some(program), "no unit tests (item.tests is empty)");
        }
        let interp = match self.resolved() {
            Ok(i) => i,
            Err(e) => return Verdict::wrong(Some(program), e),
        };
        self.run_with(interp, &program, tests, self.isolation_level())
    }
}

/// The program in a model output: the last fenced block labelled python/py/python3, else the
/// last unlabelled fenced block, else the whole text.
pub fn extract_program(text: &str) -> String {
    let mut python: Option<String> = None;
    let mut plain: Option<String> = None;
    let mut open: Option<(String, Vec<&str>)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(rest) = trimmed.strip_prefix("```") {
                    open = Some((rest.trim().to_ascii_lowercase(), Vec::new()));
                }
            }
            Some((label, body)) => {
                if trimmed.trim_end() == "```" {
                    let code = body.join("\n");
                    match label.as_str() {
                        "python" | "py" | "python3" => python = Some(code),
                        "" => plain = Some(code),
                        _ => {}
                    }
                    open = None;
                } else {
                    body.push(line);
                }
            }
        }
    }
    // An unclosed block at the end (output cut off) still counts.
    if let Some((label, body)) = open {
        let code = body.join("\n");
        match label.as_str() {
            "python" | "py" | "python3" => python = Some(code),
            "" => plain = Some(code),
            _ => {}
        }
    }
    python.or(plain).unwrap_or_else(|| text.to_string())
}

fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let a = h.finish();
    let mut h2 = RandomState::new().build_hasher();
    h2.write_u64(a);
    format!("autotune-{a:016x}{:016x}", h2.finish())
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push_str("...");
        t
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGSYS => "SIGSYS",
        _ => "signal",
    }
}

/// A reason for the sandbox's own refusals, read off an exception line.
fn refusal(line: &str, limits: &SandboxLimits) -> Option<String> {
    let l = truncate(line, 300);
    if line.contains("MemoryError") || line.contains("Cannot allocate memory") {
        Some(format!(
            "memory limit ({} MB) exceeded: {l}",
            limits.memory_mb
        ))
    } else if (line.contains("BlockingIOError")
        && line.contains("Resource temporarily unavailable"))
        || line.contains("can't start new thread")
    {
        Some(format!(
            "process limit ({}) reached: {l}",
            limits.max_processes
        ))
    } else if line.contains("Network is unreachable")
        || line.contains("gaierror")
        || line.contains("name resolution")
        || line.contains("Name or service not known")
        || line.contains("network blocked by the sandbox guard")
        || line.contains("Cannot assign requested address")
        || line.contains("Connection refused")
    {
        Some(format!("network blocked: {l}"))
    } else if line.contains("Read-only file system")
        || line.contains("write outside the sandbox blocked")
    {
        Some(format!("write outside the sandbox blocked: {l}"))
    } else if line.contains("No space left on device") || line.contains("File too large") {
        Some(format!("disk limit ({} MB) exceeded: {l}", limits.disk_mb))
    } else if line.contains("blocked by the sandbox guard") {
        Some(format!("blocked by the sandbox guard: {l}"))
    } else if line.starts_with("PermissionError") || line.contains("Operation not permitted") {
        Some(format!("permission denied by the sandbox: {l}"))
    } else {
        None
    }
}

/// The verdict's reason, or `None` when the run is correct.
fn judge(o: &sandbox::Outcome, nonce: &str, limits: &SandboxLimits) -> Option<String> {
    if o.timed_out {
        return Some(format!("timeout after {:.1} s", limits.timeout_seconds));
    }
    if o.output_exceeded {
        return Some(format!("output limit ({} KiB) exceeded", limits.output_kib));
    }
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let marker = format!("{nonce} ");
    let status_at = lines.iter().rposition(|l| l.starts_with(&marker));
    let before = &lines[..status_at.unwrap_or(lines.len())];
    let last = before
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let status = o.status?;
    use std::os::unix::process::ExitStatusExt;
    if let Some(at) = status_at {
        let what = lines[at][marker.len()..].trim();
        if what == "ok" && status.code() == Some(0) {
            return None;
        }
        if let Some(phase) = what.strip_prefix("exit ") {
            return Some(format!("program exited (SystemExit) during the {phase}"));
        }
        if let Some(reason) = refusal(last, limits) {
            return Some(reason);
        }
        if what == "error program" {
            if last.starts_with("SyntaxError")
                || last.starts_with("IndentationError")
                || last.starts_with("TabError")
            {
                let line_no = before
                    .iter()
                    .rev()
                    .find_map(|l| l.trim().strip_prefix("File \"program.py\", line "))
                    .map(|n| format!(" (program.py line {})", n.split(',').next().unwrap_or(n)))
                    .unwrap_or_default();
                return Some(format!("syntax error: {}{line_no}", truncate(last, 300)));
            }
            return Some(format!("program raised: {}", truncate(last, 300)));
        }
        if what == "error tests" {
            return Some(format!("test failed: {}", truncate(last, 300)));
        }
    }
    if let Some(sig) = status.signal() {
        return Some(match sig {
            libc::SIGXCPU => format!(
                "CPU time limit exceeded ({} s)",
                limits.timeout_seconds.ceil() as u64 + 1
            ),
            libc::SIGXFSZ => format!(
                "disk limit ({} MB) exceeded: file too large",
                limits.disk_mb
            ),
            s => format!("crashed: killed by signal {s} ({})", signal_name(s)),
        });
    }
    if let Some(reason) = refusal(last, limits) {
        return Some(reason);
    }
    let code = status.code().unwrap_or(-1);
    if last.is_empty() {
        Some(format!(
            "exited with status {code} before the tests finished"
        ))
    } else {
        Some(format!(
            "exited with status {code} before the tests finished: {}",
            truncate(last, 300)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_last_python_block() {
        let t = "Idea.\n```python\ndef f(): return 1\n```\nBetter:\n```python\ndef f(): return 2\n```\n```text\nout\n```";
        assert_eq!(extract_program(t), "def f(): return 2");
        assert_eq!(extract_program("```\nx = 1\n```"), "x = 1");
        assert_eq!(extract_program("x = 1\n"), "x = 1\n");
        assert_eq!(extract_program("```py\nx = 3\n"), "x = 3");
    }

    #[test]
    fn options_are_validated() {
        let o = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let v = CodeVerifier::from_options(&o("timeout", "2.5")).unwrap();
        assert_eq!(v.limits.timeout_seconds, 2.5);
        for (k, val) in [
            ("timeout", "0"),
            ("timeout", "-1"),
            ("timeout", "abc"),
            ("timeout", "NaN"),
            ("memory_mb", "10"),
            ("memory_mb", "x"),
            ("python", ""),
            ("processes", "0"),
            ("colour", "red"),
        ] {
            let e = CodeVerifier::from_options(&o(k, val))
                .unwrap_err()
                .to_string();
            assert!(e.contains(k), "{e}");
        }
        let v = CodeVerifier::from_options(&o("python", "/usr/bin/python3")).unwrap();
        assert_eq!(v.python(), "/usr/bin/python3");
    }
}
