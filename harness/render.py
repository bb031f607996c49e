"""Readable views of a benchmark report: one self-contained HTML page and a short Markdown summary.

The input is the JSON document `pytest benchmarks/` writes (harness/report.py, described by
harness/report.schema.json). Nothing here re-runs anything.

- `load_report(path)` reads and validates a report; `validate_report(doc)` checks a document
  against the schema and raises `ReportError` naming the path of the first problem.
- `render_html(doc)`: header, leaderboard, rate-distortion plots per clip (PNG, inline), failures
  with their captured text. No external URL: the page opens offline.
- `render_markdown(doc)`: a pull-request comment: verdict, BD-rate against the rate anchor (x265)
  and the champion with arrows and words, the worst clip.
- `write_renderings(doc, base)` writes both beside a report (atomically).

Every string from the document is escaped (candidate names, reasons and captured text are
untrusted). Missing, None or non-finite numbers show as "n/a"; rendering never raises on them.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from harness.bdrate import describe
from harness.report import write_text_atomic
from harness.errors import HarnessError

__all__ = [
    "SCHEMA_PATH",
    "SUPPORTED_SCHEMA_VERSIONS",
    "ReportError",
    "bd_words",
    "load_report",
    "register",
    "render_html",
    "render_markdown",
    "validate_report",
    "write_renderings",
]

SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
SUPPORTED_SCHEMA_VERSIONS = (1,)

PLOT_METRICS = ("psnr_yuv", "ssim_y", "vmaf")
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
PSNR_CAP_DB = 100.0  # harness.metrics caps PSNR of identical frames at this value (never inf)
OFF_SCALE_FACTOR = 4.0  # plots span the anchors' rates / 4 .. * 4; points beyond sit at the edge
MARKDOWN_MAX_CANDIDATES = 10
MARKDOWN_MAX_NOTES = 8
CAPTURED_MAX_CHARS = 6000


class ReportError(HarnessError):
    """A report file is missing, is not JSON, or does not match harness/report.schema.json."""


# ----------------------------------------------------------------------------- reading, validation


def load_report(path: str | os.PathLike[str]) -> dict:
    """Read a report JSON file and validate it; `ReportError` says what is wrong and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such report file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: cannot read the report: {err}") from None

    def no_constant(name: str) -> float:
        raise ValueError(f"{name} is not valid JSON (a report records a missing number as null)")

    try:
        doc = json.loads(text, parse_constant=no_constant)
    except (ValueError, RecursionError) as err:
        raise ReportError(f"{path}: not a valid JSON report: {err}") from None
    try:
        validate_report(doc)
    except ReportError as err:
        raise ReportError(f"{path}: {err}") from None
    return doc


_VALIDATOR = None


def _validator():
    global _VALIDATOR
    if _VALIDATOR is None:
        try:
            from jsonschema import Draft202012Validator
        except ImportError as err:  # pragma: no cover - a declared dependency
            raise ReportError(
                "validating a report needs the 'jsonschema' package: pip install jsonschema"
            ) from err
        schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        _VALIDATOR = Draft202012Validator(schema)
    return _VALIDATOR


def json_path(parts: Iterable[object]) -> str:
    """`$.candidates["dct_inter"].points["bus/r0"].measurement` for a sequence of keys and indices."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


def _non_finite(node: object, parts: tuple) -> tuple[tuple, float] | None:
    if isinstance(node, float):
        return None if math.isfinite(node) else (parts, node)
    if isinstance(node, Mapping):
        items: Iterable = node.items()
    elif isinstance(node, list | tuple):
        items = enumerate(node)
    else:
        return None
    for key, value in items:
        found = _non_finite(value, (*parts, key))
        if found:
            return found
    return None


def validate_report(doc: object) -> None:
    """Check `doc` against harness/report.schema.json; raise `ReportError` naming the first problem's path."""
    if not isinstance(doc, Mapping):
        raise ReportError(f"report is invalid at $: expected a JSON object, got {type(doc).__name__}")
    bad = _non_finite(doc, ())
    if bad:
        raise ReportError(
            f"report is invalid at {json_path(bad[0])}: {bad[1]} is not a JSON number "
            "(JSON has no NaN or Infinity; a missing value must be null)"
        )
    version = doc.get("schema_version")
    if (
        isinstance(version, int)
        and not isinstance(version, bool)
        and version not in SUPPORTED_SCHEMA_VERSIONS
    ):
        raise ReportError(
            f"report is invalid at $.schema_version: version {version} is not one this harness reads "
            f"({', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}); render it with the harness that wrote it"
        )
    from jsonschema.exceptions import best_match

    errors = list(_validator().iter_errors(doc))
    if not errors:
        return
    first = best_match(errors)
    message = first.message if len(first.message) <= 300 else first.message[:300] + "..."
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    raise ReportError(f"report is invalid at {json_path(first.absolute_path)}: {message}{more}")


# ----------------------------------------------------------------------------- formatting helpers


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _num(value: object, fmt: str = ".2f", unit: str = "") -> str:
    v = _finite(value)
    if v is None:
        return "n/a"
    return f"{v:{fmt}}{(' ' + unit) if unit else ''}"


def bd_words(bd_rate: object) -> str:
    """'↓ 12.3 % fewer bits' / '↑ 4.0 % more bits' / '= same bits', or 'n/a' when there is no value."""
    v = _finite(bd_rate)
    return "n/a" if v is None else describe(v)


def _bd_class(bd_rate: object) -> str:
    v = _finite(bd_rate)
    if v is None:
        return "na"
    return "better" if v <= -0.05 else "worse" if v >= 0.05 else "same"


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _first_line(text: object, limit: int = 200) -> str:
    line = next((ln.strip() for ln in str(text or "").splitlines() if ln.strip()), "")
    for prefix in ("Failed: ", "AssertionError: "):
        line = line.removeprefix(prefix)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _kbps(bps: object) -> str:
    v = _finite(bps)
    return "n/a" if v is None else f"{v / 1000:.1f}"


