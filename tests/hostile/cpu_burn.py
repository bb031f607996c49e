"""Burns CPU on two threads: an exhaustive motion search in a Python loop that never ends, until the CPU-time limit.

The CPU-time rlimit (counted over all threads) must stop it before the wall clock does,
and the harness must say so (kind "cpu_time").
"""

from __future__ import annotations

import threading

from harness.video import Video


def _search() -> None:
    best = 0
    while True:
        best = (best * 1103515245 + 12345) & 0x7FFFFFFF


def encode(video: Video, target_bitrate: float) -> bytes:
    helper = threading.Thread(target=_search, daemon=True)
    helper.start()
    _search()
    return b""


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
