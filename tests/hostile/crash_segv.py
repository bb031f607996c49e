"""Crashes the interpreter: a ctypes "fast path" that reads a near-null pointer (SIGSEGV).

No status can be written: the harness must report a crash naming the signal.
"""

from __future__ import annotations

import ctypes

from harness.video import Video


def encode(video: Video, target_bitrate: float) -> bytes:
    pointer = ctypes.cast(8, ctypes.POINTER(ctypes.c_uint64))
    return pointer.contents.value.to_bytes(8, "little")


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
