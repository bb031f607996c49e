"""From a reply to a candidate file: the first ```python block, checked by reading only, given a name.

Nothing here imports or runs the generated code. The checks are harness.candidate's (it parses
the module and looks for the docstring and `encode` / `decode`), run on a copy in the attempt's
folder; only a module that passes them is written to the candidates folder, with a header comment
placed after the module docstring (a comment before it would not change the docstring, but code
would, and keeping the docstring first is what the contract's summary line relies on).
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harness.atomic import write_text_atomic  # re-exported: its old home
from harness.candidate import CandidateSource, discover_candidates

__all__ = [
    "HEADER_FIRST",
    "NO_CODE",
    "Extracted",
    "add_header",
    "candidate_name",
    "check_module",
    "code_sha256",
    "extract_code",
    "strip_header",
    "write_text_atomic",
]

NO_CODE = "reply has no code: no ```python block"
HEADER_FIRST = "# evolve: written by the evolution loop"  # the header's first line (add_header, strip_header)
_OPEN = re.compile(r"^[ \t]*```[ \t]*(python3?|py)[ \t]*$", re.IGNORECASE)
_CLOSE = re.compile(r"^[ \t]*```[ \t]*$")


@dataclass(frozen=True)
class Extracted:
    """The first python block of a reply (`code`), or why there is none (`problem`)."""

    code: str | None
    problem: str | None
    blocks: int = 0


def extract_code(text: str, *, stop_reason: str | None = None) -> Extracted:
    lines = text.replace("\r\n", "\n").split("\n")
    opened = [i for i, line in enumerate(lines) if _OPEN.match(line)]
    if not opened:
        why = NO_CODE
        if stop_reason == "max_tokens":
            why += " (the reply was cut at max_tokens before any code)"
        elif stop_reason not in (None, "end_turn", "stop_sequence"):
            why += f" (the model stopped: {stop_reason})"
        return Extracted(None, why, 0)
    start = opened[0]
    end = next((j for j in range(start + 1, len(lines)) if _CLOSE.match(lines[j])), None)
    if end is None:
        why = "the ```python block is not closed"
        if stop_reason == "max_tokens":
            why = "the reply was cut at max_tokens inside the ```python block (raise model.max_tokens or ask for less)"
        return Extracted(None, why, len(opened))
    code = "\n".join(lines[start + 1 : end]).rstrip() + "\n"
    if not code.strip():
        return Extracted(None, "reply has no code: the ```python block is empty", len(opened))
    return Extracted(code, None, len(opened))


def code_sha256(code: str) -> str:
    """Hash of the module as the model wrote it (before the header): equal code, equal hash."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def check_module(path: Path) -> CandidateSource:
    """harness.candidate's static reading of the module at `path` (alone in its folder)."""
    found = [c for c in discover_candidates(path.parent) if c.path == path.resolve()]
    if not found:
        raise FileNotFoundError(path)
    return found[0]


def add_header(code: str, header: list[str]) -> str:
    """`code` with `# ` comment lines inserted right after the module docstring.

    The code must parse and have a docstring (check first); the result is verified to keep both.
    """
    tree = ast.parse(code)
    doc = ast.get_docstring(tree, clean=False)
    first = tree.body[0] if tree.body else None
    if doc is None or first is None:
        raise ValueError("the module has no docstring to put the header after")
    lines = code.split("\n")
    at = first.end_lineno or 1
    comment = ["# " + line if line else "#" for line in header]
    out = "\n".join(lines[:at] + comment + lines[at:])
    again = ast.parse(out)
    if ast.get_docstring(again, clean=False) != doc or ast.dump(again) != ast.dump(tree):
        raise ValueError("inserting the header changed the module")
    return out


def candidate_name(when: datetime, attempt: int, taken: set[str]) -> str:
    """evo_<YYYYmmdd_HHMMSS>_<attempt>, with a suffix if that name is taken."""
    base = f"evo_{when.strftime('%Y%m%d_%H%M%S')}_{attempt}"
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name


def strip_header(source: str) -> str:
    """The module without the loop's header comment (shown to the model: it gets a fresh one)."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(HEADER_FIRST):
            j = i
            while j < len(lines) and lines[j].startswith("#"):
                j += 1
            return "\n".join(lines[:i] + lines[j:])
    return source
