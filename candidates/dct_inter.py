"""Reference hybrid codec in numpy: 8x8 integer-exact DCT, half-pel motion compensation, deblocking, zstd.

How it works
------------
* Frames are padded to multiples of 16 (edge replication) and cropped again on decode.
* Frame 0 (and any frame the motion search cannot predict well, e.g. a scene cut) is an
  I-frame: the 8x8 DCT of (sample - 128), the quantized DC predicted from the block to the
  left (from the block above in the first column).
* P-frames predict each 16x16 macroblock from the previous *reconstructed* frame (closed
  loop) with one vector in half-pel units, found on the source frames once per clip: full
  search +-24 px at 1/4 resolution, +-1 refinement at 1/2 and full resolution, then the 8
  half-pel neighbours; bilinear interpolation (luma 1/2 pel, chroma 1/4 pel with the same
  vector). Per rate, vectors are re-chosen column by column for SAD + lambda x vector bits
  (vectors are sent as differences to the left neighbour). The residual is DCT coded.
* Transform: the orthonormal DCT-II x 4096 rounded to integers, applied as one 64x64
  product on integer-valued float64 data whose partial sums stay below 2**53: every result
  is exact, so encoder and decoder reconstruct bit-identically on any machine, any BLAS.
* Quantization: uniform with dead zone (1/3 intra, 1/6 inter), step = 2 ** ((qp - 4) / 6),
  qp in quarter steps; I-frames use qp - 3.
* In-loop deblocking of 8x8 edges (H.264's normal p0/q0 filter, thresholds from the step).
* Entropy coding: zigzag scan; a coded-block bit per 8x8 block; per non-zero level one
  byte (zero run before it, last-in-block bit, |level| class) as in H.263's 3-D VLC;
  extra run and magnitude bytes, sign bits, vector differences as int8; each kind its own
  stream, compressed by zstandard (level 12, magicless frames, one thread: deterministic).
* Rate control: the motion analysis once, then a safeguarded secant search over qp on full
  closed-loop encodes for the lowest qp whose size is <= 0.98 x the target; the coarsest
  qp when nothing fits (the harness then reports the overshoot).
* Speed: matrix products are cut into 64-row slices, which OpenBLAS runs on one thread
  (bigger ones started a thread pool that was 20x slower on a busy 2-core machine).
"""

from __future__ import annotations

import struct
from fractions import Fraction

import cv2
import numpy as np
import zstandard

from harness.video import Video

__all__ = ["decode", "encode"]

MAGIC = b"DCTI"
VERSION = 1
_HEADER = struct.Struct("<4sBIIIIIH")  # magic, version, width, height, frames, fps num, fps den, qp4

