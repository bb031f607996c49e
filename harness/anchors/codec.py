"""Encode an anchor through PyAV with its settings verified, and decode it with a real decoder."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from harness.anchors.bitstream import av1_temporal_units, strip_info_sei
from harness.anchors.errors import AnchorError
from harness.anchors.settings import encoder_settings, verify_settings, version_from_report
from harness.anchors.spec import AnchorSpec
from harness.realtime import normal_scheduling
from harness.video import Video, _planes


@dataclass(frozen=True)
class AnchorEncoding:
    """An anchor bitstream (settings SEI removed) with what the encoder reported about itself."""

    bitstream: bytes
    settings: dict[str, str]  # the encoder's reported settings; {} for SVT-AV1 (it reports none)
    encoder_version: str | None
    info_bytes: int  # bytes of settings SEI removed from the stream
    padded_size: tuple[int, int]  # (width, height) actually encoded


def _padded_size(spec: AnchorSpec, width: int, height: int) -> tuple[int, int]:
    def grow(n: int) -> int:
        n = max(n, spec.min_size)
        return n + (n % 2)

    return grow(width), grow(height)


def _padded_planes(video: Video, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def pad(plane: np.ndarray, rows: int, cols: int) -> np.ndarray:
        extra = ((0, 0), (0, rows - plane.shape[1]), (0, cols - plane.shape[2]))
        return plane if extra == ((0, 0), (0, 0), (0, 0)) else np.pad(plane, extra, mode="edge")

    return (
        pad(video.y, height, width),
        pad(video.u, height // 2, width // 2),
        pad(video.v, height // 2, width // 2),
    )


class _FfmpegLog:
    """Capture libavcodec warnings while an encoder opens (unknown options are only warnings)."""

    def __enter__(self):
        import av.logging

        self._level = av.logging.get_level()
        if self._level is None or self._level < av.logging.WARNING:
            av.logging.set_level(av.logging.WARNING)
        self._capture = av.logging.Capture(True)
        self.logs = self._capture.__enter__()
        return self

    def __exit__(self, *exc):
        import av.logging

        self._capture.__exit__(*exc)
        av.logging.set_level(self._level)
        return False


_JPEG_RANGE = 2  # AVCOL_RANGE_JPEG (full range); left unset, the encoders signal or imply limited range
_BAD_OPTION_LOG = re.compile(r"unknown option|error parsing option|invalid value", re.IGNORECASE)


def _open_encoder(spec: AnchorSpec, qp: int, width: int, height: int, fps: Fraction):
    import av

    options = {"preset": spec.preset, **dict(spec.options)}
    params = list(spec.params)
    if spec.qp_in == "params":
        params.append((spec.qp_option, str(qp)))
    else:
        options[spec.qp_option] = str(qp)
    if params:
        options[encoder_settings()[spec.encoder].params_option] = ":".join(f"{k}={v}" for k, v in params)
    for key, value in spec.env:
        os.environ[key] = value
    ctx = av.CodecContext.create(spec.encoder, "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1) / fps
    ctx.framerate = fps
    ctx.thread_count = spec.thread_count
    if spec.full_range:
        ctx.color_range = _JPEG_RANGE  # the CLI's `-color_range pc`: VUI / sequence header say full range
    ctx.options = options
    with _FfmpegLog() as log, normal_scheduling():
        try:
            ctx.open()
        except av.FFmpegError as err:
            raise AnchorError(
                f"{spec.name}: {spec.encoder} refused {width}x{height} at qp {qp} with {options}: {err}; "
                f"log: {[m for _, _, m in log.logs][-3:]}"
            ) from err
    bad = [m.strip() for level, _, m in log.logs if _BAD_OPTION_LOG.search(m)]
    if bad:
        raise AnchorError(f"{spec.name}: {spec.encoder} did not accept its options {options}: {bad}")
    return ctx


def encode_anchor_with_report(video: Video, spec: AnchorSpec, qp: int) -> AnchorEncoding:
    """Encode `video` at `qp` and return the stream with the encoder's verified settings."""
    import av

    if not isinstance(video, Video):
        raise AnchorError(f"encode_anchor needs a harness Video, got {type(video).__name__}")
    lo, hi = spec.qp_range
    if not isinstance(qp, int) or not lo <= qp <= hi:
        raise AnchorError(f"{spec.name}: qp {qp!r} is outside {lo}..{hi}")
    width, height = _padded_size(spec, video.width, video.height)
    planes = _padded_planes(video, width, height)
    ctx = _open_encoder(spec, qp, width, height, video.fps)
    packets: list[bytes] = []
    try:
        for index in range(video.frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane, data in zip(frame.planes, (p[index] for p in planes)):
                rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
                rows[:, : plane.width] = data
            frame.pts = index
            packets.extend(bytes(p) for p in ctx.encode(frame))
        packets.extend(bytes(p) for p in ctx.encode(None))
    except av.FFmpegError as err:
        raise AnchorError(f"{spec.name}: encoding failed after {len(packets)} packets: {err}") from err
    if len(packets) != video.frames:
        raise AnchorError(
            f"{spec.name}: the encoder returned {len(packets)} packets for {video.frames} frames"
        )
    stream = b"".join(packets)
    settings: dict[str, str] = {}
    version = None
    info_bytes = 0
    if spec.reports_settings:
        stripped, text = strip_info_sei(stream, spec.encoder)
        settings = verify_settings(spec, qp, text)
        version = version_from_report(spec.encoder, text)
        info_bytes = len(stream) - len(stripped)
        stream = stripped
    if not stream:
        raise AnchorError(f"{spec.name}: the encoder produced an empty stream")
    return AnchorEncoding(stream, settings, version, info_bytes, (width, height))


def encode_anchor(video: Video, spec: AnchorSpec, qp: int) -> bytes:
    """The anchor's raw elementary stream for `video` at `qp` (settings verified, settings SEI removed)."""
    return encode_anchor_with_report(video, spec, qp).bitstream


def decode_anchor(bitstream: bytes, spec: AnchorSpec, *, like: Video) -> Video:
    """Decode an anchor stream with a real decoder; frame count, size and rate come out as `like`'s.

    The stream's padded frames are cropped to `like`'s size; the frame rate is `like`'s (raw
    streams carry none). A frame count other than `like.frames` raises `AnchorError`.
    """
    import av

    width, height = _padded_size(spec, like.width, like.height)
    ctx = av.CodecContext.create(spec.decoder, "r")
    ctx.thread_type = "AUTO"  # PITFALLS 12; decoded samples do not depend on threading
    frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    try:
        if spec.decoder == "libdav1d":
            packets = [av.Packet(unit) for unit in av1_temporal_units(bitstream)]
        else:
            packets = ctx.parse(bitstream) + ctx.parse(None)
        for packet in [*packets, None]:
            for frame in ctx.decode(packet):
                if frame.format.name not in ("yuv420p", "yuvj420p"):
                    raise AnchorError(f"{spec.name}: decoder gave {frame.format.name}, expected yuv420p")
                if (frame.width, frame.height) != (width, height):
                    raise AnchorError(
                        f"{spec.name}: decoded {frame.width}x{frame.height}, encoded {width}x{height}"
                    )
                frames.append(_planes(frame))
    except av.FFmpegError as err:
        raise AnchorError(f"{spec.name}: {spec.decoder} failed after {len(frames)} frames: {err}") from err
    if len(frames) != like.frames:
        raise AnchorError(
            f"{spec.name}: decoded {len(frames)} frames, the source has {like.frames} (frames lost or added)"
        )
    ch, cw = (like.height + 1) // 2, (like.width + 1) // 2
    return Video(
        np.stack([f[0][: like.height, : like.width] for f in frames]),
        np.stack([f[1][:ch, :cw] for f in frames]),
        np.stack([f[2][:ch, :cw] for f in frames]),
        fps=like.fps,
    )
