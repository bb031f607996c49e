"""Reading a report for adoption: a candidate's fingerprint, scores and BD-rate against another candidate.

Every accessor tolerates missing parts (they read as empty or None).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from harness.results import CandidateResults, bd_vs_points, mean_bd

__all__ = [
    "anchor_scores",
    "as_dict",
    "as_num",
    "bd_vs_from_points",
    "fingerprint",
    "first_line",
    "nodeid_kind",
    "nodeid_short",
    "overall_bd",
    "report_basis",
]


def as_dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def as_num(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def first_line(text: object, limit: int = 240) -> str:
    line = next((ln.strip() for ln in str(text or "").splitlines() if ln.strip()), "")
    for prefix in ("Failed: ", "AssertionError: "):  # pytest's wording around the test's own message
        line = line.removeprefix(prefix)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def nodeid_kind(nodeid: str) -> str:
    return nodeid.split("::")[-1].split("[")[0]


def nodeid_short(nodeid: str) -> str:
    return nodeid.split("::")[-1]


def fingerprint(doc: Mapping, name: str) -> str | None:
    """sha256 over the sorted bitstream sha256s of the candidate's rate points (None without any)."""
    cand = as_dict(as_dict(doc.get("candidates")).get(name))
    hashes = sorted(
        h
        for point in as_dict(cand.get("points")).values()
        if isinstance(h := as_dict(as_dict(point).get("measurement")).get("bitstream_sha256"), str)
    )
    if not hashes:
        return None
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def report_basis(doc: Mapping) -> dict[str, object]:
    """What makes scores of two reports comparable: the clips (by content hash) and the frames."""
    settings = as_dict(doc.get("settings"))
    return {
        "clip_set": settings.get("clip_set"),
        "frames": settings.get("frames"),
        "clips": {k: as_dict(v).get("sha256") for k, v in sorted(as_dict(doc.get("clips")).items())},
    }


def _suite(doc: Mapping) -> dict:
    return as_dict(as_dict(doc.get("settings")).get("suite"))


def overall_bd(per_clip: Mapping[str, Mapping[str, Mapping]]) -> dict[str, dict]:
    """Mean over comparable clips per metric against one reference (clip -> metric -> BD result)."""
    return mean_bd({clip: {"ref": as_dict(metrics)} for clip, metrics in per_clip.items()}).get("ref", {})


def bd_vs_from_points(doc: Mapping, name: str, champion: str) -> dict | None:
    """BD-rate of `name` against `champion` from both candidates' points in the report
    (harness.results.bd_between and mean_bd: the same computation the suite makes)."""
    suite = _suite(doc)
    metrics = [m for m in suite.get("bd_metrics") or [] if isinstance(m, str)]
    method = suite.get("bd_method") or "pchip"
    clips = list(as_dict(doc.get("clips"))) or sorted(
        {
            as_dict(p).get("clip")
            for p in as_dict(as_dict(as_dict(doc.get("candidates")).get(name)).get("points")).values()
        }
        - {None}
    )
    if not metrics or not clips:
        return None
    cands = as_dict(doc.get("candidates"))
    results = bd_vs_points(
        CandidateResults.from_json(name, as_dict(cands.get(name))),
        CandidateResults.from_json(champion, as_dict(cands.get(champion))),
        clips, metrics, method, complete=False,  # a failed point leaves the rest of the curve
    )
    per_clip = {clip: {m: r.to_json() for m, r in results.get(clip, {}).items()} for clip in clips}
    return {
        "champion": champion,
        "per_clip": per_clip,
        "overall": overall_bd(per_clip),
        "computed_by": "adoption",
    }


def anchor_scores(cand: Mapping) -> dict[str, dict[str, float | None]]:
    return {
        anchor: {metric: as_num(as_dict(slot).get("bd_rate")) for metric, slot in as_dict(metrics).items()}
        for anchor, metrics in as_dict(cand.get("bd_overall")).items()
    }
