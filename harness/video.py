"""8-bit YUV 4:2:0 video: the one in-memory form of every clip, bitstream decode and anchor.

`Video` holds uint8 planes ``y`` (frames, H, W) and ``u``/``v`` (frames, ceil(H/2), ceil(W/2))
and the frame rate as a `Fraction`. Files are read with PyAV honouring each plane's line size
(PITFALLS 1); full-range sources keep their samples and say so (PITFALLS 8); 10-bit sources
are refused. `save`/`load` are the harness's raw transport format between processes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from harness.errors import ClipError, VideoFormatError

__all__ = ["Video", "VideoInfo", "read_video", "probe_video", "chroma_shape"]

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
        header = {
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "fps": [self.fps.numerator, self.fps.denominator],
        }
        return json.dumps(header, sort_keys=True).encode()

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


def _planes(frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copy the three planes of a yuv420p/yuvj420p frame, dropping line padding (PITFALLS 1)."""
    out = []
    for plane in frame.planes:
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
        out.append(rows[:, : plane.width].copy())
    return out[0], out[1], out[2]


def read_video(
    path: str | os.PathLike[str],
    *,
    max_frames: int | None = None,
    fps: Fraction | None = None,
) -> tuple[Video, VideoInfo]:
    """Decode a file PyAV can read into a `Video` (the first `max_frames` frames if given).

    Samples are kept exactly as decoded; a full-range (pc/yuvj420p) source stays full range
    and `VideoInfo.color_range` says so. Other 8-bit formats are converted to yuv420p by
    libswscale. `fps` overrides the container's rate (raw Annex-B streams carry none).
    """
    import av

    path = Path(path)
    if max_frames is not None and max_frames < 1:
        raise ClipError(f"max_frames must be at least 1, got {max_frames}")
    container = _open(path)
    frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    pix_fmt = ""
    color_range: Literal["tv", "pc", "unknown"] = "unknown"
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # PITFALLS 12: frame threads decode up to 1.6x faster
        rate = fps or stream.average_rate or stream.guessed_rate or stream.base_rate
        try:
            for frame in container.decode(stream):
                if not frames:
                    pix_fmt = frame.format.name
                    _check_depth(path, pix_fmt)
                    color_range = _color_range(frame, pix_fmt)
                if frame.format.name not in _EIGHT_BIT_420:
                    _check_depth(path, frame.format.name)
                    frame = frame.reformat(format="yuv420p")
                frames.append(_planes(frame))
                if max_frames is not None and len(frames) >= max_frames:
                    break
        except av.FFmpegError as err:
            raise ClipError(f"{path}: decoding failed after {len(frames)} frames: {err}") from err
    finally:
        container.close()
    if not frames:
        raise ClipError(f"{path}: no frame could be decoded (corrupt or truncated file?)")
    shapes = {f[0].shape for f in frames}
    if len(shapes) > 1:
        raise ClipError(f"{path}: frame size changes within the stream ({sorted(shapes)}); not supported")
    if not rate:
        raise ClipError(f"{path}: the container has no frame rate; give one in the clip set")
    video = Video.from_frames(frames, fps=Fraction(rate))
    info = VideoInfo(
        path=str(path),
        codec=stream.codec_context.name,
        pix_fmt=pix_fmt,
        width=video.width,
        height=video.height,
        fps=video.fps,
        color_range=color_range,
        frames=video.frames,
    )
    return video, info
