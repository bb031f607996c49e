"""Bjontegaard delta rate (BD-rate) and delta quality (BD-PSNR) between two rate-quality curves.

BD-rate in percent: negative means the test needs fewer bits than the reference at equal quality.

Method (VCEG-AI11 as revised for JVET common test conditions): each curve is interpolated as
log10(rate) = f(quality) with a piecewise cubic, shape-preserving interpolant (PCHIP, the
"piecewise cubic" of the JVET spreadsheet; Akima as an alternative), both are integrated over the
*overlapping* quality interval, and the mean log-rate difference d gives BD-rate = (10**d - 1) * 100.
BD-quality swaps the axes: quality = g(log10 rate), integrated over the overlapping log-rate
interval, mean difference in quality units (dB for PSNR; positive = test has higher quality).
Nothing is ever extrapolated.

Decisions, stated once:

- Points are sorted by rate. Quality must rise strictly with rate. A curve that does not (a codec
  whose quality drops as it spends more bits) gives a *not comparable* result whose `warning`
  names the offending points; points are never reordered or dropped, because which one is wrong
  cannot be known. Malformed input (fewer than 2 points, non-finite values, rate <= 0) raises
  `BDRateError`.
- Overlap = length of the intersection of the two quality ranges divided by the length of their
  union (the definition of the `bjontegaard` package). Below `MIN_OVERLAP` (75 %) the value is
  still given, with a warning; with no overlap there is no BD-rate (never a huge number): the
  result is not comparable and says what can be said instead: BD-quality over the rates both
  curves cover, when they share any, and whether the test is worse (or better) than the
  reference at every one of its rate points (`dominance`).
- "Worse at a rate point": the reference reaches a higher quality with no more bits, i.e. its
  curve at that rate (interpolated, never extrapolated) or, beyond its highest rate, its best
  point is above the test point. "Better": the reference's quality at that rate, or below its
  lowest rate its lowest point, is under the test point. A test point under the reference's
  lowest rate cannot be worse and one over its highest rate cannot be better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.interpolate import Akima1DInterpolator, PchipInterpolator

from harness.errors import HarnessError

__all__ = [
    "MIN_OVERLAP",
    "BDAverage",
    "BDRateError",
    "BDResult",
    "Dominance",
    "Method",
    "average_bd_rate",
    "bd_rate",
    "describe",
]

Method = Literal["pchip", "akima"]
Dominance = Literal["worse", "better"]
METHODS: tuple[Method, ...] = ("pchip", "akima")
MIN_OVERLAP = 0.75
"""Fraction of the union of quality ranges below which a BD-rate carries a warning."""

_SAME_BITS = 0.05  # |BD-rate| that rounds to 0.0 % at one decimal


class BDRateError(HarnessError, ValueError):
    """Rate-quality points that cannot form a curve (too few, non-finite, rate <= 0, bad method)."""


@dataclass(frozen=True)
class BDResult:
    """BD-rate of a test curve against a reference curve.

    bd_rate: percent, negative = test needs fewer bits at equal quality (better); None if not comparable.
    bd_quality: mean quality gain at equal rate in the metric's unit (dB), positive = better; None
        if the rate ranges do not overlap.
    overlap: |quality intersection| / |quality union|, 0..1.
    interval: the overlapping quality interval (low, high) that BD-rate integrates over.
    comparable: False when no BD-rate exists; `warning` then says why.
    warning: why the BD-rate is missing or less trustworthy (quality overlap under 75 %,
        non-monotone curve, no BD-quality); None when all is well.
    rate_overlap, rate_interval: the same on the rate axis (log10 lengths; interval in rate units),
        which BD-quality integrates over; judge BD-quality's reliability by rate_overlap (it is
        often under 75 % between codecs of different efficiency, so it does not set `warning`).
    dominance: "worse" / "better" when the test is below / above the reference at every one of
        its rate points (see the module docstring), else None.
    """

    bd_rate: float | None
    bd_quality: float | None
    overlap: float
    interval: tuple[float, float] | None
    comparable: bool
    warning: str | None
    method: Method
    rate_overlap: float = 0.0
    rate_interval: tuple[float, float] | None = None
    dominance: Dominance | None = None

    def describe(self) -> str:
        return describe(self.bd_rate)

    def verdict(self, unit: str = "") -> str:
        """What the comparison says in words: the BD-rate when there is one, else the test being
        worse (or better) at every rate point and its BD-quality, else "not comparable"."""
        if self.comparable and self.bd_rate is not None:
            return describe(self.bd_rate)
        parts = []
        if self.dominance:
            parts.append(f"{self.dominance} than the reference at every rate point")
        if self.bd_quality is not None:
            parts.append(f"{self.bd_quality:+.2f}{(' ' + unit) if unit else ''} at equal rate")
        return ", ".join(parts) or "– not comparable"

    def to_json(self) -> dict:
        """A JSON-ready dict (plain floats, lists, None) of every field plus a `summary` line."""
        return {
            "bd_rate": self.bd_rate,
            "bd_quality": self.bd_quality,
            "overlap": self.overlap,
            "interval": list(self.interval) if self.interval else None,
            "rate_overlap": self.rate_overlap,
            "rate_interval": list(self.rate_interval) if self.rate_interval else None,
            "comparable": self.comparable,
            "warning": self.warning,
            "method": self.method,
            "dominance": self.dominance,
            "summary": self.verdict(),
        }


def describe(bd_rate: float | None) -> str:
    """Arrow and words for a BD-rate: '↓ 12.3 % fewer bits', '↑ 4.0 % more bits', '= same bits'."""
    if bd_rate is None or not math.isfinite(bd_rate):
        return "– not comparable"
    if abs(bd_rate) < _SAME_BITS:
        return "= same bits"
    if bd_rate < 0:
        return f"↓ {-bd_rate:.1f} % fewer bits"
    return f"↑ {bd_rate:.1f} % more bits"


def _curve(points: Sequence[Sequence[float]], role: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate (rate, quality) points and return them sorted by rate as float arrays."""
    try:
        arr = np.asarray([(float(r), float(q)) for r, q in points], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise BDRateError(
            f"{role} curve: expected a sequence of (rate, quality) pairs of numbers, got {points!r:.200}"
        ) from err
    if arr.shape[0] < 2:
        raise BDRateError(
            f"{role} curve has {arr.shape[0]} point(s); BD-rate needs at least 2 (4 recommended)"
        )
    if not np.all(np.isfinite(arr)):
        raise BDRateError(f"{role} curve has a non-finite value: {arr.tolist()}")
    if np.any(arr[:, 0] <= 0):
        raise BDRateError(f"{role} curve has a rate <= 0 (log-rate undefined): {arr[:, 0].tolist()}")
    order = np.argsort(arr[:, 0], kind="stable")
    return arr[order, 0], arr[order, 1]


def _monotone_problem(rate: np.ndarray, quality: np.ndarray, role: str) -> str | None:
    for i in range(len(rate) - 1):
        if rate[i + 1] == rate[i] and quality[i + 1] == quality[i]:
            return (
                f"{role} curve has two points with the same rate {rate[i]:.6g} and quality {quality[i]:.4f}: "
                "the encoder gave the same bitstream for two target rates"
            )
        if not (rate[i + 1] > rate[i] and quality[i + 1] > quality[i]):
            return (
                f"{role} curve is not monotone: rate {rate[i]:.6g} -> quality {quality[i]:.4f}, "
                f"rate {rate[i + 1]:.6g} -> quality {quality[i + 1]:.4f}; quality must rise strictly with rate"
            )
    return None


def _dominance(
    rate_ref: np.ndarray, q_ref: np.ndarray, rate_test: np.ndarray, q_test: np.ndarray, method: Method
) -> Dominance | None:
    """"worse" / "better" when every test point is below / above the reference (module docstring)."""
    log_ref, curve = np.log10(rate_ref), _interpolant(np.log10(rate_ref), q_ref, method)
    worse, better = True, True
    for rate, quality in zip(np.log10(rate_test), q_test):
        inside = log_ref[0] <= rate <= log_ref[-1]
        at_rate = float(curve(rate)) if inside else None
        at_most = at_rate if inside else (q_ref[-1] if rate > log_ref[-1] else None)
        at_least = at_rate if inside else (q_ref[0] if rate < log_ref[0] else None)
        worse = worse and at_most is not None and at_most > quality
        better = better and at_least is not None and at_least < quality
    return "worse" if worse else "better" if better else None


def _interpolant(x: np.ndarray, y: np.ndarray, method: Method):
    if method == "pchip":
        return PchipInterpolator(x, y, extrapolate=False)
    return Akima1DInterpolator(x, y, extrapolate=False)


def _mean_delta(
    x_ref: np.ndarray, y_ref: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, method: Method
) -> tuple[float | None, float, tuple[float, float] | None]:
    """Mean of y_test - y_ref over the overlap of the x ranges; also the overlap fraction and interval."""
    lo, hi = max(x_ref[0], x_test[0]), min(x_ref[-1], x_test[-1])
    union = max(x_ref[-1], x_test[-1]) - min(x_ref[0], x_test[0])
    if not hi > lo:
        return None, 0.0, None
    area_ref = _interpolant(x_ref, y_ref, method).integrate(lo, hi)
    area_test = _interpolant(x_test, y_test, method).integrate(lo, hi)
    return float((area_test - area_ref) / (hi - lo)), float((hi - lo) / union), (float(lo), float(hi))


def bd_rate(
    reference: Sequence[Sequence[float]],
    test: Sequence[Sequence[float]],
    *,
    method: Method = "pchip",
) -> BDResult:
    """BD-rate (percent; negative = test needs fewer bits = better) and BD-quality of `test` vs `reference`.

    Each curve is a sequence of (rate, quality) points, rate > 0 in any consistent unit (bits, bps),
    quality in any consistent unit (PSNR dB, SSIM...). See the module docstring for the method.
    """
    if method not in METHODS:
        raise BDRateError(f"unknown interpolation method {method!r}; choose one of {list(METHODS)}")
    rate_ref, q_ref = _curve(reference, "reference")
    rate_test, q_test = _curve(test, "test")
    problem = _monotone_problem(rate_ref, q_ref, "reference") or _monotone_problem(rate_test, q_test, "test")
    if problem:
        return BDResult(None, None, 0.0, None, False, problem, method)

    log_ref, log_test = np.log10(rate_ref), np.log10(rate_test)
    d_log_rate, overlap, interval = _mean_delta(q_ref, log_ref, q_test, log_test, method)
    d_quality, rate_overlap, log_interval = _mean_delta(log_ref, q_ref, log_test, q_test, method)
    rate_interval = (10 ** log_interval[0], 10 ** log_interval[1]) if log_interval else None

    if d_log_rate is None:
        dominance = _dominance(rate_ref, q_ref, rate_test, q_test, method)
        reason = (
            f"not comparable: quality ranges do not overlap (reference {q_ref[0]:.4g}..{q_ref[-1]:.4g}, "
            f"test {q_test[0]:.4g}..{q_test[-1]:.4g}), no BD-rate"
        )
        if d_quality is not None:
            reason += (
                f"; BD-quality {d_quality:+.4g} at equal rate over the shared rates "
                f"{rate_interval[0]:.4g}..{rate_interval[1]:.4g}"
            )
        if dominance:
            reason += f"; the test is {dominance} than the reference at every rate point"
        if d_quality is None and dominance is None:
            reason += (
                f"; the rate ranges do not overlap either (reference {rate_ref[0]:.4g}..{rate_ref[-1]:.4g}, "
                f"test {rate_test[0]:.4g}..{rate_test[-1]:.4g}) and neither curve is above the other"
            )
        return BDResult(
            None, d_quality, 0.0, None, False, reason, method, rate_overlap, rate_interval, dominance
        )

    notes = []
    if overlap < MIN_OVERLAP:
        notes.append(
            f"quality ranges overlap only {overlap:.0%} (under {MIN_OVERLAP:.0%}): BD-rate describes "
            f"{interval[0]:.4g}..{interval[1]:.4g} of {min(q_ref[0], q_test[0]):.4g}..{max(q_ref[-1], q_test[-1]):.4g}"
        )
    if d_quality is None:
        notes.append("rate ranges do not overlap: no BD-quality")
    return BDResult(
        bd_rate=float((10**d_log_rate - 1) * 100),
        bd_quality=d_quality,
        overlap=overlap,
        interval=interval,
        comparable=True,
        warning="; ".join(notes) or None,
        method=method,
        rate_overlap=rate_overlap,
        rate_interval=rate_interval,
    )


@dataclass(frozen=True)
class BDAverage:
    """Mean BD-rate over clips (percent; negative = fewer bits = better) of the comparable clips only.

    included: clips whose BD-rate entered the mean; excluded: (clip, reason) for the others;
    warned: (clip, warning) for included clips whose result carries a warning.
    bd_quality: mean BD-quality over the included clips that have one.
    """

    bd_rate: float | None
    bd_quality: float | None
    included: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...]
    warned: tuple[tuple[str, str], ...]
    method: Method | None

    def describe(self) -> str:
        return describe(self.bd_rate)

    def to_json(self) -> dict:
        """A JSON-ready dict of every field plus a `summary` line."""
        return {
            "bd_rate": self.bd_rate,
            "bd_quality": self.bd_quality,
            "included": list(self.included),
            "excluded": {clip: reason for clip, reason in self.excluded},
            "warned": {clip: warning for clip, warning in self.warned},
            "method": self.method,
            "summary": describe(self.bd_rate),
        }


def average_bd_rate(results: Mapping[str, BDResult]) -> BDAverage:
    """Arithmetic mean of the per-clip BD-rates of comparable clips (percent; negative = better).

    Not-comparable clips are left out and listed with their reason; a set with none comparable
    has bd_rate None. Mixing interpolation methods raises `BDRateError`.
    """
    methods = {r.method for r in results.values()}
    if len(methods) > 1:
        raise BDRateError(f"cannot average BD-rates computed with different methods {sorted(methods)}")
    included = [clip for clip, r in results.items() if r.comparable and r.bd_rate is not None]
    excluded = tuple(
        (clip, r.warning or "not comparable") for clip, r in results.items() if clip not in set(included)
    )
    warned = tuple((clip, results[clip].warning) for clip in included if results[clip].warning)
    qualities = [results[c].bd_quality for c in included if results[c].bd_quality is not None]
    return BDAverage(
        bd_rate=float(np.mean([results[c].bd_rate for c in included])) if included else None,
        bd_quality=float(np.mean(qualities)) if qualities else None,
        included=tuple(included),
        excluded=excluded,
        warned=warned,
        method=methods.pop() if methods else None,
    )
