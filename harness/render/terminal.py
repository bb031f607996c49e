"""The leaderboard at the end of `pytest benchmarks/`: what a run found, in the terminal.

One line per candidate, best first (a mean over a smaller share of its clips ranks after one over
more: ReportView.order): verdict, BD-rate against the rate anchor per metric with its coverage
(clips averaged / clips judged), against the champion, the worst clip; then the clips each
candidate's mean leaves out, warnings (e.g. too good to be true) and where the HTML and Markdown are.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.render.view import ReportView, as_dict, coverage, metric_label, ratio_words

__all__ = ["leaderboard_lines"]


def _bd(slot: Mapping) -> str:
    """"+2.3 % (3/3)": the mean BD-rate and how many clips it covers; "n/a (0/3)" without one."""
    found = coverage(slot)
    value = slot.get("bd_rate")
    text = f"{value:+.1f} %" if isinstance(value, int | float) else "n/a"
    return f"{text} ({found[0]}/{found[1]})" if found else text


def _left_out(view: ReportView, name: str) -> str | None:
    """"dct: PSNR-YUV vs x265 over 5/13 clips; left out: a, b" when the mean leaves clips out."""
    found = coverage(view.overall(name, view.primary))
    if not found or not found[2]:
        return None
    return (
        f"{name}: {metric_label(view.primary)} vs {view.rate_anchor} over {found[0]}/{found[1]} clips; "
        f"left out: {', '.join(found[2])}"
    )


def leaderboard_lines(doc: Mapping, report: Path | None = None) -> list[str]:
    """The leaderboard's lines (no colours: the caller's terminal writer adds them)."""
    view = ReportView(doc)
    if not view.candidates:
        return ["no candidate was judged"]
    head = ["candidate", "verdict"] + [f"{metric_label(m)} vs {view.rate_anchor}" for m in view.bd_metrics]
    head += ["enc vs x265", "dec vs x265", "vs champion", f"worst clip ({metric_label(view.primary)})"]
    rows = [head]
    for name in view.order():
        _, words = view.verdict(name)
        row = [f"{name} ({view.track_label(name)})", words] + [_bd(view.overall(name, m)) for m in view.bd_metrics]
        row += [ratio_words(view.complexity(name), axis) for axis in ("encode", "decode")]
        champ, results = view.champion(name)
        row.append(f"{_bd(as_dict(results.get(view.primary)))} vs {champ}" if champ and results else "-")
        worst = view.worst_clip(name)
        row.append(f"{worst[0]} {worst[1]:+.1f} %" if worst else "-")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append("BD-rate: % more (+) or fewer (-) bits than the reference at equal quality (clips averaged/judged)")
    if view.champions_text():
        lines.append(f"vs champion: against the champion of the candidate's own track; {view.champions_text()}")
    lines += [line for line in (_left_out(view, name) for name in view.order()) if line]
    lines.append(
        "enc/dec vs x265: CPU time per megapixel-frame over x265's (medium) and its decoder's, measured in this run; "
        "(front): on the Pareto front of BD-rate and complexity, else BD-rate points off it"
    )
    for name in view.order():
        lines += [f"WARNING {name}: {flag}" for flag in view.flags(name)]
    lines += [f"WARNING clip {clip} was left out, not judged: {why}" for clip, why in view.dropped_clips().items()]
    if report is not None:
        lines.append(f"HTML: {report.with_suffix('.html')}   Markdown: {report.with_suffix('.md')}")
    return lines
