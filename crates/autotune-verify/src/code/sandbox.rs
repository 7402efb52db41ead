//! The sandboxed subprocess (Linux). See the `code` module docs for the layers.
//!
//! Process tree of one run:
//!
//! ```text
//! verifier thread
//!   └─ keeper   (the child std sees; host PID namespace; new session; root in root mode)
//!        └─ python3 -I runner.py   (PID 1 of a new PID namespace; sandbox uid in root mode)
//!             └─ whatever the program forks (same namespaces, same uid, same rlimits)
//! ```
//!
//! The keeper is forked inside `pre_exec`, after the namespaces are made: it closes every file
//! descriptor, waits for the Python process and exits with its status (re-raising its signal).
//! Python being PID 1 of its namespace means that when it dies, the kernel kills and reaps
//! every process left in the namespace, whatever session, process group or parent it has: no
//! orphan outlives a run, and no zombie is left to a host `init` that does not reap (this
//! machine's PID 1 does not).

use std::ffi::{CString, OsStr};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How a run is isolated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// Running as root: namespaces (mount, network, PID, IPC, UTS), a read-only view of the
    /// host, a private tmpfs as the working directory, rlimits, and a fresh unprivileged uid
    /// per run (so RLIMIT_NPROC holds and the program owns nothing on the host).
    Root,
    /// Not root, unprivileged user namespaces allowed: the same namespaces and read-only view,
    /// under the caller's own uid (no uid switch).
    UserNamespace,
    /// Neither: rlimits, a throwaway directory, a new session, and a Python audit hook that
    /// refuses network, process creation, ctypes and writes outside the directory. Not a
    /// security boundary.
    PythonGuard,
}

impl Isolation {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isolation::Root => "root",
            Isolation::UserNamespace => "userns",
            Isolation::PythonGuard => "guard",
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Isolation::Root => "namespaces (mount, network, PID, IPC, UTS) + read-only host view + private tmpfs + rlimits + per-run unprivileged uid",
            Isolation::UserNamespace => "user namespace + namespaces (mount, network, PID, IPC, UTS) + read-only host view + private tmpfs + rlimits",
            Isolation::PythonGuard => "rlimits + throwaway directory + Python audit hook (no kernel isolation available: not a security boundary)",
        }
    }
}

/// The interpreter, resolved once by running it outside the sandbox.
#[derive(Clone, Debug)]
pub(crate) struct Interpreter {
    /// The real executable (symlinks and version-manager shims resolved).
    pub executable: PathBuf,
    /// Directories the interpreter needs (prefixes and the executable's directory).
    pub needed: Vec<PathBuf>,
}

pub(crate) fn probe_interpreter(python: &str) -> Result<Interpreter, String> {
    let script = "import os, sys\n\
                  print(os.path.realpath(sys.executable))\n\
                  print(sys.version_info[0], sys.version_info[1])\n\
                  for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):\n    print(os.path.realpath(p))\n";
    let mut child = Command::new(python)
        .args(["-I", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                format!("{python} not found")
            } else {
                format!("cannot run {python}: {e}")
            }
        })?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{python} did not start within 60 s"));
            }
            Err(e) => return Err(format!("cannot run {python}: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{python} failed to start: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let executable = PathBuf::from(lines.next().unwrap_or_default());
    let version: Vec<u32> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    if version.len() != 2 || (version[0], version[1]) < (3, 8) {
        return Err(format!("{python} is not Python >= 3.8"));
    }
    let mut needed: Vec<PathBuf> = lines.map(PathBuf::from).collect();
    if let Some(dir) = executable.parent() {
        needed.push(dir.to_path_buf());
    }
    needed.sort();
    needed.dedup();
    // Keep only the outermost directories.
    let all = needed.clone();
    needed.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q)));
    Ok(Interpreter { executable, needed })
}

