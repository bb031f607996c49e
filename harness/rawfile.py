"""Decoding a clip straight into the raw transport format (`Video.save`'s bytes), never whole in memory.

`decode_to_raw` writes a file named by the content's sha256; `decode_to_sealed` writes a sealed
memfd (harness/sealed.py) that no process can change: the clip store's source. Both decode with
`harness.video`'s frame reader, so the bytes are exactly `read_video(...)[0].save(...)`'s.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from harness.sealed import SealedFile
from harness.video import RAW_MAGIC, VideoInfo, _FrameSource, _header_json, chroma_shape

__all__ = ["decode_to_raw", "decode_to_sealed"]

_MOVE_CHUNK = 8 << 20  # bytes moved at a time when a raw file's planes are laid out again
_GUESS_MAX_BYTES = 64 << 30  # the most room a guessed frame count reserves up front (sparse)


@dataclass(frozen=True)
class _RawLayout:
    """Where the header and the Y, U and V blocks of a raw file of `frames` frames lie."""

    width: int
    height: int
    frames: int
    fps: Fraction

    @property
    def header(self) -> bytes:
        return RAW_MAGIC + _header_json(self.width, self.height, self.frames, self.fps) + b"\n"

    @property
    def luma(self) -> int:
        return self.width * self.height

    @property
    def chroma(self) -> int:
        ch, cw = chroma_shape(self.height, self.width)
        return ch * cw

    def offsets(self) -> tuple[int, int, int, int]:
        """Start of Y, of U, of V, and the file's size."""
        y = len(self.header)
        u = y + self.frames * self.luma
        v = u + self.frames * self.chroma
        return y, u, v, v + self.frames * self.chroma


def _pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def _pread_into(fd: int, view: memoryview, offset: int) -> None:
    while view:
        done = os.preadv(fd, [view], offset)
        if done <= 0:
            raise OSError(f"raw file ended while reading at {offset}")
        view, offset = view[done:], offset + done


_fallocate = None


def _punch_hole(fd: int, start: int, end: int) -> None:
    """Give back a byte range's pages (tmpfs, ext4, xfs) without changing the size; best effort."""
    global _fallocate
    if end <= start or not sys.platform.startswith("linux"):
        return
    if _fallocate is None:
        import ctypes

        try:
            func = ctypes.CDLL(None, use_errno=True).fallocate
            func.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
            func.restype = ctypes.c_int
            _fallocate = func
        except (OSError, AttributeError):
            _fallocate = False
    if _fallocate:
        _fallocate(fd, 0x01 | 0x02, start, end - start)  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE


