"""What got better or worse between two benchmark reports, per candidate and clip.

`compare_reports(old, new)` returns a `Comparison`:

- `changes`: per candidate (present in both) and clip: BD-rate against the rate anchor (x265) on
  each BD metric, per clip and over all clips; measured bitrate and quality (PSNR-YUV, SSIM-Y,
  VMAF) at each rate point; rate points that started or stopped failing; tests that flipped
  between passed and failed. Each change has a direction: "better", "worse" or "changed".
- `new_candidates`, `removed_candidates`.
- `warnings`: why the two runs are not like for like (a clip's source hash, size or frame count,
  an anchor's id, the clip set, frames or BD settings differ), and results that look too
  identical (a changed source whose bitstreams are byte-identical to before).
- `notes`: neutral facts (a candidate's source changed, tests added or removed).

`Comparison.to_markdown()` and `to_text()` render it; `python -m harness compare OLD NEW` prints it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.markdown import md_escape
from harness.render.cli import write_output
from harness.render.view import (
    ReportView,
    as_dict,
    as_float,
    as_list,
    bd_words,
    metric_label,
    nodeid_label,
    nodeid_params,
    short_date,
)
from harness.results import RunResults, load_report

__all__ = ["Change", "Comparison", "compare_reports", "register"]

Direction = Literal["better", "worse", "changed"]

POINT_METRICS = ("psnr_yuv", "ssim_y", "vmaf")
# Smallest change worth reporting (absolute, in the metric's unit; bitrate relative).
THRESHOLDS = {"bd_rate": 0.1, "bitrate": 0.001, "psnr_yuv": 0.01, "ssim_y": 0.0001, "vmaf": 0.01}
MAX_ROWS_PER_CANDIDATE = 25


@dataclass(frozen=True)
class Change:
    """One thing that differs for a candidate between the old and the new report."""

    candidate: str
    clip: str | None  # None: over all clips (or not about a clip)
    what: str
    old: str
    new: str
    delta: str
    direction: Direction
    kind: str  # "test", "bd_overall", "bd", "point", "failure"


@dataclass
class Comparison:
    old_label: str
    new_label: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    new_candidates: list[str] = field(default_factory=list)
    removed_candidates: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    @property
    def comparable(self) -> bool:
        """False when clips, anchors or settings differ: differences may not be the candidates' doing."""
        return not self.warnings

    def better(self) -> list[Change]:
        return [c for c in self.changes if c.direction == "better"]

    def worse(self) -> list[Change]:
        return [c for c in self.changes if c.direction == "worse"]

    def candidates(self) -> list[str]:
        seen: list[str] = []
        for c in self.changes:
            if c.candidate not in seen:
                seen.append(c.candidate)
        return seen

    def to_markdown(self, *, max_rows: int = MAX_ROWS_PER_CANDIDATE) -> str:
        icon = {"better": "✅ better", "worse": "❌ worse", "changed": "➖ changed"}
        lines = [
            "### Report comparison",
            f"old: {md_escape(self.old_label)} → new: {md_escape(self.new_label)}",
            "",
        ]
        if self.warnings:
            lines.append("> ⚠️ **Not comparable like for like:**")
            lines += [f"> - {md_escape(w, 300)}" for w in self.warnings[:15]]
            if len(self.warnings) > 15:
                lines.append(f"> - … and {len(self.warnings) - 15} more")
            lines.append("")
        if self.new_candidates:
            lines.append("**New candidates:** " + ", ".join(md_escape(n, 60) for n in self.new_candidates))
        if self.removed_candidates:
            lines.append("**Removed candidates:** " + ", ".join(md_escape(n, 60) for n in self.removed_candidates))
        for note in self.notes[:15]:
            lines.append(f"- {md_escape(note, 300)}")
        if self.new_candidates or self.removed_candidates or self.notes:
            lines.append("")
        if not self.changes:
            lines.append("No change in BD-rate, rate points or test outcomes.")
            return "\n".join(lines) + "\n"
        for cand in self.candidates():
            mine = [c for c in self.changes if c.candidate == cand]
            nb = sum(c.direction == "better" for c in mine)
            nw = sum(c.direction == "worse" for c in mine)
            lines += [
                f"#### {md_escape(cand, 60)}: {nb} better, {nw} worse",
                "",
                "| Clip | What | Old | New | Change |",
                "|---|---|---|---|---|",
            ]
            for c in mine[:max_rows]:
                clip = md_escape(c.clip, 60) if c.clip else "all clips"
                lines.append(
                    f"| {clip} | {md_escape(c.what, 120)} | {md_escape(c.old, 120)} | {md_escape(c.new, 120)} | "
                    f"{icon[c.direction]}{(' (' + md_escape(c.delta, 60) + ')') if c.delta else ''} |"
                )
            if len(mine) > max_rows:
                lines.append(f"| … and {len(mine) - max_rows} more | | | | |")
            lines.append("")
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        lines = [f"Report comparison: old {self.old_label} -> new {self.new_label}"]
        for w in self.warnings:
            lines.append(f"WARNING: {w}")
        if self.new_candidates:
            lines.append("new candidates: " + ", ".join(self.new_candidates))
        if self.removed_candidates:
            lines.append("removed candidates: " + ", ".join(self.removed_candidates))
        lines += [f"note: {n}" for n in self.notes]
        if not self.changes:
            lines.append("no change in BD-rate, rate points or test outcomes")
        for cand in self.candidates():
            mine = [c for c in self.changes if c.candidate == cand]
            lines.append(
                f"{cand}: {sum(c.direction == 'better' for c in mine)} better, "
                f"{sum(c.direction == 'worse' for c in mine)} worse"
            )
            for c in mine:
                where = c.clip or "all clips"
                delta = f" ({c.delta})" if c.delta else ""
                lines.append(f"  {c.direction.upper():7} {where}: {c.what}: {c.old} -> {c.new}{delta}")
        return "\n".join(lines) + "\n"