# Orthonormal 8x8 DCT-II basis x 4096, rounded (rows are frequencies).
_C = np.array(
    [
        [1448, 1448, 1448, 1448, 1448, 1448, 1448, 1448],
        [2009, 1703, 1138, 400, -400, -1138, -1703, -2009],
        [1892, 784, -784, -1892, -1892, -784, 784, 1892],
        [1703, -400, -2009, -1138, 1138, 2009, 400, -1703],
        [1448, -1448, -1448, 1448, 1448, -1448, -1448, 1448],
        [1138, -2009, 400, 1703, -1703, -400, 2009, -1138],
        [784, -1892, 1892, -784, -784, 1892, -1892, 784],
        [400, -1138, 1703, -2009, 2009, -1703, 1138, -400],
    ],
    dtype=np.float64,
)
_ZIGZAG = np.array(
    sorted(range(64), key=lambda i: (i // 8 + i % 8, i // 8 if (i // 8 + i % 8) % 2 else -(i // 8)))
)

_QP_MAX4 = 76 * 4  # step ~ 4000: every coefficient quantizes to zero
_I_OFFSET4 = 3 * 4
_DEAD_INTRA = 1.0 / 3.0
_DEAD_INTER = 1.0 / 6.0
_LAMBDA_SCALE = 0.37
_DB_ALPHA, _DB_BETA, _DB_TC = 1.5, 0.4, 0.3  # deblocking thresholds, in quantizer steps
_D_MAX = float(1 << 17)  # |dequantized value| bound keeping the inverse transform exact
_MV_MAX = 60  # half-pel units (30 px)
_LUMA_PAD = 32
_CHROMA_PAD = 16
_ZSTD_LEVEL = 12
_RATE_MARGIN = 0.98
_MAX_SAMPLES = 1 << 31
_STREAMS = ("ftype", "mvy", "mvx", "flagy", "flagc", "symy", "symc", "runx", "magx", "sign", "esc")
_BIT_STREAMS = ("flagy", "flagc", "sign")


# ----------------------------------------------------------------------------- transform


_K = np.kron(_C, _C)  # K[(u, v), (k, l)] = C[u, k] * C[v, l]: the 2-D transform of a block as one product
_KF = np.ascontiguousarray(_K.T[:, _ZIGZAG])  # natural-order samples -> zigzag coefficients (x 2**24)
_KI = np.ascontiguousarray(_K[_ZIGZAG, :])  # zigzag coefficients -> natural-order samples (x 2**24)


def _transform(blocks: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """blocks @ basis in slices of 64 rows: OpenBLAS runs products this small on one thread,
    where bigger ones start a thread pool that was 20x slower on a busy 2-core machine. The
    values are integers below 2**53, so the result is exact whatever the kernel."""
    out = np.empty((blocks.shape[0], basis.shape[1]), dtype=np.float64)
    for i in range(0, blocks.shape[0], 64):
        np.matmul(blocks[i : i + 64], basis, out=out[i : i + 64])
    return out


def _plane_blocks(plane: np.ndarray) -> np.ndarray:
    """(h, w) plane -> (blocks, 64) natural-order 8x8 blocks in raster order."""
    h, w = plane.shape
    return plane.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)


def _blocks_plane(blocks: np.ndarray, h: int, w: int) -> np.ndarray:
    return blocks.reshape(h // 8, w // 8, 8, 8).transpose(0, 2, 1, 3).reshape(h, w)


def _step16(qp4: int) -> int:
    """Quantizer step in 1/16 units (an integer, so dequantization is exact)."""
    return max(1, round(16.0 * 2.0 ** ((qp4 / 4.0 - 4.0) / 6.0)))


def _reconstruct(levels: np.ndarray, pred, step16: int) -> np.ndarray:
    """pred + inverse DCT of the dequantized zigzag levels, rounded and clipped: (blocks, 64) uint8.

    Every product and partial sum is an integer below 2**53, so float64 gives the exact
    result in any summation order (BLAS kernel, thread count)."""
    out = np.array(np.broadcast_to(pred, levels.shape), dtype=np.float64)
    rows = np.flatnonzero(levels.any(axis=1))
    if rows.size:
        deq = np.clip(levels[rows].astype(np.float64) * step16, -_D_MAX, _D_MAX)
        out[rows] += np.floor(_transform(deq, _KI) * (1.0 / (1 << 28)) + 0.5)
    return np.clip(out, 0, 255).astype(np.uint8)


def _dc_dpcm(dc: np.ndarray, inverse: bool) -> np.ndarray:
    """Left-neighbour DC prediction (first column: the block above), as differences or back."""
    if inverse:
        out = dc.copy()
        out[:, 0] = np.cumsum(out[:, 0])
        return np.cumsum(out, axis=1)
    out = dc.copy()
    out[:, 1:] = dc[:, 1:] - dc[:, :-1]
    out[1:, 0] = dc[1:, 0] - dc[:-1, 0]
    return out


# ----------------------------------------------------------------------- motion compensation


def _windows(planes: np.ndarray, size: int) -> np.ndarray:
    """All size x size windows of the last two axes (a view, no copy)."""
    return np.lib.stride_tricks.sliding_window_view(planes, (size, size), axis=(-2, -1))


def _grid(nby: int, nbx: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(nby)[:, None], np.arange(nbx)[None, :]


def _luma_phases(ref: np.ndarray) -> np.ndarray:
    """The edge-padded reference at its four half-pel phases (index 2 * fy + fx), bilinear with
    rounding as in H.263: (4, h + 2 * pad, w + 2 * pad) uint8."""
    rp = np.pad(ref, ((_LUMA_PAD, _LUMA_PAD + 1), (_LUMA_PAD, _LUMA_PAD + 1)), mode="edge")
    r = rp.astype(np.uint16)
    a, b, c, d = r[:-1, :-1], r[:-1, 1:], r[1:, :-1], r[1:, 1:]
    return np.stack([a, (a + b + 1) >> 1, (a + c + 1) >> 1, (a + b + c + d + 2) >> 2]).astype(np.uint8)


def _luma_blocks(windows: np.ndarray, by, bx, mvy, mvx) -> np.ndarray:
    """16x16 predictions (..., 16, 16) uint8 of blocks (by, bx) moved by half-pel vectors."""
    return windows[
        (mvy & 1) * 2 + (mvx & 1), by * 16 + (mvy >> 1) + _LUMA_PAD, bx * 16 + (mvx >> 1) + _LUMA_PAD
    ]


def _chroma_pred(ref: np.ndarray, mvy: np.ndarray, mvx: np.ndarray) -> np.ndarray:
    """Chroma prediction plane: 8x8 blocks moved by the luma half-pel vector, i.e. quarter-pel
    in chroma, bilinear with integer weights (exact)."""
    nby, nbx = mvy.shape
    rp = np.pad(ref, _CHROMA_PAD, mode="edge")
    by, bx = _grid(nby, nbx)
    win = _windows(rp, 9)[by * 8 + (mvy >> 2) + _CHROMA_PAD, bx * 8 + (mvx >> 2) + _CHROMA_PAD].astype(
        np.int16
    )
    fy = (mvy & 3)[..., None, None].astype(np.int16)
    fx = (mvx & 3)[..., None, None].astype(np.int16)
    top = win[..., :-1, :-1] * (4 - fx) + win[..., :-1, 1:] * fx
    bot = win[..., 1:, :-1] * (4 - fx) + win[..., 1:, 1:] * fx
    pred = ((top * (4 - fy) + bot * fy + 8) >> 4).astype(np.uint8)
    return pred.transpose(0, 2, 1, 3).reshape(nby * 8, nbx * 8)


def _predict(ref: tuple[np.ndarray, np.ndarray, np.ndarray], mv: np.ndarray) -> list[np.ndarray]:
    """Motion-compensated prediction planes (uint8) of a frame from the reference frame."""
    mvy, mvx = mv[..., 0], mv[..., 1]
    nby, nbx = mvy.shape
    by, bx = _grid(nby, nbx)
    luma = _luma_blocks(_windows(_luma_phases(ref[0]), 16), by, bx, mvy, mvx)
    return [
        luma.transpose(0, 2, 1, 3).reshape(nby * 16, nbx * 16),
        _chroma_pred(ref[1], mvy, mvx),
        _chroma_pred(ref[2], mvy, mvx),
    ]


# ----------------------------------------------------------------------------- motion search


def _half(x: np.ndarray) -> np.ndarray:
    """2x2 rounded mean (uint8)."""
    x = x.astype(np.uint16)
    return ((x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2] + 2) >> 2).astype(np.uint8)


def _rows(plane: np.ndarray, bs: int) -> np.ndarray:
    """(h, w) -> (h / bs, w / bs, bs * bs): each block's samples as one contiguous row."""
    h, w = plane.shape
    return np.ascontiguousarray(plane.reshape(h // bs, bs, w // bs, bs).transpose(0, 2, 1, 3)).reshape(
        h // bs, w // bs, bs * bs
    )


def _sad(pred: np.ndarray, cur_rows: np.ndarray) -> np.ndarray:
    """Sum of absolute differences per block: pred (..., bs, bs), cur_rows (..., bs * bs)."""
    shape = pred.shape[:-2]
    a = np.ascontiguousarray(pred).reshape(-1, cur_rows.shape[-1])
    b = cur_rows.reshape(-1, cur_rows.shape[-1])
    return cv2.reduce(cv2.absdiff(a, b), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).reshape(shape)


def _offsets(radius: int) -> list[tuple[int, int]]:
    """Search offsets, nearest first, so that ties keep the shorter vector."""
    return sorted(
        ((dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)),
        key=lambda o: (abs(o[0]) + abs(o[1]), o),
    )


def _keep_better(best, best_mv, cost, cand):
    take = cost < best
    return np.where(take, cost, best), np.where(take[..., None], cand, best_mv)


def _motion_search(cur: np.ndarray, ref: np.ndarray) -> dict:
    """Half-pel vectors (nmy, nmx, 2) of the 16x16 blocks of cur in ref by SAD, with costs."""
    h, w = cur.shape
    nmy, nmx = h // 16, w // 16
    by, bx = _grid(nmy, nmx)
    # level 2: full search +-6 at 1/4 resolution (4x4 blocks), block sums from an integral image
    cur2, ref2 = _half(cur), _half(ref)
    cur4, ref4 = _half(cur2), _half(ref2)
    radius = 6
    rp = np.pad(ref4, radius, mode="edge")
    h4, w4 = cur4.shape
    best = best_mv = None
    for dy, dx in _offsets(radius):
        diff = cv2.absdiff(
            cur4, np.ascontiguousarray(rp[radius + dy : radius + dy + h4, radius + dx : radius + dx + w4])
        )
        s = cv2.integral(diff, sdepth=cv2.CV_32S)[::4, ::4]
        cost = s[1:, 1:] - s[:-1, 1:] - s[1:, :-1] + s[:-1, :-1] + 2 * (abs(dy) + abs(dx))
        cand = np.broadcast_to(np.array([dy, dx], dtype=np.int32), (nmy, nmx, 2))
        if best is None:
            best, best_mv = cost, cand
        else:
            best, best_mv = _keep_better(best, best_mv, cost, cand)
    # level 1: +-1 at 1/2 resolution (8x8 blocks)
    pad1 = 16
    win1 = _windows(np.pad(ref2, pad1, mode="edge"), 8)
    rows1 = _rows(cur2, 8)
    mv = best_mv * 2
    best = None
    for dy, dx in _offsets(1):
        cand = np.clip(mv + np.array([dy, dx]), -14, 14)
        cost = _sad(win1[by * 8 + cand[..., 0] + pad1, bx * 8 + cand[..., 1] + pad1], rows1)
        cost = cost + 2 * (np.abs(cand[..., 0]) + np.abs(cand[..., 1]))
        best, best_mv = (cost, cand) if best is None else _keep_better(best, best_mv, cost, cand)
    # level 0: +-1 integer, then the 8 half-pel neighbours, bilinear exactly as the decoder
    win0 = _windows(_luma_phases(ref), 16)
    rows0 = _rows(cur, 16)
    mv = best_mv * 4
    best = None
    for dy, dx in _offsets(1):
        cand = np.clip(mv + np.array([2 * dy, 2 * dx]), 2 - _MV_MAX, _MV_MAX - 2)
        cost = _sad(_luma_blocks(win0, by, bx, cand[..., 0], cand[..., 1]), rows0) + 4 * cand.any(axis=2)
        best, best_mv = (cost, cand) if best is None else _keep_better(best, best_mv, cost, cand)
    mv = best_mv
    for dy, dx in _offsets(1)[1:]:
        cand = np.clip(mv + np.array([dy, dx]), -_MV_MAX, _MV_MAX)
        cost = _sad(_luma_blocks(win0, by, bx, cand[..., 0], cand[..., 1]), rows0) + 4 * cand.any(axis=2)
        best, best_mv = _keep_better(best, best_mv, cost, cand)
    zero = np.zeros_like(best_mv)
    flat = rows0.astype(np.int32)
    intra = np.abs(flat - (flat.sum(axis=2, keepdims=True) + 128) // 256).sum(axis=2)
    return {
        "mv": best_mv.astype(np.int32),
        "sad": best,
        "zsad": _sad(_luma_blocks(win0, by, bx, zero[..., 0], zero[..., 1]), rows0),
        "intra": intra,
    }


def _mv_bits(d: np.ndarray) -> np.ndarray:
    """Approximate bits of vector differences (signed Exp-Golomb length per component)."""
    a = np.abs(d)
    bits = np.where(a == 0, 1.0, 2.0 * np.floor(np.log2(np.maximum(a, 1))) + 3.0)
    return bits.sum(axis=-1)


def _regularize(cur: np.ndarray, ref: np.ndarray, info: dict, lam: float) -> np.ndarray:
    """Trade SAD against vector bits (vectors are sent as differences to the left neighbour).

    Column by column, left to right (vectorised over the rows), each block takes the
    cheapest of: its best vector, zero, its left neighbour's chosen vector, the best vector
    of the block above; cost = SAD + lam * bits(vector - left vector)."""
    best_mv = info["mv"]
    if lam <= 0:
        return best_mv
    nmy, nmx = best_mv.shape[:2]
    win = _windows(_luma_phases(ref), 16)
    rows = _rows(cur, 16)
    by, bx = _grid(nmy, nmx)
    up = np.zeros_like(best_mv)
    up[1:] = best_mv[:-1]
    fixed = [best_mv, np.zeros_like(best_mv), up]
    sads = [info["sad"], info["zsad"], _sad(_luma_blocks(win, by, bx, up[..., 0], up[..., 1]), rows)]
    col_rows = np.ascontiguousarray(rows.transpose(1, 0, 2))
    ys = np.arange(nmy)
    field = np.zeros_like(best_mv)
    left = np.zeros((nmy, 2), dtype=best_mv.dtype)
    for col in range(nmx):
        pred = _luma_blocks(win, ys, col, left[:, 0], left[:, 1])
        chosen, best_cost = left, _sad(pred, col_rows[col]) + lam * 2.0
        for vec, sad in zip(fixed, sads):
            cand = vec[:, col]
            cost = sad[:, col] + lam * _mv_bits(cand - left)
            take = cost < best_cost
            best_cost = np.where(take, cost, best_cost)
            chosen = np.where(take[:, None], cand, chosen)
        field[:, col] = chosen
        left = chosen
    return field


# --------------------------------------------------------------------------- entropy coding


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or malformed length field")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


class _Writer:
    """Collects the streams of a clip. Coefficients of each 8x8 block (zigzag order):
    a coded-block bit; for coded blocks one byte per non-zero level holding
    min(zero run before it, 31), a last-in-block bit and min(|level|, 4) - 1 (a joint
    run/last/level symbol as in H.263, entropy coded by zstd's Huffman stage); run - 31
    and |level| - 4 (int16 escape past 254) in extra streams; the signs as bits."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {name: [] for name in _STREAMS}

    def add_levels(self, levels: np.ndarray, chroma: bool) -> None:
        coded = levels.any(axis=1)
        self.parts["flagc" if chroma else "flagy"].append(coded)
        flat = levels[coded].ravel()
        idx = np.flatnonzero(flat)
        if idx.size == 0:
            return
        blk, pos = idx >> 6, idx & 63
        change = blk[1:] != blk[:-1]
        first = np.concatenate(([True], change))
        last = np.concatenate((change, [True]))
        prev = np.where(first, -1, np.concatenate(([0], pos[:-1])))
        run = pos - prev - 1
        values = flat[idx]
        mag = np.abs(values)
        sym = (np.minimum(run, 31) << 3) | (last.astype(np.int64) << 2) | (np.minimum(mag, 4) - 1)
        self.parts["symc" if chroma else "symy"].append(sym.astype(np.uint8))
        self.parts["runx"].append((run[run >= 31] - 31).astype(np.uint8))
        ext = mag[mag >= 4] - 4
        big = ext >= 255
        self.parts["magx"].append(np.where(big, 255, ext).astype(np.uint8))
        if big.any():
            self.parts["esc"].append(ext[big].astype("<i2"))
        self.parts["sign"].append(values < 0)

    def payload(self) -> bytes:
        params = zstandard.ZstdCompressionParameters.from_level(
            _ZSTD_LEVEL,
            format=zstandard.FORMAT_ZSTD1_MAGICLESS,
            write_checksum=0,
            write_content_size=0,
            write_dict_id=0,
            threads=0,
        )
        comp = zstandard.ZstdCompressor(compression_params=params)
        out = bytearray()
        for name in _STREAMS:
            parts = self.parts[name]
            if name in _BIT_STREAMS:
                raw = np.packbits(np.concatenate(parts)).tobytes() if parts else b""
            else:
                raw = b"".join(np.ascontiguousarray(p).tobytes() for p in parts)
            data = comp.compress(raw) if raw else b""
            out += _varint(len(data)) + data
        return bytes(out)


class _Reader:
    """Reads what `_Writer` wrote, in the same order, checking every count."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.chunks: dict[str, bytes] = {}
        for name in _STREAMS:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise ValueError(f"stream {name} runs past the end of the bitstream")
            self.chunks[name] = data[pos : pos + size]
            pos += size
        if pos != len(data):
            raise ValueError(f"{len(data) - pos} trailing bytes after the last stream")
        self.dec = zstandard.ZstdDecompressor(format=zstandard.FORMAT_ZSTD1_MAGICLESS)
        self.raw: dict[str, np.ndarray] = {}
        self.pos: dict[str, int] = {name: 0 for name in _STREAMS}
        self.ends: dict[str, np.ndarray] = {}
        self.blocks: dict[str, int] = {"symy": 0, "symc": 0}

    def _stream(self, name: str) -> np.ndarray:
        if name not in self.raw:
            chunk = self.chunks[name]
            raw = b""
            if chunk:
                try:
                    raw = self.dec.decompressobj().decompress(chunk)
                except zstandard.ZstdError as err:
                    raise ValueError(f"stream {name} is not valid zstd data: {err}") from err
            arr = np.frombuffer(raw, dtype=np.uint8)
            self.raw[name] = np.unpackbits(arr) if name in _BIT_STREAMS else arr
        return self.raw[name]

    def take(self, name: str, count: int, dtype: str = "u1") -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=dtype)
        raw = self._stream(name)
        item = np.dtype(dtype).itemsize
        start = self.pos[name]
        end = start + count * item
        if end > raw.size:
            raise ValueError(f"stream {name} is too short")
        self.pos[name] = end
        return raw[start:end].view(dtype)

    def take_levels(self, count: int, chroma: bool) -> np.ndarray:
        levels = np.zeros((count, 64), dtype=np.int32)
        coded = self.take("flagc" if chroma else "flagy", count).astype(bool)
        k = int(coded.sum())
        if k == 0:
            return levels
        name = "symc" if chroma else "symy"
        syms = self._stream(name)
        if name not in self.ends:
            self.ends[name] = np.flatnonzero(syms & 4)
        first_block = self.blocks[name]
        if first_block + k > self.ends[name].size:
            raise ValueError(f"stream {name} holds fewer coded blocks than the flags say")
        stop = int(self.ends[name][first_block + k - 1]) + 1
        sym = syms[self.pos[name] : stop].astype(np.int64)
        self.pos[name] = stop
        self.blocks[name] = first_block + k
        run = sym >> 3
        last = (sym >> 2) & 1
        mag = (sym & 3) + 1
        long_run = run == 31
        run[long_run] += self.take("runx", int(long_run.sum()))
        big = mag == 4
        ext = self.take("magx", int(big.sum())).astype(np.int64)
        esc = ext == 255
        if esc.any():
            ext[esc] = self.take("esc", int(esc.sum()), "<i2")
        mag[big] += ext
        values = np.where(self.take("sign", sym.size).astype(bool), -mag, mag)
        blk = np.cumsum(last) - last
        steps = np.cumsum(run + 1)
        ends = np.flatnonzero(last)
        base = np.concatenate(([0], steps[ends[:-1]]))
        pos = steps - 1 - base[blk]
        if pos.max() > 63:
            raise ValueError("coefficient position past 63")
        levels[np.flatnonzero(coded)[blk], pos] = values
        return levels

    def finish(self) -> None:
        for name in _STREAMS:
            size = self._stream(name).size
            left = size - self.pos[name]
            if left < 0 or left >= (8 if name in _BIT_STREAMS else 1):
                raise ValueError(f"stream {name} has {left} unused entries")


# ------------------------------------------------------------------------- frame coding


def _code_plane(cur: np.ndarray, pred, step16: int, mv, chroma: bool, writer: _Writer) -> np.ndarray:
    """Quantize cur - pred, record the levels and return the reconstructed, deblocked plane."""
    h, w = cur.shape
    intra = mv is None
    cur_b = _plane_blocks(cur).astype(np.float64)
    pred_b = 128.0 if intra else _plane_blocks(pred).astype(np.float64)
    coef = _transform(cur_b - pred_b, _KF)
    dead = _DEAD_INTRA if intra else _DEAD_INTER
    mag = np.floor(np.abs(coef) * (1.0 / (step16 * float(1 << 20))) + dead)
    levels = np.copysign(mag, coef).astype(np.int32)
    if intra:
        sent = levels.copy()
        sent[:, 0] = _dc_dpcm(levels[:, 0].reshape(h // 8, w // 8), inverse=False).ravel()
    else:
        sent = levels
    writer.add_levels(sent, chroma)
    return _finish_plane(levels, pred_b, step16, h, w, mv, chroma)


def _decode_plane(reader: _Reader, h: int, w: int, pred, step16: int, mv, chroma: bool) -> np.ndarray:
    levels = reader.take_levels((h // 8) * (w // 8), chroma)
    if mv is None:
        levels[:, 0] = _dc_dpcm(levels[:, 0].reshape(h // 8, w // 8), inverse=True).ravel()
    pred_b = 128.0 if mv is None else _plane_blocks(pred)
    return _finish_plane(levels, pred_b, step16, h, w, mv, chroma)


def _finish_plane(levels, pred_b, step16: int, h: int, w: int, mv, chroma: bool) -> np.ndarray:
    plane = _blocks_plane(_reconstruct(levels, pred_b, step16), h, w)
    coded = levels.any(axis=1).reshape(h // 8, w // 8)
    return _deblock(plane, coded, mv, step16, 1 if chroma else 2)


def _deblock(plane: np.ndarray, coded: np.ndarray, mv, step16: int, per_mb: int) -> np.ndarray:
    """In-loop deblocking of the 8x8 block edges (H.264's normal filter on p0/q0).

    An edge is filtered in intra frames, where a block on either side has coefficients, or
    where the vectors of the two sides differ; a sample pair only where the step across the
    edge is small (< alpha) and both sides are smooth (< beta): a blocking artefact, not an
    edge of the picture. Integer arithmetic: encoder and decoder agree exactly."""
    step = step16 / 16.0
    alpha, beta, tc = int(_DB_ALPHA * step), int(_DB_BETA * step), int(_DB_TC * step)
    if tc < 1 or beta < 1:
        return plane
    x = plane.astype(np.int16)
    if mv is None:
        act = np.ones_like(coded)
        act_v, act_h = act[:, 1:], act[1:, :]
    else:
        mvb = np.repeat(np.repeat(mv, per_mb, axis=0), per_mb, axis=1)
        act_v = coded[:, 1:] | coded[:, :-1] | (mvb[:, 1:] != mvb[:, :-1]).any(axis=2)
        act_h = coded[1:, :] | coded[:-1, :] | (mvb[1:, :] != mvb[:-1, :]).any(axis=2)
    for t, act in ((x, act_v), (x.T, act_h.T)):  # vertical edges, then horizontal ones
        if act.shape[1] == 0 or not act.any():
            continue
        cols = np.arange(1, act.shape[1] + 1) * 8
        p1, p0, q0, q1 = t[:, cols - 2], t[:, cols - 1], t[:, cols], t[:, cols + 1]
        on = np.repeat(act, 8, axis=0)
        on &= (np.abs(p0 - q0) < alpha) & (np.abs(p1 - p0) < beta) & (np.abs(q1 - q0) < beta)
        delta = np.clip(((q0 - p0) * 4 + (p1 - q1) + 4) >> 3, -tc, tc) * on
        t[:, cols - 1] = np.clip(p0 + delta, 0, 255)
        t[:, cols] = np.clip(q0 - delta, 0, 255)
    return x.astype(np.uint8)


def _mv_diff(mv: np.ndarray) -> np.ndarray:
    """Vectors as differences to the left neighbour (zero before the first column)."""
    d = mv.copy()
    d[:, 1:] = mv[:, 1:] - mv[:, :-1]
    return d


def _mv_undiff(d: np.ndarray) -> np.ndarray:
    return np.cumsum(d, axis=1)


def _lambda(qp4: int) -> float:
    """SAD cost of one vector bit at this qp (H.264's lambda_motion ~ 0.37 x step); a step bucket."""
    bucket = (qp4 // 8) * 8 + 4
    return _LAMBDA_SCALE * 2.0 ** ((bucket / 4.0 - 4.0) / 6.0)


def _encode_clip(planes, analysis, qp4: int, fields: dict) -> bytes:
    y, u, v = planes
    writer = _Writer()
    ftypes = []
    prev = None
    lam = _lambda(qp4)
    for f in range(y.shape[0]):
        info = analysis[f]
        intra = info is None
        if intra:
            step16 = _step16(max(0, qp4 - _I_OFFSET4))
            preds, mv = [None, None, None], None
        else:
            key = (f, lam)
            if key not in fields:
                fields[key] = _regularize(y[f], y[f - 1], info, lam)
            mv = fields[key]
            step16 = _step16(qp4)
            preds = _predict(prev, mv)
            d = _mv_diff(mv)
            writer.parts["mvy"].append(d[..., 0].astype(np.int8))
            writer.parts["mvx"].append(d[..., 1].astype(np.int8))
        ftypes.append(0 if intra else 1)
        prev = tuple(
            _code_plane(c, p, step16, mv, i > 0, writer)
            for i, (c, p) in enumerate(zip((y[f], u[f], v[f]), preds))
        )
    writer.parts["ftype"].append(np.array(ftypes, dtype=np.uint8))
    return writer.payload()


def _pad_plane(x: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, h - x.shape[1]), (0, w - x.shape[2])), mode="edge")


def _analyse(y: np.ndarray) -> list:
    """Motion search on the source frames, once per clip; None marks an intra frame."""
    out: list = [None]
    for f in range(1, y.shape[0]):
        info = _motion_search(y[f], y[f - 1])
        out.append(None if info["sad"].sum() > 0.85 * info["intra"].sum() else info)
    return out


def _search(build, budget: float, start: int, top: int, slope: float) -> bytes:
    """Output of the lowest setting q in 0..top whose size fits `budget` (size falls as q rises).

    Safeguarded secant on log2(size): one-sided extrapolation (slope clamped) until the
    target is bracketed, then interpolation kept inside the bracket, with a bisection step
    whenever the bracket did not halve. Stops when the best fitting size is >= 96 % of the
    budget or the bracket is one step wide. Returns the coarsest setting when nothing fits."""
    results: dict[int, bytes] = {}
    lo, hi = -1, top + 1  # lo: highest q known to overshoot; hi: lowest q known to fit
    aim = np.log2(budget * 0.985)
    q, width = start, float("inf")
    for _ in range(16):
        data = results[q] = build(q)
        if len(data) <= budget:
            hi = q
        else:
            lo = q
        if hi - lo <= 1 or (hi <= top and len(results[hi]) >= 0.96 * budget):
            break
        if lo >= 0 and hi <= top:
            sa, sb = np.log2(len(results[lo])), np.log2(len(results[hi]))
            if hi - lo > width / 2 or not sb < sa:
                guess = (lo + hi) / 2
            else:
                guess = lo + (aim - sa) / (sb - sa) * (hi - lo)
            margin = max(1, (hi - lo) // 8)
            q = int(np.clip(round(guess), lo + margin, hi - margin))
            width = hi - lo
        else:
            if len(results) >= 2:
                (qa, a), (qb, b) = sorted(results.items())[:1] + sorted(results.items())[-1:]
                if qb != qa:
                    slope = float(
                        np.clip((np.log2(len(b)) - np.log2(len(a))) / (qb - qa), slope * 3, slope / 3)
                    )
            q = int(np.clip(q + round((aim - np.log2(len(data))) / slope), lo + 1, hi - 1))
        if q in results:
            q = (lo + hi) // 2
            if q in results or not lo < q < hi:
                break
    if hi <= top:
        return results[hi]
    return results[top] if top in results else build(top)


def encode(video: Video, target_bitrate: float) -> bytes:
    """Encode the whole clip at or below `target_bitrate` bits per second (best qp that fits)."""
    frames, height, width = video.y.shape
    h16, w16 = -(-height // 16) * 16, -(-width // 16) * 16
    planes = (
        _pad_plane(video.y, h16, w16),
        _pad_plane(video.u, h16 // 2, w16 // 2),
        _pad_plane(video.v, h16 // 2, w16 // 2),
    )
    analysis = _analyse(planes[0])
    fields: dict = {}
    fps = Fraction(video.fps)
    budget = float(target_bitrate) * frames / float(fps) / 8.0 * _RATE_MARGIN

    def build(qp4: int) -> bytes:
        head = _HEADER.pack(MAGIC, VERSION, width, height, frames, fps.numerator, fps.denominator, qp4)
        return head + _encode_clip(planes, analysis, qp4, fields)

    bpp = budget * 8.0 / (frames * h16 * w16)
    qp4 = int(np.clip(round(4 * (22.0 - 6.0 * np.log2(max(bpp, 1e-6) / 0.1))), 0, _QP_MAX4))
    return _search(build, budget, qp4, _QP_MAX4, -0.05)


def decode(bitstream: bytes) -> Video:
    """Rebuild the clip from the bitstream alone; ValueError on anything that is not one."""
    try:
        return _decode(bytes(bitstream))
    except ValueError:
        raise
    except (struct.error, IndexError, TypeError, OverflowError, MemoryError, zstandard.ZstdError) as err:
        raise ValueError(f"corrupt dct_inter bitstream: {type(err).__name__}: {err}") from err


def _decode(data: bytes) -> Video:
    if len(data) < _HEADER.size or data[:4] != MAGIC:
        raise ValueError("not a dct_inter bitstream (bad magic)")
    _, version, width, height, frames, num, den, qp4 = _HEADER.unpack_from(data, 0)
    if version != VERSION:
        raise ValueError(f"dct_inter bitstream version {version}, this decoder reads {VERSION}")
    if min(width, height, frames, num, den) < 1 or qp4 > _QP_MAX4:
        raise ValueError("dct_inter header holds an empty size, zero frame rate or bad qp")
    h16, w16 = -(-height // 16) * 16, -(-width // 16) * 16
    if frames * h16 * w16 > _MAX_SAMPLES:
        raise ValueError(f"dct_inter header claims an implausibly large clip {width}x{height}x{frames}")
    reader = _Reader(data, _HEADER.size)
    ftypes = reader.take("ftype", frames, "u1")
    if (ftypes > 1).any() or ftypes[0] != 0:
        raise ValueError("bad frame types (the first frame must be intra)")
    if reader._stream("flagy").size < frames * (h16 // 8) * (w16 // 8):
        raise ValueError("the coded-block flags are fewer than the header's frame size needs")
    ch, cw = (height + 1) // 2, (width + 1) // 2
    y = np.empty((frames, height, width), dtype=np.uint8)
    u = np.empty((frames, ch, cw), dtype=np.uint8)
    v = np.empty((frames, ch, cw), dtype=np.uint8)
    nmy, nmx = h16 // 16, w16 // 16
    prev = None
    for f in range(frames):
        intra = ftypes[f] == 0
        if intra:
            step16 = _step16(max(0, qp4 - _I_OFFSET4))
            preds, mv = [None, None, None], None
        else:
            step16 = _step16(qp4)
            mv = np.stack(
                [reader.take(n, nmy * nmx, "i1").astype(np.int32).reshape(nmy, nmx) for n in ("mvy", "mvx")],
                axis=-1,
            )
            mv = np.clip(_mv_undiff(mv), -_MV_MAX, _MV_MAX)
            preds = _predict(prev, mv)
        prev = (
            _decode_plane(reader, h16, w16, preds[0], step16, mv, False),
            _decode_plane(reader, h16 // 2, w16 // 2, preds[1], step16, mv, True),
            _decode_plane(reader, h16 // 2, w16 // 2, preds[2], step16, mv, True),
        )
        y[f] = prev[0][:height, :width]
        u[f] = prev[1][:ch, :cw]
        v[f] = prev[2][:ch, :cw]
    reader.finish()
    return Video(y, u, v, Fraction(num, den))
