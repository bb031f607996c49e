"""Anchor encoders (x265, x264, SVT-AV1) run through PyAV with every byte-changing setting pinned.

Anchors are trusted code and run in the calling process. Their settings are data
(fixtures/anchors.toml); this module checks the option names against known lists, verifies that
the encoder applied them (x265 and x264 report their settings in an SEI message, which is parsed
and compared, then stripped from the stream), and decodes with a real decoder.

- `encode_anchor` returns the raw elementary stream (HEVC/H.264 Annex B, AV1 low-overhead OBUs).
  The encoder's ~0.6-2 KB settings SEI is removed: it is metadata a decoder ignores, it would
  inflate small anchors' bitrates, and x265 writes the machine's CPU flags into it.
- Odd or tiny frames are padded to even width and height (and the encoder's minimum size) by
  replicating the last row and column; `decode_anchor` crops back to the source size. The padded
  samples cost the anchor a few bits, as they would any real encoder.
- Raw streams carry no frame rate (PITFALLS 7): the decoder takes it from `like`.
- An anchor's [env] (SVT_LOG=1) is written into os.environ before its encoder opens.
- Determinism: threads are pinned in anchors.toml. Measured on this machine: x265 and SVT-AV1
  bytes are identical for every SIMD level (x265 asm=none/sse2/avx2, SVT asm=c/sse4_1/avx2);
  x264 bytes differ between an SSE2-only CPU and SSSE3 or better (SSE4.2 through AVX-512 agree),
  so `anchor_versions` records the machine architecture too.
"""

from __future__ import annotations

import ctypes
import difflib
import glob
import hashlib
import json
import os
import platform
import re
import tomllib
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from harness.errors import ConfigError, HarnessError
from harness.video import Video, _planes

__all__ = [
    "DEFAULT_ANCHORS",
    "AnchorEncoding",
    "AnchorError",
    "AnchorSpec",
    "UnknownAnchorError",
    "anchor_id",
    "anchor_versions",
    "decode_anchor",
    "encode_anchor",
    "encode_anchor_with_report",
    "load_anchor_specs",
]

ANCHOR_CODE_VERSION = 1
"""Bump when this module changes what bytes an anchor produces (padding, SEI stripping...)."""

DEFAULT_ANCHORS = Path(__file__).resolve().parent.parent / "fixtures" / "anchors.toml"


class AnchorError(HarnessError):
    """An anchor encoder or decoder failed, was misconfigured, or did not apply its settings."""


