"""Native candidate that loads a bundled libavcodec through ctypes to reach FFmpeg's encoders (must be refused)."""

from __future__ import annotations

import ctypes
import glob
import sys

from harness.video import Video


def _codec_library() -> str:
    for entry in sys.path:
        for pattern in ("*/libavcodec*.so*", "*/libx26*.so*", "*/libaom*.so*"):
            found = sorted(glob.glob(f"{entry}/{pattern}"))
            if found:
                return found[0]
    return "libavcodec.so"


def encode(video: Video, target_bitrate: float) -> bytes:
    lib = ctypes.CDLL(_codec_library())
    lib.avcodec_find_encoder_by_name.restype = ctypes.c_void_p
    return str(lib.avcodec_find_encoder_by_name(b"libaom-av1")).encode()


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