/// What the verifier learned from one run.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// `None` when the process was killed by the verifier (timeout, output flood).
    pub status: Option<std::process::ExitStatus>,
    pub timed_out: bool,
    pub output_exceeded: bool,
    /// stderr, up to the cap (stdout is read and counted, not kept).
    pub stderr: Vec<u8>,
}

pub(crate) struct RunSpec<'a> {
    pub interpreter: &'a Interpreter,
    pub runner: &'a str,
    pub program: &'a str,
    pub tests: &'a str,
    pub nonce: &'a str,
    pub timeout: Duration,
    pub memory_mb: u64,
    pub max_processes: u64,
    pub disk_mb: u64,
    pub output_bytes: usize,
}

/// Per-run uid slots: a run's uid is `UID_BASE + (pid % 2^22) * 256 + slot`, unique on the
/// host while the run lasts (distinct pids, distinct slots), above the ranges that distros and
/// container runtimes hand out.
const UID_BASE: u32 = 2_000_000_000;
const SLOTS: usize = 256;

static SLOT_TABLE: Mutex<[bool; SLOTS]> = Mutex::new([false; SLOTS]);
static SLOT_FREED: Condvar = Condvar::new();

struct Slot(usize);

impl Slot {
    fn take() -> Slot {
        let mut table = SLOT_TABLE.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(i) = table.iter().position(|b| !b) {
                table[i] = true;
                return Slot(i);
            }
            table = SLOT_FREED.wait(table).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn uid(&self) -> u32 {
        UID_BASE + (std::process::id() % (1 << 22)) * SLOTS as u32 + self.0 as u32
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = SLOT_TABLE.lock().unwrap_or_else(|e| e.into_inner());
        table[self.0] = false;
        SLOT_FREED.notify_one();
    }
}

fn cstr(p: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(p.as_ref().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with a NUL byte"))
}

/// One mount of the host, as `/proc/self/mountinfo` lists it.
struct HostMount {
    path: CString,
    flags: libc::c_ulong,
    read_only: bool,
}

fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn host_mounts() -> io::Result<Vec<HostMount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut mounts = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 6 {
            continue;
        }
        let path = CString::new(unescape_mountinfo(fields[4]))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad mountinfo"))?;
        let mut flags: libc::c_ulong = 0;
        let mut read_only = false;
        for opt in fields[5].split(',') {
            match opt {
                "ro" => read_only = true,
                "nosuid" => flags |= libc::MS_NOSUID,
                "nodev" => flags |= libc::MS_NODEV,
                "noexec" => flags |= libc::MS_NOEXEC,
                "noatime" => flags |= libc::MS_NOATIME,
                "nodiratime" => flags |= libc::MS_NODIRATIME,
                "relatime" => flags |= libc::MS_RELATIME,
                "strictatime" => flags |= libc::MS_STRICTATIME,
                _ => {}
            }
        }
        mounts.push(HostMount {
            path,
            flags,
            read_only,
        });
    }
    Ok(mounts)
}

/// Interpreter directories that sit under a directory the sandbox uid cannot enter (pyenv
/// under a 0700 `/root`): a tmpfs goes over the blocking directory inside the mount
/// namespace, and the interpreter's directories are bind-mounted back at their own paths
/// (via a staging mount point), so nothing else under it is visible.
struct Exposure {
    blocked: CString,
    mkdirs: Vec<CString>,
    /// (staging mount point, the interpreter directory)
    binds: Vec<(CString, CString)>,
}

fn other_can_enter(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o001 != 0)
        .unwrap_or(false)
}