def _label_of(doc: Mapping) -> str:
    commit = str(as_dict(doc.get("git")).get("commit") or "")[:10]
    dirty = " (dirty)" if as_dict(doc.get("git")).get("dirty") else ""
    return f"{short_date(doc.get('created_utc'))}" + (f", commit {commit}{dirty}" if commit else "")


def _direction(delta: float, lower_is_better: bool) -> Direction:
    return "better" if (delta < 0) == lower_is_better else "worse"


def _settings_warnings(old: ReportView, new: ReportView, out: list[str]) -> None:
    for key, label in (("clip_set", "clip set"), ("frames", "frames per clip")):
        a, b = old.settings.get(key), new.settings.get(key)
        if a != b:
            out.append(f"{label} differs: {a} vs {b}")
    for key, label in (
        ("rate_anchor", "rate anchor"),
        ("bd_method", "BD-rate method"),
        ("ladder_bpp", "rate ladder"),
        ("bd_metrics", "BD metrics"),
    ):
        a, b = old.suite.get(key), new.suite.get(key)
        if a != b:
            out.append(f"{label} differs: {a} vs {b}")


def _clip_warnings(old: ReportView, new: ReportView, out: list[str]) -> None:
    old_clips, new_clips = old.clips, new.clips
    for clip in [c for c in old_clips if c in new_clips]:
        a, b = as_dict(old_clips[clip]), as_dict(new_clips[clip])
        if a.get("sha256") != b.get("sha256"):
            out.append(
                f"clip {clip}: source differs (sha256 {str(a.get('sha256'))[:12]} vs {str(b.get('sha256'))[:12]})"
            )
        for key in ("width", "height", "frames", "fps"):
            if a.get(key) != b.get(key):
                out.append(f"clip {clip}: {key} differs ({a.get(key)} vs {b.get(key)})")
    only_old = [c for c in old_clips if c not in new_clips]
    only_new = [c for c in new_clips if c not in old_clips]
    if only_old:
        out.append(f"clips only in the old report: {', '.join(only_old)}")
    if only_new:
        out.append(f"clips only in the new report: {', '.join(only_new)}")
    for clip in [c for c in old.anchors if c in new.anchors]:
        for anchor in [a for a in as_dict(old.anchors[clip]) if a in as_dict(new.anchors[clip])]:
            ids_old = {as_dict(p).get("anchor_id") for p in as_list(old.anchors[clip][anchor])}
            ids_new = {as_dict(p).get("anchor_id") for p in as_list(new.anchors[clip][anchor])}
            if ids_old != ids_new:
                out.append(
                    f"anchor {anchor} on {clip}: anchor id differs ({', '.join(sorted(map(str, ids_old)))} vs "
                    f"{', '.join(sorted(map(str, ids_new)))}): the anchor's encoder or settings changed"
                )


def _fmt_bd(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f} % ({bd_words(v)})"


