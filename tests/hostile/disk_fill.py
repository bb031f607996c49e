"""Fills the disk: encode writes "temporary motion data" to /tmp until it runs out of space.

The private /tmp is size-capped: the write fails with OSError "No space left on device".
"""

from __future__ import annotations

import os

from harness.video import Video


def encode(video: Video, target_bitrate: float) -> bytes:
    chunk = os.urandom(1 << 20)
    index = 0
    while True:
        with open(f"/tmp/motion-{index:06d}.bin", "wb") as out:
            for _ in range(16):
                out.write(chunk)
        index += 1


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
