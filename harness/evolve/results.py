"""What a benchmark report (harness/report.py's JSON) says about one candidate, as plain values and text.

Scores: BD-rate (percent, negative = fewer bits = better) against the rate anchor per clip and
overall, and the rate points (target and measured bitrate, quality) beside the anchor's points at
the same QP. Failures: the failing tests grouped by reason, the first traceback and captured stderr,
bounded in size. Nothing is re-run and nothing here raises on a missing or odd field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.results import load_report
from harness.schema import ReportError

__all__ = ["ClipScores", "PointRow", "anchor_scores", "cut_text", "failure_text", "load_doc"]


def _d(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _num(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def load_doc(path: str | Path) -> dict | None:
    """A report (harness.results.load_report: validated, typed) as its document, or None when unusable."""
    try:
        return load_report(path).to_json()
    except ReportError:
        return None


def cut_text(text: str, limit: int) -> str:
    """`text` within `limit` characters: head and tail kept, the middle replaced by a marker."""
    if len(text) <= limit:
        return text
    marker = f"\n[... {len(text) - limit} characters cut ...]\n"
    keep = max(limit - len(marker), 0)
    head = keep * 2 // 3
    tail = keep - head
    return text[:head] + marker + (text[len(text) - tail:] if tail > 0 else "")


@dataclass(frozen=True)
class PointRow:
    rung: str
    target_bps: float | None
    bitrate_bps: float | None
    quality: dict[str, float | None]
    failure: str | None
    anchor_qp: int | None = None
    anchor_bps: float | None = None
    anchor_quality: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ClipScores:
    clip: str
    bd_vs_anchor: float | None  # primary metric
    bd_vs_anchor_warning: str | None
    points: list[PointRow]


def anchor_scores(
    doc: Mapping, name: str, *, anchor: str = "x265", metric: str = "psnr_yuv",
    quality_metrics: tuple[str, ...] = ("psnr_yuv", "ssim_y", "vmaf"),
) -> tuple[float | None, list[ClipScores]]:
    """(overall BD-rate vs `anchor` on `metric`, per-clip scores with rate points) of candidate `name`."""
    cand = _d(_d(doc.get("candidates")).get(name))
    overall = _num(_d(_d(_d(cand.get("bd_overall")).get(anchor)).get(metric)).get("bd_rate"))
    anchors = _d(doc.get("anchors"))
    clips = list(_d(doc.get("clips"))) or sorted({_d(p).get("clip") for p in _d(cand.get("points")).values()} - {None})
    out = []
    for clip in clips:
        slot = _d(_d(_d(_d(cand.get("bd")).get(clip)).get(anchor)).get(metric))
        by_qp = {
            a.get("qp"): _d(a.get("measurement"))
            for a in (_d(anchors.get(clip)).get(anchor) or [])
            if isinstance(a, dict)
        }
        rows = []
        for key, point in sorted(_d(cand.get("points")).items()):
            point = _d(point)
            if point.get("clip") != clip:
                continue
            m = _d(point.get("measurement"))
            a = by_qp.get(point.get("anchor_qp"), {})
            rows.append(
                PointRow(
                    rung=str(point.get("rung") or key.rsplit("/", 1)[-1]),
                    target_bps=_num(point.get("target_bps")),
                    bitrate_bps=_num(m.get("bitrate_bps")),
                    quality={q: _num(_d(m.get("metrics")).get(q)) for q in quality_metrics},
                    failure=point.get("failure") or None,
                    anchor_qp=point.get("anchor_qp") if isinstance(point.get("anchor_qp"), int) else None,
                    anchor_bps=_num(a.get("bitrate_bps")),
                    anchor_quality={q: _num(_d(a.get("metrics")).get(q)) for q in quality_metrics},
                )
            )
        out.append(ClipScores(clip, _num(slot.get("bd_rate")), slot.get("warning") or None, rows))
    return overall, out


_RUNG = re.compile(r" at r\d+(?=:)")


def _first_line(text: object) -> str:
    line = next((ln.strip() for ln in str(text or "").splitlines() if ln.strip()), "")
    return line.removeprefix("Failed: ")


def failure_text(doc: Mapping, name: str, *, limit: int = 2500) -> str:
    """The candidate's failures: tests grouped by reason, then the first traceback and stderr; '' if none."""
    cand = _d(_d(doc.get("candidates")).get(name))
    tests = _d(cand.get("tests"))
    failing = [(nodeid, _d(t)) for nodeid, t in tests.items() if _d(t).get("outcome") not in ("passed", None)]
    if not failing:
        return ""
    groups: dict[str, list[str]] = {}
    for nodeid, test in failing:
        reason = _RUNG.sub("", _first_line(test.get("reason")) or f"{test.get('outcome')} (no reason recorded)")
        reason = reason.replace(f"{name} on ", "on ", 1)
        groups.setdefault(reason, []).append(nodeid.split("::")[-1].split("[")[0])
    lines = [f"{len(failing)} of {len(tests)} tests did not pass:"]
    for reason, kinds in groups.items():
        counted = ", ".join(f"{k} x{kinds.count(k)}" if kinds.count(k) > 1 else k for k in dict.fromkeys(kinds))
        lines.append(f"- {counted}: {reason}")
    details, stderr = [], []
    for point in _d(cand.get("points")).values():
        point = _d(point)
        if not point.get("failure"):
            continue
        text = str(point.get("failure_details") or "")
        if "Traceback" in text and not details:
            details.append(text[text.index("Traceback"):].strip())
        for stage in ("check", "encode", "decode"):
            err = str(_d(point.get(stage)).get("stderr") or "").strip()
            if err and f"[{stage} stderr] {err}" not in stderr:
                stderr.append(f"[{stage} stderr] {err}")
    if not details:
        full = next((str(t.get("reason")) for _, t in failing if "Traceback" in str(t.get("reason") or "")), "")
        if full:
            details.append(full[full.index("Traceback"):].strip())
    head = "\n".join(lines)
    tail = "\n".join(details[:1] + stderr[:2])
    if not tail or len(head) + 1 + len(tail) <= limit:
        return cut_text((head + "\n" + tail).strip(), limit)
    head = cut_text(head, limit // 2)
    return head + "\n" + cut_text(tail, max(limit - len(head) - 1, 100))
