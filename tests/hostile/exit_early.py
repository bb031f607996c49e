"""Exits the process from inside encode with os._exit(0), before the worker can report anything.

Exit code 0 without a status is not success: the harness must report a crash saying no status came back.
"""

from __future__ import annotations

import os

from harness.video import Video


def encode(video: Video, target_bitrate: float) -> bytes:
    os._exit(0)


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
