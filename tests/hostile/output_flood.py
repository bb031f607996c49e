"""Floods its output: prints debugging information for every pixel, forever.

The harness must stop reading and kill it (kind "output_flood") instead of filling memory or disk.
"""

from __future__ import annotations

import sys

from harness.video import Video


def encode(video: Video, target_bitrate: float) -> bytes:
    line = "debug: pixel " + "x" * 200 + "\n"
    while True:
        sys.stdout.write(line * 100)
        sys.stderr.write(line * 100)


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