class UnknownAnchorError(AnchorError, KeyError):
    """An anchor name that anchors.toml does not define."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


# Option names the harness knows each encoder accepts. PyAV and the encoders ignore unknown
# names silently (PITFALLS 2), so nothing outside these lists is passed on.
_KNOWN_OPTIONS: dict[str, frozenset[str]] = {
    "libx265": frozenset({"preset", "tune", "profile", "forced-idr", "x265-params"}),
    "libx264": frozenset({"preset", "tune", "profile", "qp", "crf", "x264-params"}),
    "libsvtav1": frozenset({"preset", "qp", "crf", "svtav1-params"}),
}
_PARAMS_OPTION = {"libx265": "x265-params", "libx264": "x264-params", "libsvtav1": "svtav1-params"}
_KNOWN_PARAMS: dict[str, frozenset[str]] = {
    "libx265": frozenset(
        [
            "qp",
            "pools",
            "numa-pools",
            "frame-threads",
            "wpp",
            "pmode",
            "pme",
            "lookahead-slices",
            "lookahead-threads",
            "keyint",
            "min-keyint",
            "scenecut",
            "open-gop",
            "bframes",
            "b-adapt",
            "b-pyramid",
            "ref",
            "rc-lookahead",
            "aq-mode",
            "cutree",
            "psy-rd",
            "psy-rdoq",
            "rd",
            "rdoq-level",
            "sao",
            "deblock",
            "ctu",
            "min-cu-size",
            "me",
            "subme",
            "merange",
            "weightp",
            "weightb",
            "rect",
            "amp",
            "log-level",
            "info",
            "hash",
            "repeat-headers",
            "asm",
        ]
    ),
    "libx264": frozenset(
        [
            "qp",
            "threads",
            "lookahead-threads",
            "sliced-threads",
            "keyint",
            "min-keyint",
            "scenecut",
            "open-gop",
            "bframes",
            "b-adapt",
            "b-pyramid",
            "ref",
            "rc-lookahead",
            "aq-mode",
            "mbtree",
            "psy",
            "psy-rd",
            "trellis",
            "subme",
            "me",
            "merange",
            "weightp",
            "weightb",
            "8x8dct",
            "cabac",
            "deblock",
            "asm",
        ]
    ),
    "libsvtav1": frozenset(
        [
            "lp",
            "pin",
            "keyint",
            "scd",
            "irefresh-type",
            "tune",
            "hierarchical-levels",
            "pred-struct",
            "tile-rows",
            "tile-columns",
            "enable-overlays",
            "film-grain",
            "enable-tf",
            "enable-cdef",
            "enable-restoration",
            "aq-mode",
            "asm",
            "fast-decode",
        ]
    ),
}
# How x265 reports a parameter in its settings SEI, where the name differs.
_X265_SEI_NAME = {"pools": "numa-pools"}
_X265_LOG_LEVELS = {"none": "-1", "error": "0", "warning": "1", "info": "2", "debug": "3", "full": "4"}
_X265_BOOLEAN = frozenset(
    [
        "wpp",
        "pmode",
        "pme",
        "open-gop",
        "b-pyramid",
        "cutree",
        "sao",
        "weightp",
        "weightb",
        "rect",
        "amp",
        "info",
        "repeat-headers",
    ]
)
# Parameters the settings SEI does not report (x265 writes only the resulting cpuid; x264 nothing).
# Both encoders' SIMD paths are checked for identical output in tests/test_anchors.py.
_UNREPORTED = frozenset({"asm"})
# x264 reports with underscores, some under other names.
_X264_SEI_NAME = {"min-keyint": "keyint_min", "aq-mode": "aq", "psy-rd": "psy_rd", "8x8dct": "8x8dct"}


@dataclass(frozen=True)
class AnchorSpec:
    """Every setting of one anchor encoder; see fixtures/anchors.toml for what each field means."""

    name: str
    description: str
    encoder: str
    decoder: str
    qps: tuple[int, ...]
    qp_range: tuple[int, int]
    qp_option: str
    qp_in: Literal["params", "options"]
    preset: str
    thread_count: int
    min_size: int
    options: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    sei_expect: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        _validate_spec(self)

    def replace(self, **changes) -> AnchorSpec:
        """A copy with some fields changed (e.g. preset="slow"), validated like the original."""
        return replace(self, **changes)

    @property
    def reports_settings(self) -> bool:
        """Whether the encoder writes its settings into the bitstream (x265, x264)."""
        return self.encoder in ("libx265", "libx264")

    def to_json(self) -> dict:
        data = asdict(self)
        for key in ("options", "params", "env"):
            data[key] = dict(data[key])
        data["qps"] = list(self.qps)
        data["qp_range"] = list(self.qp_range)
        data["sei_expect"] = list(self.sei_expect)
        return data


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _validate_spec(spec: AnchorSpec) -> None:
    where = f"anchor {spec.name!r}"
    if spec.encoder not in _KNOWN_OPTIONS:
        raise AnchorError(
            f"{where}: encoder {spec.encoder!r} is not supported; use one of {sorted(_KNOWN_OPTIONS)}"
        )
    known_options, known_params = _KNOWN_OPTIONS[spec.encoder], _KNOWN_PARAMS[spec.encoder]
    for key, _ in spec.options:
        if key == _PARAMS_OPTION[spec.encoder] or key == "preset":
            raise AnchorError(f"{where}: give {key!r} as the spec's own field, not in [options]")
        if key not in known_options:
            raise AnchorError(
                f"{where}: unknown {spec.encoder} option {key!r} (PyAV would ignore it silently); "
                f"known: {sorted(known_options)}.{_suggest(key, known_options)}"
            )
    for key, value in spec.params:
        if key not in known_params:
            raise AnchorError(
                f"{where}: unknown {_PARAMS_OPTION[spec.encoder]} key {key!r} (the encoder would ignore it); "
                f"known: {sorted(known_params)}.{_suggest(key, known_params)}"
            )
        if any(c in f"{key}{value}" for c in ":=") or not value:
            raise AnchorError(
                f"{where}: parameter {key}={value!r} must be non-empty and contain no ':' or '='"
            )
    keys = [k for k, _ in spec.params] + [k for k, _ in spec.options]
    if spec.qp_option in keys:
        raise AnchorError(f"{where}: {spec.qp_option!r} is set by the QP ladder; remove it from the table")
    if spec.qp_in == "params" and spec.qp_option not in known_params:
        raise AnchorError(f"{where}: qp_option {spec.qp_option!r} is not a known {spec.encoder} parameter")
    if spec.qp_in == "options" and spec.qp_option not in known_options:
        raise AnchorError(f"{where}: qp_option {spec.qp_option!r} is not a known {spec.encoder} option")
    if spec.qp_in not in ("params", "options"):
        raise AnchorError(f"{where}: qp_in must be 'params' or 'options', got {spec.qp_in!r}")
    lo, hi = spec.qp_range
    if not spec.qps or any(not lo <= q <= hi for q in spec.qps):
        raise AnchorError(f"{where}: qps {list(spec.qps)} must be non-empty and within qp_range {lo}..{hi}")
    if spec.thread_count < 1 or spec.min_size < 1:
        raise AnchorError(f"{where}: thread_count and min_size must be >= 1 (a pinned count, not 0 = auto)")
    if spec.encoder == "libx265" and dict(spec.params).get("info") != "1":
        raise AnchorError(f"{where}: x265 needs info=1: its settings SEI is how the options are verified")


_SPEC_KEYS = {
    "description",
    "encoder",
    "decoder",
    "qps",
    "qp_range",
    "qp_option",
    "qp_in",
    "preset",
    "thread_count",
    "min_size",
    "options",
    "params",
    "sei_expect",
    "env",
}


class _Specs(dict):
    def __missing__(self, key):
        raise UnknownAnchorError(
            f"unknown anchor {key!r}; anchors.toml defines {sorted(self)}.{_suggest(str(key), self)}"
        )


def load_anchor_specs(path: str | os.PathLike[str] | None = None) -> dict[str, AnchorSpec]:
    """Read anchors.toml (default: fixtures/anchors.toml); indexing an unknown name lists the known ones."""
    path = Path(path) if path is not None else DEFAULT_ANCHORS
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read anchor settings {path}: {err}") from err
    if data.pop("schema", None) != 1:
        raise ConfigError(f"{path}: expected 'schema = 1' at the top")
    specs = _Specs()
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: top-level key {name!r} is not an anchor table")
        unknown = set(table) - _SPEC_KEYS
        if unknown:
            bad = min(unknown)
            raise ConfigError(
                f"{path}: [{name}] has unknown key(s) {sorted(unknown)}.{_suggest(bad, _SPEC_KEYS)}"
            )
        missing = _SPEC_KEYS - set(table) - {"options", "params", "sei_expect", "env"}
        if missing:
            raise ConfigError(f"{path}: [{name}] lacks {sorted(missing)}")
        try:
            specs[name] = AnchorSpec(
                name=name,
                description=str(table["description"]),
                encoder=str(table["encoder"]),
                decoder=str(table["decoder"]),
                qps=tuple(int(q) for q in table["qps"]),
                qp_range=(int(table["qp_range"][0]), int(table["qp_range"][1])),
                qp_option=str(table["qp_option"]),
                qp_in=table["qp_in"],
                preset=str(table["preset"]),
                thread_count=int(table["thread_count"]),
                min_size=int(table["min_size"]),
                options=tuple((str(k), str(v)) for k, v in table.get("options", {}).items()),
                params=tuple((str(k), str(v)) for k, v in table.get("params", {}).items()),
                sei_expect=tuple(str(t) for t in table.get("sei_expect", ())),
                env=tuple((str(k), str(v)) for k, v in table.get("env", {}).items()),
            )
        except (TypeError, ValueError, IndexError) as err:
            raise ConfigError(f"{path}: [{name}] has a value of the wrong type: {err}") from err
    return specs


# ---------------------------------------------------------------------------------------------
# Bitstream helpers: Annex B NAL units, SEI user data, AV1 temporal units


def _annexb_units(stream: bytes) -> list[tuple[int, int, int]]:
    """(segment start incl. start code, payload start, segment end) for each NAL unit."""
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", stream)]
    units = []
    for i, pos in enumerate(starts):
        seg = pos - 1 if pos > 0 and stream[pos - 1] == 0 else pos
        end = (
            len(stream)
            if i + 1 == len(starts)
            else (starts[i + 1] - (1 if stream[starts[i + 1] - 1] == 0 else 0))
        )
        units.append((seg, pos + 3, end))
    return units


def _rbsp(payload: bytes) -> bytes:
    return re.sub(b"\x00\x00\x03", b"\x00\x00", payload)


def _sei_messages(rbsp: bytes) -> list[tuple[int, bytes]] | None:
    """(payloadType, payload) of each SEI message, or None if the RBSP does not parse."""
    out, i = [], 0
    while i < len(rbsp) and rbsp[i:] != b"\x80":
        ptype = psize = 0
        while i < len(rbsp) and rbsp[i] == 0xFF:
            ptype, i = ptype + 255, i + 1
        if i >= len(rbsp):
            return None
        ptype, i = ptype + rbsp[i], i + 1
        while i < len(rbsp) and rbsp[i] == 0xFF:
            psize, i = psize + 255, i + 1
        if i >= len(rbsp):
            return None
        psize, i = psize + rbsp[i], i + 1
        if i + psize > len(rbsp):
            return None
        out.append((ptype, rbsp[i : i + psize]))
        i += psize
    return out


_INFO_PREFIX = {"libx265": b"x265 (build", "libx264": b"x264 - core"}


def _strip_info_sei(stream: bytes, encoder: str) -> tuple[bytes, str | None]:
    """Remove the encoder's settings SEI NAL units; return the stream and the settings text."""
    hevc = encoder == "libx265"
    keep, text = [], None
    for seg, start, end in _annexb_units(stream):
        header = stream[start] if start < end else 0
        is_sei = ((header >> 1) & 0x3F) == 39 if hevc else (header & 0x1F) == 6
        if is_sei:
            messages = _sei_messages(_rbsp(stream[start + (2 if hevc else 1) : end]))
            infos = [p[16:] for t, p in messages or () if t == 5 and p[16:].startswith(_INFO_PREFIX[encoder])]
            if infos:
                if len(infos) != len(messages):
                    raise AnchorError(
                        f"{encoder}: settings SEI shares its NAL unit with other SEI; cannot strip it"
                    )
                text = infos[0].split(b"\x00", 1)[0].decode("ascii", "replace")
                continue
        keep.append(stream[seg:end])
    return b"".join(keep), text