def _short_date(created: object) -> str:
    text = str(created or "")
    m = re.match(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})", text)
    return f"{m.group(1)} {m.group(2)} UTC" if m else (text or "n/a")


# ----------------------------------------------------------------------------- reading the document


class _View:
    """Tolerant accessors over a report document (missing parts read as empty)."""

    def __init__(self, doc: Mapping) -> None:
        self.doc = doc
        self.settings = _dict(doc.get("settings"))
        self.suite = _dict(self.settings.get("suite"))
        self.clips = _dict(doc.get("clips"))
        self.anchors = _dict(doc.get("anchors"))
        self.candidates = _dict(doc.get("candidates"))
        self.tests = _dict(doc.get("tests"))
        self.rate_anchor = str(self.suite.get("rate_anchor") or "x265")
        metrics = [str(m) for m in _list(self.suite.get("bd_metrics")) if isinstance(m, str)]
        self.bd_metrics = tuple(metrics) or DEFAULT_BD_METRICS
        self.primary = self.bd_metrics[0]

    def clip_names(self) -> list[str]:
        names = list(self.clips)
        for source in (
            self.anchors,
            *[_dict(c.get("bd")) for c in self.candidates.values() if isinstance(c, dict)],
        ):
            names += [n for n in source if n not in names]
        for cand in self.candidates.values():
            for point in _dict(_dict(cand).get("points")).values():
                clip = _dict(point).get("clip")
                if isinstance(clip, str) and clip not in names:
                    names.append(clip)
        return names

    def overall(self, name: str, metric: str, anchor: str | None = None) -> dict:
        cand = _dict(self.candidates.get(name))
        return _dict(_dict(_dict(cand.get("bd_overall")).get(anchor or self.rate_anchor)).get(metric))

    def clip_bd(self, name: str, clip: str, metric: str, anchor: str | None = None) -> dict:
        cand = _dict(self.candidates.get(name))
        return _dict(
            _dict(_dict(_dict(cand.get("bd")).get(clip)).get(anchor or self.rate_anchor)).get(metric)
        )

    def candidate_tests(self, name: str) -> dict:
        cand = _dict(self.candidates.get(name))
        tests = _dict(cand.get("tests"))
        return tests or {k: v for k, v in self.tests.items() if _test_params(k)[0] == name}

    def counts(self, name: str) -> tuple[int, int, int]:
        """(failed, passed, total) tests of a candidate."""
        tests = self.candidate_tests(name)
        outcomes = [_dict(t).get("outcome") for t in tests.values()]
        summary = _dict(_dict(self.candidates.get(name)).get("summary"))
        if not outcomes and summary:
            failed = int(_finite(summary.get("failed")) or 0)
            passed = int(_finite(summary.get("passed")) or 0)
            return failed, passed, int(sum(_finite(v) or 0 for v in summary.values()))
        return outcomes.count("failed"), outcomes.count("passed"), len(outcomes)

    def first_failure(self, name: str) -> tuple[str, str] | None:
        for nodeid, test in self.candidate_tests(name).items():
            if _dict(test).get("outcome") == "failed":
                return nodeid, _first_line(_dict(test).get("reason")) or "failed (no reason recorded)"
        return None

    def verdict(self, name: str) -> tuple[str, str]:
        """(css class, words): an adoption verdict when the document has one, else pass/fail counts."""
        cand = _dict(self.candidates.get(name))
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

    def verdict_reason(self, name: str) -> str | None:
        """The one-line reason of an adoption verdict, when the document has one."""
        verdict = _dict(self.candidates.get(name)).get("verdict")
        reason = verdict.get("reason") if isinstance(verdict, dict) else None
        return _first_line(reason, 300) if isinstance(reason, str) and reason.strip() else None

    def order(self) -> list[str]:
        """Candidates best first: passing ones, then by mean BD-rate on the primary metric."""

        def key(name: str):
            failed, _, total = self.counts(name)
            bd = _finite(self.overall(name, self.primary).get("bd_rate"))
            return (failed > 0 or total == 0, bd is None, bd if bd is not None else 0.0, failed, name)

        return sorted(self.candidates, key=key)

    def worst_clip(self, name: str, source: Mapping | None = None) -> tuple[str, float] | None:
        slot = _dict(source) if source is not None else self.overall(name, self.primary)
        clip = slot.get("worst_clip")
        values = _dict(slot.get("values"))
        if not isinstance(clip, str):
            finite = {c: _finite(v) for c, v in values.items() if _finite(v) is not None}
            if not finite:
                return None
            clip = max(finite, key=finite.get)
        value = _finite(values.get(clip))
        return (clip, value) if value is not None else None

    def champion(self, name: str) -> tuple[str | None, dict]:
        """(champion name, {metric: result}) from candidates[name]["bd_vs_champion"], if present."""
        data = _dict(_dict(self.candidates.get(name)).get("bd_vs_champion"))
        if not data:
            return None, {}
        champ = data.get("champion")
        metrics = _dict(data.get("overall")) or _dict(data.get("metrics")) or data
        out = {}
        for metric, value in metrics.items():
            if isinstance(value, dict):
                out[metric] = value
            elif _finite(value) is not None:
                out[metric] = {"bd_rate": value}
        return (champ if isinstance(champ, str) else None), out


def _test_params(nodeid: str) -> tuple[str | None, str | None, str | None]:
    """(candidate, clip, rung) from a node id like `...::test_rate[cand-clip-r2]` (rung/clip may be None)."""
    if "[" not in nodeid:
        return None, None, None
    params = nodeid.rsplit("[", 1)[1].rstrip("]")
    cand, _, rest = params.partition("-")
    if not rest:
        return cand, None, None
    m = re.fullmatch(r"(.+)-(r\d+)", rest)
    return (cand, m.group(1), m.group(2)) if m else (cand, rest, None)