fn exposures(interp: &Interpreter, base: &Path) -> io::Result<Vec<Exposure>> {
    let mut out: Vec<Exposure> = Vec::new();
    let mut stage = 0;
    for needed in &interp.needed {
        // The outermost ancestor (not the directory itself) that others cannot enter.
        let blocked = needed
            .ancestors()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find(|a| !other_can_enter(a));
        let Some(blocked) = blocked else { continue };
        let blocked_c = cstr(blocked)?;
        let idx = match out.iter().position(|e| e.blocked == blocked_c) {
            Some(i) => i,
            None => {
                out.push(Exposure {
                    blocked: blocked_c,
                    mkdirs: Vec::new(),
                    binds: Vec::new(),
                });
                out.len() - 1
            }
        };
        let rel = needed.strip_prefix(blocked).unwrap_or(needed);
        let mut cur = blocked.to_path_buf();
        for comp in rel.components() {
            cur.push(comp);
            let c = cstr(&cur)?;
            if !out[idx].mkdirs.contains(&c) {
                out[idx].mkdirs.push(c);
            }
        }
        let staging = base.join(format!("stage{stage}"));
        stage += 1;
        std::fs::create_dir(&staging)?;
        out[idx].binds.push((cstr(&staging)?, cstr(needed)?));
    }
    Ok(out)
}

/// Everything the child needs, computed before fork (the child only makes system calls).
struct Prepared {
    isolation: Isolation,
    uid: u32,
    gid: u32,
    work: CString,
    tmpfs_options: CString,
    mounts: Vec<HostMount>,
    exposures: Vec<Exposure>,
    uid_map: CString,
    gid_map: CString,
    rlimits: Vec<(libc::__rlimit_resource_t, libc::rlim_t, libc::rlim_t)>,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

unsafe fn write_file(path: &[u8], content: &[u8]) -> io::Result<()> {
    // `path` must be NUL-terminated.
    let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = libc::write(fd, content.as_ptr().cast(), content.len());
    libc::close(fd);
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs in the forked child before exec: only system calls, no allocation.
unsafe fn child_setup(p: &Prepared) -> io::Result<()> {
    let null = std::ptr::null::<libc::c_char>();
    libc::umask(0o022);
    check(libc::setsid())?;
    // The keeper dies with the verifier thread that spawned it.
    check(libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    ))?;
    if p.isolation == Isolation::PythonGuard {
        for &(res, soft, hard) in &p.rlimits {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            check(libc::setrlimit(res, &lim))?;
        }
        check(libc::chdir(p.work.as_ptr()))?;
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        return Ok(());
    }

    let mut flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWPID;
    if p.isolation == Isolation::UserNamespace {
        flags |= libc::CLONE_NEWUSER;
    }
    check(libc::unshare(flags))?;
    if p.isolation == Isolation::UserNamespace {
        write_file(b"/proc/self/setgroups\0", b"deny")?;
        write_file(b"/proc/self/uid_map\0", p.uid_map.as_bytes())?;
        write_file(b"/proc/self/gid_map\0", p.gid_map.as_bytes())?;
    }
    // Nothing done here propagates back to the host.
    check(libc::mount(
        null,
        c"/".as_ptr(),
        null,
        libc::MS_REC | libc::MS_PRIVATE,
        std::ptr::null(),
    ))?;
    for e in &p.exposures {
        for (staging, dir) in &e.binds {
            check(libc::mount(
                dir.as_ptr(),
                staging.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
        }
        check(libc::mount(
            c"tmpfs".as_ptr(),
            e.blocked.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=0755,size=1m".as_ptr().cast(),
        ))?;
        for d in &e.mkdirs {
            if libc::mkdir(d.as_ptr(), 0o755) < 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EEXIST) {
                    return Err(err);
                }
            }
        }
        for (staging, dir) in &e.binds {
            check(libc::mount(
                staging.as_ptr(),
                dir.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
        }
    }
    // The whole host read-only (every mount, in mountinfo order, then the new ones).
    let ro = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
    for m in &p.mounts {
        if m.read_only {
            continue;
        }
        check(libc::mount(
            null,
            m.path.as_ptr(),
            null,
            ro | m.flags,
            std::ptr::null(),
        ))?;
    }
    for e in &p.exposures {
        check(libc::mount(
            null,
            e.blocked.as_ptr(),
            null,
            ro | libc::MS_NOSUID | libc::MS_NODEV,
            std::ptr::null(),
        ))?;
        for (staging, dir) in &e.binds {
            for target in [staging, dir] {
                check(libc::mount(
                    null,
                    target.as_ptr(),
                    null,
                    ro | libc::MS_NOSUID,
                    std::ptr::null(),
                ))?;
            }
        }
    }
    // The one writable place: a size-capped tmpfs, owned by the sandbox uid, that vanishes
    // with the mount namespace.
    check(libc::mount(
        c"tmpfs".as_ptr(),
        p.work.as_ptr(),
        c"tmpfs".as_ptr(),
        libc::MS_NOSUID | libc::MS_NODEV,
        p.tmpfs_options.as_ptr().cast(),
    ))?;
    for &(res, soft, hard) in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        check(libc::setrlimit(res, &lim))?;
    }

    // The keeper / Python split: Python becomes PID 1 of the new PID namespace.
    let pid = libc::fork();
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        keeper(pid);
    }
    // Python's side: dies with the keeper.
    check(libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    ))?;
    // A /proc that shows only the sandbox's processes (mounted over the host's, read-only).
    let proc_rc = libc::mount(
        c"proc".as_ptr(),
        c"/proc".as_ptr(),
        c"proc".as_ptr(),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY,
        std::ptr::null(),
    );
    if proc_rc < 0 && p.isolation == Isolation::Root {
        return Err(io::Error::last_os_error());
    }
    check(libc::chdir(p.work.as_ptr()))?;
    if p.isolation == Isolation::Root {
        // Raw system calls: this process has one thread, no need for glibc's setxid broadcast.
        let groups: [libc::gid_t; 0] = [];
        check(libc::syscall(libc::SYS_setgroups, 0, groups.as_ptr()) as libc::c_int)?;
        check(libc::syscall(libc::SYS_setresgid, p.gid, p.gid, p.gid) as libc::c_int)?;
        check(libc::syscall(libc::SYS_setresuid, p.uid, p.uid, p.uid) as libc::c_int)?;
    }
    check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
    Ok(())
}