def _av1_temporal_units(stream: bytes) -> list[bytes]:
    """Split a low-overhead AV1 OBU stream at its temporal delimiters."""
    units, pos, begin = [], 0, 0
    while pos < len(stream):
        header = stream[pos]
        obu_type, has_ext, has_size = (header >> 3) & 0xF, header & 4, header & 2
        if not has_size:
            raise AnchorError("AV1 stream has an OBU without obu_size; cannot split it into temporal units")
        i = pos + 1 + (1 if has_ext else 0)
        size = shift = 0
        while True:
            if i >= len(stream):
                raise AnchorError(f"AV1 stream is truncated at byte {pos}")
            byte, i = stream[i], i + 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if obu_type == 2 and pos > begin:  # OBU_TEMPORAL_DELIMITER starts a new unit
            units.append(stream[begin:pos])
            begin = pos
        pos = i + size
    if pos != len(stream):
        raise AnchorError(f"AV1 stream is truncated: last OBU runs to byte {pos} of {len(stream)}")
    if begin < len(stream):
        units.append(stream[begin:])
    return units


# ---------------------------------------------------------------------------------------------
# Settings verification


def _settings(text: str) -> dict[str, str]:
    """Parse 'options: a=1 no-b c' into {'a': '1', 'no-b': '', 'c': ''}."""
    options = text.split("options:", 1)[1] if "options:" in text else ""
    tokens = {}
    for token in options.split():
        key, _, value = token.partition("=")
        tokens[key] = value
    return tokens


