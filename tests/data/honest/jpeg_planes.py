"""Honest but weak: JPEG per plane, intra only. 8x8 DCT of each plane, one quantizer step for
the whole clip (searched to fit the target rate), coefficients grouped by frequency and zlib'd.

Test data for the quality floor (tests/test_quality_floor.py): no prediction between frames and
no entropy coder worth the name, so it needs several times x265's bits for the same PSNR, yet it
reproduces the source at every rate the suite asks for. Deterministic: integer quantization of a
DCT computed with einsum (no BLAS threads), zlib at a fixed level.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction

import numpy as np

from harness.video import Video

_HEADER = struct.Struct("<4sIIIqqf")
_N = 8
_K = np.arange(_N)
_C = np.sqrt(2.0 / _N) * np.cos(np.pi * (2 * _K[None, :] + 1) * _K[:, None] / (2 * _N))
_C[0] /= np.sqrt(2.0)
# Coarser steps for higher frequencies, as a JPEG table does.
_WEIGHT = 1.0 + 0.35 * (_K[:, None] + _K[None, :])


def _blocks(plane: np.ndarray) -> np.ndarray:
    """(frames, h, w) -> (frames, by, bx, 8, 8), edge-padded to multiples of 8, level-shifted."""
    f, h, w = plane.shape
    p = np.pad(plane.astype(np.float64) - 128.0, ((0, 0), (0, -h % _N), (0, -w % _N)), mode="edge")
    return p.reshape(f, p.shape[1] // _N, _N, p.shape[2] // _N, _N).transpose(0, 1, 3, 2, 4)


def _quantize(coefs: list[np.ndarray], step: float) -> bytes:
    """Per plane: a 64-bit mask of the frequencies with any nonzero level, then those frequencies'
    levels over all blocks (an end-of-block in aggregate: coarse steps cost next to nothing)."""
    parts = []
    for c in coefs:
        q = np.rint(c / (step * _WEIGHT)).astype(np.int16).transpose(3, 4, 0, 1, 2).reshape(_N * _N, -1)
        used = np.any(q != 0, axis=1)
        parts.append(struct.pack("<Q", sum(1 << int(i) for i in np.flatnonzero(used))))
        parts.append(np.ascontiguousarray(q[used]).tobytes())
    return zlib.compress(b"".join(parts), 9)


def encode(video: Video, target_bitrate: float) -> bytes:
    budget = target_bitrate * video.frames / float(video.fps) / 8 - _HEADER.size
    coefs = [np.einsum("ij,fyxjk,lk->fyxil", _C, _blocks(p), _C) for p in (video.y, video.u, video.v)]
    lo, hi = np.log(0.25), np.log(4096.0)  # log step: lo fits nothing, hi is as coarse as it gets
    best = None
    for _ in range(16):
        mid = (lo + hi) / 2
        data = _quantize(coefs, float(np.float32(np.exp(mid))))
        if len(data) <= budget:
            best, hi = (float(np.float32(np.exp(mid))), data), mid
        else:
            lo = mid
    if best is None:
        step = float(np.float32(np.exp(hi)))
        best = (step, _quantize(coefs, step))
    step, data = best
    head = _HEADER.pack(b"JPP1", video.width, video.height, video.frames, video.fps.numerator, video.fps.denominator, step)
    return head + data


def decode(bitstream: bytes) -> Video:
    magic, width, height, frames, num, den, step = _HEADER.unpack_from(bitstream)
    if magic != b"JPP1":
        raise ValueError(f"not a jpeg_planes bitstream (magic {magic!r})")
    raw = zlib.decompress(bitstream[_HEADER.size :])
    ch, cw = (height + 1) // 2, (width + 1) // 2
    planes, offset = [], 0
    for h, w in ((height, width), (ch, cw), (ch, cw)):
        by, bx = -(-h // _N), -(-w // _N)
        (mask,) = struct.unpack_from("<Q", raw, offset)
        used = [i for i in range(_N * _N) if mask >> i & 1]
        n = frames * by * bx
        q = np.zeros((_N * _N, n), np.int16)
        q[used] = np.frombuffer(raw, np.int16, len(used) * n, offset + 8).reshape(len(used), n)
        offset += 8 + 2 * len(used) * n
        q = q.reshape(_N, _N, frames, by, bx).transpose(2, 3, 4, 0, 1)
        pix = np.einsum("ji,fyxjk,kl->fyxil", _C, q * (step * _WEIGHT), _C)
        full = pix.transpose(0, 1, 3, 2, 4).reshape(frames, by * _N, bx * _N)[:, :h, :w]
        planes.append(np.clip(np.rint(full + 128.0), 0, 255).astype(np.uint8))
    return Video(*planes, Fraction(num, den))
