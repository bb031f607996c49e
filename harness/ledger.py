"""The adoption ledger: an append-only JSON Lines file; the champion is derived from it.

Each line is one decision about one candidate (adopted or rejected) in one track, with its source
hash, parent, the report it was judged by, its scores and the reason. Each track ("native": the
codec is the candidate's own; "open": it may wrap a library codec) has its own champion.

Lines of schema 1 were written before tracks existed and carry none. They are read as the open
track's, never rewritten (the file is append-only): they were judged when a candidate could import
anything the environment held, library codecs included, with no check of what it called, so
none of them shows that its codec was its own. New lines are schema 2 and name their track.

Appends take an exclusive
file lock and are written with one `write` of a whole line followed by fsync, so concurrent
runs and a kill at any moment leave every earlier line intact; a torn last line (a crash
mid-write on a filesystem without atomic appends) is reported, never silently dropped.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from harness.errors import HarnessError
from harness.toolbox import TRACKS, Track  # the tracks are the toolbox's (fixtures/toolbox.toml)

__all__ = [
    "LEDGER_SCHEMA", "LEGACY_TRACK", "TRACKS", "Decision", "Ledger", "LedgerEntry", "LedgerError", "Track",
    "champion_of", "champions",
]

LEDGER_SCHEMA = 2
READABLE_SCHEMAS = (1, 2)
Decision = Literal["adopted", "rejected"]
LEGACY_TRACK: Track = "open"  # the track of a schema-1 line (see the module docstring)


class LedgerError(HarnessError):
    """The ledger file is unreadable or a line in it is malformed."""


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """One decision in one track. `scores` holds BD-rates (percent, negative = fewer bits) by reference
    and metric. `schema` is the line's as written: 1 means a pre-track line read as the open track's."""

    candidate: str
    track: Track = "native"
    source_sha256: str
    decision: Decision
    reason: str
    parent: str | None = None
    report: str | None = None
    report_sha256: str | None = None
    scores: dict[str, object] = field(default_factory=dict)
    fingerprint: str | None = None  # sha256 over the candidate's bitstream hashes in the report
    identical_to: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    time_utc: str = ""
    seq: int = 0
    schema: int = LEDGER_SCHEMA

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object, *, where: str) -> LedgerEntry:
        if not isinstance(data, dict):
            raise LedgerError(f"{where}: expected a JSON object, got {type(data).__name__}")
        missing = [k for k in ("candidate", "source_sha256", "decision", "reason") if not isinstance(data.get(k), str)]
        if missing:
            raise LedgerError(f"{where}: missing or non-string {', '.join(missing)}")
        if data["decision"] not in ("adopted", "rejected"):
            raise LedgerError(f"{where}: decision {data['decision']!r} is neither 'adopted' nor 'rejected'")
        schema = data.get("schema", 1)
        if schema not in READABLE_SCHEMAS or isinstance(schema, bool):
            raise LedgerError(
                f"{where}: ledger schema {schema!r}; this harness reads {', '.join(map(str, READABLE_SCHEMAS))}"
            )
        known = {f for f in cls.__dataclass_fields__} - ({"track"} if schema == 1 else set())
        unknown = sorted(set(data) - known)
        if unknown:
            raise LedgerError(f"{where}: unknown field(s) {', '.join(unknown)}")
        if schema == 1:
            data = {**data, "schema": 1, "track": LEGACY_TRACK}
        elif data.get("track") not in TRACKS:
            raise LedgerError(
                f"{where}: track {data.get('track')!r} is none of {', '.join(TRACKS)} (schema {schema} lines name one)"
            )
        types = {
            "parent": (str, type(None)), "report": (str, type(None)), "report_sha256": (str, type(None)),
            "scores": dict, "fingerprint": (str, type(None)), "identical_to": (str, type(None)),
            "extra": dict, "time_utc": str, "seq": int, "schema": int,
        }
        wrong = [k for k, t in types.items() if k in data and (not isinstance(data[k], t) or data[k] is True
                                                              or data[k] is False)]
        if wrong:
            raise LedgerError(f"{where}: field(s) of the wrong type: {', '.join(wrong)}")
        try:
            return cls(**data)
        except TypeError as err:
            raise LedgerError(f"{where}: {err}") from err


class Ledger:
    """The ledger at `path` (created on first append)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @contextmanager
    def _locked(self, mode: str) -> Iterator[object]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if "a" in mode else fcntl.LOCK_SH)
            try:
                with open(self.path, mode, encoding="utf-8") as f:
                    yield f
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def entries(self) -> list[LedgerEntry]:
        """Every entry in order; a malformed line raises LedgerError naming its line number."""
        if not self.path.exists():
            return []
        try:
            with self._locked("r") as f:
                text = f.read()
        except UnicodeDecodeError as err:
            raise LedgerError(f"{self.path}: not UTF-8 text at byte {err.start}") from err
        out = []
        lines = text.split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{self.path}:{number}"
            if number == len(lines) and not text.endswith("\n"):
                raise LedgerError(f"{where}: the last line is incomplete (a write was interrupted); repair by hand")
            try:
                data = json.loads(line)
            except (ValueError, RecursionError) as err:
                raise LedgerError(f"{where}: not JSON ({getattr(err, 'msg', err)})") from err
            out.append(LedgerEntry.from_json(data, where=where))
        return out

    def champion(self, track: Track = "native") -> LedgerEntry | None:
        """The track's most recently adopted entry, or None before its first adoption."""
        return champion_of(self.entries(), track)

    def append(self, entry: LedgerEntry) -> LedgerEntry:
        """Append `entry` (written as the current schema) with the next sequence number and the current
        time; returns what was written."""
        if entry.track not in TRACKS:
            raise LedgerError(f"track {entry.track!r} is none of {', '.join(TRACKS)}")
        with self._locked("a+") as f:
            f.seek(0)
            existing = sum(1 for line in f.read().split("\n") if line.strip())
            stamped = LedgerEntry(
                **{
                    **asdict(entry),
                    "seq": existing + 1,
                    "schema": LEDGER_SCHEMA,
                    "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            )
            line = json.dumps(stamped.to_json(), sort_keys=True, allow_nan=False) + "\n"
            os.write(f.fileno(), line.encode("utf-8"))
            os.fsync(f.fileno())
        return stamped


def champion_of(entries: Sequence[LedgerEntry], track: Track = "native") -> LedgerEntry | None:
    """The champion rule, the one place it is written: the track's last adopted entry (None before its
    first). A champion of one track is never another's: a native candidate is never judged against a
    library wrapper, and a wrapper never becomes the native champion."""
    if track not in TRACKS:
        raise LedgerError(f"track {track!r} is none of {', '.join(TRACKS)}")
    adopted = [e for e in entries if e.decision == "adopted" and e.track == track]
    return adopted[-1] if adopted else None


def champions(entries: Sequence[LedgerEntry]) -> dict[Track, LedgerEntry | None]:
    """Each track's champion (None where it has none yet), in TRACKS order."""
    return {track: champion_of(entries, track) for track in TRACKS}
