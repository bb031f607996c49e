"""Full-reference quality metrics of a decoded clip against its source: PSNR, SSIM, MS-SSIM (+ VMAF).

Every metric is computed per frame on the 8-bit planes as they are (no range conversion,
PITFALLS 8) and the per-clip value is the arithmetic MEAN of the per-frame values, as in the
common test conditions (PITFALLS 5): for PSNR that is the mean of per-frame PSNR, not the PSNR
of the mean MSE that ffmpeg's summary prints. Frames are streamed one at a time through
reused float32 buffers (PITFALLS 11) on a small thread pool; OpenCV releases the GIL.

Definitions (each has a version in `METRIC_VERSIONS`; change the version when a number changes):

- ``psnr``: 10*log10(255^2 / MSE) per plane, capped at `PSNR_CAP_DB` (identical planes give the
  cap, never inf); ``psnr_yuv`` = (6*Y + U + V) / 8 of the capped per-frame values.
- ``ssim``: Wang et al. 2004 on Y, U and V: 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03,
  L 255, population (not sample) covariances, mean over the positions where the whole window
  fits (the map cropped by 5 samples per side). This equals scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=255)`` (PITFALLS 9) to ~1e-6. On a plane with a side under 11 samples that axis
  uses the largest odd window that fits (1, 3, ..., 9 taps of the same sigma-1.5 Gaussian,
  renormalised); a 1x1 plane therefore gets the luminance term alone.
- ``ms_ssim``: Wang et al. 2003 on Y: 5 scales, exponents 0.0448, 0.2856, 0.3001, 0.2363,
  0.1333, contrast-structure at scales 1-4 (clamped at 0 as pytorch_msssim does) and full SSIM
  at the last; between scales an odd last row/column is dropped and 2x2 blocks are averaged.
  Where the smaller side is too small for 5 scales (each scale needs 11 samples, i.e. under
  176 px) only the scales that fit are used with their exponents renormalised to sum to 1;
  with a single scale MS-SSIM equals SSIM.
- ``vmaf`` / ``vmaf_neg``: libvmaf models vmaf_v0.6.1 / vmaf_v0.6.1neg, see `harness.vmaf`.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, get_args

import cv2
import numpy as np

from harness.errors import VideoFormatError
from harness.metric_errors import MetricError, UnknownMetricError, frame_count_check
from harness.video import Video

__all__ = [
    "METRIC_NAMES",
    "METRIC_VERSIONS",
    "MS_SSIM_WEIGHTS",
    "PSNR_CAP_DB",
    "ClipMetrics",
    "MetricError",
    "MetricName",
    "UnknownMetricError",
    "compute_metrics",
    "frame_count_check",
    "metric_versions",
    "ms_ssim_plane",
    "psnr_plane",
    "ssim_plane",
]

MetricName = Literal["psnr", "ssim", "ms_ssim", "vmaf", "vmaf_neg"]
METRIC_NAMES: tuple[str, ...] = get_args(MetricName)

METRIC_VERSIONS: dict[str, str] = {
    "psnr": "1",
    "ssim": "1",
    "ms_ssim": "1",
    "vmaf": "1",  # this wrapper's version; `metric_versions` adds the ffmpeg/libvmaf build
    "vmaf_neg": "1",
}

PER_FRAME_KEYS: dict[str, tuple[str, ...]] = {
    "psnr": ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv"),
    "ssim": ("ssim_y", "ssim_u", "ssim_v"),
    "ms_ssim": ("ms_ssim_y",),
    "vmaf": ("vmaf",),
    "vmaf_neg": ("vmaf_neg",),
}

PSNR_CAP_DB = 100.0
"""PSNR reported for identical planes, and the ceiling of every PSNR value."""

PEAK = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
_C1 = (SSIM_K1 * PEAK) ** 2
_C2 = (SSIM_K2 * PEAK) ** 2
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

# Float32 SSIM subtracts this from every sample first: E[x^2] - E[x]^2 loses ~4x fewer bits.
_SHIFT = 128.0


@dataclass(frozen=True)
class ClipMetrics:
    """Per-frame values (arrays of length `frames`) and per-clip means (mean of per-frame values).

    Keys: psnr_y/u/v/yuv in dB, ssim_y/u/v and ms_ssim_y in [-1, 1], vmaf/vmaf_neg in 0..100.
    `versions` maps each computed metric to the version string it was computed with.
    """

    frames: int
    per_frame: Mapping[str, np.ndarray]
    mean: Mapping[str, float]
    versions: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        """Plain dicts, lists and floats, ready for `json.dumps`."""
        return {
            "frames": self.frames,
            "averaging": "mean of per-frame values",
            "versions": dict(self.versions),
            "mean": {k: float(v) for k, v in self.mean.items()},
            "per_frame": {k: [float(x) for x in v] for k, v in self.per_frame.items()},
        }


def _validate_names(metrics: Iterable[str]) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    names: list[str] = []
    for name in metrics:
        if name not in METRIC_NAMES:
            raise UnknownMetricError(f"unknown metric {name!r}; known metrics: {', '.join(METRIC_NAMES)}")
        if name not in names:
            names.append(name)
    if not names:
        raise UnknownMetricError(f"no metric requested; choose from {', '.join(METRIC_NAMES)}")
    return tuple(names)


def metric_versions(metrics: Iterable[str] = METRIC_NAMES) -> dict[str, str]:
    """Version strings to key caches on; VMAF's add the ffmpeg/libvmaf build and model (runs ffmpeg once)."""
    names = _validate_names(metrics)
    out = {name: METRIC_VERSIONS[name] for name in names}
    if "vmaf" in names or "vmaf_neg" in names:
        from harness.vmaf import vmaf_version

        for name in ("vmaf", "vmaf_neg"):
            if name in names:
                out[name] = f"{METRIC_VERSIONS[name]}+{vmaf_version(name)}"
    return out