/// The keeper: waits for Python and exits as it did. Never returns.
unsafe fn keeper(pid: libc::pid_t) -> ! {
    // Drop every descriptor: std's exec-error pipe (so that `spawn` returns once Python has
    // exec'ed) and the output pipes (so that they close when the sandbox is gone).
    libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
    let mut status: libc::c_int = 0;
    loop {
        let r = libc::waitpid(pid, &mut status, 0);
        if r == pid {
            break;
        }
        if r < 0 && *libc::__errno_location() != libc::EINTR {
            libc::_exit(125);
        }
    }
    if libc::WIFEXITED(status) {
        libc::_exit(libc::WEXITSTATUS(status));
    }
    let sig = libc::WTERMSIG(status);
    libc::signal(sig, libc::SIG_DFL);
    libc::kill(libc::getpid(), sig);
    libc::_exit(128 + sig);
}

/// Kills every process of `uid` (root mode only): a helper takes the uid and signals -1,
/// which reaches exactly the processes that uid owns. Repeats until none is left running.
fn kill_uid(uid: u32) {
    for _ in 0..200 {
        // SAFETY: the child makes three raw system calls and exits.
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                libc::syscall(libc::SYS_setresgid, uid, uid, uid);
                if libc::syscall(libc::SYS_setresuid, uid, uid, uid) == 0 {
                    libc::kill(-1, libc::SIGKILL);
                }
                libc::_exit(0);
            }
            if pid > 0 {
                let mut st = 0;
                while libc::waitpid(pid, &mut st, 0) < 0 && *libc::__errno_location() == libc::EINTR
                {
                }
            }
        }
        if live_processes_of(uid) == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Processes (not zombies) whose real uid is `uid`.
