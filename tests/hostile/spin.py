"""Never finishes: encode spins in an infinite loop (a rate-control search that never converges).

The harness must kill it at the wall-clock limit and say so (kind "timeout").
"""

from __future__ import annotations

from harness.video import Video


def encode(video: Video, target_bitrate: float) -> bytes:
    qp = 0.0
    while True:  # bisection on a condition that is never met
        qp = (qp + 51.0) / 2.0


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