# --------------------------------------------------------------------------- PSNR


def _mse_to_psnr(sq_err_sum: float, samples: int) -> float:
    if sq_err_sum <= 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(PEAK * PEAK * samples / sq_err_sum))


def psnr_plane(ref: np.ndarray, dist: np.ndarray) -> float:
    """PSNR in dB of one uint8 plane, capped at PSNR_CAP_DB."""
    return _mse_to_psnr(cv2.norm(ref, dist, cv2.NORM_L2SQR), ref.size)


# --------------------------------------------------------------------------- SSIM


def _gaussian_taps(taps: int) -> np.ndarray:
    half = taps // 2
    x = np.arange(-half, half + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return (k / k.sum()).reshape(-1, 1)


def _window_taps(side: int) -> int:
    """Taps along an axis of `side` samples: 11, or the largest odd number that fits."""
    return min(SSIM_WINDOW, side if side % 2 else side - 1)


class _SsimBuffers:
    """Float32 scratch planes for one plane shape, reused frame after frame by one thread."""

    def __init__(self, height: int, width: int) -> None:
        self.shape = (height, width)
        th, tw = _window_taps(height), _window_taps(width)
        self.ky = _gaussian_taps(th)
        self.kx = _gaussian_taps(tw)
        ph, pw = th // 2, tw // 2
        self.crop = (slice(ph, height - ph), slice(pw, width - pw))
        alloc = lambda: np.empty((height, width), np.float32)
        self.x, self.y, self.e = alloc(), alloc(), alloc()
        self.mx, self.my, self.me, self.t, self.sxx, self.see = (alloc() for _ in range(6))


class _Workspace:
    """One worker's buffers by plane shape; lives for one `compute_metrics` call (or one plane call)."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[int, int], _SsimBuffers] = {}

    def get(self, height: int, width: int) -> _SsimBuffers:
        key = (height, width)
        buf = self.buffers.get(key)
        if buf is None:
            buf = self.buffers[key] = _SsimBuffers(height, width)
        return buf


def _blur(src: np.ndarray, dst: np.ndarray, b: _SsimBuffers) -> None:
    # Border handling is irrelevant: only positions where the whole window fits are averaged.
    cv2.sepFilter2D(src, cv2.CV_32F, b.kx, b.ky, dst=dst, borderType=cv2.BORDER_REFLECT)


def _ssim_core(b: _SsimBuffers) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure term of b.x vs b.y (samples minus _SHIFT).

    Written as 1 - deficit, with the deficits taken from the difference e = x - y:
    l = 1 - mu_e^2 / (mu_x^2 + mu_y^2 + C1) and cs = 1 - var_e / (var_x + var_y + C2), which is
    the Wang et al. formula rearranged. In float32, E[x^2] - E[x]^2 of flat areas is off by up
    to ~3e-3 (1e-4 of SSIM per sample, 1e-5 on a screen-content mean); var_e is exact where
    x == y, and the denominators' errors only scale the small deficits. Only var_x + var_y is
    needed, so x^2 + y^2 is blurred once: 4 Gaussian blurs per plane.
    """
    x, y, e, t = b.x, b.y, b.e, b.t
    cv2.subtract(x, y, dst=e)
    _blur(x, b.mx, b)
    _blur(e, b.me, b)
    cv2.multiply(x, x, dst=t)
    cv2.accumulateSquare(y, t)
    _blur(t, b.sxx, b)
    cv2.multiply(e, e, dst=t)
    _blur(t, b.see, b)
    c = b.crop
    mx, my, me, t, den, see = b.mx[c], b.my[c], b.me[c], b.t[c], b.sxx[c], b.see[c]
    cv2.subtract(mx, me, dst=my)
    # var_x + var_y + C2 (on shifted samples: 4x smaller squares than on 0..255)
    cv2.multiply(mx, mx, dst=t)
    cv2.subtract(den, t, dst=den)
    cv2.multiply(my, my, dst=t)
    cv2.addWeighted(den, 1.0, t, -1.0, _C2, dst=den)
    # contrast-structure deficit var_e / (var_x + var_y + C2)
    cv2.multiply(me, me, dst=t)
    cv2.subtract(see, t, dst=see)
    cv2.divide(see, den, dst=see)
    cs_deficit = cv2.mean(see)[0]
    # luminance deficit mu_e^2 / (mu_x^2 + mu_y^2 + C1), on the real means
    # numpy for array + scalar: OpenCV 5 reads a (4, 1) array plus a float as a Scalar and refuses it.
    np.add(mx, np.float32(_SHIFT), out=mx)
    np.add(my, np.float32(_SHIFT), out=my)
    cv2.multiply(mx, mx, dst=mx)
    cv2.accumulateSquare(my, mx)
    np.add(mx, np.float32(_C1), out=mx)
    cv2.divide(t, mx, dst=t)
    # ssim = (1 - dl)(1 - dcs) = 1 - dl - dcs + dl*dcs
    l_deficit = cv2.mean(t)[0]
    cv2.multiply(t, see, dst=t)
    return 1.0 - l_deficit - cs_deficit + cv2.mean(t)[0], 1.0 - cs_deficit


def _load(plane: np.ndarray, dst: np.ndarray) -> None:
    np.subtract(plane, np.float32(_SHIFT), out=dst, dtype=np.float32)


def _ssim_u8(ref: np.ndarray, dist: np.ndarray, ws: _Workspace) -> tuple[float, float]:
    b = ws.get(*ref.shape)
    _load(ref, b.x)
    _load(dist, b.y)
    return _ssim_core(b)


def ssim_plane(ref: np.ndarray, dist: np.ndarray) -> float:
    """SSIM of one uint8 plane (definition in the module docstring)."""
    _check_pair(ref, dist)
    return _ssim_u8(ref, dist, _Workspace())[0]


def ms_ssim_scales(height: int, width: int) -> int:
    """How many MS-SSIM scales (1..5) a plane of height x width supports (each needs >= 11 samples)."""
    side, scales = min(height, width), 1
    while scales < len(MS_SSIM_WEIGHTS) and side // 2 >= SSIM_WINDOW:
        side //= 2
        scales += 1
    return scales


def _ms_ssim_u8(
    ref: np.ndarray, dist: np.ndarray, ws: _Workspace, first: tuple[float, float] | None = None
) -> float:
    h, w = ref.shape
    scales = ms_ssim_scales(h, w)
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales]) / sum(MS_SSIM_WEIGHTS[:scales])
    b = ws.get(h, w)
    _load(ref, b.x)
    _load(dist, b.y)
    # scale 1 shares its (ssim, cs) with ssim_y when both are asked for (same window and crop)
    values = [first] if first is not None else []
    for s in range(scales):
        if s:
            nh, nw = h // 2, w // 2
            nb = ws.get(nh, nw)
            for src, dst in ((b.x, nb.x), (b.y, nb.y)):
                cv2.resize(src[: 2 * nh, : 2 * nw], (nw, nh), dst=dst, interpolation=cv2.INTER_AREA)
            b, h, w = nb, nh, nw
        if s >= len(values):
            values.append(_ssim_core(b))
    if scales == 1:
        return values[0][0]
    out = 1.0
    for s, weight in enumerate(weights):
        v = values[s][0] if s == scales - 1 else values[s][1]
        out *= max(v, 0.0) ** weight
    return float(out)


