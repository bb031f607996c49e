"""8-bit YUV 4:2:0 video: the one in-memory form of every clip, bitstream decode and anchor.

`Video` holds uint8 planes ``y`` (frames, H, W) and ``u``/``v`` (frames, ceil(H/2), ceil(W/2))
and the frame rate as a `Fraction`. Files are read with PyAV honouring each plane's line size
(PITFALLS 1); full-range sources keep their samples and say so (PITFALLS 8); 10-bit sources
are refused. `save`/`load` are the harness's raw transport format between processes.
`read_video` decodes a file into memory; `harness.rawfile` runs the same decoding loop straight
into a raw file, frame by frame (the decode-once clip store: a clip costs its raw size once).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Literal, Self

import numpy as np

from harness.errors import ClipError, VideoFormatError

__all__ = ["Video", "VideoInfo", "chroma_shape", "probe_video", "read_video"]

RAW_MAGIC = b"HVID1\n"
_HEADER_MAX = 4096


def chroma_shape(height: int, width: int) -> tuple[int, int]:
    """Size (rows, columns) of a 4:2:0 chroma plane for a luma plane of height x width."""
    return (height + 1) // 2, (width + 1) // 2


def _as_fraction(fps: Fraction | int | float | str) -> Fraction:
    try:
        rate = Fraction(fps).limit_denominator(1_000_000) if isinstance(fps, float) else Fraction(fps)
    except (TypeError, ValueError, ZeroDivisionError) as err:
        raise VideoFormatError(f"frame rate {fps!r} is not a number; give e.g. Fraction(30000, 1001)") from err
    if not rate > 0:
        raise VideoFormatError(f"frame rate must be positive, got {fps!r}")
    return rate


@dataclass(frozen=True, eq=False)
class Video:
    """A whole clip: uint8 planes y (frames, H, W), u and v (frames, ceil(H/2), ceil(W/2)); fps in Hz."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    fps: Fraction
    _sha: list[str] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fps", _as_fraction(self.fps))
        for name in ("y", "u", "v"):
            plane = getattr(self, name)
            if not isinstance(plane, np.ndarray):
                raise VideoFormatError(f"plane {name} is {type(plane).__name__}, expected a numpy uint8 array")
            if plane.dtype != np.uint8:
                nan = ""
                if plane.dtype.kind in "fc" and plane.size and not np.isfinite(plane).all():
                    nan = f" holding {int(np.count_nonzero(~np.isfinite(plane)))} NaN/inf samples"
                raise VideoFormatError(
                    f"plane {name} has dtype {plane.dtype}{nan}, expected uint8 (clip and round to 0..255 first)"
                )
            if plane.ndim != 3:
                raise VideoFormatError(f"plane {name} has shape {plane.shape}, expected (frames, rows, columns)")
        frames, height, width = self.y.shape
        if frames < 1 or height < 1 or width < 1:
            raise VideoFormatError(f"luma shape {self.y.shape} is empty; a video needs at least one 1x1 frame")
        want = (frames, *chroma_shape(height, width))
        for name in ("u", "v"):
            if getattr(self, name).shape != want:
                raise VideoFormatError(
                    f"plane {name} has shape {getattr(self, name).shape}, expected {want} for luma {self.y.shape}"
                )

    @property
    def frames(self) -> int:
        return int(self.y.shape[0])

    @property
    def height(self) -> int:
        return int(self.y.shape[1])

    @property
    def width(self) -> int:
        return int(self.y.shape[2])

    @property
    def duration_s(self) -> float:
        return self.frames / float(self.fps)

    @property
    def nbytes(self) -> int:
        return self.y.nbytes + self.u.nbytes + self.v.nbytes

    def frame(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.y[index], self.u[index], self.v[index]

    def head(self, frames: int) -> Video:
        """The first `frames` frames (a view, no copy)."""
        return Video(self.y[:frames], self.u[:frames], self.v[:frames], self.fps)

    def same_format(self, other: Video) -> bool:
        return (
            self.y.shape == other.y.shape and self.u.shape == other.u.shape and self.fps == other.fps
        )

    def sha256(self) -> str:
        """Identity of the decoded content: size, frame count, rate and every sample."""
        if not self._sha:
            digest = hashlib.sha256(self._header_bytes())
            for plane in (self.y, self.u, self.v):
                digest.update(np.ascontiguousarray(plane).data)
            self._sha.append(digest.hexdigest())
        return self._sha[0]

    def _header_bytes(self) -> bytes:
        return _header_json(self.width, self.height, self.frames, self.fps)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the raw transport format: magic, JSON header line, then all Y, all U, all V."""
        with open(path, "wb") as out:
            self.write_to(out)

    def write_to(self, out: BinaryIO) -> None:
        out.write(RAW_MAGIC)
        out.write(self._header_bytes() + b"\n")
        for plane in (self.y, self.u, self.v):
            out.write(np.ascontiguousarray(plane).data)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, max_bytes: int | None = None, mmap: bool = False) -> Video:
        """Read `save`'s format, checking the header against the file size before allocating.

        With `mmap`, the planes are read-only views of the file's pages (shared with the page
        cache or tmpfs), so a clip held this way costs its raw size once, not twice.
        """
        try:
            with open(path, "rb") as src:
                return cls.read_from(src, max_bytes=max_bytes, name=str(path), mmap=mmap)
        except OSError as err:
            raise VideoFormatError(f"cannot read raw video {path}: {err}") from err

    @classmethod
    def read_from(
        cls, src: BinaryIO, *, max_bytes: int | None = None, name: str = "stream", mmap: bool = False
    ) -> Video:
        """`load` from an open binary file (e.g. a file descriptor handed to a sandboxed worker)."""
        path = name
        src.seek(0, os.SEEK_END)
        size = src.tell()
        src.seek(0)
        head = src.read(len(RAW_MAGIC) + _HEADER_MAX)
        if not head.startswith(RAW_MAGIC):
            raise VideoFormatError(f"{path} is not a raw harness video (bad magic {head[:6]!r})")
        end = head.find(b"\n", len(RAW_MAGIC))
        if end < 0:
            raise VideoFormatError(f"{path}: header line missing or longer than {_HEADER_MAX} bytes")
        try:
            header = json.loads(head[len(RAW_MAGIC) : end])
            width, height, frames = (_json_int(header[k]) for k in ("width", "height", "frames"))
            fps = Fraction(_json_int(header["fps"][0]), _json_int(header["fps"][1]))
        except (ValueError, KeyError, TypeError, IndexError, ZeroDivisionError, RecursionError) as err:
            raise VideoFormatError(f"{path}: malformed header {head[len(RAW_MAGIC):end][:200]!r}") from err
        if min(width, height, frames) < 1:
            raise VideoFormatError(f"{path}: header claims an empty video {width}x{height}x{frames}")
        ch, cw = chroma_shape(height, width)
        luma, chroma = frames * height * width, frames * ch * cw
        payload = luma + 2 * chroma
        if max_bytes is not None and payload > max_bytes:
            raise VideoFormatError(
                f"{path}: header claims {width}x{height}x{frames} ({payload} bytes), over the limit of {max_bytes}"
            )
        if size != end + 1 + payload:
            raise VideoFormatError(
                f"{path}: header claims {width}x{height}x{frames} ({payload} bytes of planes) "
                f"but the file holds {size - end - 1}"
            )
        src.seek(end + 1)
        if mmap:
            data = np.memmap(src, dtype=np.uint8, mode="r", offset=end + 1, shape=(payload,))
        else:
            data = None
        try:
            if data is not None:
                raise io.UnsupportedOperation  # already mapped
            src.fileno()
            data = np.fromfile(src, dtype=np.uint8, count=payload)
        except (io.UnsupportedOperation, AttributeError):
            if data is None:
                data = np.frombuffer(bytearray(src.read(payload)), dtype=np.uint8)
        if data.size != payload:
            raise VideoFormatError(f"{path}: file shrank while reading ({data.size} of {payload} bytes)")
        y = data[:luma].reshape(frames, height, width)
        u = data[luma : luma + chroma].reshape(frames, ch, cw)
        v = data[luma + chroma :].reshape(frames, ch, cw)
        return cls(y, u, v, fps)

    @classmethod
    def from_frames(cls, frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], fps) -> Video:
        if not frames:
            raise VideoFormatError("no frames given")
        return cls(*(np.stack([f[i] for f in frames]) for i in range(3)), fps=fps)


def _header_json(width: int, height: int, frames: int, fps: Fraction) -> bytes:
    """The JSON header line of the raw format (without magic and newline); also what `sha256` hashes first."""
    header = {"width": width, "height": height, "frames": frames, "fps": [fps.numerator, fps.denominator]}
    return json.dumps(header, sort_keys=True).encode()


def _json_int(value: object) -> int:
    """A JSON integer, strictly: no bool, float or string standing in for one."""
    if type(value) is not int:
        raise TypeError(f"{value!r} is not an integer")
    return value


@dataclass(frozen=True)
class VideoInfo:
    """What a file says about itself before decoding every frame."""

    path: str
    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: Fraction
    color_range: Literal["tv", "pc", "unknown"]
    frames: int | None


_EIGHT_BIT_420 = {"yuv420p": "tv", "yuvj420p": "pc"}


def _color_range(frame_or_ctx, pix_fmt: str) -> Literal["tv", "pc", "unknown"]:
    if pix_fmt.startswith("yuvj"):
        return "pc"
    value = getattr(frame_or_ctx, "color_range", None)
    code = int(value) if value is not None else 0
    return {1: "tv", 2: "pc"}.get(code, "unknown")  # AVCOL_RANGE_MPEG = 1, AVCOL_RANGE_JPEG = 2


def _open(path: Path):
    import av

    if not path.exists():
        raise ClipError(f"clip file {path} does not exist")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise ClipError(f"{path} cannot be opened as video: {err}") from err
    if not container.streams.video:
        container.close()
        raise ClipError(f"{path} has no video stream")
    return container


def _check_depth(path: Path, pix_fmt: str) -> None:
    import av

    try:
        fmt = av.VideoFormat(pix_fmt)
        depth = max(c.bits for c in fmt.components)
    except (ValueError, av.FFmpegError):
        depth = 8
    if depth > 8 or any(tag in pix_fmt for tag in ("p10", "p12", "p14", "p16")):
        raise ClipError(
            f"{path} is {pix_fmt} ({depth}-bit); the harness judges 8-bit 4:2:0 only for now. "
            "Convert it, e.g. ffmpeg -i IN -pix_fmt yuv420p OUT.mkv, or leave it out of the clip set"
        )


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a file's header (codec, size, rate, pixel format) without decoding all frames."""
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        pix_fmt = ctx.pix_fmt or ""
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return VideoInfo(
            path=str(path),
            codec=ctx.name,
            pix_fmt=pix_fmt,
            width=ctx.width,
            height=ctx.height,
            fps=Fraction(rate) if rate else Fraction(0),
            color_range=_color_range(ctx, pix_fmt),
            frames=stream.frames or None,
        )
    finally:
        container.close()


