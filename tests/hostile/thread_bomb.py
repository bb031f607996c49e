"""Thread explosion: starts one thread per 8x8 block, thousands of threads that all sleep.

The process limit (threads count as processes) must stop it with an error naming the limit.
"""

from __future__ import annotations

import threading
import time

from harness.video import Video


def encode(video: Video, target_bitrate: float) -> bytes:
    threads = []
    blocks = video.frames * (video.height // 8 + 1) * (video.width // 8 + 1)
    for _ in range(max(blocks, 100_000)):
        worker = threading.Thread(target=time.sleep, args=(60,), daemon=True)
        worker.start()
        threads.append(worker)
    return b""


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