def ms_ssim_plane(ref: np.ndarray, dist: np.ndarray) -> float:
    """MS-SSIM of one uint8 plane (definition in the module docstring)."""
    _check_pair(ref, dist)
    return _ms_ssim_u8(ref, dist, _Workspace())


def _check_pair(ref: np.ndarray, dist: np.ndarray) -> None:
    for name, a in (("ref", ref), ("dist", dist)):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 2 or a.size == 0:
            raise VideoFormatError(
                f"{name} must be a non-empty 2-D uint8 plane, got {getattr(a, 'shape', a)!r}"
            )
    if ref.shape != dist.shape:
        raise VideoFormatError(f"plane shapes differ: reference {ref.shape}, distorted {dist.shape}")


# --------------------------------------------------------------------------- clip driver

_CV_LOCK = threading.Lock()
_cv_users = 0
_cv_saved = 0


@contextlib.contextmanager
def _opencv_threads(count: int) -> Iterator[None]:
    """Run OpenCV's own parallel loops on `count` threads while metrics run, then restore the setting.

    Frames are already measured `threads` at a time; OpenCV splitting each blur over all cores
    on top of that cost ~10% of CPU time here. The setting is process-wide, so overlapping
    callers share it: the first one sets it and the last one restores it.
    """
    global _cv_users, _cv_saved
    with _CV_LOCK:
        if _cv_users == 0:
            _cv_saved = cv2.getNumThreads()
            cv2.setNumThreads(count)
        _cv_users += 1
    try:
        yield
    finally:
        with _CV_LOCK:
            _cv_users -= 1
            if _cv_users == 0:
                cv2.setNumThreads(_cv_saved)


