"""What every rendering of a report shares: tolerant reading of the document and number formatting.

`ReportView` reads a report document whose parts may be missing (they read as empty); the
helpers format numbers (None or non-finite: "n/a") and escape text for HTML. harness.compare
uses them as well.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping

from harness.bdrate import describe

__all__ = [
    "DEFAULT_BD_METRICS",
    "METRIC_LABELS",
    "ReportView",
    "as_dict",
    "as_float",
    "as_list",
    "bd_class",
    "bd_words",
    "coverage",
    "coverage_words",
    "esc",
    "first_line",
    "fmt_kbps",
    "fmt_num",
    "metric_label",
    "nodeid_label",
    "nodeid_params",
    "ratio_words",
    "short_date",
]

DEFAULT_BD_METRICS = ("psnr_yuv", "ssim_y", "vmaf")
METRIC_LABELS = {
    "psnr_y": "PSNR-Y",
    "psnr_u": "PSNR-U",
    "psnr_v": "PSNR-V",
    "psnr_yuv": "PSNR-YUV",
    "ssim_y": "SSIM-Y",
    "ssim_u": "SSIM-U",
    "ssim_v": "SSIM-V",
    "ms_ssim_y": "MS-SSIM-Y",
    "vmaf": "VMAF",
    "vmaf_neg": "VMAF NEG",
}


def as_float(value: object) -> float | None:
    """A finite int or float as float; None for anything else (bool, None, NaN, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def fmt_num(value: object, fmt: str = ".2f", unit: str = "") -> str:
    """A number formatted with `fmt` (and its unit), or "n/a"."""
    v = as_float(value)
    if v is None:
        return "n/a"
    return f"{v:{fmt}}{(' ' + unit) if unit else ''}"


def ratio_words(entry: Mapping, axis: str) -> str:
    """A complexity ratio to x265 as "x2.3" ("n/a" without one), with " (front)" on the Pareto front
    or " (+4.1 pts off)" naming the BD-rate points to the front at that complexity."""
    value = as_float(entry.get(f"{axis}_ratio"))
    if value is None:
        return "n/a"
    text = f"x{value:.3g}"
    place = as_dict(as_dict(entry.get("front")).get(axis))
    if place.get("on_front") is True:
        return f"{text} (front)"
    gap = as_float(place.get("bd_gap_points"))
    return f"{text} ({gap:+.1f} pts off)" if gap is not None else text


def bd_words(bd_rate: object) -> str:
    """'↓ 12.3 % fewer bits' / '↑ 4.0 % more bits' / '= same bits', or 'n/a' when there is no value."""
    v = as_float(bd_rate)
    return "n/a" if v is None else describe(v)


def bd_class(bd_rate: object) -> str:
    """The CSS class of a BD-rate: better / worse / same (within ±0.05 %) / na."""
    v = as_float(bd_rate)
    if v is None:
        return "na"
    return "better" if v <= -0.05 else "worse" if v >= 0.05 else "same"


def coverage(slot: Mapping) -> tuple[int, int, list[str]] | None:
    """(clips covered, clips judged, the clips left out) of an overall BD-rate (`bd_overall` slot);
    None when it names no clip. Reports from before `clips_total` count `clips` + `excluded`."""
    clips, excluded = as_list(slot.get("clips")), as_dict(slot.get("excluded"))
    covered, total = as_float(slot.get("clips_covered")), as_float(slot.get("clips_total"))
    covered = int(covered) if covered is not None else len(clips)
    total = int(total) if total is not None else covered + len(excluded)
    return (covered, total, sorted(excluded)) if total else None


def coverage_words(slot: Mapping) -> str:
    """"5/13 clips" for an overall BD-rate; "" when it names no clip."""
    found = coverage(slot)
    return f"{found[0]}/{found[1]} clips" if found else ""


def esc(value: object) -> str:
    """Text for HTML, quotes included (None: empty)."""
    return html.escape("" if value is None else str(value), quote=True)


def as_dict(value: object) -> dict:
    """`value` when it is a dict, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list:
    """`value` when it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def metric_label(metric: str) -> str:
    """"psnr_yuv" -> "PSNR-YUV"; an unknown metric as it is."""
    return METRIC_LABELS.get(metric, metric)


def first_line(text: object, limit: int = 200) -> str:
    """The first non-blank line, without pytest's "Failed: " / "AssertionError: ", cut to `limit`."""
    line = next((ln.strip() for ln in str(text or "").splitlines() if ln.strip()), "")
    for prefix in ("Failed: ", "AssertionError: "):
        line = line.removeprefix(prefix)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def fmt_kbps(bps: object) -> str:
    """Bits per second as kbps with one decimal, or "n/a"."""
    v = as_float(bps)
    return "n/a" if v is None else f"{v / 1000:.1f}"


def short_date(created: object) -> str:
    """"2026-11-22T08:08:..." -> "2026-11-22 08:08 UTC"; other text as it is, "n/a" when empty."""
    text = str(created or "")
    m = re.match(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})", text)
    return f"{m.group(1)} {m.group(2)} UTC" if m else (text or "n/a")


