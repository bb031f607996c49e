"""Finds the repository from the sandbox's mount table and tries to rewrite the ledger, reports, cache and a rival.

The bind mounts in /proc/self/mountinfo name the host folders the harness and the candidate
came from; from there it aims at the adoption ledger, the reports, the result cache (the
default ~/.cache/codec-harness and $XDG_CACHE_HOME) and another candidate's source. None of
those paths exists or is writable inside the sandbox: encode raises an error listing every
attempt, and the files outside are untouched (tests/test_hostile.py checks the ledger).
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.video import Video


def _host_roots() -> set[Path]:
    roots = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        source, target = fields[3], fields[4]
        if target.startswith("/opt/codec-sandbox/") and source.startswith("/"):
            roots.add(Path(source))
    return roots


def _targets() -> list[Path]:
    targets: list[Path] = []
    for source in sorted(_host_roots()):
        for repo in (source.parent, source.parent.parent):
            targets += [repo / "ledger.jsonl", repo / "reports" / "latest.json", repo / "candidates" / "x264_pyav.py"]
    caches = [Path.home() / ".cache", Path(os.environ.get("XDG_CACHE_HOME", "/root/.cache"))]
    targets += [base / "codec-harness" / "anchors" / "tampered.json" for base in caches]
    return targets


def _in_private_tmp(target: Path) -> bool:
    """Whether `target`'s folder is on the sandbox's own /tmp (a private tmpfs that dies with the
    call): a checkout under the host's /tmp shows its bound folders there, writable when the
    sandbox runs as the harness's own uid. Writing there reaches nothing of the host's."""
    folder = target.parent
    while not folder.exists():
        folder = folder.parent
    return os.stat(folder).st_dev == os.stat("/tmp").st_dev


def encode(video: Video, target_bitrate: float) -> bytes:
    targets = _targets()
    if not any(t.name == "ledger.jsonl" for t in targets):
        raise RuntimeError("no host folder found in /proc/self/mountinfo")
    errors = []
    for target in targets:
        if _in_private_tmp(target):
            errors.append(f"{target}: only in the sandbox's own private /tmp")
            continue
        try:
            with open(target, "a") as out:
                out.write('{"seq": 99, "event": "adopt", "candidate": "tamper_results"}\n')
        except OSError as err:
            errors.append(f"{target}: {type(err).__name__}: {err.strerror}")
    if len(errors) == len(targets):
        raise PermissionError("nothing outside the sandbox is writable: " + "; ".join(errors))
    return b"TAMPERED"


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
