# The AutoTune `code` verifier's runner. It runs inside the sandbox as
#   python3 -I -B -X utf8 runner.py program.py tests.py [guard]
# reads a one-line nonce from stdin, runs the program and then the tests in one namespace,
# and ends with a status line `<nonce> ok` (or `<nonce> error <phase>` / `<nonce> exit
# <phase>`) on stderr. The verifier counts a run as correct only with exit status 0 AND the
# `ok` line, so a program that exits early (sys.exit(0), os._exit(0)) before the tests have
# run is not correct. This is a guard against lazy reward hacks, not a security boundary: the
# program runs in this interpreter and could find the nonce by inspecting frames.
import sys


def _autotune_main():
    import ast
    import os
    import re
    import traceback

    nonce = sys.stdin.readline().strip()
    try:
        sys.stdin.close()
        sys.stdin = open(os.devnull, encoding="utf-8")
    except Exception:
        pass
    program_path, tests_path = sys.argv[1], sys.argv[2]
    guard = len(sys.argv) > 3 and sys.argv[3] == "guard"
    write = sys.stderr.write
    flush_out = sys.stdout.flush
    flush_err = sys.stderr.flush
    exit_now = os._exit
    getpid = os.getpid
    runner_pid = getpid()

    def status(line, code):
        # A process the program forked runs this code too: it leaves quietly, only the
        # runner's own process reports.
        if getpid() != runner_pid:
            exit_now(code)
        try:
            flush_out()
        except BaseException:
            pass
        try:
            write("\n" + nonce + " " + line + "\n")
            flush_err()
        except BaseException:
            pass
        exit_now(code)

    with open(program_path, encoding="utf-8") as f:
        program = f.read()
    with open(tests_path, encoding="utf-8") as f:
        tests = f.read()

    if guard:
        _install_guard(os.getcwd())

    # `__name__` is not "__main__": a program's `if __name__ == "__main__":` block (example
    # usage, input() calls) does not run, as in the HumanEval harness.
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    phase = "program"
    try:
        exec(compile(program, "program.py", "exec"), namespace)
        phase = "tests"
        tree = ast.parse(tests, "tests.py")
        exec(compile(tree, "tests.py", "exec"), namespace)
        # HumanEval style: the tests define check(candidate) and do not call it.
        defines_check = any(
            isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body
        )
        calls_check = any(
            isinstance(n, ast.Expr)
            and isinstance(n.value, ast.Call)
            and isinstance(n.value.func, ast.Name)
            and n.value.func.id == "check"
            for n in tree.body
        )
        if defines_check and not calls_check:
            entry = None
            for line in tests.splitlines():
                m = re.match(r"\s*#\s*entry_point\s*:\s*([A-Za-z_]\w*)\s*$", line)
                if m:
                    entry = m.group(1)
            if entry is None:
                defs = [
                    n.name
                    for n in ast.parse(program, "program.py").body
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                ]
                entry = defs[-1] if defs else None
            if entry is None or entry not in namespace:
                raise NameError(
                    "the tests define check(candidate) but the program defines no function "
                    "to pass to it (name it with a `# entry_point: NAME` line in the tests)"
                )
            namespace["check"](namespace[entry])
    except SystemExit:
        status("exit " + phase, 1)
    except BaseException:
        if getpid() == runner_pid:
            try:
                traceback.print_exc()
            except BaseException:
                pass
        status("error " + phase, 1)
    status("ok", 0)


def _install_guard(root):
    # Fallback only (no namespaces on this host): a Python audit hook. Defense in depth, NOT
    # a boundary: ctypes, or anything that reaches the C library directly, goes around it.
    import os

    root = os.path.realpath(root)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    network = {
        "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
        "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
        "socket.gethostbyname_ex", "socket.getnameinfo",
    }
    processes = {
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "subprocess.Popen", "os.startfile", "pty.spawn",
    }
    path_writes = {
        "os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.chmod", "os.chown",
        "os.symlink", "os.link", "os.truncate", "os.utime", "shutil.rmtree",
    }
    realpath = os.path.realpath
    fspath = os.fspath

    def inside(path):
        try:
            p = realpath(fspath(path))
        except Exception:
            return False
        return p == root or p.startswith(root + "/")

    def hook(event, args):
        if event in network:
            raise PermissionError("network blocked by the sandbox guard")
        if event in processes:
            raise PermissionError("process creation blocked by the sandbox guard")
        if event.startswith("ctypes."):
            raise PermissionError("ctypes blocked by the sandbox guard")
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int):
                return
            writing = (flags or 0) & write_flags or (
                isinstance(mode, str) and any(c in mode for c in "wax+")
            )
            if writing and not inside(path):
                raise PermissionError("write outside the sandbox blocked by the sandbox guard")
        elif event in path_writes:
            for a in args[:2]:
                if isinstance(a, (str, bytes, os.PathLike)) and not inside(a):
                    raise PermissionError(
                        "write outside the sandbox blocked by the sandbox guard"
                    )

    sys.addaudithook(hook)


_autotune_main()
