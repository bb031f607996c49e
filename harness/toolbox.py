"""The toolbox per track (fixtures/toolbox.toml): what a candidate may import, shown and enforced.

One source for three things:

* the text the candidate contract, the README and the evolve prompt show
  (`Toolbox.available_text`);
* the sandbox's file-system view: `Toolbox.sandbox_entries` lists the files of the track's
  distributions, the only packages harness/sandbox.py binds beside the standard library and
  the harness (what is not there cannot be imported, whatever a candidate does);
* the guard the worker installs before a candidate loads (`install_guard`): a PEP 578 audit hook
  (hooks cannot be removed) that refuses imports outside the toolbox with a message listing what
  is available, refuses running any executable (plus a seccomp filter denying execve), refuses
  `ctypes` library loading and symbol lookup from the candidate, and refuses reloading a guarded
  module; and wrappers on the library codec entry points (`[library_codecs]`) that record each
  use ("libx264 via av", "cv2.imencode(.webp)") and, in the native track, refuse it.

The guard runs in the candidate's own interpreter, so it names what went wrong; the walls are
the file-system view (PyAV's files are not in the native view) and the kernel's seccomp filter.
"""

from __future__ import annotations

import functools
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.errors import ConfigError

__all__ = [
    "TRACKS",
    "CodecGuard",
    "LibraryCodecError",
    "ToolModule",
    "Toolbox",
    "ToolboxImportError",
    "Track",
    "install_guard",
    "library_codec_message",
    "load_toolbox",
]

Track = Literal["native", "open"]
TRACKS: tuple[str, ...] = ("native", "open")
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "toolbox.toml"
TOOLBOX_ENV = "CODEC_HARNESS_TOOLBOX"


def toolbox_path() -> Path:
    """The toolbox file: $CODEC_HARNESS_TOOLBOX, else the checkout's fixtures/toolbox.toml (beside this
    package: a checkout, an editable install, the sandbox's view), else the project's (the current
    folder's fixtures/, for a harness installed into site-packages)."""
    if os.environ.get(TOOLBOX_ENV):
        return Path(os.environ[TOOLBOX_ENV])
    project = Path.cwd() / "fixtures" / "toolbox.toml"
    return DEFAULT_PATH if DEFAULT_PATH.is_file() or not project.is_file() else project
_EXEC_EVENTS = ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.system", "os.spawn", "pty.spawn")


class LibraryCodecError(PermissionError):
    """A native candidate called a library's image or video codec."""


# A refused import raises the plain ModuleNotFoundError ("No module named 'scipy': ..."), as if
# the module were not installed, which inside the sandbox it is not.
ToolboxImportError = ModuleNotFoundError


def library_codec_message(entry: str) -> str:
    return (
        f"{entry} is a library codec; a native candidate's codec must be its own; "
        "declare the open track to wrap a library (TRACK = \"open\")"
    )


@dataclass(frozen=True)
class ToolModule:
    """One importable top-level module of the toolbox and the distributions the sandbox shows for it."""

    name: str
    label: str
    distributions: tuple[str, ...]
    imports: tuple[str, ...]
    install: str