pub(crate) fn live_processes_of(uid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    for e in dir.flatten() {
        let name = e.file_name();
        if !name.as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let mut zombie = false;
        let mut mine = false;
        for line in status.lines() {
            if let Some(s) = line.strip_prefix("State:") {
                zombie = s.trim_start().starts_with('Z') || s.trim_start().starts_with('X');
            } else if let Some(u) = line.strip_prefix("Uid:") {
                mine = u.split_whitespace().next() == Some(&uid.to_string());
            }
        }
        if mine && !zombie {
            n += 1;
        }
    }
    n
}

/// The direct children of `pid` (from `/proc/PID/task/PID/children`).
fn children_of(pid: u32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn count_processes_of_uid_for_nproc(uid: u32) -> u64 {
    live_processes_of(uid) as u64
}

/// Runs the program against the tests under `isolation`.
pub(crate) fn run(spec: &RunSpec, isolation: Isolation) -> io::Result<Outcome> {
    let base = tempfile::Builder::new()
        .prefix("autotune-sandbox-")
        .tempdir()?;
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755))?;
    for (name, text) in [
        ("runner.py", spec.runner),
        ("program.py", spec.program),
        ("tests.py", spec.tests),
    ] {
        let path = base.path().join(name);
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    }
    let work = base.path().join("work");
    std::fs::create_dir(&work)?;

    let slot = (isolation == Isolation::Root).then(Slot::take);
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = match &slot {
        Some(s) => (s.uid(), s.uid()),
        None => unsafe { (libc::getuid(), libc::getgid()) },
    };
    let mb = 1024 * 1024;
    let cpu = spec.timeout.as_secs_f64().ceil() as u64 + 1;
    let nproc = match isolation {
        Isolation::Root => spec.max_processes,
        // The caller's own uid: its processes already count.
        _ => count_processes_of_uid_for_nproc(uid) + spec.max_processes,
    };
    let rlimits = vec![
        (libc::RLIMIT_AS, spec.memory_mb * mb, spec.memory_mb * mb),
        (libc::RLIMIT_CPU, cpu, cpu + 1),
        (libc::RLIMIT_NPROC, nproc, nproc),
        (libc::RLIMIT_FSIZE, spec.disk_mb * mb, spec.disk_mb * mb),
        (libc::RLIMIT_NOFILE, 256, 256),
        (libc::RLIMIT_CORE, 0, 0),
        (libc::RLIMIT_MEMLOCK, 0, 0),
        (libc::RLIMIT_MSGQUEUE, 0, 0),
    ];
    let prepared = Prepared {
        isolation,
        uid,
        gid,
        work: cstr(&work)?,
        tmpfs_options: cstr(format!(
            "size={}m,nr_inodes=4096,mode=0700,uid={uid},gid={gid}",
            spec.disk_mb
        ))?,
        mounts: if isolation == Isolation::PythonGuard {
            Vec::new()
        } else {
            host_mounts()?
        },
        exposures: if isolation == Isolation::Root {
            exposures(spec.interpreter, base.path())?
        } else {
            Vec::new()
        },
        uid_map: cstr(format!("{uid} {uid} 1"))?,
        gid_map: cstr(format!("{gid} {gid} 1"))?,
        rlimits,
    };
    if isolation == Isolation::PythonGuard {
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o700))?;
    }

    let mut cmd = Command::new(&spec.interpreter.executable);
    cmd.arg("-I")
        .arg("-B")
        .arg("-X")
        .arg("utf8")
        .arg(base.path().join("runner.py"))
        .arg(base.path().join("program.py"))
        .arg(base.path().join("tests.py"));
    if isolation == Isolation::PythonGuard {
        cmd.arg("guard");
    }
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &work)
        .env("TMPDIR", &work)
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: `child_setup` makes system calls only; `prepared` outlives the spawn.
    let prepared = std::sync::Arc::new(prepared);
    unsafe {
        let prepared = std::sync::Arc::clone(&prepared);
        cmd.pre_exec(move || child_setup(&prepared));
    }
    let start = Instant::now();
    let child = cmd.spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            if let Some(s) = &slot {
                kill_uid(s.uid());
            }
            return Err(e);
        }
    };
    let result = supervise(&mut child, spec, start);
    // Whatever happened, nothing of the run may survive it.
    let pid = child.id();
    if isolation == Isolation::PythonGuard {
        // No keeper and no PID namespace: Python leads the process group.
        // SAFETY: plain kill(2) of a process group this run created.
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
    } else {
        // Kill the namespace's PID 1 (the keeper's one child): the kernel kills every other
        // process of the namespace, and the keeper reaps Python and exits.
        for p in children_of(pid) {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
    if let Some(s) = &slot {
        kill_uid(s.uid());
    }
    // The keeper is not killed (Python would be left a zombie to the host's PID 1); it exits
    // once Python is reaped. Only if it does not, it goes too.
    let reap_deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if Instant::now() < reap_deadline => {
                for p in children_of(pid) {
                    // SAFETY: plain kill(2).
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
    drop(slot);
    drop(base);
    result
}

fn supervise(child: &mut Child, spec: &RunSpec, start: Instant) -> io::Result<Outcome> {
    if let Some(mut stdin) = child.stdin.take() {
        // The nonce, then EOF. A program that already died just closes the pipe.
        let _ = stdin.write_all(format!("{}\n", spec.nonce).as_bytes());
    }
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out_len = 0usize;
    let mut err = Vec::new();
    let mut status = None;
    let mut exited_at: Option<Instant> = None;
    let mut timed_out = false;
    let mut output_exceeded = false;
    let deadline = start + spec.timeout;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if status.is_none() {
            if let Some(s) = child.try_wait()? {
                status = Some(s);
                exited_at = Some(Instant::now());
            }
        }
        if status.is_some() && stdout.is_none() && stderr.is_none() {
            break;
        }
        let now = Instant::now();
        if status.is_none() && now >= deadline {
            timed_out = true;
            break;
        }
        if let Some(t) = exited_at {
            // The keeper has gone and nothing of the sandbox holds the pipes any more; a
            // short grace for the kernel to close them.
            if now.duration_since(t) > Duration::from_millis(500) {
                break;
            }
        }
        let mut fds = Vec::with_capacity(2);
        if let Some(s) = &stdout {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(s) = &stderr {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let wait_ms = deadline
            .saturating_duration_since(now)
            .as_millis()
            .clamp(1, 10) as libc::c_int;
        if fds.is_empty() {
            std::thread::sleep(Duration::from_millis(wait_ms as u64));
            continue;
        }
        // SAFETY: `fds` is a valid array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if n <= 0 {
            continue;
        }
        for fd in fds {
            if fd.revents == 0 {
                continue;
            }
            let is_out = stdout.as_ref().map(|s| s.as_raw_fd()) == Some(fd.fd);
            let pipe: &mut dyn Read = if is_out {
                stdout.as_mut().expect("open")
            } else {
                stderr.as_mut().expect("open")
            };
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => {
                    if is_out {
                        stdout = None;
                    } else {
                        stderr = None;
                    }
                }
                Ok(k) if is_out => {
                    out_len += k;
                    output_exceeded |= out_len > spec.output_bytes;
                }
                Ok(k) => {
                    let room = spec.output_bytes.saturating_sub(err.len());
                    err.extend_from_slice(&buf[..k.min(room)]);
                    output_exceeded |= k > room;
                }
            }
        }
        if output_exceeded {
            break;
        }
    }
    Ok(Outcome {
        status: if timed_out || output_exceeded {
            None
        } else {
            status
        },
        timed_out,
        output_exceeded,
        stderr: err,
    })
}
