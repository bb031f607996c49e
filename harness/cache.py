"""On-disk results keyed by everything that changes a number; every entry verified when read.

A key is the sha256 of the canonical JSON of its fields (clip content hash, codec id and
version, parameters, metric versions). Entries are written atomically and carry the sha256
of their value: a truncated, edited or corrupted entry is discarded and recomputed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.report import write_json_atomic

__all__ = ["ResultCache", "cache_key"]


def _canonical(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def cache_key(fields: dict[str, object]) -> str:
    return hashlib.sha256(_canonical(fields)).hexdigest()


class ResultCache:
    """JSON values in `directory/<kind>/<key[:2]>/<key>.json`; counts hits, misses and rejects."""

    def __init__(self, directory: Path, *, refresh: bool = False) -> None:
        self.directory = Path(directory)
        self.refresh = refresh
        self.hits = 0
        self.misses = 0
        self.rejected: list[str] = []

    def _path(self, kind: str, key: str) -> Path:
        return self.directory / kind / key[:2] / f"{key}.json"

    def get(self, kind: str, fields: dict[str, object]) -> object | None:
        key = cache_key(fields)
        path = self._path(kind, key)
        if self.refresh or not path.exists():
            self.misses += 1
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            ok = (
                isinstance(entry, dict)
                and entry.get("key") == key
                and entry.get("value_sha256") == hashlib.sha256(_canonical(entry.get("value"))).hexdigest()
            )
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            ok = False
        if not ok:
            self.rejected.append(str(path))
            self.misses += 1
            try:
                os.unlink(path)
            except OSError:
                pass
            return None
        self.hits += 1
        return entry["value"]

    def put(self, kind: str, fields: dict[str, object], value: object) -> None:
        key = cache_key(fields)
        entry = {
            "key": key,
            "fields": fields,
            "value": value,
            "value_sha256": hashlib.sha256(_canonical(value)).hexdigest(),
        }
        write_json_atomic(self._path(kind, key), entry)

    @contextmanager
    def lock(self, kind: str, fields: dict[str, object]) -> Iterator[None]:
        """Hold an exclusive lock on one key, so that parallel runs (xdist workers, two terminals)
        compute it once: the second waits, then finds it in the cache."""
        path = self._path(kind, cache_key(fields)).with_suffix(".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def put_blob(self, data: bytes) -> str:
        """Store bytes under their sha256 (content-addressed); returns the hash."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.directory / "blobs" / sha[:2] / sha
        if self.get_blob(sha) is None:  # absent, or damaged: (re)write it
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{sha}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return sha

    def get_blob(self, sha: str) -> bytes | None:
        """The bytes stored under `sha`, or None when missing or not matching their hash."""
        path = self.directory / "blobs" / sha[:2] / sha
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != sha:
            self.rejected.append(str(path))
            try:
                os.unlink(path)
            except OSError:
                pass
            return None
        return data

    def stats(self) -> dict[str, object]:
        return {"directory": str(self.directory), "hits": self.hits, "misses": self.misses, "rejected": self.rejected}
