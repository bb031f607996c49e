"""Stream order from a set of names: a lossless zlib codec that writes its sub-streams in set-iteration order.

The order of a set of strings depends on PYTHONHASHSEED, so encodes run with different hash
seeds give different (though each decodable) bytes: the determinism test must catch it.
"""

from __future__ import annotations

import json
import zlib
from fractions import Fraction

import numpy as np

from harness.video import Video


def _streams(video: Video) -> dict[str, bytes]:
    out = {}
    for name, plane in (("luma", video.y), ("chroma_blue", video.u), ("chroma_red", video.v)):
        rows = plane.shape[1]
        out[f"{name}_top"] = plane[:, : rows // 2].tobytes()
        out[f"{name}_bottom"] = plane[:, rows // 2 :].tobytes()
    return out


def encode(video: Video, target_bitrate: float) -> bytes:
    streams = _streams(video)
    order = list(set(streams))  # iteration order of a set of str: depends on the hash seed
    header = {
        "w": video.width, "h": video.height, "n": video.frames,
        "fps": [video.fps.numerator, video.fps.denominator], "order": order,
    }
    body = zlib.compress(b"".join(streams[name] for name in order), 6)
    head = json.dumps(header).encode()
    return len(head).to_bytes(4, "little") + head + body


def decode(bitstream: bytes) -> Video:
    size = int.from_bytes(bitstream[:4], "little")
    header = json.loads(bitstream[4 : 4 + size])
    data = zlib.decompress(bitstream[4 + size :])
    w, h, n = header["w"], header["h"], header["n"]
    ch, cw = (h + 1) // 2, (w + 1) // 2
    sizes = {}
    for name, rows, cols in (("luma", h, w), ("chroma_blue", ch, cw), ("chroma_red", ch, cw)):
        sizes[f"{name}_top"] = (rows // 2, cols)
        sizes[f"{name}_bottom"] = (rows - rows // 2, cols)
    parts, pos = {}, 0
    for name in header["order"]:
        rows, cols = sizes[name]
        parts[name] = np.frombuffer(data, np.uint8, n * rows * cols, pos).reshape(n, rows, cols)
        pos += n * rows * cols
    planes = [np.concatenate([parts[f"{p}_top"], parts[f"{p}_bottom"]], axis=1) for p in ("luma", "chroma_blue", "chroma_red")]
    return Video(*planes, Fraction(*header["fps"]))