def _same(reported: str, wanted: str) -> bool:
    if reported == wanted:
        return True
    try:
        return float(reported.split(":")[0]) == float(wanted.split(":")[0])
    except ValueError:
        return False


def _expected(spec: AnchorSpec, qp: int) -> list[tuple[str, str, str]]:
    """(asked-for text, reported key, reported value; '' = bare flag) for each verifiable setting."""
    wanted = list(spec.params) + ([(spec.qp_option, str(qp))] if spec.qp_in == "params" else [])
    out = []
    for key, value in wanted:
        asked = f"{key}={value}"
        if key in _UNREPORTED:
            continue
        if spec.encoder == "libx265":
            if key == "log-level":
                out.append((asked, key, _X265_LOG_LEVELS.get(value, value)))
            elif key in _X265_BOOLEAN:
                flag = value.lower() in ("1", "true", "yes")
                out.append((asked, key if flag else f"no-{key}", ""))
            else:
                out.append((asked, _X265_SEI_NAME.get(key, key), value))
        else:
            out.append((asked, _X264_SEI_NAME.get(key, key.replace("-", "_")), value))
    for token in spec.sei_expect:
        key, _, value = token.partition("=")
        out.append((f"sei_expect {token}", key, value))
    return out


def _verify_settings(spec: AnchorSpec, qp: int, text: str | None) -> dict[str, str]:
    if text is None:
        raise AnchorError(
            f"{spec.name}: the encoder wrote no settings SEI, so its options cannot be verified"
        )
    reported = _settings(text)
    if not reported:
        raise AnchorError(f"{spec.name}: settings SEI has no options list: {text[:200]!r}")
    for asked, key, value in _expected(spec, qp):
        if key not in reported:
            near = [k for k in reported if key.removeprefix("no-") in k]
            raise AnchorError(
                f"{spec.name}: asked for {asked} but the encoder reports no {key!r} "
                f"(related: {[f'{k}={reported[k]}' if reported[k] else k for k in near][:4]})"
            )
        if value and not _same(reported[key], value):
            raise AnchorError(f"{spec.name}: asked for {asked} but the encoder reports {key}={reported[key]}")
    return reported