@dataclass(frozen=True)
class Toolbox:
    """The toolbox of every track, as declared in fixtures/toolbox.toml."""

    tracks: dict[str, tuple[str, ...]]
    catalogue: dict[str, ToolModule]
    library_codecs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    path: Path | None = None

    def _check(self, track: str) -> None:
        if track not in self.tracks:
            raise ConfigError(f"unknown track {track!r}; the tracks are {', '.join(TRACKS)}")

    def modules(self, track: str) -> tuple[str, ...]:
        """The importable top-level modules (beyond the standard library) of `track`."""
        self._check(track)
        return self.tracks[track]

    def installed(self, track: str) -> tuple[str, ...]:
        """Those of `track`'s modules whose distributions are installed here."""
        return tuple(m for m in self.modules(track) if _installed(self.catalogue[m].distributions[0]))

    def missing(self, track: str) -> tuple[str, ...]:
        return tuple(m for m in self.modules(track) if m not in self.installed(track))

    def importable(self, track: str) -> frozenset[str]:
        """Top-level module names the guard lets load: the modules and what they import themselves."""
        names: set[str] = set()
        for m in self.modules(track):
            names.add(m)
            names.update(self.catalogue[m].imports)
        return frozenset(names)

    def distributions(self, track: str) -> tuple[str, ...]:
        out: list[str] = []
        for m in self.modules(track):
            out += [d for d in self.catalogue[m].distributions if d not in out]
        return tuple(out)

    def codec_modules(self, track: str) -> tuple[str, ...]:
        """Modules of the toolbox that hold library codec entry points (wrapped by the guard)."""
        return tuple(m for m in self.library_codecs if m in self.modules(track))

    def available_text(self, track: str) -> str:
        """The sentence the contract, the README and the evolve prompt use for `track`."""
        self._check(track)
        labels = ["the Python standard library"] + [self.catalogue[m].label for m in self.modules(track)]
        listed = ", ".join(labels[:-1]) + " and " + labels[-1]
        if track == "native":
            headline = ("imencode", "imdecode", "imwrite", "imread", "VideoWriter", "VideoCapture")
            cv2 = ", ".join(n for n in self.library_codecs.get("cv2", ()) if n in headline)
            extra = [m for m in self.tracks.get("open", ()) if m not in self.modules("native")]
            opened = " and ".join(self.catalogue[m].label for m in extra)
            return (
                f"Available in the native track (the default): {listed}. The codec must be the "
                f"candidate's own: library image and video codecs are refused (OpenCV's {cv2} and the "
                f"like, {opened or 'PyAV'}, any executable); a wrapper of a library codec declares "
                f"`TRACK = \"open\"`, where {opened or 'PyAV'} is available too and each library codec "
                "used is reported."
            )
        return (
            f"Available in the {track} track: {listed}. Every library codec a call uses is "
            "recorded and reported (\"wraps libx264\"); no executable can run."
        )

    def import_message(self, name: str, track: str) -> str:
        """Why `import name` fails in `track`: what is available, or how to install a missing tool."""
        top = name.partition(".")[0]
        if top in self.catalogue and top in self.modules(track):
            tool = self.catalogue[top]
            return (
                f"No module named {top!r}: {tool.label} is in the {track} toolbox but not installed on "
                f"this machine; install it with `{tool.install}`"
            )
        if top in self.library_codecs and track == "native":
            return f"No module named {top!r}: " + library_codec_message(self.catalogue.get(top, _plain(top)).label)
        return f"No module named {top!r}: it is not in the {track} toolbox. " + self.available_text(track)

    def sandbox_entries(self, track: str) -> tuple[Path, ...]:
        """Host paths (top-level entries of site-packages) of the track's installed distributions."""
        return _entries(self.distributions(track))


def _plain(name: str) -> ToolModule:
    return ToolModule(name=name, label=name, distributions=(name,), imports=(name,), install=f"pip install {name}")


@functools.lru_cache(maxsize=64)
def _installed(distribution: str) -> bool:
    import importlib.metadata  # here, not at the top: the worker imports this module (~0.1 s saved per call)

    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@functools.lru_cache(maxsize=16)
def _entries(distributions: tuple[str, ...]) -> tuple[Path, ...]:
    import importlib.metadata

    found: set[Path] = set()
    for name in distributions:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        tops = {f.split("/", 1)[0] for f in record_paths(dist) if f and not f.startswith("..")}
        for top in tops - {"__pycache__"}:
            located = Path(str(dist.locate_file(top)))
            if located.exists():
                found.add(located)
    return tuple(sorted(found))


def record_paths(dist: importlib.metadata.Distribution) -> list[str]:  # noqa: F821 - imported where used
    """The paths a distribution installed (its RECORD, relative to site-packages), read as text:
    `Distribution.files` builds an object per path (torch has 15k, 0.7 s)."""
    import csv

    text = dist.read_text("RECORD") or ""
    return [row[0] for row in csv.reader(text.splitlines()) if row]


def load_toolbox(path: Path | None = None) -> Toolbox:
    """Read fixtures/toolbox.toml (or `path`); every problem names the file and the entry."""
    path = Path(path) if path is not None else toolbox_path()
    return _load(path.resolve())


