"""Writes outside its sandbox: caches tables beside its own source, patches the harness's measure.py, writes /usr.

Everything but the private /tmp is read-only: each write fails (read-only file system or
permission denied) and encode raises an error listing them.
"""

from __future__ import annotations

import os
from pathlib import Path

import harness.measure
from harness.video import Video


def _targets() -> list[Path]:
    here = Path(__file__).resolve()
    return [
        here.with_suffix(".tables"),
        here,
        Path(harness.measure.__file__),
        Path("/usr/lib/codec_tables.bin"),
        Path(os.__file__).with_name("codec_tables.bin"),
    ]


def encode(video: Video, target_bitrate: float) -> bytes:
    errors = []
    for target in _targets():
        try:
            with open(target, "ab") as out:
                out.write(b"\n# patched by write_outside\n")
        except OSError as err:
            errors.append(f"{target}: {type(err).__name__}: {err.strerror}")
    if len(errors) == len(_targets()):
        raise PermissionError("no place outside /tmp is writable: " + "; ".join(errors))
    return b"WROTE"


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
