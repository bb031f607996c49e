"""Versions of everything that shapes an anchor's bytes, and the anchor id that cache keys use."""

from __future__ import annotations

import ctypes
import glob
import hashlib
import json
import os
import platform
from functools import lru_cache
from pathlib import Path

import numpy as np

from harness.anchors.codec import encode_anchor_with_report
from harness.anchors.errors import AnchorError
from harness.anchors.spec import AnchorSpec
from harness.video import Video

ANCHOR_CODE_VERSION = 1
"""Bump when this package changes what bytes an anchor produces (padding, SEI stripping...)."""


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
    settings = spec.to_json()
    if not spec.full_range:
        # Only a full-range source's bitstream changed when range signalling came: the ids (and
        # cached results) of every other anchor stay those of before.
        del settings["full_range"], settings["full_range_sei"]
    payload = {"code": ANCHOR_CODE_VERSION, "spec": settings, "versions": relevant}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return f"{spec.name}-{spec.preset}-{'full-range-' if spec.full_range else ''}{digest[:16]}"
