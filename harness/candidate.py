"""What a candidate is, found by reading files: the parent never imports candidate code.

A candidate is `candidates/<name>.py` or a package `candidates/<name>/`; the first line of
its module docstring says what it does, and it defines

    encode(video: Video, target_bitrate: float) -> bytes   # bits per second, whole clip
    decode(bitstream: bytes) -> Video                      # from the bitstream alone

Whether it imports and has callable functions is checked inside the sandbox (worker.py).
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

from harness.errors import CandidateError
from harness.toolbox import TRACKS, load_toolbox

__all__ = ["CandidateSource", "discover_candidates", "select_candidates"]  # and CONTRACT_TEXT, made on first use

_CONTRACT_HEAD = """\
A candidate is one Python module `candidates/<name>.py` (or a package `candidates/<name>/`).
The first line of its module docstring says what the codec does. It defines:

    from harness.video import Video

    def encode(video: Video, target_bitrate: float) -> bytes:
        '''Encode the whole clip at about `target_bitrate` bits per second.'''

    def decode(bitstream: bytes) -> Video:
        '''Rebuild the clip from the bitstream alone.'''

`Video` holds uint8 numpy planes `y` (frames, H, W), `u` and `v` (frames, ceil(H/2), ceil(W/2))
of 8-bit YUV 4:2:0 and the frame rate `fps` (a fractions.Fraction). Build the result with
`Video(y, u, v, fps)`. The decoded clip must have the source's size, frame count and rate.
The harness counts the bits: bitrate = 8 * len(bitstream) * fps / frames, and it must not
exceed 1.10 x target_bitrate. Quality is measured on the decoded frames against the source.
encode and decode each run in a fresh sandboxed process (bubblewrap): no network, a read-only
file system, a private empty /tmp, no environment variables, limited time, memory and
processes. decode receives only the bitstream: no files, globals or environment survive from
encode. Both must be deterministic: the same input gives the same bytes and frames every run,
whatever the thread count or hash seed. A torch candidate calls torch.set_num_threads(1) and
torch.use_deterministic_algorithms(True) at import, and keeps exact whatever the decoder must
reproduce: integer dtypes, or integer values in float64 with every product and partial sum
below 2**53 (exact in any summation order), never a float32 result rounded at a threshold. It
may run on CUDA (`--sandbox-gpu`) only when `torch.cuda.is_available()` and the results equal
the CPU's bit for bit (cuDNN's convolutions are not exact: turn cuDNN off); else on the CPU.
"""


def _contract_text() -> str:
    """The contract: the fixed text above, then the track rule and each track's toolbox (fixtures/toolbox.toml)."""
    import textwrap

    box = load_toolbox()
    tracks = (
        "A candidate declares its track with a module attribute `TRACK = \"open\"` (or a docstring "
        f"line `Track: open`); the default is native. Tracks: {', '.join(TRACKS)}. "
        + " ".join(box.available_text(t) for t in TRACKS)
    )
    return _CONTRACT_HEAD + textwrap.fill(tracks, width=95, break_on_hyphens=False) + "\n"


def __getattr__(name: str) -> str:
    # CONTRACT_TEXT reads the toolbox: on first use, not at import (an installed harness finds the
    # project's fixtures/ only once it runs there).
    if name == "CONTRACT_TEXT":
        return _contract_text()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class CandidateSource:
    """A candidate as found on disk; `problem` is set when its source cannot be a candidate."""

    name: str
    path: Path
    is_package: bool
    sha256: str
    size_bytes: int
    summary: str | None
    problem: str | None
    track: str = "native"

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]


def _source_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _declared_track(tree: ast.Module, doc: str | None) -> tuple[str, str | None]:
    """(track, problem): a module attribute `TRACK = "open"` or a docstring line `Track: open`, read statically."""
    declared: list[tuple[str, object]] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "TRACK" for t in targets):
            value = node.value
            declared.append(("TRACK", value.value if isinstance(value, ast.Constant) else ast.unparse(value) if value else None))
    for line in (doc or "").splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key.strip().lower() == "track" and len(value.split()) == 1:
            declared.append(("docstring line `Track:`", value.strip()))
    valid = ", ".join(f"{t!r}" for t in TRACKS)
    for where, value in declared:
        if not isinstance(value, str) or value not in TRACKS:
            return "native", f"the track declared by {where} is {value!r}; the valid tracks are {valid} (a string literal)"
    values = {v for _, v in declared}
    if len(values) > 1:
        return "native", f"the module declares two tracks ({' and '.join(sorted(map(str, values)))}); declare one of {valid}"
    return (values.pop() if values else "native"), None


def _static_problem(init: Path) -> tuple[str | None, str | None, str]:
    """(summary, problem, track) from parsing only: nothing is executed."""
    try:
        tree = ast.parse(init.read_bytes(), filename=str(init))
    except SyntaxError as err:
        return None, f"syntax error in {init.name} line {err.lineno}: {err.msg}", "native"
    except (OSError, ValueError) as err:
        return None, f"cannot read {init.name}: {err}", "native"
    doc = ast.get_docstring(tree)
    summary = doc.strip().splitlines()[0].strip() if doc and doc.strip() else None
    defined = {
        node.name if not isinstance(node, ast.Assign) else getattr(node.targets[0], "id", "")
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Assign))
    }
    imported = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    missing = [f for f in ("encode", "decode") if f not in defined | imported]
    track, track_problem = _declared_track(tree, doc)
    if summary is None:
        return None, "the module has no docstring; its first line must say what the codec does", track
    if missing:
        return summary, f"the module defines no {' or '.join(f'`{m}`' for m in missing)} function", track
    return summary, track_problem, track


def _candidate(path: Path) -> CandidateSource:
    name = path.stem if path.is_file() else path.name
    files = _source_files(path)
    digest = hashlib.sha256()
    size = 0
    for file in files:
        data = file.read_bytes()
        size += len(data)
        digest.update(str(file.relative_to(path.parent)).encode() + b"\0")
        digest.update(hashlib.sha256(data).digest())
    init = path if path.is_file() else path / "__init__.py"
    if path.is_dir() and not init.exists():
        summary, problem, track = None, f"package {name}/ has no __init__.py", "native"
    else:
        summary, problem, track = _static_problem(init)
    if name == "conftest":
        problem = "candidates/conftest.py is not a candidate and is never loaded by the suite; remove it"
    elif not name.isidentifier():
        problem = f"{name!r} is not a valid module name; use letters, digits and underscores"
    return CandidateSource(
        name=name,
        path=path.resolve(),
        is_package=path.is_dir(),
        sha256=digest.hexdigest(),
        size_bytes=size,
        summary=summary,
        problem=problem,
        track=track,
    )


def discover_candidates(directory: str | Path) -> list[CandidateSource]:
    """Every `*.py` module and package in `directory`, sorted by name, by reading files only."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CandidateError(f"candidate directory {directory} does not exist")
    found = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(("_", ".")) or entry.name == "__pycache__":
            continue
        if (entry.is_file() and entry.suffix == ".py") or (entry.is_dir() and any(entry.iterdir())):
            found.append(_candidate(entry))
    return found


def select_candidates(found: list[CandidateSource], names: list[str] | None) -> list[CandidateSource]:
    """The named candidates in the given order; an unknown name raises listing the known ones."""
    if not names:
        return found
    by_name = {c.name: c for c in found}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise CandidateError(
            f"unknown candidate(s) {', '.join(unknown)}; known: {', '.join(sorted(by_name)) or '(none)'}"
        )
    return [by_name[n] for n in names]