@functools.lru_cache(maxsize=8)
def _load(path: Path) -> Toolbox:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read the toolbox {path}: {err}") from err
    tracks_raw = data.get("tracks") or {}
    if set(tracks_raw) != set(TRACKS):
        raise ConfigError(f"{path}: [tracks] must declare exactly {', '.join(TRACKS)}; got {sorted(tracks_raw)}")
    catalogue: dict[str, ToolModule] = {}
    for name, entry in (data.get("modules") or {}).items():
        try:
            catalogue[name] = ToolModule(
                name=name,
                label=str(entry["label"]),
                distributions=tuple(entry["distributions"]),
                imports=tuple(entry.get("imports") or (name,)),
                install=str(entry["install"]),
            )
        except (KeyError, TypeError) as err:
            raise ConfigError(f"{path}: [modules.{name}] needs label, distributions and install ({err})") from err
    tracks: dict[str, tuple[str, ...]] = {}
    for track in TRACKS:
        mods = tuple(tracks_raw[track].get("modules") or ())
        unknown = [m for m in mods if m not in catalogue]
        if unknown:
            raise ConfigError(f"{path}: track {track} lists {unknown} without a [modules.NAME] entry")
        tracks[track] = mods
    codecs = {str(k): tuple(str(v) for v in vals) for k, vals in (data.get("library_codecs") or {}).items()}
    if not set(tracks["native"]) <= set(tracks["open"]):
        raise ConfigError(f"{path}: the open track must hold every module of the native track")
    return Toolbox(tracks=tracks, catalogue=catalogue, library_codecs=codecs, path=path)


# ---------------------------------------------------------------------------------------------
# The guard, inside the worker (harness/worker.py), before the candidate loads.


