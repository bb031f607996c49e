"""Native candidate that reaches OpenCV's WebP codec through getattr on a built string (must be refused)."""

from __future__ import annotations

import struct

import cv2
import numpy as np

from harness.video import Video

_NAME = "im" + "en" + "code"


def encode(video: Video, target_bitrate: float) -> bytes:
    codec = getattr(cv2, _NAME)
    _, data = codec(".webp", np.ascontiguousarray(video.y[0]), [cv2.IMWRITE_WEBP_QUALITY, 50])
    return struct.pack("<I", len(data)) + bytes(data)


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
