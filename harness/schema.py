"""Reading a report file and checking it against harness/report.schema.json (harness.results types it)."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from harness.errors import HarnessError

__all__ = [
    "SCHEMA_PATH",
    "SUPPORTED_SCHEMA_VERSIONS",
    "ReportError",
    "json_path",
    "read_json",
    "read_report",
    "validate_report",
]

SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
SUPPORTED_SCHEMA_VERSIONS = (1,)


class ReportError(HarnessError):
    """A report file is missing, is not JSON, or does not match harness/report.schema.json."""


def read_json(path: str | os.PathLike[str]) -> object:
    """A report file's JSON, parsed but not validated (NaN/Infinity refused); `ReportError` says why not."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such report file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: cannot read the report: {err}") from None

    def no_constant(name: str) -> float:
        raise ValueError(f"{name} is not valid JSON (a report records a missing number as null)")

    try:
        return json.loads(text, parse_constant=no_constant)
    except (ValueError, RecursionError) as err:
        raise ReportError(f"{path}: not a valid JSON report: {err}") from None


def read_report(path: str | os.PathLike[str]) -> dict:
    """Read a report JSON file and validate it; `ReportError` says what is wrong and where.

    Use `harness.results.load_report`, which types what this returns."""
    doc = read_json(path)
    try:
        validate_report(doc)
    except ReportError as err:
        raise ReportError(f"{path}: {err}") from None
    return doc


_VALIDATOR = None


def _validator():
    global _VALIDATOR
    if _VALIDATOR is None:
        try:
            from jsonschema import Draft202012Validator
        except ImportError as err:  # pragma: no cover - a declared dependency
            raise ReportError(
                "validating a report needs the 'jsonschema' package: pip install jsonschema"
            ) from err
        schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        _VALIDATOR = Draft202012Validator(schema)
    return _VALIDATOR


def json_path(parts: Iterable[object]) -> str:
    """`$.candidates["dct_inter"].points["bus/r0"].measurement` for a sequence of keys and indices."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


def _non_finite(node: object, parts: tuple) -> tuple[tuple, float] | None:
    if isinstance(node, float):
        return None if math.isfinite(node) else (parts, node)
    if isinstance(node, Mapping):
        items: Iterable = node.items()
    elif isinstance(node, list | tuple):
        items = enumerate(node)
    else:
        return None
    for key, value in items:
        found = _non_finite(value, (*parts, key))
        if found:
            return found
    return None


def validate_report(doc: object) -> None:
    """Check `doc` against harness/report.schema.json; raise `ReportError` naming the first problem's path."""
    if not isinstance(doc, Mapping):
        raise ReportError(f"report is invalid at $: expected a JSON object, got {type(doc).__name__}")
    bad = _non_finite(doc, ())
    if bad:
        raise ReportError(
            f"report is invalid at {json_path(bad[0])}: {bad[1]} is not a JSON number "
            "(JSON has no NaN or Infinity; a missing value must be null)"
        )
    version = doc.get("schema_version")
    if (
        isinstance(version, int)
        and not isinstance(version, bool)
        and version not in SUPPORTED_SCHEMA_VERSIONS
    ):
        raise ReportError(
            f"report is invalid at $.schema_version: version {version} is not one this harness reads "
            f"({', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}); render it with the harness that wrote it"
        )
    from jsonschema.exceptions import best_match

    errors = list(_validator().iter_errors(doc))
    if not errors:
        return
    first = best_match(errors)
    message = first.message if len(first.message) <= 300 else first.message[:300] + "..."
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    raise ReportError(f"report is invalid at {json_path(first.absolute_path)}: {message}{more}")
