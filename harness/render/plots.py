"""Rate-distortion plots of a report: one PNG per clip (PSNR-YUV, SSIM-Y, VMAF against kbps), inline;
and the rate-distortion-complexity picture of the run (`rdc_png`).

matplotlib draws off screen (Agg); nothing is imported until a plot is drawn.
"""

from __future__ import annotations

import base64
import io
import math

from harness.render.view import ReportView, as_dict, as_float, as_list, metric_label

__all__ = ["OFF_SCALE_FACTOR", "PLOT_METRICS", "PSNR_CAP_DB", "rd_png", "rdc_png"]

PLOT_METRICS = ("psnr_yuv", "ssim_y", "vmaf")
PSNR_CAP_DB = 100.0  # harness.metrics caps PSNR of identical frames at this value (never inf)
OFF_SCALE_FACTOR = 4.0  # plots span the anchors' rates / 4 .. * 4; points beyond sit at the edge

Series = list[tuple[str, list[dict], dict]]  # (label, measurements sorted by rate, line style)
XBox = tuple[float, float, float | None, float | None]  # (x_lo, x_hi, edge_lo, edge_hi) in kbps


def _curves(
    view: ReportView, clip: str
) -> tuple[list[tuple[str, list[dict]]], list[tuple[str, list[dict]]], list[str]]:
    """(candidate curves, anchor curves, notes): each curve a list of measurements sorted by rate."""
    cands, missing = [], []
    for name in view.order():
        points = [
            as_dict(p)
            for p in as_dict(as_dict(view.candidates[name]).get("points")).values()
            if as_dict(p).get("clip") == clip
        ]
        measured = [as_dict(p.get("measurement")) for p in points if isinstance(p.get("measurement"), dict)]
        measured = [m for m in measured if as_float(m.get("bitrate_bps"))]
        if measured:
            cands.append((name, sorted(measured, key=lambda m: m["bitrate_bps"])))
            if len(measured) < len(points):
                missing.append(f"{name}: {len(points) - len(measured)} of {len(points)} rate points failed")
        elif points:
            missing.append(f"{name}: no curve, all {len(points)} rate points failed")
    anchors = []
    for anchor, points in as_dict(view.anchors.get(clip)).items():
        measured = [as_dict(as_dict(p).get("measurement")) for p in as_list(points)]
        measured = [m for m in measured if as_float(m.get("bitrate_bps"))]
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


def rd_png(view: ReportView, clip: str) -> tuple[str | None, list[str]]:
    """Base64 PNG of the clip's rate-distortion curves (one panel per metric), and notes."""
    cands, anchors, notes = _curves(view, clip)
    if not cands and not anchors:
        return None, notes or ["no measured points"]
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series = _series(cands, anchors)
    with matplotlib.rc_context({"text.parse_math": False, "font.size": 9, "axes.titlesize": 10}):
        fig = Figure(figsize=(13.0, 3.3), dpi=96, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(PLOT_METRICS))
        box = _x_box(anchors, series)
        off_notes = _far_notes(series, box)
        for ax, metric in zip(axes, PLOT_METRICS, strict=True):
            top = _psnr_top(metric, series)
            plotted = _plot_series(ax, metric, series, box, top, off_notes)
            _style_axes(ax, metric, box, top, plotted)
        _legend(fig, axes)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=96)
    png = _smaller_png(buf.getvalue())
    notes += sorted(off_notes)
    return base64.b64encode(png).decode("ascii"), notes


def _series(cands: list[tuple[str, list[dict]]], anchors: list[tuple[str, list[dict]]]) -> Series:
    """Candidates solid with a colour each, then anchors dashed in greys."""
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
    return series


def _x_box(anchors: list[tuple[str, list[dict]]], series: Series) -> XBox:
    """The kbps range kept readable (around the anchors' rates) and the axis edges where others sit."""
    rates = [m["bitrate_bps"] / 1000 for _, ms in anchors for m in ms]
    # Keep the anchors' region readable: points far outside it are drawn at the edge, off scale.
    x_lo, x_hi = (
        (min(rates) / OFF_SCALE_FACTOR, max(rates) * OFF_SCALE_FACTOR) if rates else (0.0, math.inf)
    )
    inside = [m["bitrate_bps"] / 1000 for _, ms, _ in series for m in ms]
    inside = [x for x in inside if x_lo <= x <= x_hi] or rates
    edge_lo, edge_hi = (min(inside) / 1.25, max(inside) * 1.25) if inside else (None, None)
    return x_lo, x_hi, edge_lo, edge_hi


def _far_notes(series: Series, box: XBox) -> set[str]:
    """A note for each series with points beyond the readable range (drawn at the edge)."""
    x_lo, x_hi, _, _ = box
    off_notes: set[str] = set()
    for label, ms, _ in series:
        far = [m["bitrate_bps"] / 1000 for m in ms if not x_lo <= m["bitrate_bps"] / 1000 <= x_hi]
        if far:
            off_notes.add(
                f"{'▶' if far[0] > x_hi else '◀'} {label} at {', '.join(f'{x:.0f}' for x in sorted(set(far)))} "
                "kbps, drawn at the edge"
            )
    return off_notes


