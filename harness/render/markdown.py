"""The Markdown rendering of a report: a short pull-request comment.

Verdicts, BD-rate against the rate anchor (x265) and the champion with arrows and words, the worst
clip; untrusted text goes through `md_escape` / `md_code` (harness.markdown).
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.markdown import md_code, md_escape
from harness.render.view import (
    ReportView,
    as_dict,
    bd_words,
    coverage,
    coverage_words,
    fmt_num,
    metric_label,
    nodeid_label,
    ratio_words,
    short_date,
)

__all__ = ["MARKDOWN_MAX_CANDIDATES", "MARKDOWN_MAX_NOTES", "md_code", "md_escape", "render_markdown"]

MARKDOWN_MAX_CANDIDATES = 10
MARKDOWN_MAX_NOTES = 8


def render_markdown(doc: Mapping, *, max_candidates: int = MARKDOWN_MAX_CANDIDATES) -> str:
    """A short summary for a pull-request comment: verdicts, BD-rates with arrows and words, worst clips."""
    view = ReportView(doc if isinstance(doc, Mapping) else {})
    lines = _header(view)
    if not view.candidates:
        lines.append("No candidate was judged in this run.")
        return "\n".join(lines) + "\n"
    champ_any = any(view.champion(n)[1] for n in view.candidates)
    head = ["Candidate", "Verdict"] + [
        f"{metric_label(m)} vs {md_escape(view.rate_anchor)}" for m in view.bd_metrics
    ]
    cx_any = any(view.complexity(n) for n in view.candidates)
    if cx_any:
        head += ["Encode CPU vs x265", "Decode CPU vs x265"]
    if champ_any:
        head.append(f"{metric_label(view.primary)} vs champion")
    head += [f"Worst clip ({metric_label(view.primary)})", "Shipped / with bitstreams"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    order = view.order()
    notes: list[str] = []
    for name in order[:max_candidates]:
        css, words = view.verdict(name)
        lines.append(_row(view, name, css, words, champ_any, cx_any))
        notes += [n for n in (_note(view, name, words), _left_out(view, name)) if n]
    if len(order) > max_candidates:
        lines += ["", f"… and {len(order) - max_candidates} more candidates (see the HTML report)"]
    flags = [f"- ⚠️ **{md_escape(n, 60)}**: {md_escape(f, 300)}" for n in order for f in view.flags(n)]
    if flags:
        lines += ["", *flags]
    if notes:
        lines.append("")
        lines.extend(notes[:MARKDOWN_MAX_NOTES])
        if len(notes) > MARKDOWN_MAX_NOTES:
            lines.append(f"- … and {len(notes) - MARKDOWN_MAX_NOTES} more")
    lines += [
        "",
        (
            f"<sub>BD-rate: mean over comparable clips (covered/judged) of the bits needed at equal quality relative to "
            f"{md_escape(view.rate_anchor)}; ↓ fewer bits = better. Encode / decode CPU: CPU time per megapixel-frame "
            "over x265's encoder (medium) and decoder in the same run; (front): on the Pareto front of BD-rate and "
            "complexity, else BD-rate points off it. Full plots and captured errors in the HTML report.</sub>"
        ),
    ]
    return "\n".join(lines) + "\n"


def _header(view: ReportView) -> list[str]:
    """The title line (candidates and clips) and the run line (date, commit, clip set, test totals)."""
    clips = view.clip_names()
    git = as_dict(view.doc.get("git"))
    commit = str(git.get("commit") or "")[:10] or "n/a"
    summary = as_dict(view.doc.get("summary"))
    totals = ", ".join(f"{fmt_num(v, '.0f')} {md_escape(k)}" for k, v in summary.items()) or "no tests"
    return [
        (
            f"### Codec harness: {len(view.candidates)} candidate{'s' if len(view.candidates) != 1 else ''} "
            f"on {len(clips)} clip{'s' if len(clips) != 1 else ''}"
        ),
        (
            f"{short_date(view.doc.get('created_utc'))} · commit {md_code(commit)}"
            f"{' (dirty)' if git.get('dirty') else ''} · "
            f"{md_escape(view.profile_text()) + ', ' if view.profile_text() else ''}"
            f"clip set {md_escape(view.settings.get('clip_set', 'n/a'))}, "
            f"{fmt_num(view.settings.get('frames'), '.0f')} frames · tests: {totals}"
            + (f" · {md_escape(view.champions_text(), 300)}" if view.champions_text() else "")
        ),
        "",
        *[
            f"> clip {md_code(clip)} is **full range** (yuvj420p / color_range pc); the anchors signal it\n"
            for clip in clips
            if view.full_range(clip)
        ],
        *[
            f"> ⚠️ clip {md_code(clip)} was left out, not judged: {md_escape(problem, 300)}\n"
            for clip, problem in view.dropped_clips().items()
        ],
    ]


def _row(view: ReportView, name: str, css: str, words: str, champ_any: bool, cx_any: bool = False) -> str:
    """A candidate's table row: verdict, BD-rate per metric, complexity (and vs the champion), worst clip."""
    icon = {"ok": "✅", "bad": "❌"}.get(css, "➖")
    row = [f"**{md_escape(name, 60)}** ({md_escape(view.track_label(name), 120)})", f"{icon} {md_escape(words)}"]
    for metric in view.bd_metrics:
        slot = view.overall(name, metric)
        covered = coverage_words(slot)
        row.append(bd_words(slot.get("bd_rate")) + (f" ({covered})" if covered else ""))
    if cx_any:
        row += [md_escape(ratio_words(view.complexity(name), axis)) for axis in ("encode", "decode")]
    if champ_any:
        champ, results = view.champion(name)
        row.append(
            bd_words(as_dict(results.get(view.primary)).get("bd_rate"))
            + (f" (vs {md_escape(champ, 40)})" if champ and results else "")
        )
    worst = view.worst_clip(name)
    row.append(f"{md_escape(worst[0], 60)}: {bd_words(worst[1])}" if worst else "n/a")
    totals = as_dict(as_dict(view.candidates[name]).get("totals"))
    row.append(
        f"{kib(totals.get('shipped_bytes'))} / {kib(totals.get('decoder_inclusive_bytes'))}" if totals else "n/a"
    )
    return "| " + " | ".join(row) + " |"


def kib(value: object) -> str:
    """Bytes as KiB with one decimal, "n/a" when not a number."""
    return f"{fmt_num(value / 1024 if isinstance(value, int | float) else None, '.1f')} KiB"


def _note(view: ReportView, name: str, words: str) -> str | None:
    """A candidate's note below the table: its verdict's reason or its first failure."""
    first = view.first_failure(name)
    reason = view.verdict_reason(name)
    if reason:
        return f"- **{md_escape(name, 60)}** {md_escape(words, 40)}: {md_escape(reason, 200)}"
    if first:
        return (
            f"- **{md_escape(name, 60)}** first failure {md_code(nodeid_label(first[0]), 90)}: "
            f"{md_escape(first[1], 180)}"
        )
    return None


def _left_out(view: ReportView, name: str) -> str | None:
    """The clips a candidate's overall BD-rate leaves out, with one reason; None when it covers all."""
    slot = view.overall(name, view.primary)
    found = coverage(slot)
    if found and found[2]:
        clip = found[2][0]
        return (
            f"- **{md_escape(name, 60)}**: BD-rate over {found[0]}/{found[1]} clips; left out: "
            f"{md_escape(', '.join(found[2]), 300)} (e.g. {md_escape(clip, 60)}: "
            f"{md_escape(as_dict(slot.get('excluded')).get(clip), 150)})"
        )
    return None