def _bd_change(cand: str, clip: str | None, what: str, a: object, b: object, kind: str) -> Change | None:
    va, vb = as_float(a), as_float(b)
    if va is None and vb is None:
        return None
    if va is None or vb is None:
        return Change(
            cand,
            clip,
            what,
            _fmt_bd(va),
            _fmt_bd(vb),
            "now comparable" if va is None else "no longer comparable",
            "better" if va is None else "worse",
            kind,
        )
    delta = vb - va
    if abs(delta) < THRESHOLDS["bd_rate"]:
        return None
    return Change(
        cand, clip, what, _fmt_bd(va), _fmt_bd(vb), f"{delta:+.1f} pp", _direction(delta, True), kind
    )


def _point_changes(cand: str, old_c: Mapping, new_c: Mapping, out: list[Change]) -> None:
    old_pts, new_pts = as_dict(old_c.get("points")), as_dict(new_c.get("points"))
    for key in [k for k in new_pts if k in old_pts]:
        a, b = as_dict(old_pts[key]), as_dict(new_pts[key])
        clip = str(b.get("clip") or key.rsplit("/", 1)[0])
        rung = str(b.get("rung") or key.rsplit("/", 1)[-1])
        fa, fb = a.get("failure"), b.get("failure")
        if bool(fa) != bool(fb):
            out.append(
                Change(
                    cand,
                    clip,
                    f"{rung}: round trip",
                    "failed" if fa else "ok",
                    "failed" if fb else "ok",
                    str(fb or "")[:160],
                    "worse" if fb else "better",
                    "failure",
                )
            )
        ma, mb = as_dict(a.get("measurement")), as_dict(b.get("measurement"))
        if not ma or not mb:
            continue
        ra, rb = as_float(ma.get("bitrate_bps")), as_float(mb.get("bitrate_bps"))
        if ra and rb and abs(rb / ra - 1) >= THRESHOLDS["bitrate"]:
            out.append(
                Change(
                    cand,
                    clip,
                    f"{rung} bitrate",
                    f"{ra / 1000:.1f} kbps",
                    f"{rb / 1000:.1f} kbps",
                    f"{(rb / ra - 1) * 100:+.1f} %",
                    _direction(rb - ra, True),
                    "point",
                )
            )
        for metric in POINT_METRICS:
            qa = as_float(as_dict(ma.get("metrics")).get(metric))
            qb = as_float(as_dict(mb.get("metrics")).get(metric))
            if qa is None or qb is None or abs(qb - qa) < THRESHOLDS[metric]:
                continue
            fmt, unit = (
                (".4f", "")
                if metric.startswith("ssim")
                else (".2f", " dB" if metric.startswith("psnr") else "")
            )
            out.append(
                Change(
                    cand,
                    clip,
                    f"{rung} {metric_label(metric)}",
                    f"{qa:{fmt}}{unit}",
                    f"{qb:{fmt}}{unit}",
                    f"{qb - qa:+{fmt}}{unit}",
                    _direction(qb - qa, False),
                    "point",
                )
            )


def _identical_bitstreams(old_c: Mapping, new_c: Mapping) -> int:
    """How many rate points have byte-identical bitstreams in both reports (0 if any differs)."""
    old_pts, new_pts = as_dict(old_c.get("points")), as_dict(new_c.get("points"))
    same = 0
    for key in [k for k in new_pts if k in old_pts]:
        a = as_dict(as_dict(old_pts[key]).get("measurement")).get("bitstream_sha256")
        b = as_dict(as_dict(new_pts[key]).get("measurement")).get("bitstream_sha256")
        if a is None or b is None:
            continue
        if a != b:
            return 0
        same += 1
    return same


def _flipped_tests(cand: str, old_tests: Mapping, new_tests: Mapping) -> list[Change]:
    """Tests of `cand` that passed in one report and not in the other."""
    out = []
    for nodeid, test in new_tests.items():
        if nodeid not in old_tests:
            continue
        oa, ob = as_dict(old_tests[nodeid]).get("outcome"), as_dict(test).get("outcome")
        if oa == ob or "passed" not in (oa, ob):
            continue
        _, clip, _ = nodeid_params(nodeid)
        reason = str(as_dict(test).get("reason") or as_dict(old_tests[nodeid]).get("reason") or "")
        direction = "better" if ob == "passed" else "worse"
        out.append(
            Change(cand, clip, nodeid_label(nodeid), str(oa), str(ob), " ".join(reason.split())[:160], direction, "test")
        )
    return out


