"""VMAF (vmaf_v0.6.1) and VMAF NEG (vmaf_v0.6.1neg) per frame, through libvmaf in imageio-ffmpeg's ffmpeg.

Both models run in ONE ffmpeg process. The planes go in as raw yuv420p over two pipes with the
size and rate given explicitly (``-f rawvideo -pix_fmt yuv420p -s WxH -framerate N/D``), never
as re-containerised files (PITFALLS 7). The distorted clip is libvmaf's first ("main") input and
the reference its second (PITFALLS 6). Odd sizes are passed as they are: ffmpeg's rawvideo reader
expects ceil(W/2) x ceil(H/2) chroma, exactly `Video`'s layout, and libvmaf accepts odd sizes.
Frame counts are checked before ffmpeg runs and libvmaf's per-frame count after (PITFALLS 4).
libvmaf crashes (SIGSEGV) on frames with a side of 16 samples or fewer; such clips are refused
with a MetricError before ffmpeg runs. Only the VMAF models' own features are computed, never
libvmaf's SSIM/MS-SSIM (PITFALLS 13). The per-clip value is the mean of the per-frame scores
(libvmaf's default pooling).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from harness.metric_errors import MetricError, UnknownMetricError, frame_count_check
from harness.video import Video

__all__ = [
    "VMAF_MIN_SIDE",
    "VMAF_MODELS",
    "VmafModel",
    "VmafResult",
    "compute_vmaf",
    "ffmpeg_exe",
    "vmaf_version",
]

VmafModel = Literal["vmaf", "vmaf_neg"]
VMAF_MODELS: dict[str, str] = {"vmaf": "vmaf_v0.6.1", "vmaf_neg": "vmaf_v0.6.1neg"}
"""Harness name -> libvmaf built-in model version."""

_STDERR_KEEP = 4000
VMAF_MIN_SIDE = 17
"""Smallest width and height libvmaf handles; it segfaults on 16x16 and 200x16 frames."""


@dataclass(frozen=True)
class VmafResult:
    """Per-frame scores (0..100, one per frame) and their means by model name, and each model's version."""

    per_frame: Mapping[str, np.ndarray]
    mean: Mapping[str, float]
    versions: Mapping[str, str]


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (built with libvmaf)."""
    try:
        import imageio_ffmpeg
    except ImportError as err:
        raise MetricError("VMAF needs imageio-ffmpeg (pip install imageio-ffmpeg)") from err
    return imageio_ffmpeg.get_ffmpeg_exe()


def _validate_models(models: Iterable[str]) -> tuple[str, ...]:
    if isinstance(models, str):
        models = (models,)
    out: list[str] = []
    for name in models:
        if name not in VMAF_MODELS:
            raise UnknownMetricError(f"unknown VMAF model {name!r}; known: {', '.join(get_args(VmafModel))}")
        if name not in out:
            out.append(name)
    if not out:
        raise UnknownMetricError(f"no VMAF model requested; choose from {', '.join(VMAF_MODELS)}")
    return tuple(out)


def _filter(models: tuple[str, ...], threads: int, log_name: str) -> str:
    # Inside the model option '|' separates models and '\:' escapes the per-model key separator.
    model = "|".join(f"version={VMAF_MODELS[m]}\\:name={m}" for m in models)
    return (
        f"[0:v][1:v]libvmaf=model='{model}':n_threads={threads}:log_fmt=json:log_path={log_name}:shortest=1"
    )


def _raw_input(fd: int, ref: Video) -> list[str]:
    # Both inputs get the reference's size and rate, so framesync pairs frame i with frame i.
    fps = ref.fps
    return [
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{ref.width}x{ref.height}",
        "-framerate", f"{fps.numerator}/{fps.denominator}", "-i", f"pipe:{fd}",
    ]  # fmt: skip


def _feed(fd: int, video: Video, errors: list[BaseException]) -> None:
    try:
        with os.fdopen(fd, "wb", buffering=0) as pipe:
            for i in range(video.frames):
                for plane in video.frame(i):
                    pipe.write(np.ascontiguousarray(plane).data)
    except BrokenPipeError:
        pass  # ffmpeg exited early; its return code and stderr say why
    except BaseException as err:  # noqa: BLE001 - re-raised by the caller
        errors.append(err)


def _run(ref: Video, dist: Video, models: tuple[str, ...], threads: int) -> dict:
    exe = ffmpeg_exe()
    with tempfile.TemporaryDirectory(prefix="harness-vmaf-") as tmp:
        log_name = "vmaf.json"
        dist_r, dist_w = os.pipe()
        ref_r, ref_w = os.pipe()
        cmd = [
            exe, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
            *_raw_input(dist_r, ref),  # distorted first: libvmaf's "main" input (PITFALLS 6)
            *_raw_input(ref_r, ref),
            "-lavfi", _filter(models, threads, log_name), "-f", "null", "-",
        ]  # fmt: skip
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(dist_r, ref_r),
            )
        except OSError as err:
            for fd in (dist_r, dist_w, ref_r, ref_w):
                os.close(fd)
            raise MetricError(f"cannot start ffmpeg {exe}: {err}") from err
        os.close(dist_r)
        os.close(ref_r)
        errors: list[BaseException] = []
        feeders = [
            threading.Thread(target=_feed, args=(dist_w, dist, errors), daemon=True),
            threading.Thread(target=_feed, args=(ref_w, ref, errors), daemon=True),
        ]
        for t in feeders:
            t.start()
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode(errors="replace")
        proc.wait()
        for t in feeders:
            t.join()
        if errors:
            raise MetricError(f"feeding frames to ffmpeg failed: {errors[0]!r}") from errors[0]
        if proc.returncode != 0:
            how = (
                f"was killed by signal {-proc.returncode}"
                if proc.returncode < 0
                else f"failed with exit code {proc.returncode}"
            )
            raise MetricError(f"ffmpeg libvmaf {how}: {stderr[-_STDERR_KEEP:].strip() or '(no message)'}")
        try:
            with open(os.path.join(tmp, log_name), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError) as err:
            raise MetricError(
                f"libvmaf wrote no readable JSON log ({err}); ffmpeg said: {stderr[-_STDERR_KEEP:].strip()}"
            ) from err


def compute_vmaf(
    ref: Video,
    dist: Video,
    *,
    models: Iterable[str] = ("vmaf", "vmaf_neg"),
    threads: int = 2,
) -> VmafResult:
    """VMAF scores of `dist` against the source `ref`, per frame, for each model in one ffmpeg run.

    Raises VideoFormatError on mismatched clips and MetricError when ffmpeg fails or libvmaf
    returns another number of frames or a non-finite score.
    """
    names = _validate_models(models)
    frame_count_check(ref, dist)
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    if min(ref.width, ref.height) < VMAF_MIN_SIDE:
        raise MetricError(
            f"VMAF needs frames of at least {VMAF_MIN_SIDE}x{VMAF_MIN_SIDE} "
            "(libvmaf crashes on smaller ones); "
            f"this clip is {ref.width}x{ref.height}: leave vmaf out of its metrics"
        )
    log = _run(ref, dist, names, threads)
    frames = log.get("frames")
    if not isinstance(frames, list) or len(frames) != ref.frames:
        got = len(frames) if isinstance(frames, list) else "no"
        raise MetricError(f"libvmaf scored {got} frames but the clips have {ref.frames}; refusing the result")
    per_frame: dict[str, np.ndarray] = {}
    for name in names:
        try:
            values = np.array([float(f["metrics"][name]) for f in frames], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise MetricError(f"libvmaf log lacks per-frame {name!r} scores: {err!r}") from err
        if not np.all(np.isfinite(values)):
            bad = np.flatnonzero(~np.isfinite(values))[:10].tolist()
            raise MetricError(f"libvmaf gave non-finite {name} scores at frames {bad}")
        values.setflags(write=False)
        per_frame[name] = values
    return VmafResult(
        per_frame=per_frame,
        mean={k: float(v.mean()) for k, v in per_frame.items()},
        versions={n: vmaf_version(n) for n in names},
    )


@functools.lru_cache(maxsize=1)
def _versions() -> str:
    """'ffmpeg=<build>;libvmaf=<version>' of the bundled binary (one 32x32 libvmaf run, cached)."""
    exe = ffmpeg_exe()
    try:
        out = subprocess.run(
            [exe, "-hide_banner", "-version"], check=False, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise MetricError(f"cannot run {exe} -version: {err}") from err
    first = out.stdout.splitlines()[0] if out.stdout else ""
    ffmpeg_build = (
        first.split()[2] if first.startswith("ffmpeg version") and len(first.split()) > 2 else "unknown"
    )
    probe = Video(
        np.zeros((1, 32, 32), np.uint8), np.zeros((1, 16, 16), np.uint8), np.zeros((1, 16, 16), np.uint8), 25
    )
    log = _run(probe, probe, ("vmaf",), 1)
    return f"ffmpeg={ffmpeg_build};libvmaf={log.get('version', 'unknown')}"


def vmaf_version(model: str = "vmaf") -> str:
    """Version string of one model: ffmpeg build, libvmaf version and the libvmaf model name."""
    (name,) = _validate_models((model,))
    return f"{_versions()};model={VMAF_MODELS[name]}"