def _psnr_top(metric: str, series: Series) -> float | None:
    """For PSNR with some points at the lossless cap: the top of the axis just above the others."""
    if not metric.startswith("psnr"):
        return None
    finite = [as_float(as_dict(m.get("metrics")).get(metric)) for _, ms, _ in series for m in ms]
    finite = [v for v in finite if v is not None]
    below = [v for v in finite if v < PSNR_CAP_DB - 0.5]
    if below and len(below) < len(finite):
        return max(below) + 0.08 * (max(below) - min(below) + 1.0)
    return None


def _plot_series(ax, metric: str, series: Series, box: XBox, top: float | None, off_notes: set[str]) -> bool:
    """Draw every series on one panel (off-scale points as edge markers); True when anything was drawn."""
    x_lo, x_hi, edge_lo, edge_hi = box
    plotted = False
    for label, ms, style in series:
        xs, ys, off = [], [], []
        for m in ms:
            x = m["bitrate_bps"] / 1000
            y = as_float(as_dict(m.get("metrics")).get(metric))
            if y is None:
                continue
            capped = top is not None and y > top
            if capped:
                off_notes.add(f"▲ lossless points (PSNR capped at {PSNR_CAP_DB:g} dB) drawn at the top edge")
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
    return plotted


def _style_axes(ax, metric: str, box: XBox, top: float | None, plotted: bool) -> None:
    """Log kbps axis, title, grid; "not measured" on an empty panel."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    _, _, edge_lo, edge_hi = box
    if edge_lo is not None:
        ax.set_xlim(edge_lo, edge_hi)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel("kbps (log)")
    unit = " (dB)" if metric.startswith("psnr") else ""
    ax.set_title(f"{metric_label(metric)}{unit}")
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)
    if top is not None:
        ax.set_ylim(top=top)
    if not plotted:
        ax.text(
            0.5,
            0.5,
            f"{metric_label(metric)} not measured",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="#777777",
        )


def _legend(fig, axes) -> None:
    """One legend for all panels, right of them (each label once)."""
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside right center", frameon=False)


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


def _rdc_points(view: ReportView) -> list[tuple[str, str, dict]]:
    """(kind "candidate" / "anchor", name, complexity entry) of every codec the report has a figure for."""
    out = []
    for name in view.order():
        entry = view.complexity(name)
        if entry:
            out.append(("candidate", name, entry))
    for name, entry in sorted(as_dict(as_dict(view.doc.get("complexity")).get("anchors")).items()):
        out.append(("anchor", name, as_dict(entry)))
    return out


def rdc_png(view: ReportView) -> tuple[str | None, list[str]]:
    """Base64 PNG of the rate-distortion-complexity picture: BD-rate against the rate anchor versus the
    encode and the decode CPU ratio to x265 (log scale), candidates and anchors as points, the Pareto
    front as a step line with its points ringed; and notes (codecs left out, and why)."""
    points = _rdc_points(view)
    notes = []
    usable = []
    for kind, name, entry in points:
        if as_float(entry.get("bd_rate")) is None:
            notes.append(f"{name}: no comparable BD-rate, not drawn")
        elif as_float(entry.get("encode_ratio")) is None and as_float(entry.get("decode_ratio")) is None:
            notes.append(f"{name}: no complexity figure, not drawn")
        else:
            usable.append((kind, name, entry))
    if not usable:
        return None, notes or ["no complexity figures in this report"]
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"text.parse_math": False, "font.size": 9, "axes.titlesize": 10}):
        fig = Figure(figsize=(11.0, 3.8), dpi=96, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2)
        for ax, axis in zip(axes, ("encode", "decode"), strict=True):
            _rdc_panel(ax, axis, usable, view.rate_anchor)
        _legend(fig, axes)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=96)
    return base64.b64encode(_smaller_png(buf.getvalue())).decode("ascii"), notes


def _rdc_panel(ax, axis: str, usable: list[tuple[str, str, dict]], rate_anchor: str) -> None:
    front = []
    cand_index = 0
    anchor_index = 0
    for kind, name, entry in usable:
        x, y = as_float(entry.get(f"{axis}_ratio")), as_float(entry.get("bd_rate"))
        if x is None or x <= 0 or y is None:
            continue
        if kind == "candidate":
            color, marker, size = _CAND_COLORS[cand_index % len(_CAND_COLORS)], "o", 46
            cand_index += 1
        else:
            color, marker = _ANCHOR_STYLES[anchor_index % len(_ANCHOR_STYLES)]
            size = 40
            anchor_index += 1
        ax.scatter([x], [y], s=size, marker=marker, color=color, zorder=3, label=_plot_label(
            name if kind == "candidate" else f"{name} (anchor)"
        ))
        if as_dict(as_dict(entry.get("front")).get(axis)).get("on_front") is True:
            front.append((x, y))
            ax.scatter([x], [y], s=150, facecolors="none", edgecolors="#e6a700", linewidths=1.6, zorder=2)
    if front:
        front.sort()
        xs, ys = [p[0] for p in front], [p[1] for p in front]
        ax.step(xs, ys, where="post", color="#e6a700", linewidth=1.2, zorder=1, label="Pareto front")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # no mathtext: parse_math is off
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axhline(0.0, color="#bbbbbb", linewidth=0.8, zorder=0)
    ax.axvline(1.0, color="#bbbbbb", linewidth=0.8, zorder=0)
    ax.set_xlabel(f"{axis} CPU time per megapixel-frame / x265's (log)")
    ax.set_ylabel(f"BD-rate vs {rate_anchor} (%; lower is better)")
    ax.set_title(f"BD-rate vs {axis} complexity")
    ax.grid(True, which="both", alpha=0.25)