def _plane_view(plane, rows: int, columns: int) -> np.ndarray:
    """A plane of a yuv420p/yuvj420p frame without its line padding (PITFALLS 1): a view, no copy."""
    if (plane.height, plane.width) != (rows, columns):
        raise VideoFormatError(f"plane of {plane.width}x{plane.height}, expected {columns}x{rows}")
    data = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
    return data[:, :columns]


Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def _planes(frame) -> Planes:
    """Copy the three planes of a yuv420p/yuvj420p frame, dropping line padding (PITFALLS 1)."""
    height, width = frame.height, frame.width
    ch, cw = chroma_shape(height, width)
    return tuple(  # type: ignore[return-value]
        _plane_view(plane, rows, columns).copy()
        for plane, (rows, columns) in zip(frame.planes, ((height, width), (ch, cw), (ch, cw)))
    )


class _FrameSource:
    """One decoding pass over a file: its frames as 8-bit 4:2:0 planes, checked as they come.

    The single decoding loop behind `read_video` (which copies the planes into memory) and
    `decode_to_raw` (which writes them straight into a raw file). `frames()` yields views into
    PyAV's frame buffers, valid until the next frame is asked for. After the loop, `finish()`
    gives the frame rate and the `VideoInfo`, or the `ClipError` for a file without frames or rate.
    """

    def __init__(self, path: str | os.PathLike[str], max_frames: int | None, fps: Fraction | None) -> None:
        self.path = Path(path)
        if max_frames is not None and max_frames < 1:
            raise ClipError(f"max_frames must be at least 1, got {max_frames}")
        self.max_frames = max_frames
        self.container = _open(self.path)
        try:
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = "AUTO"  # PITFALLS 12: frame threads decode up to 1.6x faster
            self.rate = fps or self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
            self.codec = self.stream.codec_context.name
        except BaseException:
            self.container.close()
            raise
        self.count = 0
        self.pix_fmt = ""
        self.color_range: Literal["tv", "pc", "unknown"] = "unknown"
        self.size: tuple[int, int] | None = None  # (height, width) of the first frame

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.container.close()

    def expected_frames(self) -> int | None:
        """A guess of how many frames `frames()` will yield (the container's count or duration), or None."""
        guess = self.stream.frames if (self.stream.frames or 0) > 0 else None
        duration = self.container.duration  # microseconds; e.g. Matroska has no frame count but this
        if guess is None and duration and duration > 0 and self.rate and self.rate > 0:
            guess = max(1, round(Fraction(duration, 1_000_000) * Fraction(self.rate)))
        if self.max_frames is not None:
            guess = min(guess, self.max_frames) if guess else self.max_frames
        return guess

    def frames(self) -> Iterator[Planes]:
        import av

        path = self.path
        try:
            for frame in self.container.decode(self.stream):
                if not self.count:
                    self.pix_fmt = frame.format.name
                    _check_depth(path, self.pix_fmt)
                    self.color_range = _color_range(frame, self.pix_fmt)
                if frame.format.name not in _EIGHT_BIT_420:
                    _check_depth(path, frame.format.name)
                    frame = frame.reformat(format="yuv420p")
                size = (frame.height, frame.width)
                if self.size is None:
                    self.size = size
                elif size != self.size:
                    shapes = sorted({self.size, size})
                    raise ClipError(f"{path}: frame size changes within the stream ({shapes}); not supported")
                height, width = size
                ch, cw = chroma_shape(height, width)
                try:
                    planes = (
                        _plane_view(frame.planes[0], height, width),
                        _plane_view(frame.planes[1], ch, cw),
                        _plane_view(frame.planes[2], ch, cw),
                    )
                except (VideoFormatError, ValueError, IndexError) as err:
                    raise ClipError(f"{path}: frame {self.count} has unexpected planes: {err}") from err
                self.count += 1
                yield planes
                if self.max_frames is not None and self.count >= self.max_frames:
                    break
        except av.FFmpegError as err:
            raise ClipError(f"{path}: decoding failed after {self.count} frames: {err}") from err

    def finish(self) -> tuple[Fraction, VideoInfo]:
        """The frame rate and what the file said about itself, once `frames()` is exhausted."""
        if not self.count or self.size is None:
            raise ClipError(f"{self.path}: no frame could be decoded (corrupt or truncated file?)")
        if not self.rate:
            raise ClipError(f"{self.path}: the container has no frame rate; give one in the clip set")
        rate = _as_fraction(Fraction(self.rate))
        height, width = self.size
        info = VideoInfo(
            path=str(self.path),
            codec=self.codec,
            pix_fmt=self.pix_fmt,
            width=width,
            height=height,
            fps=rate,
            color_range=self.color_range,
            frames=self.count,
        )
        return rate, info


def read_video(
    path: str | os.PathLike[str],
    *,
    max_frames: int | None = None,
    fps: Fraction | None = None,
) -> tuple[Video, VideoInfo]:
    """Decode a file PyAV can read into a `Video` in memory (the first `max_frames` frames if given).

    Samples are kept exactly as decoded; a full-range (pc/yuvj420p) source stays full range
    and `VideoInfo.color_range` says so. Other 8-bit formats are converted to yuv420p by
    libswscale. `fps` overrides the container's rate (raw Annex-B streams carry none).
    `harness.rawfile.decode_to_raw` is the same decoding written straight into a raw file instead.
    """
    with _FrameSource(path, max_frames, fps) as source:
        frames = [(y.copy(), u.copy(), v.copy()) for y, u, v in source.frames()]
    rate, info = source.finish()
    return Video.from_frames(frames, fps=rate), info