def _test_label(nodeid: str) -> str:
    return nodeid.rsplit("::", 1)[-1]


# ----------------------------------------------------------------------------- plots


def _curves(
    view: _View, clip: str
) -> tuple[list[tuple[str, list[dict]]], list[tuple[str, list[dict]]], list[str]]:
    """(candidate curves, anchor curves, notes): each curve a list of measurements sorted by rate."""
    cands, missing = [], []
    for name in view.order():
        points = [
            _dict(p)
            for p in _dict(_dict(view.candidates[name]).get("points")).values()
            if _dict(p).get("clip") == clip
        ]
        measured = [_dict(p.get("measurement")) for p in points if isinstance(p.get("measurement"), dict)]
        measured = [m for m in measured if _finite(m.get("bitrate_bps"))]
        if measured:
            cands.append((name, sorted(measured, key=lambda m: m["bitrate_bps"])))
            if len(measured) < len(points):
                missing.append(f"{name}: {len(points) - len(measured)} of {len(points)} rate points failed")
        elif points:
            missing.append(f"{name}: no curve, all {len(points)} rate points failed")
    anchors = []
    for anchor, points in _dict(view.anchors.get(clip)).items():
        measured = [_dict(_dict(p).get("measurement")) for p in _list(points)]
        measured = [m for m in measured if _finite(m.get("bitrate_bps"))]
        if measured:
            anchors.append((anchor, sorted(measured, key=lambda m: m["bitrate_bps"])))
    anchors.sort(key=lambda a: (a[0] != view.rate_anchor, a[0]))
    return cands, anchors, missing


_CAND_COLORS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#e377c2",
    "#8c564b",
    "#bcbd22",
]
_ANCHOR_STYLES = [("#111111", "s"), ("#777777", "^"), ("#a0522d", "D"), ("#555599", "v")]


def _plot_label(text: str) -> str:
    text = text.replace("\n", " ")
    text = text if len(text) <= 40 else text[:39] + "…"
    return " " + text if text.startswith("_") else text  # matplotlib hides labels starting with "_"


def _rd_png(view: _View, clip: str) -> tuple[str | None, list[str]]:
    """Base64 PNG of the clip's rate-distortion curves (one panel per metric), and notes."""
    cands, anchors, notes = _curves(view, clip)
    if not cands and not anchors:
        return None, notes or ["no measured points"]
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator

    series = []
    for i, (name, ms) in enumerate(cands):
        series.append(
            (
                name,
                ms,
                {
                    "color": _CAND_COLORS[i % len(_CAND_COLORS)],
                    "marker": "o",
                    "ls": "-",
                    "lw": 1.8,
                    "ms": 4.5,
                },
            )
        )
    for i, (name, ms) in enumerate(anchors):
        color, marker = _ANCHOR_STYLES[i % len(_ANCHOR_STYLES)]
        style = {"color": color, "marker": marker, "ls": "--", "lw": 1.3, "ms": 4, "mfc": "white"}
        series.append((f"{name} (anchor)", ms, style))

    with matplotlib.rc_context({"text.parse_math": False, "font.size": 9, "axes.titlesize": 10}):
        fig = Figure(figsize=(13.0, 3.3), dpi=96, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(PLOT_METRICS))
        off_notes: set[str] = set()
        rates = [m["bitrate_bps"] / 1000 for _, ms in anchors for m in ms]
        # Keep the anchors' region readable: points far outside it are drawn at the edge, off scale.
        x_lo, x_hi = (
            (min(rates) / OFF_SCALE_FACTOR, max(rates) * OFF_SCALE_FACTOR) if rates else (0.0, math.inf)
        )
        inside = [m["bitrate_bps"] / 1000 for _, ms, _ in series for m in ms]
        inside = [x for x in inside if x_lo <= x <= x_hi] or rates
        edge_lo, edge_hi = (min(inside) / 1.25, max(inside) * 1.25) if inside else (None, None)
        for label, ms, _ in series:
            far = [m["bitrate_bps"] / 1000 for m in ms if not x_lo <= m["bitrate_bps"] / 1000 <= x_hi]
            if far:
                off_notes.add(
                    f"{'▶' if far[0] > x_hi else '◀'} {label} at {', '.join(f'{x:.0f}' for x in sorted(set(far)))} "
                    "kbps, drawn at the edge"
                )
        for ax, metric in zip(axes, PLOT_METRICS, strict=True):
            plotted = False
            top = None
            if metric.startswith("psnr"):
                finite = [_finite(_dict(m.get("metrics")).get(metric)) for _, ms, _ in series for m in ms]
                finite = [v for v in finite if v is not None]
                below = [v for v in finite if v < PSNR_CAP_DB - 0.5]
                if below and len(below) < len(finite):
                    top = max(below) + 0.08 * (max(below) - min(below) + 1.0)
            for label, ms, style in series:
                xs, ys, off = [], [], []
                for m in ms:
                    x = m["bitrate_bps"] / 1000
                    y = _finite(_dict(m.get("metrics")).get(metric))
                    if y is None:
                        continue
                    capped = top is not None and y > top
                    if capped:
                        off_notes.add(
                            f"▲ lossless points (PSNR capped at {PSNR_CAP_DB:g} dB) drawn at the top edge"
                        )
                    if x > x_hi:
                        off.append((edge_hi, top if capped else y, ">"))
                    elif x < x_lo:
                        off.append((edge_lo, top if capped else y, "<"))
                    elif capped:
                        off.append((x, top, "^"))
                    else:
                        xs.append(x)
                        ys.append(y)
                if xs:
                    ax.plot(xs, ys, label=_plot_label(label), **style)
                    plotted = True
                for i, (x, y, marker) in enumerate(off):
                    ax.plot(
                        [x],
                        [y],
                        ls="none",
                        marker=marker,
                        ms=8,
                        color=style["color"],
                        clip_on=False,
                        label=_plot_label(label) if not xs and i == 0 else None,
                    )
                    plotted = True
            if edge_lo is not None:
                ax.set_xlim(edge_lo, edge_hi)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
            ax.set_xlabel("kbps (log)")
            unit = " (dB)" if metric.startswith("psnr") else ""
            ax.set_title(f"{_label(metric)}{unit}")
            ax.grid(True, which="major", alpha=0.35)
            ax.grid(True, which="minor", alpha=0.12)
            if top is not None:
                ax.set_ylim(top=top)
            if not plotted:
                ax.text(
                    0.5,
                    0.5,
                    f"{_label(metric)} not measured",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    color="#777777",
                )
        handles, labels = axes[0].get_legend_handles_labels()
        for ax in axes[1:]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        if handles:
            fig.legend(handles, labels, loc="outside right center", frameon=False)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=96)
    png = _smaller_png(buf.getvalue())
    notes += sorted(off_notes)
    return base64.b64encode(png).decode("ascii"), notes


