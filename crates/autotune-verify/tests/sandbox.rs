//! The `code` verifier's sandbox against ordinary and hostile programs.
//!
//! These tests need `python3` (>= 3.8) on PATH: without it they fail, they do not skip. They
//! are written for Linux and for the project's machines and CI, which run as root (the
//! strongest isolation level, `root`); as another user they exercise `userns` or `guard`.
//!
//! Tests that count processes or temporary directories take the write side of `LOCK`, the
//! others the read side, so that no other sandbox runs while they count.

use std::net::TcpListener;
use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use autotune_verify::{build_verifier, AnswerVerifier, CodeVerifier, Item, Verdict};

static LOCK: RwLock<()> = RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    LOCK.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    LOCK.write().unwrap_or_else(|e| e.into_inner())
}

fn verifier(options: &[(&str, &str)]) -> CodeVerifier {
    let opts: Vec<(String, String)> = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let v = CodeVerifier::from_options(&opts).expect("valid options");
    v.interpreter()
        .expect("python3 (>= 3.8) must be installed to test the code verifier");
    v
}

fn item(program: &str, tests: &str) -> Item {
    Item {
        gold: String::new(),
        prediction: program.to_string(),
        tests: Some(tests.to_string()),
        meta: None,
    }
}

fn reason(v: &Verdict) -> &str {
    v.reason.as_deref().unwrap_or("")
}

#[track_caller]
fn assert_wrong(v: &Verdict, starts: &str) {
    assert!(!v.correct, "expected an incorrect verdict, got {v:?}");
    assert!(
        reason(v).starts_with(starts),
        "expected a reason starting with {starts:?}, got {:?}",
        reason(v)
    );
}

/// Live (not zombie) processes whose real uid is a sandbox uid, and zombies that are
/// children of this test process or own a sandbox uid.
fn sandbox_processes() -> (usize, usize) {
    let me = std::process::id().to_string();
    let mut live = 0;
    let mut zombies = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
                .unwrap_or_default()
        };
        let uid: u64 = field("Uid:").parse().unwrap_or(0);
        let sandbox_uid = (2_000_000_000..2_000_000_000 + (1 << 30)).contains(&uid);
        let zombie = field("State:") == "Z";
        if zombie && (sandbox_uid || field("PPid:") == me) {
            zombies += 1;
        } else if !zombie && sandbox_uid {
            live += 1;
        }
    }
    (live, zombies)
}

fn sandbox_dirs() -> usize {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("autotune-sandbox-")
        })
        .count()
}