def compare_reports(old_doc: Mapping, new_doc: Mapping) -> Comparison:
    """What got better or worse from `old_doc` to `new_doc` (both report documents).

    Each is read through the typed model first, so what it derives (the mean over clips) is
    computed from its per-clip results, never taken from what a document claims."""
    old_doc, new_doc = (RunResults.from_json(d, validate=False).to_json() for d in (old_doc, new_doc))
    old, new = ReportView(old_doc), ReportView(new_doc)
    cmp = Comparison(old_label=_label_of(old_doc), new_label=_label_of(new_doc))
    _settings_warnings(old, new, cmp.warnings)
    _clip_warnings(old, new, cmp.warnings)
    cmp.new_candidates = [n for n in new.candidates if n not in old.candidates]
    cmp.removed_candidates = [n for n in old.candidates if n not in new.candidates]
    anchor = new.rate_anchor
    for cand in [n for n in new.order() if n in old.candidates]:
        old_c, new_c = as_dict(old.candidates[cand]), as_dict(new.candidates[cand])
        changes: list[Change] = []
        sha_a, sha_b = old_c.get("sha256"), new_c.get("sha256")
        if sha_a and sha_b and sha_a != sha_b:
            cmp.notes.append(f"{cand}: source changed ({str(sha_a)[:12]} -> {str(sha_b)[:12]})")
            same = _identical_bitstreams(old_c, new_c)
            if same:
                cmp.warnings.append(
                    f"{cand}: the source changed but all {same} bitstreams are byte-identical to the old report: "
                    "is the new code really what ran?"
                )
        old_tests, new_tests = old.candidate_tests(cand), new.candidate_tests(cand)
        changes += _flipped_tests(cand, old_tests, new_tests)
        added = [n for n in new_tests if n not in old_tests]
        removed = [n for n in old_tests if n not in new_tests]
        if added or removed:
            cmp.notes.append(
                f"{cand}: {len(added)} test(s) only in the new report, {len(removed)} only in the old"
            )
        # BD-rate over all clips, then per clip
        for metric in new.bd_metrics:
            ch = _bd_change(
                cand,
                None,
                f"BD-rate vs {anchor}, {metric_label(metric)}",
                old.overall(cand, metric, anchor).get("bd_rate"),
                new.overall(cand, metric, anchor).get("bd_rate"),
                "bd_overall",
            )
            if ch:
                changes.append(ch)
        clips = [c for c in new.clip_names() if c in old.clip_names()]
        for clip in clips:
            for metric in new.bd_metrics:
                ch = _bd_change(
                    cand,
                    clip,
                    f"BD-rate vs {anchor}, {metric_label(metric)}",
                    old.clip_bd(cand, clip, metric, anchor).get("bd_rate"),
                    new.clip_bd(cand, clip, metric, anchor).get("bd_rate"),
                    "bd",
                )
                if ch:
                    changes.append(ch)
        _point_changes(cand, old_c, new_c, changes)
        rank = {"test": 0, "failure": 1, "bd_overall": 2, "bd": 3, "point": 4}
        clip_rank = {c: i for i, c in enumerate(new.clip_names())}
        changes.sort(key=lambda c: (rank.get(c.kind, 9), clip_rank.get(c.clip, -1) if c.clip else -1))
        cmp.changes += changes
    return cmp


def _cli_compare(args: argparse.Namespace) -> int:
    old, new = load_report(args.old).to_json(), load_report(args.new).to_json()
    cmp = compare_reports(old, new)
    text = cmp.to_markdown() if args.format == "markdown" else cmp.to_text()
    if args.output and args.output != "-":
        write_output(Path(args.output), text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 1 if args.fail_on_worse and cmp.worse() else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `compare` subcommand to the harness CLI."""
    parser = subparsers.add_parser(
        "compare",
        help="what got better or worse between two JSON reports",
        description="Compare two benchmark JSON reports per candidate and clip: BD-rate, rate points, tests "
        "that flipped, new and removed candidates; warns when clips or anchors differ.",
    )
    parser.add_argument("old", help="the earlier JSON report")
    parser.add_argument("new", help="the later JSON report")
    parser.add_argument(
        "--format", choices=("markdown", "text"), default="markdown", help="default: markdown"
    )
    parser.add_argument("--output", "-o", metavar="OUT", help="write here instead of stdout")
    parser.add_argument("--fail-on-worse", action="store_true", help="exit 1 when anything got worse")
    parser.set_defaults(func=_cli_compare)