def _stdlib_dirs() -> tuple[str, ...]:
    import sysconfig

    dirs = {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
    return tuple(sorted(os.path.realpath(d) + os.sep for d in dirs))


@dataclass
class CodecGuard:
    """What the guard of one worker recorded: library codecs used, and those refused (native track)."""

    track: str
    toolbox: Toolbox
    candidate_module: str
    used: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def record(self, entry: str) -> None:
        if self.track == "native":
            if entry not in self.refused:
                self.refused.append(entry)
            raise LibraryCodecError(library_codec_message(entry))
        if entry not in self.used:
            self.used.append(entry)


def install_guard(track: str, *, candidate_module: str, toolbox: Toolbox | None = None) -> CodecGuard:
    """Install the import/exec/ctypes audit hook and the codec wrappers for `track`; returns the record.

    Call once, before the candidate loads. `candidate_module` is the name the worker imports the
    candidate under (its own submodules may be imported)."""
    toolbox = toolbox or load_toolbox()
    toolbox._check(track)
    guard = CodecGuard(track=track, toolbox=toolbox, candidate_module=candidate_module)
    allowed = frozenset(sys.stdlib_module_names) | toolbox.importable(track) | {
        "harness", "__main__", "__mp_main__", candidate_module,
    }
    # Toolbox modules whose own code may load libraries through ctypes (torch does at import).
    trusted_tops = tuple(sorted(toolbox.importable(track)))
    stdlib = _stdlib_dirs()
    ctypes_dir = os.path.dirname(os.path.realpath(__import__("ctypes").__file__)) + os.sep
    finder = _CodecFinder(guard)
    sys.meta_path.insert(0, finder)
    guarded_files: dict[str, str] = {}  # module file -> module name, once wrapped
    finder.guarded_files = guarded_files

    def trusted_dirs() -> list[str]:
        dirs = []
        for top in trusted_tops:
            mod = sys.modules.get(top)
            file = getattr(mod, "__file__", None)
            if isinstance(file, str):
                dirs.append(os.path.dirname(os.path.realpath(file)) + os.sep)
        return dirs

    def in_stdlib(real: str) -> bool:
        return "site-packages" not in real and any(real.startswith(d) for d in stdlib)

    def caller_is_trusted() -> bool:
        """The code asking (the innermost frame outside ctypes and the import system) is the toolbox's or the stdlib's."""
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            real = os.path.realpath(name) if name.startswith(os.sep) else name
            if real.startswith(ctypes_dir) or name.startswith("<frozen importlib"):
                frame = frame.f_back
                continue
            return in_stdlib(real) or any(real.startswith(d) for d in trusted_dirs())
        return False

    def forged_name(filename: object) -> bool:
        """Code compiled under the name of a toolbox or stdlib file by other code (the candidate): a
        frame of it would pass for the toolbox's in `caller_is_trusted`."""
        if not isinstance(filename, str) or not filename.startswith(os.sep):
            return False
        real = os.path.realpath(filename)
        if not (in_stdlib(real) or any(real.startswith(d) for d in trusted_dirs())):
            return False
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            real = os.path.realpath(name) if name.startswith(os.sep) else name
            if name.startswith("<frozen importlib") or in_stdlib(real):
                frame = frame.f_back
                continue
            return not any(real.startswith(d) for d in trusted_dirs())
        return False

    def hook(event: str, args: tuple) -> None:
        if event == "import":
            name = args[0]
            top = name.partition(".")[0] if isinstance(name, str) else ""
            if top not in allowed:
                raise ToolboxImportError(toolbox.import_message(top, track), name=top)
            # The extension loader raises a second event with None for the paths.
            if args[3] is not None and not any(f is finder for f in args[3]):
                raise ToolboxImportError(f"import of {name} refused: the codec guard was removed from sys.meta_path", name=top)
        elif event == "exec":
            code = args[0]
            file = getattr(code, "co_filename", "")
            if file in guarded_files:
                raise PermissionError(
                    f"reloading {guarded_files[file]} is refused: it would undo the library codec guard"
                )
            if not any(f is finder for f in sys.meta_path):
                raise PermissionError("the codec guard was removed from sys.meta_path; nothing more may load")
        elif event.startswith(_EXEC_EVENTS):
            what = args[0] if args else ""
            raise PermissionError(
                f"running an executable ({event}: {what!r}) is refused in the sandbox: a candidate's codec "
                "is its own Python code; " + toolbox.available_text(track)
            )
        elif event == "object.__getattr__" and getattr(args[0], "_codec_guard", None) is _WRAPPED:
            raise PermissionError(f"reading {args[1]} of the library codec guard's wrapper is refused")
        elif event in ("gc.get_objects", "gc.get_referrers", "gc.get_referents"):
            raise PermissionError(f"{event} is refused in the sandbox: it would reach around the library codec guard")
        elif event == "compile" and len(args) > 1 and forged_name(args[1]):
            raise PermissionError(f"compiling code under the name {args[1]!r} of a toolbox or library file is refused")
        elif event in ("ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle") and not caller_is_trusted():
            what = args[0] if args else ""
            raise PermissionError(
                f"{event}({what!r}) is refused: a candidate may not load or call native libraries through "
                "ctypes (only the toolbox's own packages do); " + toolbox.available_text(track)
            )

    _deny_exec_syscalls()
    sys.addaudithook(hook)
    return guard


# PyAV and cv2 are wrapped as they load: a finder first on sys.meta_path wraps their loaders.


class _CodecFinder:
    """Wraps the loader of the modules with library codec entry points so they are wrapped once loaded."""

    def __init__(self, guard: CodecGuard) -> None:
        self.guard = guard
        self.guarded_files: dict[str, str] = {}
        self._busy: set[str] = set()

    def find_spec(self, name, path=None, target=None):
        if name not in self.guard.toolbox.library_codecs or name in self._busy:
            return None
        self._busy.add(name)
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.discard(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _WrappingLoader(spec.loader, self, name)
        return spec


class _WrappingLoader:
    def __init__(self, loader, finder: _CodecFinder, name: str) -> None:
        self.loader = loader
        self.finder = finder
        self.name = name

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        loaded = sys.modules.get(self.name, module)
        _wrap_module(loaded, self.name, self.finder.guard)
        if loaded is not module:
            _wrap_module(module, self.name, self.finder.guard)
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and file.endswith(".py"):
            self.finder.guarded_files[file] = self.name

    def __getattr__(self, item: str):
        return getattr(self.loader, item)


_WRAPPED = object()  # marks a wrapper so a module copied twice is not wrapped twice


def _wrap_module(module, name: str, guard: CodecGuard) -> None:
    entries = guard.toolbox.library_codecs.get(name, ())
    if name == "av":
        _wrap_av(module, guard)
        return
    for attr in entries:
        original = getattr(module, attr, None)
        if original is None or getattr(original, "_codec_guard", None) is _WRAPPED:
            continue
        setattr(module, attr, _entry_wrapper(f"{name}.{attr}", original, guard))


def _entry_wrapper(entry: str, original, guard: CodecGuard):
    # The original is a keyword-only default: reading __kwdefaults__ raises an audit event the
    # guard refuses for wrappers, as it refuses gc's object walks (a closure cell would not be).
    def call(*args, _codec_original=original, **kwargs):
        guard.record(_describe(entry, args))
        return _codec_original(*args, **kwargs)

    call._codec_guard = _WRAPPED  # type: ignore[attr-defined]
    call.__name__ = entry.rpartition(".")[2]
    call.__doc__ = getattr(original, "__doc__", None)
    return call


def _describe(entry: str, args: tuple) -> str:
    """'cv2.imencode(.webp)': the format an image codec call names, where it names one."""
    if args and isinstance(args[0], str) and entry.rpartition(".")[2].startswith(("imencode", "imwrite", "imread")):
        ext = os.path.splitext(args[0])[1] or args[0]
        return f"{entry}({ext[:12]})"
    if entry.endswith("VideoWriter") and len(args) >= 2 and isinstance(args[1], int):
        fourcc = "".join(chr((args[1] >> (8 * i)) & 0xFF) for i in range(4))
        return f"{entry}({fourcc.strip()})"
    return entry


def _wrap_av(module, guard: CodecGuard) -> None:
    """av.CodecContext.create, av.Codec and av.open record the codec they name ("libx265 via av")."""
    if getattr(getattr(module, "open", None), "_codec_guard", None) is _WRAPPED:
        return
    if guard.track == "native":
        guard.record("PyAV (av)")
    codec_context = getattr(module, "CodecContext", None)
    codec = getattr(module, "Codec", None)
    original_open = module.open

    def codec_name(value) -> str:
        return str(getattr(value, "name", value))

    class _ContextFactory:
        def __instancecheck__(self, obj) -> bool:
            return isinstance(obj, codec_context)

        def __getattr__(self, item: str):
            return getattr(codec_context, item)

        @staticmethod
        def create(codec_or_name, mode=None, *args, **kwargs):
            guard.record(f"{codec_name(codec_or_name)} via av")
            return codec_context.create(codec_or_name, mode, *args, **kwargs)

    class _CodecFactory:
        def __instancecheck__(self, obj) -> bool:
            return isinstance(obj, codec)

        def __getattr__(self, item: str):
            return getattr(codec, item)

        def __call__(self, name, mode="r", *args, **kwargs):
            guard.record(f"{name} via av")
            return codec(name, mode, *args, **kwargs)

    class _Container:
        def __init__(self, inner) -> None:
            object.__setattr__(self, "_inner", inner)
            for stream in getattr(inner, "streams", ()) or ():
                ctx = getattr(stream, "codec_context", None)
                if ctx is not None and getattr(ctx, "name", None):
                    guard.record(f"{ctx.name} via av")

        def add_stream(self, codec_name_, *args, **kwargs):
            guard.record(f"{codec_name(codec_name_)} via av")
            return self._inner.add_stream(codec_name_, *args, **kwargs)

        def __getattr__(self, item: str):
            return getattr(self._inner, item)

        def __enter__(self):
            self._inner.__enter__()
            return self

        def __exit__(self, *exc):
            return self._inner.__exit__(*exc)

        def __iter__(self):
            return iter(self._inner)

    def open_(*args, **kwargs):
        return _Container(original_open(*args, **kwargs))

    open_._codec_guard = _WRAPPED  # type: ignore[attr-defined]
    module.open = open_
    if codec_context is not None:
        module.CodecContext = _ContextFactory()
    if codec is not None:
        module.Codec = _CodecFactory()
    # The public names only: PyAV's own (Cython) code type-checks against the real classes in
    # av.codec.*, which stay as they are.
    for sub_name, attr, value in (
        ("av.codec", "CodecContext", module.CodecContext),
        ("av.codec", "Codec", module.Codec),
        ("av.container", "open", open_),
    ):
        sub = sys.modules.get(sub_name)
        if sub is not None and hasattr(sub, attr):
            setattr(sub, attr, value)


# execve is denied by the kernel as well: Python-level hooks do not see `_posixsubprocess` or a
# new interpreter started with `-c`, which would run without the guard.

_EXEC_SYSCALLS = {"x86_64": (0xC000003E, (59, 322)), "aarch64": (0xC00000B7, (221, 281))}


def _deny_exec_syscalls() -> bool:
    """Load a seccomp filter refusing execve/execveat with EPERM; False where it cannot."""
    import ctypes
    import platform
    import struct

    arch = _EXEC_SYSCALLS.get(platform.machine())
    if arch is None:
        return False
    audit_arch, nrs = arch

    def ins(code: int, jt: int, jf: int, k: int) -> bytes:
        return struct.pack("=HBBI", code, jt, jf, k)

    prog = [
        ins(0x20, 0, 0, 4),  # load seccomp_data.arch
        ins(0x15, 1, 0, audit_arch),
        ins(0x06, 0, 0, 0x80000000),  # another ABI: kill
        ins(0x20, 0, 0, 0),  # load seccomp_data.nr
        ins(0x15, 2, 0, nrs[0]),
        ins(0x15, 1, 0, nrs[1]),
        ins(0x06, 0, 0, 0x7FFF0000),  # allow
        ins(0x06, 0, 0, 0x00050000 | 1),  # EPERM
    ]
    program = b"".join(prog)
    buf = ctypes.create_string_buffer(program)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.addressof(buf))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
        return False
    return libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(fprog), 0, 0) == 0
