"""A libx265 wrapper (HEVC, preset medium, one thread) through PyAV: the kind of candidate an LLM writes
when asked to beat HEVC and allowed any library (issue 14).

It is x265 itself, so it must never be crowned "the LLM's codec": in the native track the sandbox
refuses its `import av` (PyAV is a library codec); declared open (below) it is judged and reported
as "open, wraps libx265, hevc". Same structure as candidates/x264_pyav.py: constant QP searched for
the lowest QP whose whole-clip size fits 0.98 x the target, a small header (magic, version, size,
frame count, frame rate, QP, packet count), then the packets (Annex-B HEVC; `info=0` keeps x265's
version SEI out). One thread, no thread pools, no wavefront: the same input gives the same bytes.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from harness.video import Video

__all__ = ["decode", "encode"]

TRACK = "open"  # a wrapper of a library codec (libx265): judged in the open track

MAGIC = b"X265"
VERSION = 1
_QP_MAX = 51
_RATE_MARGIN = 0.98
_MAX_SAMPLES = 1 << 31


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 35:
            raise ValueError("truncated or malformed packet size")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _make_frames(video: Video, width2: int, height2: int) -> list:
    frames = []
    for i in range(video.frames):
        y = video.y[i]
        if y.shape != (height2, width2):
            y = np.pad(y, ((0, height2 - y.shape[0]), (0, width2 - y.shape[1])), mode="edge")
        # from_ndarray copies every byte x264 reads; filling planes with plane.update() left
        # bytes uninitialised and made the output depend on memory layout (seen: other bytes
        # with OPENBLAS_NUM_THREADS=2).
        stacked = np.concatenate([np.ascontiguousarray(p).ravel() for p in (y, video.u[i], video.v[i])])
        frame = av.VideoFrame.from_ndarray(stacked.reshape(height2 * 3 // 2, width2), format="yuv420p")
        frame.pts = i
        frame.time_base = Fraction(1, 1) / Fraction(video.fps)
        frames.append(frame)
    return frames


def _encode_packets(frames: list, width2: int, height2: int, fps: Fraction, qp: int) -> list[bytes]:
    ctx = av.CodecContext.create("libx265", "w")
    ctx.width = width2
    ctx.height = height2
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = 1 / fps
    ctx.framerate = fps
    ctx.thread_count = 1
    params = f"log-level=error:info=0:pools=none:frame-threads=1:wpp=0:lookahead-slices=0:qp={qp}"
    ctx.options = {"preset": "medium", "x265-params": params}
    packets = []
    for frame in frames:
        packets.extend(bytes(p) for p in ctx.encode(frame))
    packets.extend(bytes(p) for p in ctx.encode(None))
    return [p for p in packets if p]


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
    """Encode the whole clip with libx265 at the lowest constant QP that fits `target_bitrate` bits per second."""
    frames_n, height, width = video.y.shape
    width2, height2 = width + (width & 1), height + (height & 1)
    fps = Fraction(video.fps)
    budget = float(target_bitrate) * frames_n / float(fps) / 8.0 * _RATE_MARGIN

    def build(qp: int) -> bytes:
        # Fresh frames for every trial encode: an encoder may leave state on the AVFrames it saw.
        packets = _encode_packets(_make_frames(video, width2, height2), width2, height2, fps, qp)
        fields = (width, height, frames_n, fps.numerator, fps.denominator, qp * 100, len(packets))
        head = MAGIC + bytes([VERSION]) + b"".join(_varint(n) for n in fields)
        return head + b"".join(_varint(len(p)) for p in packets) + b"".join(packets)

    top = int(_QP_MAX)
    bpp = budget * 8.0 / (frames_n * width2 * height2)
    qp = int(np.clip(round(26.0 - 6.0 * np.log2(max(bpp, 1e-6) / 0.1)), 0, top))
    return _search(build, budget, qp, top, -0.16)


def decode(bitstream: bytes) -> Video:
    """Decode with FFmpeg's HEVC decoder; ValueError on anything that is not this format."""
    data = bytes(bitstream)
    if len(data) < 5 or data[:4] != MAGIC:
        raise ValueError("not an x265_pyav bitstream (bad magic)")
    if data[4] != VERSION:
        raise ValueError(f"x265_pyav bitstream version {data[4]}, this decoder reads {VERSION}")
    pos = 5
    fields = []
    for _ in range(7):
        value, pos = _read_varint(data, pos)
        fields.append(value)
    width, height, frames_n, num, den, _qp100, count = fields
    if (
        min(width, height, frames_n, num, den, count) < 1
        or frames_n * (width + 1) * (height + 1) > _MAX_SAMPLES
    ):
        raise ValueError(f"x265_pyav header is implausible: {width}x{height}x{frames_n}, {count} packets")
    if count != frames_n or count > len(data):
        raise ValueError(
            f"x265_pyav header claims {count} packets for {frames_n} frames in {len(data)} bytes"
        )
    sizes = []
    for _ in range(count):
        size, pos = _read_varint(data, pos)
        sizes.append(size)
    if pos + sum(sizes) != len(data):
        raise ValueError("x265_pyav packet sizes do not add up to the bitstream length")
    ctx = av.CodecContext.create("hevc", "r")
    ctx.thread_count = 1
    ch, cw = (height + 1) // 2, (width + 1) // 2
    planes: list[list[np.ndarray]] = [[], [], []]

    def take(decoded) -> None:
        for frame in decoded:
            if len(planes[0]) >= frames_n:
                raise ValueError("the HEVC stream holds more frames than the header says")
            if (
                frame.format.name not in ("yuv420p", "yuvj420p")
                or frame.width < width
                or frame.height < height
            ):
                raise ValueError(
                    f"decoded frame {frame.width}x{frame.height} {frame.format.name} does not match"
                )
            for out, plane, (rows, cols) in zip(planes, frame.planes, ((height, width), (ch, cw), (ch, cw))):
                buf = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
                out.append(buf[:rows, :cols].copy())

    try:
        for size in sizes:
            take(ctx.decode(av.Packet(data[pos : pos + size])))
            pos += size
        take(ctx.decode(None))
    except av.FFmpegError as err:
        raise ValueError(f"HEVC decoding failed: {err}") from err
    if len(planes[0]) != frames_n:
        raise ValueError(f"the HEVC stream decoded to {len(planes[0])} frames, the header says {frames_n}")
    return Video(np.stack(planes[0]), np.stack(planes[1]), np.stack(planes[2]), Fraction(num, den))