def _smaller_png(png: bytes) -> bytes:
    """The plot as a 128-colour palette PNG (about a third of the size, same look); unchanged on failure."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(png)) as image:
            small = image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        out = io.BytesIO()
        small.save(out, format="PNG", optimize=True)
        return out.getvalue() if out.tell() < len(png) else png
    except Exception:  # noqa: BLE001 - an optimisation only; the full PNG is always fine
        return png


# ----------------------------------------------------------------------------- HTML

_CSS = """
:root{--fg:#1d1d1f;--muted:#666;--line:#d8d8de;--bg2:#f5f5f8;--good:#137333;--bad:#b3261e;--na:#777}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
 margin:0 auto;padding:16px 24px 40px;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:20px 0 4px}
.sub{color:var(--muted);margin:0 0 10px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0;font-size:13px}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0}
nav{font-size:13px;margin:8px 0;color:var(--muted)}nav a{margin-right:10px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--bg2);font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.better{color:var(--good);font-weight:600}.worse{color:var(--bad);font-weight:600}.same{color:var(--fg)}
.na{color:var(--na)}
td.better,td.worse,td.same,td.na{white-space:nowrap}
td code{white-space:nowrap;word-break:normal}span.better,span.worse,span.same{white-space:nowrap}.ok{color:var(--good);font-weight:600}.bad{color:var(--bad);font-weight:600}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;font-weight:600}
.badge.ok{background:#e6f4ea}.badge.bad{background:#fce8e6}.badge.na{background:#eee}
.small{font-size:12px;color:var(--muted)}
figure.rd{margin:6px 0}figure.rd img{max-width:100%;height:auto;border:1px solid var(--line)}
figure.rd figcaption{font-size:12px;color:var(--muted)}
code{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;background:var(--bg2);padding:0 3px;border-radius:3px;
 word-break:break-all}
pre{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;background:var(--bg2);padding:8px;border:1px solid var(--line);
 white-space:pre-wrap;word-break:break-all;max-height:420px;overflow:auto;margin:4px 0}
details{margin:2px 0}summary{cursor:pointer;color:#1a5fb4}
ul.fails{margin:4px 0 12px;padding-left:20px}ul.fails li{margin:3px 0}
.clip+.clip{border-top:1px solid var(--line);padding-top:4px}
footer{margin-top:30px;font-size:12px;color:var(--muted)}
"""


def _meta_rows(view: _View) -> list[tuple[str, str]]:
    doc = view.doc
    machine = _dict(doc.get("machine"))
    versions = _dict(doc.get("versions"))
    git = _dict(doc.get("git"))
    libs = _dict(versions.get("ffmpeg_libraries"))
    commit = git.get("commit")
    dirty = git.get("dirty")
    git_text = (str(commit)[:12] if commit else "n/a") + (" (uncommitted changes)" if dirty else "")
    n_clips = len(view.clip_names())
    clips_text = (
        f"{view.settings.get('clip_set', 'n/a')}: {n_clips} clip{'s' if n_clips != 1 else ''}, "
        f"{_num(view.settings.get('frames'), '.0f')} frames each at most"
    )
    ladder = ", ".join(_num(v, "g") for v in _list(view.suite.get("ladder_bpp")))
    rates = f"rate anchor {view.rate_anchor}" + (f"; ladder {ladder} bits/pixel" if ladder else "")
    anchors = ", ".join(str(a) for a in _list(view.suite.get("compare_anchors"))) or "n/a"
    sandbox = _dict(view.settings.get("sandbox"))
    cache = _dict(view.settings.get("anchor_cache"))
    version_items = [
        ("harness", versions.get("harness")),
        ("PyAV", versions.get("av")),
        ("libavcodec", libs.get("libavcodec")),
        ("numpy", versions.get("numpy")),
        ("OpenCV", versions.get("opencv")),
    ]
    version_items += [
        (k, v)
        for k, v in versions.items()
        if k not in ("harness", "av", "numpy", "opencv", "ffmpeg_libraries")
        and not isinstance(v, dict | list)
    ]
    return [
        ("Run", _short_date(doc.get("created_utc"))),
        (
            "Machine",
            (
                f"{machine.get('cpu', 'n/a')}, {machine.get('cores', 'n/a')} cores, "
                f"{machine.get('system', '')} {machine.get('release', '')}, Python {machine.get('python', 'n/a')}"
            ),
        ),
        ("Git commit", git_text),
        ("Clip set", clips_text),
        ("Rate points", rates),
        (
            "Anchors",
            f"{anchors} (BD-rate against {view.rate_anchor}; {view.suite.get('bd_method', 'pchip')})",
        ),
        (
            "Sandbox",
            f"{sandbox.get('mode', 'n/a')}"
            + (
                f"; anchor cache {cache.get('hits', 0)} hits, {cache.get('misses', 0)} misses"
                if cache
                else ""
            ),
        ),
        ("Versions", ", ".join(f"{k} {v}" for k, v in version_items if v)),
    ]


def _bd_cell(slot: Mapping, *, note_excluded: bool = True) -> str:
    bd = slot.get("bd_rate")
    title_parts = []
    clips = _list(slot.get("clips"))
    excluded = _dict(slot.get("excluded"))
    if clips:
        title_parts.append(f"mean of {len(clips)} clip(s)")
    for clip, why in list(excluded.items())[:5]:
        title_parts.append(f"{clip}: {why}")
    if slot.get("warning"):
        title_parts.append(str(slot["warning"]))
    extra = ""
    if note_excluded and excluded:
        extra = f' <span class="small">({len(excluded)} clip{"s" if len(excluded) != 1 else ""} n/a)</span>'
    elif slot.get("warning") and _finite(bd) is not None:
        extra = ' <span class="small" title="see tooltip">⚠</span>'
    title = f' title="{_esc("; ".join(title_parts))}"' if title_parts else ""
    return f'<td class="{_bd_class(bd)}"{title}>{_esc(bd_words(bd))}{extra}</td>'


def _leaderboard(view: _View) -> str:
    metrics = view.bd_metrics
    champ_any = any(view.champion(n)[1] for n in view.candidates)
    head = ["#", "Candidate", "Verdict"] + [f"{_label(m)} vs {view.rate_anchor}" for m in metrics]
    if champ_any:
        head.append(f"{_label(view.primary)} vs champion")
    held_any = any(_dict(_dict(view.candidates[n]).get("bd_by_set")) for n in view.candidates)
    if held_any:
        head.append(f"{_label(view.primary)} public / held-out")
    head += [f"Worst clip ({_label(view.primary)})", "Source"]
    rows = [
        "<table class='leader'><thead><tr>"
        + "".join(f"<th>{_esc(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
    ]
    for rank, name in enumerate(view.order(), 1):
        cand = _dict(view.candidates[name])
        css, words = view.verdict(name)
        first = view.first_failure(name)
        verdict = f'<span class="badge {css}">{_esc(words)}</span>'
        reason = view.verdict_reason(name)
        if reason:
            verdict += f'<div class="small">{_esc(reason[:200])}</div>'
        elif first:
            verdict += f'<div class="small">first: {_esc(_first_line(first[1], 140))}</div>'
        cells = [f"<td class='n'>{rank}</td>", f"<td><b>{_esc(name)}</b></td>", f"<td>{verdict}</td>"]
        cells += [_bd_cell(view.overall(name, m)) for m in metrics]
        if champ_any:
            champ, results = view.champion(name)
            slot = _dict(results.get(view.primary))
            cell = _bd_cell(slot, note_excluded=False)
            if champ:
                cell = cell.replace("</td>", f' <span class="small">vs {_esc(champ)}</span></td>')
            cells.append(cell)
        if held_any:
            cells.append(_held_out_cell(_dict(cand.get("bd_by_set"))))
        worst = view.worst_clip(name)
        cells.append(
            f"<td>{_esc(worst[0])}: <span class='{_bd_class(worst[1])}'>{_esc(bd_words(worst[1]))}</span></td>"
            if worst
            else "<td class='na'>n/a</td>"
        )
        sha = cand.get("sha256")
        size = _finite(cand.get("size_bytes"))
        src = (f"<code>{_esc(str(sha)[:12])}</code>" if sha else "<span class='na'>n/a</span>") + (
            f" <span class='small'>{size / 1024:.1f} KiB</span>" if size is not None else ""
        )
        cells.append(f"<td>{src}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    rows.append("</tbody></table>")
    if not view.candidates:
        return "<p class='na'>No candidate was judged in this run.</p>"
    note = (
        f"<p class='small'>BD-rate: the mean over comparable clips of the bits a candidate needs at equal quality, "
        f"relative to {_esc(view.rate_anchor)}; ↓ fewer bits is better, ↑ more bits is worse. "
        "Hover a cell for the clips it covers and why others are left out.</p>"
    )
    return "\n".join(rows) + note


def _held_out_cell(by_set: dict) -> str:
    """Public and held-out BD-rate side by side; a large gap is flagged (tuned to the public clips?)."""
    if not by_set:
        return "<td class='na'>n/a</td>"
    public, held = by_set.get("public"), by_set.get("heldout")
    text = f"{_esc(bd_words(public))} / {_esc(bd_words(held))}"
    flag = by_set.get("flag")
    if flag:
        return f"<td class='bad' title='{_esc(flag)}'>{text} ⚠</td>"
    return f"<td>{text}</td>"


def _clip_section(view: _View, clip: str, index: int) -> str:
    info = _dict(view.clips.get(clip))
    sha = info.get("sha256")
    desc = (
        f"{_num(info.get('width'), '.0f')}×{_num(info.get('height'), '.0f')}, "
        f"{_num(info.get('frames'), '.0f')} frames at {_esc(info.get('fps', 'n/a'))} fps"
        + (f", {_esc(info.get('codec'))}" if info.get("codec") else "")
        + (f", sha256 <code>{_esc(str(sha)[:16])}</code>" if sha else "")
    )
    png, notes = _rd_png(view, clip)
    parts = [f"<section class='clip' id='clip-{index}'><h3>{_esc(clip)}</h3><p class='small'>{desc}</p>"]
    caption = "; ".join(notes)
    if png:
        alt = f"Rate-distortion curves of {clip}: PSNR-YUV, SSIM-Y and VMAF against kbps"
        parts.append(
            f"<figure class='rd'><img alt='{_esc(alt)}' src='data:image/png;base64,{png}'>"
            f"<figcaption>Candidates solid, anchors dashed; kbps on a log scale."
            f"{(' ' + _esc(caption)) if caption else ''}</figcaption></figure>"
        )
    else:
        parts.append(
            f"<figure class='rd'><p class='na'>No rate-distortion data. {_esc(caption)}</p></figure>"
        )
    # BD-rate table for this clip
    names = [n for n in view.order() if _dict(_dict(view.candidates[n]).get("bd")).get(clip) is not None]
    if names:
        head = "".join(f"<th>{_esc(_label(m))} vs {_esc(view.rate_anchor)}</th>" for m in view.bd_metrics)
        rows = [f"<table class='bd'><thead><tr><th>Candidate</th>{head}<th>Note</th></tr></thead><tbody>"]
        for name in names:
            slots = [view.clip_bd(name, clip, m) for m in view.bd_metrics]
            full = [
                f"{_label(m)}: {s['warning']}"
                for m, s in zip(view.bd_metrics, slots, strict=True)
                if s.get("warning")
            ]
            short = []
            for metric, slot in zip(view.bd_metrics, slots, strict=True):
                warning = str(slot.get("warning") or "")
                overlap = _finite(slot.get("overlap"))
                if "overlap only" in warning and overlap is not None:
                    short.append(f"{_label(metric)} quality ranges overlap {overlap:.0%}")
                elif warning:
                    short.append(f"{_label(metric)}: {_first_line(warning, 90)}")
            note = (
                (f"<span title='{_esc('; '.join(full))}'>⚠ {_esc('; '.join(short))}</span>") if short else ""
            )
            cells = "".join(_bd_cell(s, note_excluded=False) for s in slots)
            rows.append(f"<tr><td>{_esc(name)}</td>{cells}<td class='small'>{note}</td></tr>")
        rows.append("</tbody></table>")
        parts.append("".join(rows))
    parts.append(_points_table(view, clip))
    parts.append("</section>")
    return "\n".join(parts)


def _points_table(view: _View, clip: str) -> str:
    rows = []
    for name in view.order():
        points = [
            _dict(p)
            for p in _dict(_dict(view.candidates[name]).get("points")).values()
            if _dict(p).get("clip") == clip
        ]
        for p in sorted(points, key=lambda p: str(p.get("rung"))):
            m = _dict(p.get("measurement"))
            metrics = _dict(m.get("metrics"))
            enc, dec = _dict(p.get("encode")), _dict(p.get("decode"))
            rss = max((_finite(x.get("peak_rss_bytes")) or 0) for x in (enc, dec))
            status = (
                f"<span class='bad'>{_esc(_first_line(p.get('failure'), 120))}</span>"
                if p.get("failure")
                else "<span class='ok'>ok</span>"
            )
            rows.append(
                f"<tr><td>{_esc(name)}</td><td>{_esc(p.get('rung'))}</td><td class='n'>{_kbps(p.get('target_bps'))}</td>"
                f"<td class='n'>{_kbps(m.get('bitrate_bps'))}</td>"
                + "".join(
                    f"<td class='n'>{_num(metrics.get(k), f)}</td>"
                    for k, f in (("psnr_yuv", ".2f"), ("ssim_y", ".4f"), ("vmaf", ".2f"))
                )
                + f"<td class='n'>{_num(enc.get('wall_s'), '.2f')}</td><td class='n'>{_num(dec.get('wall_s'), '.2f')}</td>"
                f"<td class='n'>{(f'{rss / 2**20:.0f}' if rss else 'n/a')}</td><td>{status}</td></tr>"
            )
    for anchor, points in _dict(view.anchors.get(clip)).items():
        for p in _list(points):
            p = _dict(p)
            m = _dict(p.get("measurement"))
            metrics = _dict(m.get("metrics"))
            rows.append(
                f"<tr class='small'><td>{_esc(anchor)} (anchor)</td><td>QP {_esc(p.get('qp'))}</td><td class='n'>–</td>"
                f"<td class='n'>{_kbps(m.get('bitrate_bps'))}</td>"
                + "".join(
                    f"<td class='n'>{_num(metrics.get(k), f)}</td>"
                    for k, f in (("psnr_yuv", ".2f"), ("ssim_y", ".4f"), ("vmaf", ".2f"))
                )
                + f"<td class='n'>{_num(p.get('encode_s'), '.2f')}</td><td class='n'>{_num(p.get('decode_s'), '.2f')}</td>"
                f"<td class='n'>n/a</td><td>{'cached' if p.get('cached') else 'encoded'}</td></tr>"
            )
    if not rows:
        return ""
    head = (
        "<tr><th>Codec</th><th>Point</th><th>Target kbps</th><th>kbps</th><th>PSNR-YUV</th><th>SSIM-Y</th>"
        "<th>VMAF</th><th>Encode s</th><th>Decode s</th><th>Peak MiB</th><th>Status</th></tr>"
    )
    return (
        f"<details><summary>Rate points ({len(rows)})</summary><table class='points'><thead>{head}</thead>"
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )


def _captured(view: _View, nodeid: str, reason: object) -> str:
    """Everything recorded about a failed test: its full reason and the captured text of its call(s)."""
    cand_name, clip, rung = _test_params(nodeid)
    cand = _dict(view.candidates.get(cand_name)) if cand_name else {}
    test = _test_label(nodeid).split("[", 1)[0]
    parts: list[tuple[str, str]] = [("reason", str(reason or "(no reason recorded)"))]

    def call_parts(label: str, call: Mapping) -> None:
        if not call or call.get("ok"):
            return
        head = f"{call.get('stage', label)} {call.get('kind', '')}".strip()
        if call.get("message"):
            parts.append((f"{label}: {head}", str(call["message"])))
        for stream in ("stdout", "stderr"):
            if call.get(stream):
                parts.append((f"{label} {stream}", str(call[stream])))

    if clip and rung:
        point = _dict(_dict(cand.get("points")).get(f"{clip}/{rung}"))
        if point.get("failure_details"):
            parts.append(("failure details", str(point["failure_details"])))
        call_parts("encode", _dict(point.get("encode")))
        call_parts("decode", _dict(point.get("decode")))
    elif test == "test_contract" or (cand_name and not clip):
        call_parts("check", _dict(cand.get("check")))
    elif clip and test == "test_determinism":
        det = _dict(_dict(cand.get("determinism")).get(clip))
        if det.get("details"):
            parts.append(("determinism details", str(det["details"])))
    out, seen = [], set()
    for label, text in parts:
        text = text.strip()
        if not text or text in seen or any(text in s for s in seen):
            continue
        seen.add(text)
        if len(text) > CAPTURED_MAX_CHARS:
            text = (
                text[: CAPTURED_MAX_CHARS // 2]
                + f"\n… [{len(text) - CAPTURED_MAX_CHARS} characters cut] …\n"
                + text[-CAPTURED_MAX_CHARS // 2 :]
            )
        out.append(f"── {label} ──\n{text}")
    return "\n\n".join(out)


def _failures(view: _View) -> tuple[str, int]:
    """The failures section and the number of failed tests."""
    by_cand: dict[str | None, list[tuple[str, dict]]] = {}
    for nodeid, test in view.tests.items():
        if _dict(test).get("outcome") == "failed":
            cand = _test_params(nodeid)[0]
            by_cand.setdefault(cand if cand in view.candidates else None, []).append((nodeid, _dict(test)))
    for name in view.candidates:  # tests recorded only under the candidate
        for nodeid, test in view.candidate_tests(name).items():
            if _dict(test).get("outcome") == "failed" and nodeid not in view.tests:
                by_cand.setdefault(name, []).append((nodeid, _dict(test)))
    total = sum(len(v) for v in by_cand.values())
    if not total:
        return "<p class='ok'>No test failed.</p>", 0
    order = [n for n in view.order() if n in by_cand] + ([None] if None in by_cand else [])
    html_parts = []
    shown: dict[str, str] = {}
    anchor_id = 0
    for name in order:
        failures = by_cand[name]
        title = _esc(name) if name else "Other tests"
        html_parts.append(
            f"<h3>{title} <span class='small'>{len(failures)} failed</span></h3><ul class='fails'>"
        )
        groups: dict[str, list[tuple[str, dict]]] = {}
        for nodeid, test in failures:
            groups.setdefault(str(test.get("reason") or ""), []).append((nodeid, test))
        for reason, members in groups.items():
            anchor_id += 1
            ids = ", ".join(f"<code>{_esc(_test_label(n))}</code>" for n, _ in members)
            line = _esc(_first_line(reason, 300)) or "<span class='na'>no reason recorded</span>"
            text = _captured(view, members[0][0], reason)
            if text in shown:
                details = f"<div class='small'>captured text as for <a href='#{shown[text]}'>the failure above</a></div>"
            else:
                shown[text] = f"fail-{anchor_id}"
                details = f"<details><summary>captured text</summary><pre>{_esc(text)}</pre></details>"
            html_parts.append(f"<li id='fail-{anchor_id}'>{ids}<br>{line}{details}</li>")
        html_parts.append("</ul>")
    return "\n".join(html_parts), total


def render_html(doc: Mapping) -> str:
    """One self-contained HTML page (inline CSS and PNG plots, no external URL) for a report document."""
    view = _View(doc if isinstance(doc, Mapping) else {})
    clips = view.clip_names()
    summary = _dict(doc.get("summary")) if isinstance(doc, Mapping) else {}
    totals = ", ".join(f"{_num(v, '.0f')} {_esc(k)}" for k, v in summary.items()) or "no tests recorded"
    failures_html, n_failed = _failures(view)
    date = _short_date(view.doc.get("created_utc"))
    meta = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in _meta_rows(view))
    nav_clips = " ".join(f"<a href='#clip-{i}'>{_esc(c)}</a>" for i, c in enumerate(clips))
    clip_html = (
        "\n".join(_clip_section(view, clip, i) for i, clip in enumerate(clips))
        or "<p class='na'>No clips.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Codec harness report – {_esc(date)}</title>
<style>{_CSS}</style></head>
<body>
<header>
<h1>Codec harness report</h1>
<p class="sub">{len(view.candidates)} candidate{"s" if len(view.candidates) != 1 else ""} on {len(clips)} clip{"s" if len(clips) != 1 else ""}; tests: {totals}</p>
<dl class="meta">{meta}</dl>
<nav><a href="#leaderboard">Leaderboard</a> <a href="#failures">Failures ({n_failed})</a> · clips: {nav_clips}</nav>
</header>
<section id="leaderboard"><h2>Leaderboard</h2>
{_leaderboard(view)}
</section>
<section id="clips"><h2>Rate-distortion per clip</h2>
{clip_html}
</section>
<section id="failures"><h2>Failures ({n_failed})</h2>
{failures_html}
</section>
<footer>Report schema version {_esc(view.doc.get("schema_version", "n/a"))}; rendered by the codec harness from the JSON report alone.</footer>
</body></html>
"""


# ----------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def _md(text: object, limit: int = 200) -> str:
    """Untrusted text as inert Markdown: one line, HTML-escaped, Markdown punctuation backslashed."""
    line = " ".join(str("" if text is None else text).split())
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    line = _MD_SPECIAL.sub(r"\\\1", html.escape(line, quote=False)).replace("@", "@\u200b")  # no @mentions
    line = re.sub(r"^(\d+)([.)])(?=\s|$)", r"\1\\\2", line)  # not an ordered list
    return "\\" + line if line[:1] in ("#", ">") or re.match(r"[+-](\s|$)", line) else line


def _code(text: object, limit: int = 100) -> str:
    """Untrusted text as a Markdown code span (shown literally; backticks cannot end it early)."""
    line = " ".join(str("" if text is None else text).split()).replace("`", "'")
    if re.search(r"[<>&@]", line):  # literal in a code span, but keep raw HTML out of the comment entirely
        return _md(line, limit)
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return f"`{line}`" if line else "``"


def render_markdown(doc: Mapping, *, max_candidates: int = MARKDOWN_MAX_CANDIDATES) -> str:
    """A short summary for a pull-request comment: verdicts, BD-rates with arrows and words, worst clips."""
    view = _View(doc if isinstance(doc, Mapping) else {})
    clips = view.clip_names()
    git = _dict(view.doc.get("git"))
    commit = str(git.get("commit") or "")[:10] or "n/a"
    summary = _dict(view.doc.get("summary"))
    totals = ", ".join(f"{_num(v, '.0f')} {_md(k)}" for k, v in summary.items()) or "no tests"
    lines = [
        (
            f"### Codec harness: {len(view.candidates)} candidate{'s' if len(view.candidates) != 1 else ''} "
            f"on {len(clips)} clip{'s' if len(clips) != 1 else ''}"
        ),
        (
            f"{_short_date(view.doc.get('created_utc'))} · commit {_code(commit)}"
            f"{' (dirty)' if git.get('dirty') else ''} · clip set {_md(view.settings.get('clip_set', 'n/a'))}, "
            f"{_num(view.settings.get('frames'), '.0f')} frames · tests: {totals}"
        ),
        "",
    ]
    if not view.candidates:
        lines.append("No candidate was judged in this run.")
        return "\n".join(lines) + "\n"
    champ_any = any(view.champion(n)[1] for n in view.candidates)
    head = ["Candidate", "Verdict"] + [f"{_label(m)} vs {_md(view.rate_anchor)}" for m in view.bd_metrics]
    if champ_any:
        head.append(f"{_label(view.primary)} vs champion")
    head.append(f"Worst clip ({_label(view.primary)})")
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    order = view.order()
    notes: list[str] = []
    for name in order[:max_candidates]:
        css, words = view.verdict(name)
        icon = {"ok": "✅", "bad": "❌"}.get(css, "➖")
        row = [f"**{_md(name, 60)}**", f"{icon} {_md(words)}"]
        for metric in view.bd_metrics:
            slot = view.overall(name, metric)
            row.append(bd_words(slot.get("bd_rate")))
        if champ_any:
            champ, results = view.champion(name)
            row.append(
                bd_words(_dict(results.get(view.primary)).get("bd_rate"))
                + (f" (vs {_md(champ, 40)})" if champ and results else "")
            )
        worst = view.worst_clip(name)
        row.append(f"{_md(worst[0], 60)}: {bd_words(worst[1])}" if worst else "n/a")
        lines.append("| " + " | ".join(row) + " |")
        first = view.first_failure(name)
        reason = view.verdict_reason(name)
        if reason:
            notes.append(f"- **{_md(name, 60)}** {_md(words, 40)}: {_md(reason, 200)}")
        elif first:
            notes.append(
                f"- **{_md(name, 60)}** first failure {_code(_test_label(first[0]), 90)}: {_md(first[1], 180)}"
            )
        else:
            excluded = _dict(view.overall(name, view.primary).get("excluded"))
            if excluded:
                clip, why = next(iter(excluded.items()))
                notes.append(
                    f"- **{_md(name, 60)}**: BD-rate n/a on {len(excluded)} clip(s), e.g. "
                    f"{_md(clip, 60)}: {_md(why, 150)}"
                )
    if len(order) > max_candidates:
        lines += ["", f"… and {len(order) - max_candidates} more candidates (see the HTML report)"]
    if notes:
        lines.append("")
        lines.extend(notes[:MARKDOWN_MAX_NOTES])
        if len(notes) > MARKDOWN_MAX_NOTES:
            lines.append(f"- … and {len(notes) - MARKDOWN_MAX_NOTES} more")
    lines += [
        "",
        (
            f"<sub>BD-rate: mean over comparable clips of the bits needed at equal quality relative to "
            f"{_md(view.rate_anchor)}; ↓ fewer bits = better. Full plots and captured errors in the HTML report.</sub>"
        ),
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- files, CLI


def _write_text(path: Path, text: str) -> None:
    """`write_text_atomic`, with an OSError named as a ReportError."""
    try:
        write_text_atomic(path, text)
    except OSError as err:
        raise ReportError(f"cannot write {path}: {err}") from None


def write_renderings(
    doc: Mapping,
    base: str | os.PathLike[str],
    *,
    html_path: str | os.PathLike[str] | None = None,
    markdown_path: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path]:
    """Write the HTML and Markdown of `doc` beside `base` (same stem, .html/.md) unless paths are given."""
    base = Path(base)
    html_out = Path(html_path) if html_path else base.with_suffix(".html")
    md_out = Path(markdown_path) if markdown_path else base.with_suffix(".md")
    _write_text(html_out, render_html(doc))
    _write_text(md_out, render_markdown(doc))
    return html_out, md_out


def _cli_render(args: argparse.Namespace) -> int:
    report = Path(args.report)
    if args.no_validate:
        try:
            doc = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ReportError(f"{report}: cannot read the report: {err}") from None
    else:
        doc = load_report(report)
    outputs = [
        (args.html or report.with_suffix(".html"), render_html),
        (args.markdown or report.with_suffix(".md"), render_markdown),
    ]
    for target, renderer in outputs:
        text = renderer(doc)
        if str(target) == "-":
            sys.stdout.write(text)
        else:
            _write_text(Path(target), text)
            print(f"wrote {target} ({len(text.encode('utf-8')) / 1024:.0f} KiB)", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `render` subcommand to the harness CLI."""
    parser = subparsers.add_parser(
        "render",
        help="render a JSON report to HTML and Markdown (no re-run)",
        description="Render a benchmark JSON report to one self-contained HTML page and a Markdown summary. "
        "The report is validated against harness/report.schema.json first.",
    )
    parser.add_argument("report", help="the JSON report (e.g. reports/latest.json)")
    parser.add_argument(
        "--html", metavar="OUT", help="HTML output (default: beside the report, .html; - for stdout)"
    )
    parser.add_argument(
        "--markdown", metavar="OUT", help="Markdown output (default: beside the report, .md; - for stdout)"
    )
    parser.add_argument(
        "--no-validate",
        action="store_true",
        help="render even a report that does not match the schema (missing parts show as n/a)",
    )
    parser.set_defaults(func=_cli_render)