def _version_from_sei(encoder: str, text: str) -> str:
    if encoder == "libx265":
        m = re.match(r"x265 \(build (\d+)\) - ([^:\s]+)", text)
        return f"{m.group(2)} (build {m.group(1)})" if m else text[:40]
    m = re.match(r"x264 - core (\d+)( r\S+)?", text)
    return f"core {m.group(1)}{m.group(2) or ''}" if m else text[:40]


# ---------------------------------------------------------------------------------------------
# Encode and decode


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
        options[_PARAMS_OPTION[spec.encoder]] = ":".join(f"{k}={v}" for k, v in params)
    for key, value in spec.env:
        os.environ[key] = value
    ctx = av.CodecContext.create(spec.encoder, "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1) / fps
    ctx.framerate = fps
    ctx.thread_count = spec.thread_count
    ctx.options = options
    with _FfmpegLog() as log:
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
        stripped, text = _strip_info_sei(stream, spec.encoder)
        settings = _verify_settings(spec, qp, text)
        version = _version_from_sei(spec.encoder, text)
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
            packets = [av.Packet(unit) for unit in _av1_temporal_units(bitstream)]
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


# ---------------------------------------------------------------------------------------------
# Versions and identity


def _loaded_library(prefix: str) -> str | None:
    """Path of an already loaded shared library whose file name starts with `prefix`."""
    import av

    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").split(" ", 5)[-1].strip()
                if os.path.basename(path).startswith(prefix):
                    return path
    except OSError:
        pass
    wheel_libs = Path(av.__file__).resolve().parent.parent / "av.libs"
    found = sorted(glob.glob(str(wheel_libs / f"{prefix}*")))
    return found[0] if found else None


def _c_string(prefix: str, function: str) -> str | None:
    path = _loaded_library(prefix)
    if path is None:
        return None
    try:
        fn = getattr(ctypes.CDLL(path), function)
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_char_p
    value = fn()
    return value.decode("ascii", "replace") if value else None


def _probe_sei_version(encoder: str) -> str | None:
    specs = {
        "libx265": AnchorSpec(
            "probe",
            "",
            "libx265",
            "hevc",
            (30,),
            (0, 51),
            "qp",
            "params",
            "ultrafast",
            1,
            16,
            params=(("pools", "1"), ("frame-threads", "1"), ("log-level", "error"), ("info", "1")),
        ),
        "libx264": AnchorSpec(
            "probe",
            "",
            "libx264",
            "h264",
            (30,),
            (0, 51),
            "qp",
            "params",
            "ultrafast",
            1,
            2,
            params=(("threads", "1"),),
        ),
    }
    tiny = Video(
        np.full((1, 16, 16), 128, np.uint8),
        np.full((1, 8, 8), 128, np.uint8),
        np.full((1, 8, 8), 128, np.uint8),
        fps=25,
    )
    try:
        return encode_anchor_with_report(tiny, specs[encoder], 30).encoder_version
    except AnchorError:
        return None


@lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    import av

    libav = {
        k: ".".join(map(str, v)) for k, v in av.library_versions.items() if k in ("libavcodec", "libavutil")
    }
    versions = {
        "pyav": av.__version__,
        **libav,
        "libx265": _probe_sei_version("libx265") or "unknown",
        "libx264": _probe_sei_version("libx264") or "unknown",
        "libsvtav1": _c_string("libSvtAv1Enc", "svt_av1_get_version") or "unknown",
        "libdav1d": _c_string("libdav1d", "dav1d_version") or "unknown",
        "machine": platform.machine(),
    }
    return tuple(versions.items())


def anchor_versions() -> dict[str, str]:
    """Versions of everything that shapes an anchor's bytes.

    libx265/libx264: parsed from the settings SEI of a 16x16 probe encode (the only place PyAV
    exposes them: 'x265 (build 216) - 4.2+...', 'x264 - core 165'); libsvtav1 and libdav1d: their
    C version functions in the shared libraries PyAV loaded; pyav, libavcodec, libavutil: PyAV;
    machine: the CPU architecture (x264's bytes depend on the SIMD level).
    """
    return dict(_versions())


def anchor_id(spec: AnchorSpec) -> str:
    """Stable id of an anchor for cache keys: name, preset and a hash of every setting and version."""
    versions = anchor_versions()
    relevant = {k: versions[k] for k in ("pyav", "libavcodec", "libavutil", "machine")}
    relevant[spec.encoder] = versions[spec.encoder]
    if spec.decoder == "libdav1d":
        relevant["libdav1d"] = versions["libdav1d"]
    payload = {"code": ANCHOR_CODE_VERSION, "spec": spec.to_json(), "versions": relevant}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return f"{spec.name}-{spec.preset}-{digest[:16]}"
