#!/usr/bin/env python3
"""Loader stubs for the NVIDIA libraries that PyPI's Linux torch wheel links against.

PyPI's x86_64 torch wheel is the CUDA build: its shared libraries (even libtorch_cpu.so, for
the profiler) have DT_NEEDED entries for libcudart, libcublas, libcudnn, ... which pip would
bring in as several GB of nvidia-* wheels. This benchmark runs on the CPU only, so
`setup.sh` installs torch with `--no-deps` and this script writes, into torch/lib (on the
libraries' RPATH as $ORIGIN), one small stub per missing NVIDIA library: a shared object with
the right SONAME and symbol version node that defines every symbol torch imports from it as a
function returning 100 (cudaErrorNoDevice; CUDA_ERROR_NO_DEVICE for the driver API). The
dynamic loader is satisfied, every CPU code path is the wheel's own, and any CUDA call fails
cleanly (torch.cuda.is_available() is False).

Usage: make_cuda_stubs.py TORCH_LIB_DIR   (needs gcc, readelf and ldd)
"""

import os
import re
import subprocess
import sys
import tempfile

NVIDIA = re.compile(
    r"^lib(cuda|cudart|cublas|cublasLt|cudnn[a-z_]*|cufft|cufile|curand|cusolver|cusparse|"
    r"cusparseLt|cupti|nccl|nvrtc|nvshmem_host|nvJitLink|nvToolsExt|nvperf_host)\.so(\.\d+)*$"
)
MARKER = "AUTOTUNE_CUDA_STUB"