def _minus(start: int, end: int, keep: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [start, end) outside every range in `keep`."""
    parts = [(start, end)]
    for k0, k1 in keep:
        parts = [p for a, b in parts for p in ((a, min(b, k0)), (max(a, k1), b)) if p[0] < p[1]]
    return parts


def _relayout(fd: int, old: _RawLayout, new: _RawLayout, filled: int) -> None:
    """Move the first `filled` frames of each plane block from `old`'s places to `new`'s, in place.

    Blocks moving down are moved first, lowest first, front to back; then blocks moving up,
    highest first, back to front; so no byte is overwritten before it was read. Bytes read and
    not (yet) holding moved data are punched out as the move goes, so a file in /dev/shm does not
    hold both places of a block at once.
    """
    oy, ou, ov, _ = old.offsets()
    ny, nu, nv, size = new.offsets()
    lengths = (filled * old.luma, filled * old.chroma, filled * old.chroma)
    blocks = [(src, dst, n) for src, dst, n in zip((oy, ou, ov), (ny, nu, nv), lengths) if n and src != dst]
    if not blocks:
        return
    # Blocks that do not move are in place already; a block's source is never another's.
    keep = [(dst, dst + n) for src, dst, n in zip((oy, ou, ov), (ny, nu, nv), lengths) if src == dst]
    if os.fstat(fd).st_size < size:
        os.ftruncate(fd, size)
    buf = memoryview(bytearray(_MOVE_CHUNK))
    down = [b for b in blocks if b[1] < b[0]]
    up = [b for b in reversed(blocks) if b[1] > b[0]]
    for src, dst, n in down + up:
        keep.append((dst, dst + n))  # written from now on; later blocks' places may be punched
        starts = range(0, n, _MOVE_CHUNK)
        for at in starts if dst < src else reversed(starts):
            part = buf[: min(_MOVE_CHUNK, n - at)]
            _pread_into(fd, part, src + at)
            _pwrite_all(fd, part, dst + at)
            for a, b in _minus(src + at, src + at + len(part), keep):
                _punch_hole(fd, a, b)


class _RawWriter:
    """Frames written one at a time into a raw file (`Video.save`'s format, byte for byte).

    The file is laid out for a guessed frame count: Y, U and V of frame i go straight to their
    final places. More frames than guessed double the room (moving U and V up); at the end the
    blocks are moved down to fit the real count. The header is written last, so a file cut off
    before `finish` has no magic and never reads as a video.
    """

    def __init__(self, fd: int, width: int, height: int, fps: Fraction, guess: int | None) -> None:
        self.fd = fd
        self.count = 0
        frame_bytes = width * height + 2 * math.prod(chroma_shape(height, width))
        # Only where the planes go depends on the guess, never the file: a container claiming
        # absurdly many frames costs a sparse file (capped at _GUESS_MAX_BYTES) and one move.
        frames = max(1, min(guess or 16, _GUESS_MAX_BYTES // frame_bytes))
        self.layout = _RawLayout(width, height, frames, fps)
        os.ftruncate(fd, self.layout.offsets()[3])

    def append(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        lay = self.layout
        if self.count == lay.frames:
            grown = _RawLayout(lay.width, lay.height, 2 * lay.frames, lay.fps)
            _relayout(self.fd, lay, grown, self.count)
            self.layout = lay = grown
        oy, ou, ov, _ = lay.offsets()
        i = self.count
        _pwrite_all(self.fd, np.ascontiguousarray(y), oy + i * lay.luma)
        _pwrite_all(self.fd, np.ascontiguousarray(u), ou + i * lay.chroma)
        _pwrite_all(self.fd, np.ascontiguousarray(v), ov + i * lay.chroma)
        self.count += 1

    def finish(self, fps: Fraction) -> str:
        """Lay the file out for the frames written, write the header; the content's `Video.sha256`."""
        lay = self.layout
        final = _RawLayout(lay.width, lay.height, self.count, fps)
        _relayout(self.fd, lay, final, self.count)
        payload_at, _, _, size = final.offsets()
        os.ftruncate(self.fd, size)
        self.layout = final
        digest = hashlib.sha256(_header_json(final.width, final.height, final.frames, final.fps))
        buf = memoryview(bytearray(4 << 20))
        for at in range(payload_at, size, len(buf)):
            part = buf[: min(len(buf), size - at)]
            _pread_into(self.fd, part, at)
            digest.update(part)
        _pwrite_all(self.fd, final.header, 0)
        return digest.hexdigest()


def decode_to_raw(
    path: str | os.PathLike[str],
    directory: str | os.PathLike[str],
    *,
    max_frames: int | None = None,
    fps: Fraction | None = None,
) -> tuple[Path, VideoInfo, str]:
    """Decode a file frame by frame straight into ``directory/<sha256>.hvid``: (raw path, info, sha256).

    The file is exactly what ``read_video(...)[0].save`` would write, and named by that Video's
    `sha256`, with the same checks and errors as `read_video`, but no frame is held in memory
    beyond the one being written: the clip costs its raw size once (in the file), not twice.
    It is written under a temporary name and renamed when complete; a failure (a `ClipError`
    for a corrupt file, or an interrupt) removes it, and a run killed midway leaves only a
    ``.*.tmp`` file without the raw format's magic. A file already there (same content) is kept.
    """
    directory = Path(directory)
    with _FrameSource(path, max_frames, fps) as source:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".decode-", suffix=".hvid.tmp")
        try:
            sha, info = _decode_into(fd, source)
            os.close(fd)
            fd = -1
            target = directory / f"{sha}.hvid"
            try:
                os.link(tmp, target)  # never replaces a file another process may have mapped
            except FileExistsError:
                pass
            except OSError:
                os.replace(tmp, target)
        finally:
            if fd >= 0:
                os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target, info, sha


def _decode_into(fd: int, source: _FrameSource) -> tuple[str, VideoInfo]:
    """Every frame of `source` into the raw file `fd` (header last): (its Video.sha256, info)."""
    writer: _RawWriter | None = None
    for y, u, v in source.frames():
        if writer is None:
            # The header's rate, until finish() checks the real one: only its length matters.
            guess_rate = Fraction(source.rate) if source.rate and source.rate > 0 else Fraction(1)
            writer = _RawWriter(fd, y.shape[1], y.shape[0], guess_rate, source.expected_frames())
        writer.append(y, u, v)
    rate, info = source.finish()
    assert writer is not None  # finish() raises for a file without frames
    return writer.finish(rate), info


def decode_to_sealed(
    path: str | os.PathLike[str], *, max_frames: int | None = None, fps: Fraction | None = None
) -> tuple[SealedFile, VideoInfo, str]:
    """Like `decode_to_raw`, into a sealed memfd no process can change: (file, info, sha256).

    The sha256 is computed from the memfd's own bytes before it is sealed, in this process
    alone, so it names exactly what every later reader (the measurements, the anchors, each
    sandboxed encoder) sees.
    """
    result: list[tuple[str, VideoInfo]] = []
    with _FrameSource(path, max_frames, fps) as source:
        sealed = SealedFile(f"clip-{Path(path).name}", lambda fd: result.append(_decode_into(fd, source)))
    return sealed, result[0][1], result[0][0]
