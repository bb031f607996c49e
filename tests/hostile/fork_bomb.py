"""Fork bomb: "parallel encoding" that forks a worker per frame, and every worker forks again.

The process limit must stop it (BlockingIOError, kind "processes") and the PID namespace
must take every forked process down with the sandbox.
"""

from __future__ import annotations

import os
import time

from harness.video import Video


def encode(video: Video, target_bitrate: float) -> bytes:
    children = []
    while True:
        pid = os.fork()
        if pid == 0:
            children.clear()  # a child goes on forking too
            time.sleep(0.01)
        else:
            children.append(pid)


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