def _frame_job(
    ref: Video, dist: Video, names: tuple[str, ...], out: dict[str, np.ndarray], ws: _Workspace, i: int
) -> None:
    planes = list(zip(ref.frame(i), dist.frame(i), ("y", "u", "v")))
    if "psnr" in names:
        weighted = 0.0
        for (r, d, p), wgt in zip(planes, (6.0, 1.0, 1.0)):
            val = psnr_plane(r, d)
            out[f"psnr_{p}"][i] = val
            weighted += wgt * val
        out["psnr_yuv"][i] = weighted / 8.0
    first = None
    if "ssim" in names:
        for r, d, p in planes:
            res = _ssim_u8(r, d, ws)
            out[f"ssim_{p}"][i] = res[0]
            if p == "y":
                first = res
    if "ms_ssim" in names:
        out["ms_ssim_y"][i] = _ms_ssim_u8(ref.y[i], dist.y[i], ws, first)


def _local_metrics(
    ref: Video, dist: Video, names: tuple[str, ...], out: dict[str, np.ndarray], n: int, threads: int
) -> None:
    """PSNR, SSIM and MS-SSIM frame by frame, `threads` frames at once, into `out`."""
    if not any(name in names for name in ("psnr", "ssim", "ms_ssim")):
        return
    workers = min(threads, n)
    spare: queue.SimpleQueue[_Workspace] = queue.SimpleQueue()
    for _ in range(workers):
        spare.put(_Workspace())

    def job(i: int) -> None:
        ws = spare.get()
        try:
            _frame_job(ref, dist, names, out, ws, i)
        finally:
            spare.put(ws)

    with _opencv_threads(max(1, threads // workers)):
        if workers == 1:
            for i in range(n):
                job(i)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="metrics") as pool:
                list(pool.map(job, range(n)))  # list() re-raises the first worker exception


def compute_metrics(
    ref: Video,
    dist: Video,
    *,
    metrics: Iterable[str] = ("psnr", "ssim", "ms_ssim"),
    threads: int = 2,
) -> ClipMetrics:
    """Per-frame and per-clip (mean of per-frame) metrics of `dist` against the source `ref`.

    Raises VideoFormatError on mismatched clips, UnknownMetricError on an unknown name and
    MetricError on a non-finite result. `threads` frames are measured at once.
    """
    names = _validate_names(metrics)
    frame_count_check(ref, dist)
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    n = ref.frames
    local = [k for name in names if name in ("psnr", "ssim", "ms_ssim") for k in PER_FRAME_KEYS[name]]
    out = {k: np.empty(n, np.float64) for k in local}
    vmaf_models = [name for name in names if name in ("vmaf", "vmaf_neg")]
    # libvmaf runs in its own ffmpeg process; it starts first and works while the frames are
    # measured here. On 2 cores both already keep the CPU busy (no measurable gain); with more
    # cores than `threads` the two overlap.
    with ThreadPoolExecutor(1, thread_name_prefix="vmaf") as vmaf_pool:
        vmaf_job = None
        if vmaf_models:
            from harness.vmaf import compute_vmaf

            vmaf_job = vmaf_pool.submit(compute_vmaf, ref, dist, models=vmaf_models, threads=threads)
        _local_metrics(ref, dist, names, out, n, threads)
        vmaf_result = vmaf_job.result() if vmaf_job is not None else None  # re-raises its error
    versions = {name: METRIC_VERSIONS[name] for name in names if name in ("psnr", "ssim", "ms_ssim")}
    if vmaf_result is not None:
        for name in vmaf_models:
            out[name] = vmaf_result.per_frame[name]
            versions[name] = f"{METRIC_VERSIONS[name]}+{vmaf_result.versions[name]}"
    ordered = {k: out[k] for name in names for k in PER_FRAME_KEYS[name]}
    for key, arr in ordered.items():
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise MetricError(
                f"{key} is not finite at frame(s) {bad[:10].tolist()} (values {arr[bad[:10]].tolist()}); "
                "this is a bug in the metric or its inputs, not a score"
            )
        arr.setflags(write=False)
    means = {k: float(np.mean(v)) for k, v in ordered.items()}
    return ClipMetrics(frames=n, per_frame=ordered, mean=means, versions=versions)