def run(*args, env=None):
    res = subprocess.run(args, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{res.stderr}")
    return res.stdout


def torch_libs(lib_dir):
    return sorted(
        os.path.join(lib_dir, f)
        for f in os.listdir(lib_dir)
        if ".so" in f and not NVIDIA.match(f) and os.path.isfile(os.path.join(lib_dir, f))
    )


def needed_nvidia(libs):
    out = set()
    for lib in libs:
        for line in run("readelf", "-d", "-W", lib).splitlines():
            m = re.search(r"\(NEEDED\).*\[(.+)\]", line)
            if m and NVIDIA.match(m.group(1)):
                out.add(m.group(1))
    return out


def defined_symbols(libs):
    """Every symbol the libraries themselves define (never to be stubbed: a stub would
    interpose on it)."""
    out = set()
    for lib in libs:
        for line in run("readelf", "--dyn-syms", "-W", lib).splitlines():
            parts = line.split()
            if len(parts) >= 8 and parts[6] != "UND" and parts[0].endswith(":"):
                out.add(parts[7].split("@")[0])
    return out


def version_needs(lib):
    """version node -> library file, from the library's .gnu.version_r."""
    out, current = {}, None
    for line in run("readelf", "-V", "-W", lib).splitlines():
        m = re.search(r"File: (\S+)", line)
        if m:
            current = m.group(1)
            continue
        m = re.search(r"Name: (\S+)", line)
        if m and current:
            out[m.group(1)] = current
    return out


def versioned_imports(libs, sonames):
    """soname -> {version node -> symbols} for undefined symbols bound to a version of a
    library in `sonames`."""
    out = {}
    for lib in libs:
        needs = version_needs(lib)
        for line in run("readelf", "--dyn-syms", "-W", lib).splitlines():
            parts = line.split()
            if len(parts) < 8 or parts[6] != "UND":
                continue
            m = re.match(r"([^@]+)@(\S+)", parts[7])
            if m and needs.get(m.group(2)) in sonames:
                soname = needs[m.group(2)]
                out.setdefault(soname, {}).setdefault(m.group(2), set()).add(m.group(1))
    return out


def build(lib_dir, stubs):
    """stubs: soname -> {version node (None: unversioned) -> symbols}."""
    with tempfile.TemporaryDirectory() as tmp:
        for soname, nodes in sorted(stubs.items()):
            c = os.path.join(tmp, "stub.c")
            vs = os.path.join(tmp, "stub.map")
            tag = re.sub(r"[^A-Za-z0-9]", "_", soname)
            with open(c, "w") as f:
                f.write(f"/* {MARKER}: loader stub for {soname} (CPU-only torch) */\n")
                f.write(f'const char {MARKER}_{tag}[] = "stub";\n')
                for node, symbols in sorted(nodes.items(), key=lambda kv: kv[0] or ""):
                    for s in sorted(symbols):
                        f.write(f"int {s}(void) {{ return 100; }}\n")
            with open(vs, "w") as f:
                named = sorted(n for n in nodes if n)
                loose = sorted(set().union(*[nodes[n] for n in nodes if not n]) | {f"{MARKER}_{tag}"})
                # Unversioned imports bind to any version: give them the library's base node.
                base = named[0] if named else soname
                for n in named:
                    syms = set(nodes[n]) | (set(loose) if n == base else set())
                    f.write(f"{n} {{ global: {'; '.join(sorted(syms))}; }};\n")
                if not named:
                    f.write(f"{base} {{ global: {'; '.join(loose)}; }};\n")
                f.write("STUB_LOCAL { local: *; };\n")
            run(
                "gcc", "-shared", "-fPIC", "-O0", "-w", "-o", os.path.join(lib_dir, soname), c,
                f"-Wl,-soname,{soname}", f"-Wl,--version-script={vs}",
            )


def unresolved(lib_dir, libs):
    """lib -> symbols `ldd -r` cannot resolve for it (Python's C API excepted: the interpreter
    has it)."""
    env = dict(os.environ, LD_LIBRARY_PATH=lib_dir)
    missing = {}
    for lib in libs:
        res = subprocess.run(["ldd", "-r", lib], capture_output=True, text=True, env=env)
        for line in (res.stdout + res.stderr).splitlines():
            m = re.match(r"\s*undefined symbol: ([^\s,]+).*\((.+)\)\s*$", line)
            if m and not re.match(r"_?Py|_Py", m.group(1)):
                who = os.path.join(lib_dir, os.path.basename(m.group(2)))
                missing.setdefault(who, set()).add(m.group(1).split("@")[0])
    return missing


def main():
    lib_dir = os.path.abspath(sys.argv[1])
    libs = torch_libs(lib_dir)
    sonames = needed_nvidia(libs)
    if not sonames:
        print("torch links no NVIDIA library: nothing to stub")
        return
    stubs = {s: {} for s in sonames}
    for soname, nodes in versioned_imports(libs, sonames).items():
        stubs[soname] = nodes
    # Unversioned imports (nccl, cufile, cusparseLt, nvshmem, the driver API, ...): any
    # library in the importer's dependency tree may define them; put them in the stub of one
    # NVIDIA library the importer needs (libcudart's where it needs that one). `ldd -r` on
    # one library also reports symbols that another torch library defines but that are not
    # in the first one's dependency tree: those are left alone.
    own_symbols = defined_symbols(libs)
    for _ in range(5):
        build(lib_dir, stubs)
        missing = {
            lib: symbols - own_symbols
            for lib, symbols in unresolved(lib_dir, libs).items()
            if symbols - own_symbols
        }
        if not missing:
            break
        for lib, symbols in missing.items():
            own = sorted(needed_nvidia([lib]), key=lambda s: (not s.startswith("libcudart"), s))
            if not own:
                sys.exit(f"{lib}: unresolved symbols but no NVIDIA library to stub them in")
            stubs[own[0]].setdefault(None, set()).update(symbols)
    else:
        sys.exit(f"symbols still unresolved after stubbing: {missing}")
    total = sum(len(syms) for nodes in stubs.values() for syms in nodes.values())
    print(f"wrote {len(stubs)} stub libraries ({total} symbols) into {lib_dir}: "
          + ", ".join(sorted(stubs)))


if __name__ == "__main__":
    main()
