"""Side channel through files: encode saves the planes to /tmp/x.npy and /dev/shm, decode loads them back.

The bitstream is 8 bytes; all the data would travel through the file system if encode and
decode shared one. They must not: each call gets a private, empty /tmp and /dev/shm.
"""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

from harness.video import Video

_PLACES = ("/tmp/x.npy", "/dev/shm/x.npy")


def encode(video: Video, target_bitrate: float) -> bytes:
    flat = np.concatenate([video.y.ravel(), video.u.ravel(), video.v.ravel()])
    header = np.array([video.width, video.height, video.frames, video.fps.numerator, video.fps.denominator])
    for place in _PLACES:
        np.save(place, np.concatenate([header.astype(np.int64), flat.astype(np.int64)]))
    return b"SIDEFILE"


def decode(bitstream: bytes) -> Video:
    for place in _PLACES[1:]:
        if os.path.exists(place):
            break
    else:
        place = _PLACES[0]
    data = np.load(place)  # FileNotFoundError when the sandbox is doing its job
    width, height, frames, num, den = (int(x) for x in data[:5])
    flat = data[5:].astype(np.uint8)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    luma, chroma = frames * height * width, frames * ch * cw
    return Video(
        flat[:luma].reshape(frames, height, width),
        flat[luma : luma + chroma].reshape(frames, ch, cw),
        flat[luma + chroma :].reshape(frames, ch, cw),
        Fraction(num, den),
    )
