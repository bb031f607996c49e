"""Native candidate that reloads cv2 to undo the codec guard, then calls cv2.imencode (must be refused)."""

from __future__ import annotations

import importlib

import cv2
import numpy as np

from harness.video import Video


def encode(video: Video, target_bitrate: float) -> bytes:
    fresh = importlib.reload(cv2)
    _, data = fresh.imencode(".jpg", np.ascontiguousarray(video.y[0]))
    return bytes(data)


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
