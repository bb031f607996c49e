"""Honest but weak: a 4-level 2D Haar wavelet per plane and frame, one quantizer step for the
clip (searched to fit the target rate, finer steps for the coarse bands), zlib'd subbands.

Test data for the quality floor (tests/test_quality_floor.py), the "wavelet + entropy coder"
kind of codec an LLM writes first: intra only, no motion, blocky at low rates, but it
reproduces the source. Deterministic (float64 arithmetic without BLAS, zlib at a fixed level).
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction

import numpy as np

from harness.video import Video

_HEADER = struct.Struct("<4sIIIqqf")
_LEVELS = 4
_M = 1 << _LEVELS


def _fwd(x: np.ndarray) -> list[np.ndarray]:
    """(frames, h, w), sides multiples of 2**levels -> [details of level 1, 2, ..., approximation]."""
    bands = []
    for _ in range(_LEVELS):
        a, b = x[:, 0::2, :], x[:, 1::2, :]
        lo, hi = (a + b) / 2, (a - b) / 2
        ll, lh = (lo[:, :, 0::2] + lo[:, :, 1::2]) / 2, (lo[:, :, 0::2] - lo[:, :, 1::2]) / 2
        hl, hh = (hi[:, :, 0::2] + hi[:, :, 1::2]) / 2, (hi[:, :, 0::2] - hi[:, :, 1::2]) / 2
        bands.append(np.stack([lh, hl, hh]))
        x = ll
    return bands + [x]


def _inv(bands: list[np.ndarray]) -> np.ndarray:
    x = bands[-1]
    for lh, hl, hh in reversed(bands[:-1]):
        f, h, w = x.shape
        lo, hi = np.empty((f, h, 2 * w)), np.empty((f, h, 2 * w))
        lo[:, :, 0::2], lo[:, :, 1::2] = x + lh, x - lh
        hi[:, :, 0::2], hi[:, :, 1::2] = hl + hh, hl - hh
        x = np.empty((f, 2 * h, 2 * w))
        x[:, 0::2, :], x[:, 1::2, :] = lo + hi, lo - hi
    return x


def _scales() -> list[float]:
    # Haar with /2 averaging: a level-k band's samples carry 2**k times the energy per unit.
    return [2.0 ** -(k + 1) for k in range(_LEVELS)] + [2.0 ** -_LEVELS]


def _quantize(planes: list[list[np.ndarray]], step: float) -> bytes:
    """Each subband's levels, after a byte saying whether it has any (an all-zero band costs 1 byte)."""
    parts = []
    for bands in planes:
        for band, scale in zip(bands, _scales()):
            q = np.rint(band / (step * scale)).astype(np.int16)
            for sub in q if q.ndim == 4 else (q,):
                parts.append(b"\x01" + sub.tobytes() if sub.any() else b"\x00")
    return zlib.compress(b"".join(parts), 9)


def _padded(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape[1:]
    return np.pad(plane.astype(np.float64) - 128.0, ((0, 0), (0, -h % _M), (0, -w % _M)), mode="edge")


def encode(video: Video, target_bitrate: float) -> bytes:
    budget = target_bitrate * video.frames / float(video.fps) / 8 - _HEADER.size
    planes = [_fwd(_padded(p)) for p in (video.y, video.u, video.v)]
    lo, hi = np.log(0.05), np.log(2048.0)
    best = None
    for _ in range(16):
        step = float(np.float32(np.exp((lo + hi) / 2)))
        data = _quantize(planes, step)
        if len(data) <= budget:
            best, hi = (step, data), np.log(step)
        else:
            lo = np.log(step)
    if best is None:
        step = float(np.float32(np.exp(hi)))
        best = (step, _quantize(planes, step))
    step, data = best
    head = _HEADER.pack(b"HAR1", video.width, video.height, video.frames, video.fps.numerator, video.fps.denominator, step)
    return head + data


def decode(bitstream: bytes) -> Video:
    magic, width, height, frames, num, den, step = _HEADER.unpack_from(bitstream)
    if magic != b"HAR1":
        raise ValueError(f"not a haar_zlib bitstream (magic {magic!r})")
    raw = zlib.decompress(bitstream[_HEADER.size :])
    ch, cw = (height + 1) // 2, (width + 1) // 2
    planes, offset = [], 0
    for h, w in ((height, width), (ch, cw), (ch, cw)):
        ph, pw = h + (-h % _M), w + (-w % _M)
        bands = []
        for k, scale in enumerate(_scales()):
            bh, bw = ph >> min(k + 1, _LEVELS), pw >> min(k + 1, _LEVELS)
            subs = []
            for _ in range(3 if k < _LEVELS else 1):
                present, offset = raw[offset], offset + 1
                sub = np.zeros((frames, bh, bw), np.int16)
                if present:
                    sub = np.frombuffer(raw, np.int16, frames * bh * bw, offset).reshape(frames, bh, bw)
                    offset += 2 * frames * bh * bw
                subs.append(sub)
            band = np.stack(subs) if k < _LEVELS else subs[0]
            bands.append(band * (step * scale))
        pix = _inv(bands)[:, :h, :w]
        planes.append(np.clip(np.rint(pix + 128.0), 0, 255).astype(np.uint8))
    return Video(*planes, Fraction(num, den))
