"""Allocates far too much memory: a 50 GB motion-search cost volume, then ever more 256 MiB buffers.

The address-space limit must stop it with a MemoryError (kind "memory"), not the machine.
"""

from __future__ import annotations

import numpy as np

from harness.video import Video


def encode(video: Video, target_bitrate: float) -> bytes:
    try:
        costs = np.ones((50 * 10**9,), dtype=np.uint8)  # 50 GB
    except MemoryError:
        costs = None
    hoard = [costs]
    while True:
        block = np.empty(256 << 20, dtype=np.uint8)
        block[::4096] = 1  # touch every page
        hoard.append(block)


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