class ReportView:
    """Tolerant accessors over a report document (missing parts read as empty)."""

    def __init__(self, doc: Mapping) -> None:
        self.doc = doc
        self.settings = as_dict(doc.get("settings"))
        self.suite = as_dict(self.settings.get("suite"))
        self.clips = as_dict(doc.get("clips"))
        self.anchors = as_dict(doc.get("anchors"))
        self.candidates = as_dict(doc.get("candidates"))
        self.tests = as_dict(doc.get("tests"))
        self.rate_anchor = str(self.suite.get("rate_anchor") or "x265")
        metrics = [str(m) for m in as_list(self.suite.get("bd_metrics")) if isinstance(m, str)]
        self.bd_metrics = tuple(metrics) or DEFAULT_BD_METRICS
        self.primary = self.bd_metrics[0]

    def full_range(self, clip: str) -> bool:
        """Whether the clip's samples are full range (yuvj420p / color_range pc): reports say so beside it."""
        return as_dict(self.clips.get(clip)).get("color_range") == "pc"

    def profile_text(self) -> str:
        """'profile standard', with the options given over it ('profile quick, clips given'), or ''."""
        profile = self.settings.get("profile")
        if not isinstance(profile, str):
            return ""
        over = [str(o) for o in as_list(self.settings.get("profile_overrides"))]
        return f"profile {profile}" + (f" ({', '.join(over)} given over it)" if over else "")

    def clip_names(self) -> list[str]:
        names = list(self.clips)
        for source in (
            self.anchors,
            *[as_dict(c.get("bd")) for c in self.candidates.values() if isinstance(c, dict)],
        ):
            names += [n for n in source if n not in names]
        for cand in self.candidates.values():
            for point in as_dict(as_dict(cand).get("points")).values():
                clip = as_dict(point).get("clip")
                if isinstance(clip, str) and clip not in names:
                    names.append(clip)
        return names

    def overall(self, name: str, metric: str, anchor: str | None = None) -> dict:
        cand = as_dict(self.candidates.get(name))
        return as_dict(as_dict(as_dict(cand.get("bd_overall")).get(anchor or self.rate_anchor)).get(metric))

    def clip_bd(self, name: str, clip: str, metric: str, anchor: str | None = None) -> dict:
        cand = as_dict(self.candidates.get(name))
        return as_dict(
            as_dict(as_dict(as_dict(cand.get("bd")).get(clip)).get(anchor or self.rate_anchor)).get(metric)
        )

    def candidate_tests(self, name: str) -> dict:
        cand = as_dict(self.candidates.get(name))
        tests = as_dict(cand.get("tests"))
        return tests or {k: v for k, v in self.tests.items() if nodeid_params(k)[0] == name}

    def counts(self, name: str) -> tuple[int, int, int]:
        """(failed, passed, total) tests of a candidate."""
        tests = self.candidate_tests(name)
        outcomes = [as_dict(t).get("outcome") for t in tests.values()]
        summary = as_dict(as_dict(self.candidates.get(name)).get("summary"))
        if not outcomes and summary:
            failed = int(as_float(summary.get("failed")) or 0)
            passed = int(as_float(summary.get("passed")) or 0)
            return failed, passed, int(sum(as_float(v) or 0 for v in summary.values()))
        return outcomes.count("failed"), outcomes.count("passed"), len(outcomes)

    def first_failure(self, name: str) -> tuple[str, str] | None:
        for nodeid, test in self.candidate_tests(name).items():
            if as_dict(test).get("outcome") == "failed":
                return nodeid, first_line(as_dict(test).get("reason")) or "failed (no reason recorded)"
        return None

    def verdict(self, name: str) -> tuple[str, str]:
        """(css class, words): an adoption verdict when the document has one, else pass/fail counts."""
        cand = as_dict(self.candidates.get(name))
        failed, passed, total = self.counts(name)
        verdict = cand.get("verdict")
        if isinstance(verdict, dict):
            verdict = verdict.get("decision") or verdict.get("verdict")
        if isinstance(verdict, str) and verdict:
            css = "ok" if verdict.lower() in ("adopted", "adoptable", "passed", "champion") else "bad"
            return css, verdict
        if total == 0:
            return "na", "no tests ran"
        if failed:
            return "bad", f"failed {failed} of {total} tests"
        if cand.get("passed_all") is False or passed < total:
            return "na", f"passed {passed} of {total} tests"
        return "ok", f"passed all {total} tests"

    def dropped_clips(self) -> dict[str, str]:
        """Clips left out before judging (clip -> problem): a corrupt file, a 10-bit clip, a failed download."""
        return {str(k): str(v) for k, v in as_dict(self.settings.get("dropped_clips")).items()}

    def complexity(self, name: str) -> dict:
        """A candidate's complexity entry (encode_ratio, decode_ratio, front), {} when the report has none."""
        return as_dict(as_dict(self.candidates.get(name)).get("complexity"))

    def track_label(self, name: str) -> str:
        """"native", or "open, wraps libx264": the declared track and the library codecs the calls used."""
        cand = as_dict(self.candidates.get(name))
        track = cand.get("track") if isinstance(cand.get("track"), str) else "native"
        codecs = [c for c in as_list(cand.get("library_codecs")) if isinstance(c, str)]
        wraps = list(dict.fromkeys(c.removesuffix(" via av") for c in codecs))
        return f"{track}, wraps {', '.join(wraps)}" if wraps else track

    def flags(self, name: str) -> list[str]:
        """A candidate's warnings (e.g. too good to be true without held-out confirmation)."""
        flags = as_dict(self.candidates.get(name)).get("flags")
        return [f for f in flags if isinstance(f, str)] if isinstance(flags, list) else []

    def verdict_reason(self, name: str) -> str | None:
        """The one-line reason of an adoption verdict, when the document has one."""
        verdict = as_dict(self.candidates.get(name)).get("verdict")
        reason = verdict.get("reason") if isinstance(verdict, dict) else None
        return first_line(reason, 300) if isinstance(reason, str) and reason.strip() else None

    def order(self) -> list[str]:
        """Candidates best first: passing ones, then by the share of clips their mean BD-rate on the
        primary metric covers (more first), then by that BD-rate. A mean over fewer clips never ranks
        ahead of one over more: the clips left out are usually the candidate's worst."""

        def key(name: str):
            failed, _, total = self.counts(name)
            slot = self.overall(name, self.primary)
            bd = as_float(slot.get("bd_rate"))
            covered = coverage(slot)
            share = covered[0] / covered[1] if covered else 0.0
            return (failed > 0 or total == 0, bd is None, -share, bd if bd is not None else 0.0, failed, name)

        return sorted(self.candidates, key=key)

    def worst_clip(self, name: str, source: Mapping | None = None) -> tuple[str, float] | None:
        slot = as_dict(source) if source is not None else self.overall(name, self.primary)
        clip = slot.get("worst_clip")
        values = as_dict(slot.get("values"))
        if not isinstance(clip, str):
            finite = {c: as_float(v) for c, v in values.items() if as_float(v) is not None}
            if not finite:
                return None
            clip = max(finite, key=finite.get)
        value = as_float(values.get(clip))
        return (clip, value) if value is not None else None

    def champions_text(self) -> str:
        """"native champion dct_inter (ledger seq 2); open champion x264_pyav (ledger seq 1)": each track's
        champion the run compared candidates with ('none yet' for a track without one), or '' when the
        report predates tracks."""
        per_track = as_dict(self.doc.get("champions"))
        parts = []
        for track, info in per_track.items():
            info = as_dict(info)
            name = info.get("name")
            seq = f" (ledger seq {info['ledger_seq']})" if isinstance(info.get("ledger_seq"), int) else ""
            parts.append(f"{track} champion {name}{seq}" if isinstance(name, str) else f"{track} champion: none yet")
        return "; ".join(parts)

    def champion(self, name: str) -> tuple[str | None, dict]:
        """(champion name, {metric: result}) from candidates[name]["bd_vs_champion"], if present."""
        data = as_dict(as_dict(self.candidates.get(name)).get("bd_vs_champion"))
        if not data:
            return None, {}
        champ = data.get("champion")
        metrics = as_dict(data.get("overall")) or as_dict(data.get("metrics")) or data
        out = {}
        for metric, value in metrics.items():
            if isinstance(value, dict):
                out[metric] = value
            elif as_float(value) is not None:
                out[metric] = {"bd_rate": value}
        return (champ if isinstance(champ, str) else None), out


def nodeid_params(nodeid: str) -> tuple[str | None, str | None, str | None]:
    """(candidate, clip, rung) from a node id like `...::test_rate[cand-clip-r2]` (rung/clip may be None)."""
    if "[" not in nodeid:
        return None, None, None
    params = nodeid.rsplit("[", 1)[1].rstrip("]")
    cand, _, rest = params.partition("-")
    if not rest:
        return cand, None, None
    m = re.fullmatch(r"(.+)-(r\d+)", rest)
    return (cand, m.group(1), m.group(2)) if m else (cand, rest, None)


def nodeid_label(nodeid: str) -> str:
    return nodeid.rsplit("::", 1)[-1]