#[test]
fn python_is_found_and_the_isolation_is_the_strongest_available() {
    let _g = shared();
    let v = verifier(&[]);
    let exe = v.interpreter().unwrap();
    assert!(exe.is_absolute() && exe.exists(), "{exe:?}");
    // SAFETY: geteuid cannot fail.
    if unsafe { libc_geteuid() } == 0 {
        assert_eq!(v.isolation(), "root", "{}", v.isolation_description());
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[test]
fn a_missing_interpreter_is_a_clear_verdict() {
    let v =
        CodeVerifier::from_options(&[("python".into(), "/nonexistent/python3".into())]).unwrap();
    let r = v.verify(&item("x = 1", "assert x == 1"));
    assert_wrong(&r, "/nonexistent/python3 not found");
}

#[test]
fn options_are_validated_through_the_registry() {
    for (k, val) in [
        ("timeout", "0"),
        ("timeout", "inf"),
        ("memory_mb", "1"),
        ("isolation", "docker"),
        ("disk_mb", "x"),
        ("nope", "1"),
    ] {
        let e = build_verifier("code", &[(k.to_string(), val.to_string())])
            .err()
            .unwrap_or_else(|| panic!("{k}={val} accepted"))
            .to_string();
        assert!(e.contains(&format!("`{k}")), "{e}");
    }
    assert!(build_verifier(
        "code",
        &[
            ("timeout".into(), "2.5".into()),
            ("memory_mb".into(), "256".into()),
            ("python".into(), "python3".into()),
        ]
    )
    .is_ok());
}

#[test]
fn correct_and_wrong_programs() {
    let _g = shared();
    let v = verifier(&[]);
    let tests = "assert add(2, 3) == 5\nassert add(-1, 1) == 0, 'add(-1, 1)'\n";
    let good = v.verify(&item("def add(a, b):\n    return a + b\n", tests));
    assert!(good.correct, "{good:?}");
    assert_eq!(
        good.extracted.as_deref(),
        Some("def add(a, b):\n    return a + b\n")
    );

    let wrong = v.verify(&item("def add(a, b):\n    return a - b\n", tests));
    assert_wrong(&wrong, "test failed: AssertionError");

    let msg = v.verify(&item("def add(a, b):\n    return a + b + (a < 0)\n", tests));
    assert_eq!(reason(&msg), "test failed: AssertionError: add(-1, 1)");

    // A chain of thought with fenced blocks: the last python block is the program.
    let cot = "First try:\n```python\ndef add(a, b):\n    return a * b\n```\n\
               That is wrong. Final:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.";
    let r = v.verify(&item(cot, tests));
    assert!(r.correct, "{r:?}");
    assert_eq!(
        r.extracted.as_deref(),
        Some("def add(a, b):\n    return a + b")
    );

    // No tests: never correct.
    let mut no_tests = item("x = 1", "");
    assert_wrong(&v.verify(&no_tests), "no unit tests");
    no_tests.tests = None;
    assert_wrong(&v.verify(&no_tests), "no unit tests");
}

#[test]
fn humaneval_style_check_candidate() {
    let _g = shared();
    let v = verifier(&[]);
    let tests = "def check(candidate):\n    assert candidate([1, 2, 3]) == 6\n    assert candidate([]) == 0\n";
    let good =
        "def helper(x):\n    return x\n\ndef total(xs):\n    return sum(helper(x) for x in xs)\n";
    assert!(v.verify(&item(good, tests)).correct);
    let bad = "def total(xs):\n    return len(xs)\n";
    assert_wrong(&v.verify(&item(bad, tests)), "test failed: AssertionError");
    // The entry point named explicitly, when it is not the last function.
    let named = format!("# entry_point: total\n{tests}");
    let later_helper = "def total(xs):\n    return sum(xs)\n\ndef unused(x):\n    return 0\n";
    assert!(v.verify(&item(later_helper, &named)).correct);
    assert_wrong(
        &v.verify(&item(later_helper, tests)),
        "test failed: AssertionError",
    );
}

#[test]
fn syntax_errors_and_exceptions() {
    let _g = shared();
    let v = verifier(&[]);
    let r = v.verify(&item("def f(:\n    return 1\n", "assert f() == 1"));
    assert_wrong(&r, "syntax error: SyntaxError");
    assert!(reason(&r).ends_with("(program.py line 1)"), "{r:?}");

    let r = v.verify(&item("x = 1 / 0\n", "assert True"));
    assert_wrong(&r, "program raised: ZeroDivisionError: division by zero");

    let r = v.verify(&item("def f(x):\n    return x[10]\n", "assert f([1]) == 1"));
    assert_wrong(&r, "test failed: IndexError: list index out of range");

    let r = v.verify(&item("def f():\n    return f()\n", "f()"));
    assert_wrong(&r, "test failed: RecursionError");
}

#[test]
fn leaving_early_is_not_passing() {
    let _g = shared();
    let v = verifier(&[]);
    for program in [
        "import os\nos._exit(0)\n",
        "import sys\nsys.exit(0)\n",
        "def f():\n    import os\n    os._exit(0)\n",
        "def f():\n    raise SystemExit(0)\n",
        // Forging the runner's end-of-tests line without its nonce.
        "import sys, os\nsys.stderr.write('autotune-0 ok\\n')\nos._exit(0)\n",
    ] {
        let r = v.verify(&item(program, "f()\nassert False, 'never reached'"));
        assert!(!r.correct, "{program:?} passed: {r:?}");
    }
    let r = v.verify(&item("import os\nos._exit(0)\n", "assert True"));
    assert_wrong(&r, "exited with status 0 before the tests finished");
    let r = v.verify(&item("import sys\nsys.exit(0)\n", "assert True"));
    assert_eq!(reason(&r), "program exited (SystemExit) during the program");
}

#[test]
fn infinite_loop_is_a_timeout_within_a_second_of_the_limit() {
    let _g = shared();
    let v = verifier(&[("timeout", "1")]);
    let t = Instant::now();
    let r = v.verify(&item("while True:\n    pass\n", "assert True"));
    let took = t.elapsed();
    assert_eq!(reason(&r), "timeout after 1.0 s");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(took >= Duration::from_millis(950), "took {took:?}");
    // Sleeping is a timeout too (wall clock, not CPU).
    let r = v.verify(&item("import time\ntime.sleep(60)\n", "assert True"));
    assert_eq!(reason(&r), "timeout after 1.0 s");
}

#[test]
fn fork_bomb_hits_the_process_limit_and_leaves_nothing_behind() {
    let _g = exclusive();
    let v = verifier(&[("timeout", "2")]);
    let before = sandbox_processes();
    assert_eq!(before, (0, 0), "sandbox processes before the test");
    let t = Instant::now();
    let r = v.verify(&item(
        "import os\nwhile True:\n    os.fork()\n",
        "assert True",
    ));
    assert_wrong(&r, "process limit (32) reached: BlockingIOError");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(sandbox_processes(), (0, 0), "processes left after {r:?}");

    // A bomb that ignores the refusals and keeps forking: a timeout, and nothing left.
    let stubborn =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
    let t = Instant::now();
    let r = v.verify(&item(stubborn, "assert True"));
    assert_eq!(reason(&r), "timeout after 2.0 s");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(sandbox_processes(), (0, 0), "processes left after {r:?}");

    // Threads count too.
    let threads = "import threading, time\nts = [threading.Thread(target=time.sleep, args=(5,)) for _ in range(100)]\nfor t in ts:\n    t.start()\n";
    assert_wrong(
        &v.verify(&item(threads, "assert True")),
        "process limit (32) reached",
    );

    // The host is fine: it can still start processes, and the verifier still works.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
    assert!(v.verify(&item("x = 2", "assert x == 2")).correct);
    assert_eq!(sandbox_processes(), (0, 0));
}

#[test]
fn memory_hogs_hit_the_memory_limit() {
    let _g = shared();
    let v = verifier(&[("memory_mb", "256")]);
    let r = v.verify(&item("x = bytearray(10**10)\n", "assert True"));
    assert_eq!(reason(&r), "memory limit (256 MB) exceeded: MemoryError");
    let t = Instant::now();
    let r = v.verify(&item(
        "x = []\nwhile True:\n    x.append(bytearray(10**6))\n",
        "assert True",
    ));
    assert_wrong(&r, "memory limit (256 MB) exceeded");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // A hog inside the tests is the same verdict.
    let r = v.verify(&item("def f():\n    return ' ' * 10**10\n", "f()"));
    assert_wrong(&r, "memory limit (256 MB) exceeded");
}

#[test]
fn network_is_blocked_and_the_listener_gets_nothing() {
    let _g = shared();
    let v = verifier(&[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let program = format!(
        "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=3)\ns.sendall(b'leak')\n"
    );
    let r = v.verify(&item(&program, "assert True"));
    assert_eq!(
        reason(&r),
        "network blocked: OSError: [Errno 101] Network is unreachable"
    );
    // Through the C library directly (no Python-level hook can see this one).
    let raw = format!(
        "import ctypes, socket, struct\nlibc = ctypes.CDLL(None)\n\
         fd = libc.socket(2, 1, 0)\n\
         addr = struct.pack('<HH4s8x', 2, socket.htons({port}), bytes([127, 0, 0, 1]))\n\
         rc = libc.connect(fd, addr, len(addr))\n\
         assert rc == 0, 'connect failed: errno %d' % ctypes.get_errno()\n"
    );
    let r = v.verify(&item(&raw, "assert True"));
    assert_wrong(&r, "program raised: AssertionError: connect failed");
    std::thread::sleep(Duration::from_millis(100));
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the listener received a connection: {other:?}"),
    }

    let r = v.verify(&item(
        "import socket\nsocket.getaddrinfo('example.com', 80)\n",
        "assert True",
    ));
    assert_wrong(&r, "network blocked: socket.gaierror");
    let r = v.verify(&item(
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=3)\n",
        "assert True",
    ));
    assert_wrong(&r, "network blocked");
}

#[test]
fn writes_outside_the_sandbox_are_blocked() {
    let _g = shared();
    let v = verifier(&[]);
    let outside = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        outside.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let tag = format!("autotune-escape-{}", std::process::id());
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let targets = [
        outside.path().join(&tag),
        Path::new("/tmp").join(&tag),
        Path::new(&home).join(&tag),
        Path::new("/dev/shm").join(&tag),
        Path::new("/var/tmp").join(&tag),
    ];
    for target in &targets {
        let program = format!(
            "with open({:?}, 'w') as f:\n    f.write('escaped')\n",
            target.to_str().unwrap()
        );
        let r = v.verify(&item(&program, "assert True"));
        assert!(!r.correct, "{target:?}: {r:?}");
        assert!(
            reason(&r).starts_with(
                "write outside the sandbox blocked: OSError: [Errno 30] Read-only file system"
            ) || reason(&r).starts_with("permission denied by the sandbox: PermissionError"),
            "{target:?}: {r:?}"
        );
        assert!(!target.exists(), "{target:?} was written");
    }
    // Other ways to write: os.open, rename, mkdir, a symlink out of the working directory.
    let target = outside.path().join("via-symlink");
    let program = format!(
        "import os\nos.symlink({0:?}, 'link')\nwith open('link', 'w') as f:\n    f.write('x')\n",
        target.to_str().unwrap()
    );
    assert_wrong(
        &v.verify(&item(&program, "assert True")),
        "write outside the sandbox blocked",
    );
    assert!(!target.exists());
    let program = format!(
        "import os\nos.mkdir({:?})\n",
        outside.path().join("d").to_str().unwrap()
    );
    assert_wrong(
        &v.verify(&item(&program, "assert True")),
        "write outside the sandbox blocked",
    );
    assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());

    // Inside its own directory it may write and read back.
    let r = v.verify(&item(
        "import os, tempfile\nopen('out.txt', 'w').write('hi')\nopen(os.path.expanduser('~/h'), 'w').write('h')\nwith tempfile.NamedTemporaryFile() as f:\n    f.write(b'x')\n",
        "assert open('out.txt').read() == 'hi'",
    ));
    assert!(r.correct, "{r:?}");
}

#[test]
fn the_disk_is_capped() {
    let _g = shared();
    let v = verifier(&[("disk_mb", "8")]);
    let r = v.verify(&item(
        "with open('big', 'wb') as f:\n    f.write(b'x' * (20 * 2**20))\n",
        "assert True",
    ));
    assert_wrong(&r, "disk limit (8 MB) exceeded");
    // Many files, each under the per-file cap, fill the tmpfs instead of the host's disk.
    let r = v.verify(&item(
        "for i in range(100):\n    with open(f'f{i}', 'wb') as f:\n        f.write(b'x' * (2**20))\n",
        "assert True",
    ));
    assert_wrong(&r, "disk limit (8 MB) exceeded");
}

#[test]
fn output_floods_are_cut_off() {
    let _g = shared();
    let v = verifier(&[("timeout", "10"), ("output_kib", "64")]);
    for program in [
        "while True:\n    print('spam' * 100)\n",
        "import sys\nwhile True:\n    sys.stderr.write('spam' * 100)\n",
    ] {
        let t = Instant::now();
        let r = v.verify(&item(program, "assert True"));
        assert_eq!(reason(&r), "output limit (64 KiB) exceeded");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }
    // Moderate output is fine.
    let r = v.verify(&item(
        "for i in range(1000):\n    print(i)\n",
        "assert True",
    ));
    assert!(r.correct, "{r:?}");
}

#[test]
fn the_environment_holds_no_secrets() {
    let _g = exclusive();
    // SAFETY: no other test of this binary runs while the write lock is held.
    std::env::set_var("AUTOTUNE_SECRET", "hunter2");
    let v = verifier(&[]);
    let r = v.verify(&item(
        "import os\nenv = dict(os.environ)\nwith open('/proc/self/environ', 'rb') as f:\n    raw = f.read()\n",
        "assert 'AUTOTUNE_SECRET' not in env, env\n\
         assert b'hunter2' not in raw\n\
         assert set(env) <= {'PATH', 'HOME', 'TMPDIR', 'LANG', 'LC_ALL', 'LC_CTYPE'}, sorted(env)\n\
         assert env['HOME'] == os.getcwd()\n",
    ));
    std::env::remove_var("AUTOTUNE_SECRET");
    assert!(r.correct, "{r:?}");
}

#[test]
fn background_children_are_killed_and_reaped() {
    let _g = exclusive();
    let v = verifier(&[("timeout", "2")]);
    assert_eq!(sandbox_processes(), (0, 0));
    let dirs = sandbox_dirs();
    // A child that detaches (new session, double fork) and sleeps after the program is done.
    let program = "import os, time\n\
                   if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(30)\n    os._exit(0)\n\
                   def f():\n    return 1\n";
    let t = Instant::now();
    let r = v.verify(&item(program, "assert f() == 1"));
    assert!(r.correct, "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(sandbox_processes(), (0, 0), "the sleeper survived");
    // The same on timeout, and the temporary directories are gone either way.
    let r = v.verify(&item(
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\ntime.sleep(30)\n",
        "assert True",
    ));
    assert_wrong(&r, "timeout after 2.0 s");
    assert_eq!(sandbox_processes(), (0, 0));
    assert_eq!(
        sandbox_dirs(),
        dirs,
        "a sandbox directory was left in the temp dir"
    );
}

#[test]
fn the_program_sees_a_small_world() {
    let _g = shared();
    let v = verifier(&[]);
    if v.isolation() != "root" {
        return;
    }
    let r = v.verify(&item(
        "import os\n",
        "assert os.getuid() >= 2000000000 and os.getgid() >= 2000000000\n\
         assert os.getgroups() == []\n\
         assert os.getpid() == 1\n\
         procs = [p for p in os.listdir('/proc') if p.isdigit()]\n\
         assert procs == ['1'], procs\n\
         assert os.listdir('/root') == ['.pyenv'] or not os.path.isdir('/root/.pyenv'), os.listdir('/root')\n\
         import socket\n\
         assert [n for _, n in socket.if_nameindex()] == ['lo']\n\
         import resource\n\
         assert resource.getrlimit(resource.RLIMIT_NPROC) == (32, 32)\n\
         assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)\n",
    ));
    assert!(r.correct, "{r:?}");
    // No privileges to get back: setuid binaries and setuid(0) do nothing.
    let r = v.verify(&item("import os\nos.setuid(0)\n", "assert True"));
    assert_wrong(&r, "permission denied by the sandbox: PermissionError");
}

#[test]
fn a_batch_of_16_runs_in_parallel() {
    let _g = shared();
    let v = verifier(&[("timeout", "5")]);
    let items: Vec<Item> = (0..16)
        .map(|i| {
            let body = if i % 3 == 0 { "n * n + 1" } else { "n * n" };
            item(
                &format!("import time\ndef sq(n):\n    time.sleep(0.3)\n    return {body}\n"),
                &format!("assert sq({i}) == {}", i * i),
            )
        })
        .collect();
    let t = Instant::now();
    let verdicts = v.verify_batch(&items);
    let took = t.elapsed();
    assert_eq!(verdicts.len(), 16);
    for (i, r) in verdicts.iter().enumerate() {
        if i % 3 == 0 {
            assert_wrong(r, "test failed: AssertionError");
        } else {
            assert!(r.correct, "item {i}: {r:?}");
        }
    }
    // 16 x 0.3 s in sequence would be 4.8 s.
    assert!(took < Duration::from_millis(4000), "took {took:?}");
}

#[test]
fn the_python_guard_fallback_blocks_what_it_can() {
    let _g = shared();
    let v = verifier(&[("isolation", "guard"), ("timeout", "2")]);
    assert_eq!(v.isolation(), "guard");
    assert!(v.verify(&item("x = 1", "assert x == 1")).correct);
    let r = v.verify(&item(
        "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n",
        "assert True",
    ));
    assert_wrong(&r, "network blocked");
    let tag = format!("/tmp/autotune-guard-{}", std::process::id());
    let r = v.verify(&item(
        &format!("open({tag:?}, 'w').write('x')\n"),
        "assert True",
    ));
    assert_wrong(&r, "write outside the sandbox blocked");
    assert!(!Path::new(&tag).exists());
    let r = v.verify(&item("import os\nos.fork()\n", "assert True"));
    assert_wrong(&r, "blocked by the sandbox guard");
    let r = v.verify(&item("while True:\n    pass\n", "assert True"));
    assert_eq!(reason(&r), "timeout after 2.0 s");
}

#[test]
fn stdin_is_empty_and_main_blocks_do_not_run() {
    let _g = shared();
    let v = verifier(&[]);
    let r = v.verify(&item(
        "import sys\ndata = sys.stdin.read()\nif __name__ == '__main__':\n    input()\n",
        "assert data == ''",
    ));
    assert!(r.correct, "{r:?}");
}

/// Prints the hostile-case table of the module docs (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn hostile_case_table() {
    let _g = exclusive();
    let v = verifier(&[("timeout", "1")]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cases: Vec<(&str, String)> = vec![
        ("infinite loop", "while True:\n    pass\n".into()),
        ("fork bomb", "import os\nwhile True:\n    os.fork()\n".into()),
        ("fork bomb ignoring errors", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n".into()),
        ("memory hog (bytearray(10**10))", "x = bytearray(10**10)\n".into()),
        ("memory hog (growing list)", "x = []\nwhile True:\n    x.append(bytearray(10**6))\n".into()),
        ("connect to a loopback listener", format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)\n")),
        ("DNS lookup", "import socket\nsocket.getaddrinfo('example.com', 80)\n".into()),
        ("write to /tmp/x", "open('/tmp/x', 'w').write('x')\n".into()),
        ("write to /root (home)", "open('/root/x', 'w').write('x')\n".into()),
        ("write to /dev/shm", "open('/dev/shm/x', 'w').write('x')\n".into()),
        ("fill the disk", "with open('big', 'wb') as f:\n    f.write(b'x' * (100 * 2**20))\n".into()),
        ("output flood", "while True:\n    print('spam' * 100)\n".into()),
        ("setuid(0)", "import os\nos.setuid(0)\n".into()),
        ("kill the host's PID 1", "import os\nos.kill(1, 9)\nos.kill(-1, 9)\nimport time\ntime.sleep(5)\n".into()),
        ("os._exit(0) before the tests", "import os\nos._exit(0)\n".into()),
        ("segfault", "import ctypes\nctypes.string_at(0)\n".into()),
    ];
    println!(
        "isolation: {} ({})",
        v.isolation(),
        v.isolation_description()
    );
    println!("| hostile program | verdict | time |");
    println!("|---|---|---|");
    for (name, program) in cases {
        let t = Instant::now();
        let r = v.verify(&item(&program, "assert True"));
        assert!(!r.correct);
        println!(
            "| {name} | `{}` | {:.2} s |",
            reason(&r),
            t.elapsed().as_secs_f64()
        );
        assert_eq!(sandbox_processes(), (0, 0));
    }
}
