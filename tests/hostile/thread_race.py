"""Tiles coded by a thread pool that reads a progress counter another thread updates without a lock.

A near-lossless zlib codec: each tile's dither (+0 or +1) comes from a shared counter that a
"rate-control" thread keeps incrementing while the tile threads run. The value each tile reads
depends on how the threads interleave, so two encodes of the same input give different bytes
(each decodable, each of high quality): only the determinism test can catch it.
"""

from __future__ import annotations

import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np

from harness.video import Video

_HEAD = struct.Struct("<IIIqq")
_TILE_ROWS = 8


def _tiles(video: Video) -> list[np.ndarray]:
    return [
        plane[f, top : top + _TILE_ROWS]
        for plane in (video.y, video.u, video.v)
        for f in range(video.frames)
        for top in range(0, plane.shape[1], _TILE_ROWS)
    ]


def encode(video: Video, target_bitrate: float) -> bytes:
    progress = [0]
    finished = threading.Event()

    def rate_control() -> None:
        while not finished.is_set():
            progress[0] += 1  # read by the tile threads with no lock: a data race

    def code_tile(tile: np.ndarray) -> bytes:
        dither = progress[0] & 1
        return np.minimum(tile.astype(np.uint16) + dither, 255).astype(np.uint8).tobytes()

    clock = threading.Thread(target=rate_control, daemon=True)
    clock.start()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            coded = list(pool.map(code_tile, _tiles(video)))
    finally:
        finished.set()
        clock.join()
    head = _HEAD.pack(video.width, video.height, video.frames, video.fps.numerator, video.fps.denominator)
    return head + zlib.compress(b"".join(coded), 6)


def decode(bitstream: bytes) -> Video:
    width, height, frames, num, den = _HEAD.unpack_from(bitstream)
    data = np.frombuffer(zlib.decompress(bitstream[_HEAD.size :]), np.uint8)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    luma, chroma = frames * width * height, frames * ch * cw
    return Video(
        data[:luma].reshape(frames, height, width).copy(),
        data[luma : luma + chroma].reshape(frames, ch, cw).copy(),
        data[luma + chroma :].reshape(frames, ch, cw).copy(),
        Fraction(num, den),
    )
