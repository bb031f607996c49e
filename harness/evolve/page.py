"""The progress page of an evolution run: one self-contained HTML file (inline SVG and CSS, no script).

    python -m harness evolve-report RUN_DIR [-o FILE]      # default FILE: RUN_DIR/progress.html

Built from what the run directory holds, read only (a running loop may be appending):

- RUN/run.json        settings (model, track, budgets) and the initial champion with its BD-rate;
- RUN/attempts.jsonl  one record per finished attempt (older records may lack island, eval_node,
                      screen_s, parent_attempt: shown as "–"); a line that is not an attempt record
                      is skipped and named in a note at the top of the page;
- RUN/programs.jsonl  the program database, when present (programs per island, best of each).

The page draws BD-rate against the anchor (x265; percent, negative = fewer bits = better) over
attempts and over minutes since the run started, each attempt a point (colour: outcome; shape: the
stage where it stopped; adopted ones ringed and numbered), the champion's line (the running best of
adopted attempts, from the initial champion's value), attempts without a BD-rate in a band of their
own; BD-rate against encode complexity over the program database's MAP-Elites cells (the elite of
each cell ringed); the champion's lineage; the share of attempts stopped at each cascade stage;
tokens and cost against the budgets; the database's islands; a table of all attempts. `write_progress_page` is called by the loop at the
end of a run and by the CLI.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.errors import HarnessError

__all__ = [
    "OUTCOMES",
    "STAGES",
    "RunData",
    "champion_steps",
    "cli_evolve_report",
    "elites",
    "lineage",
    "load_run",
    "nice_ticks",
    "register",
    "render_page",
    "stage_counts",
    "write_progress_page",
]

ANCHOR = "x265"  # bd_vs_anchor is measured against the adoption's bootstrap anchor
STAGES: tuple[str, ...] = ("extract", "identical", "check", "screen", "suite", "verdict")
OUTCOMES: tuple[str, ...] = ("adopted", "rejected", "failed", "invalid")

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies and in grey print.
COLOURS = {"adopted": "#009E73", "rejected": "#0072B2", "failed": "#E69F00", "invalid": "#CC79A7",
           "other": "#888888"}
STAGE_COLOURS = {"extract": "#CC79A7", "identical": "#56B4E9", "check": "#D55E00", "screen": "#E69F00",
                 "suite": "#F0E442", "verdict": "#009E73", "unknown": "#BBBBBB"}
STAGE_WORDS = {
    "extract": "no code in the reply",
    "identical": "same code as an earlier module",
    "check": "module refused by reading",
    "screen": "failed the screen (cascade stage 1)",
    "suite": "failed the full suite",
    "verdict": "judged (adopted or rejected)",
    "unknown": "stage not recorded",
}


# ----------------------------------------------------------------------------- reading the run


@dataclass
class RunData:
    """What the page is drawn from; `notes` name what could not be read (shown on the page)."""

    path: Path
    settings: dict
    records: list[dict]
    programs: list[dict] = field(default_factory=list)
    has_programs: bool = False
    notes: list[str] = field(default_factory=list)


def _read_jsonl(path: Path, kind: str, notes: list[str], *, require_attempt: bool) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        notes.append(f"{path.name}: cannot be read ({err.strerror or err}); nothing from it is shown")
        return []
    lines = text.split("\n")
    out: list[dict] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        last = number == len(lines)  # no newline after it: still being written, or cut by a kill
        try:
            data = json.loads(line)
        except (ValueError, RecursionError) as err:
            why = "incomplete last line (being written, or cut by a kill)" if last else f"not JSON ({err})"
            notes.append(f"{path.name} line {number}: {why}; skipped")
            continue
        if not isinstance(data, dict) or (
            require_attempt and (not isinstance(data.get("attempt"), int) or isinstance(data.get("attempt"), bool))
        ):
            notes.append(f"{path.name} line {number}: not {kind} record; skipped")
            continue
        out.append(data)
    return out


def load_run(run_dir: Path) -> RunData:
    """Read RUN/run.json, RUN/attempts.jsonl and RUN/programs.jsonl (HarnessError: no run there)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir} is not a folder; give the run directory of `python -m harness evolve`")
    settings_path = run_dir / "run.json"
    if not settings_path.is_file():
        raise HarnessError(f"{run_dir} has no run.json: not an evolve run directory (evolve-runs/<run>)")
    try:
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise HarnessError(f"cannot read {settings_path}: {err}") from err
    if not isinstance(settings, dict):
        raise HarnessError(f"{settings_path} is not a JSON object")
    notes: list[str] = []
    records: list[dict] = []
    log = run_dir / "attempts.jsonl"
    if log.exists():
        records = _read_jsonl(log, "an attempt", notes, require_attempt=True)
    seen: set[int] = set()
    unique = []
    for r in records:
        if r["attempt"] in seen:
            notes.append(f"attempts.jsonl: attempt {r['attempt']} recorded twice; the first record is shown")
            continue
        seen.add(r["attempt"])
        unique.append(r)
    db = run_dir / "programs.jsonl"
    programs = _read_jsonl(db, "a program", notes, require_attempt=False) if db.exists() else []
    return RunData(run_dir, settings, unique, programs, db.exists(), notes)


# ----------------------------------------------------------------------------- values


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _outcome(record: dict) -> str:
    verdict = record.get("verdict")
    return verdict if verdict in OUTCOMES else "other"


def _stage(record: dict) -> str:
    stage = record.get("stage")
    return stage if stage in STAGES else "unknown"


def _bd_text(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f} %"


def _e(value: object) -> str:
    return escape("–" if value is None or value == "" else str(value), quote=True)


def _dict(value: object) -> dict:
    """A JSON object from a file, or {} for anything else (the page never trusts a file's shapes)."""
    return value if isinstance(value, dict) else {}


def _cfg(settings: dict, section: str, key: str) -> object:
    return _dict(_dict(settings.get("config")).get(section)).get(key)


def _initial(settings: dict) -> dict:
    return _dict(settings.get("initial_champion"))


def run_start(data: RunData) -> datetime | None:
    """The run's start (run.json), else its first attempt's start or finish."""
    start = _time(data.settings.get("started_utc"))
    if start is not None:
        return start
    times = [t for r in data.records for t in (_time(r.get("started_utc")), _time(r.get("finished_utc"))) if t]
    return min(times) if times else None


def minutes_since_start(data: RunData, record: dict) -> float | None:
    start, end = run_start(data), _time(record.get("finished_utc"))
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds() / 60.0)


def champion_steps(initial: float | None, records: Sequence[dict], key: Callable[[dict], float | None]
                   ) -> list[tuple[float, float, dict | None]]:
    """(x, BD-rate, the adopted record or None for the start) where the champion's line steps down:
    the running best BD-rate of adopted attempts in the order of `key` (x), from the initial champion's."""
    steps: list[tuple[float, float, dict | None]] = []
    best = initial
    if initial is not None:
        steps.append((0.0, initial, None))
    adopted = [(key(r), _num(r.get("bd_vs_anchor")), r) for r in records if _outcome(r) == "adopted"]
    for x, bd, r in sorted((a for a in adopted if a[0] is not None and a[1] is not None), key=lambda a: a[0]):
        if best is None or bd < best:
            best = bd
            steps.append((x, bd, r))
    return steps


def current_champion(data: RunData) -> dict | None:
    """The last adopted attempt in the order the ledger decided (the log's completion order)."""
    adopted = [r for r in data.records if _outcome(r) == "adopted"]
    return adopted[-1] if adopted else None


def lineage(data: RunData) -> list[dict]:
    """The current champion's ancestry, oldest first: dicts with name, attempt, bd, verdict.
    Parents are followed by parent_attempt, else by the parent's name among this run's attempts;
    the chain ends at a parent from outside the run (the initial champion or another ledger entry)."""
    initial = _initial(data.settings)
    by_attempt = {r["attempt"]: r for r in data.records}
    by_name = {str(r.get("candidate")): r for r in data.records}
    node = current_champion(data)
    chain: list[dict] = []
    seen: set[int] = set()
    while node is not None and node["attempt"] not in seen:
        seen.add(node["attempt"])
        chain.append({"name": node.get("candidate"), "attempt": node["attempt"],
                      "bd": _num(node.get("bd_vs_anchor")), "verdict": _outcome(node)})
        parent_attempt, parent = node.get("parent_attempt"), node.get("parent")
        nxt = by_attempt.get(parent_attempt) if isinstance(parent_attempt, int) else None
        if nxt is None and parent_attempt is None:
            nxt = by_name.get(str(parent)) if parent is not None else None
        if nxt is None:
            if parent is not None:
                same = parent == initial.get("name")
                chain.append({"name": parent, "attempt": None, "verdict": "initial" if same else "ledger",
                              "bd": _num(initial.get("bd_vs_anchor")) if same else None})
            break
        node = nxt
    if not chain:
        chain.append({"name": initial.get("name"), "attempt": None, "verdict": "initial",
                      "bd": _num(initial.get("bd_vs_anchor"))})
    return chain[::-1]


# ----------------------------------------------------------------------------- SVG helpers


def nice_ticks(lo: float, hi: float, count: int = 6, *, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(hi - lo)):
        return [0.0, 1.0]
    if hi - lo < 1e-9:  # one value: a span around it
        pad = max(abs(lo), abs(hi)) * 0.1 if max(abs(lo), abs(hi)) > 1e-6 else 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = max(1.0, next(m * mag for m in steps if m * mag >= raw * 0.999)) if integer else next(
        m * mag for m in steps if m * mag >= raw * 0.999)
    first = math.floor(lo / step + 1e-9) * step
    ticks = []
    for k in range(4 * count + 4):  # bounded: at 1e17 a small step no longer moves a float
        t = first + k * step
        ticks.append(round(t, 10))
        if t >= hi - 1e-9:
            break
    return ticks if len(ticks) > 1 and ticks[-1] > ticks[0] else [lo, hi]


def _fmt_tick(value: float) -> str:
    if abs(value - round(value)) < 1e-9:
        return f"{round(value):,}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _marker(stage: str, x: float, y: float, r: float, fill: str, stroke: str, sw: float) -> str:
    """One point's shape: the stage where the attempt stopped."""
    style = f'fill="{fill}" stroke="{stroke}" stroke-width="{sw:.1f}"'
    if stage == "verdict":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" {style}/>'
    if stage == "suite":  # triangle up
        return (f'<path d="M{x:.1f},{y - r * 1.2:.1f} L{x + r * 1.1:.1f},{y + r * 0.8:.1f} '
                f'L{x - r * 1.1:.1f},{y + r * 0.8:.1f}Z" {style}/>')
    if stage == "screen":  # triangle down
        return (f'<path d="M{x:.1f},{y + r * 1.2:.1f} L{x + r * 1.1:.1f},{y - r * 0.8:.1f} '
                f'L{x - r * 1.1:.1f},{y - r * 0.8:.1f}Z" {style}/>')
    if stage == "check":  # square
        return f'<rect x="{x - r * 0.85:.1f}" y="{y - r * 0.85:.1f}" width="{r * 1.7:.1f}" height="{r * 1.7:.1f}" {style}/>'
    if stage == "identical":  # diamond
        return (f'<path d="M{x:.1f},{y - r * 1.2:.1f} L{x + r * 1.2:.1f},{y:.1f} L{x:.1f},{y + r * 1.2:.1f} '
                f'L{x - r * 1.2:.1f},{y:.1f}Z" {style}/>')
    if stage == "extract":  # a cross
        d = r * 0.95
        return (f'<path d="M{x - d:.1f},{y - d:.1f} L{x + d:.1f},{y + d:.1f} M{x - d:.1f},{y + d:.1f} '
                f'L{x + d:.1f},{y - d:.1f}" fill="none" stroke="{fill}" stroke-width="2.4"/>')
    return (f'<path d="M{x - r:.1f},{y:.1f} L{x + r:.1f},{y:.1f} M{x:.1f},{y - r:.1f} L{x:.1f},{y + r:.1f}" '
            f'fill="none" stroke="{fill}" stroke-width="2.4"/>')  # unknown stage: a plus


def _point_title(record: dict, x_words: str) -> str:
    bd = _num(record.get("bd_vs_anchor"))
    return (f"attempt {record['attempt']} {record.get('candidate')}: {_outcome(record)} at stage "
            f"{_stage(record)}; BD-rate vs {ANCHOR} {_bd_text(bd, 2)}; {x_words}")


class _Labels:
    """Text labels that do not overlap: a label is drawn only where no earlier one is (boxes in SVG units)."""

    def __init__(self) -> None:
        self.boxes: list[tuple[float, float, float, float]] = []

    def place(self, x: float, y: float, text: str, anchor: str = "middle", size: float = 11.0) -> bool:
        w = 0.62 * size * len(text) + 4
        x0 = x - w / 2 if anchor == "middle" else (x - w if anchor == "end" else x)
        box = (x0, y - size, x0 + w, y + 3)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in self.boxes):
            return False
        self.boxes.append(box)
        return True


def bd_scale(values: Sequence[float], keep: Sequence[float] = ()) -> tuple[list[float], float]:
    """(ticks of the BD-rate axis, the value above which points are off the scale). The scale covers
    `keep` (the champion's line) and most points; a few far-off rejected attempts must not flatten
    the champion's progress, so beyond the 90th percentile the axis is cut and they sit at its top."""
    if not values:
        return [0.0, 10.0], math.inf
    lo, hi = min(values), max(values)
    ordered = sorted(values)
    cap = max([ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], *keep])
    cut = math.inf
    if hi > cap + max(cap - lo, 1.0) * 0.6:
        hi = cut = cap + max(cap - lo, 1.0) * 0.15
    if 0 < lo <= 0.5 * (hi - lo):  # show where x265 is when it is near the data
        lo = 0.0
    elif -0.5 * (hi - lo) <= hi < 0:
        hi = 0.0
    pad = 0.03 * (hi - lo)  # no point on the frame's edge, where it would look cut off
    ticks = nice_ticks(lo - pad if lo else lo, hi + pad if hi and cut == math.inf else hi, 6)
    return ticks, (cut if cut == math.inf else ticks[-1])


@dataclass(frozen=True)
class _Frame:
    """The drawing area of a scatter plot and its scales (SVG user units)."""

    width: float = 900
    height: float = 400
    left: float = 78
    right: float = 24
    top: float = 22
    band: float = 30  # the "no BD-rate" strip under the axis area
    bottom: float = 52

    @property
    def plot_bottom(self) -> float:
        return self.height - self.bottom - self.band - 10

    @property
    def band_y(self) -> float:
        return self.height - self.bottom - self.band / 2


def scatter_svg(
    data: RunData, *, kind: str, xs: dict[int, float], x_label: str, x_integer: bool, title: str,
) -> str:
    """BD-rate vs x (attempt number or minutes): points, the champion's line, the no-BD band."""
    fr = _Frame()
    initial = _num(_initial(data.settings).get("bd_vs_anchor"))
    records = [r for r in data.records if r["attempt"] in xs]
    steps = champion_steps(initial, records, lambda r: xs.get(r["attempt"]))
    bds = [b for r in records if (b := _num(r.get("bd_vs_anchor"))) is not None]
    line_values = [s[1] for s in steps]
    values = bds + line_values
    x_max = max(xs.values(), default=0.0) or 1.0
    xticks = nice_ticks(0.0, x_max, 10, integer=x_integer)
    x0, x1 = 0.0, xticks[-1]
    yticks, cut = bd_scale(values, keep=line_values)
    off_scale = {r["attempt"] for r in records if (_num(r.get("bd_vs_anchor")) or -math.inf) > cut}
    y0, y1 = yticks[0], yticks[-1]
    pw, top, pb = fr.width - fr.left - fr.right, fr.top, fr.plot_bottom

    inset = 12.0  # points at the first and last x stay clear of the frame

    def sx(x: float) -> float:
        return fr.left + inset + (x - x0) / ((x1 - x0) or 1.0) * (pw - 2 * inset)

    def sy(y: float) -> float:
        y = min(max(y, y0), y1)
        return pb - (y - y0) / ((y1 - y0) or 1.0) * (pb - top)

    out = [(f'<svg class="plot" data-kind="{kind}" viewBox="0 0 {fr.width:.0f} {fr.height:.0f}" '
            f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'),
           f'<title>{escape(title)}</title>',
           (f'<rect class="area" x="{fr.left}" y="{top}" width="{pw:.1f}" height="{pb - top:.1f}" '
            'fill="#fff" stroke="#444" stroke-width="1"/>')]
    for t in yticks:  # grid and labels
        y = sy(t)
        out.append(f'<line x1="{fr.left}" x2="{fr.left + pw:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        out.append(f'<line x1="{fr.left - 5}" x2="{fr.left}" y1="{y:.1f}" y2="{y:.1f}" stroke="#444"/>')
        out.append(f'<text class="ytick" x="{fr.left - 8}" y="{y + 4:.1f}" text-anchor="end">{_fmt_tick(t)}</text>')
    if y0 <= 0 <= y1:
        y = sy(0.0)
        out.append(f'<line class="zero" x1="{fr.left}" x2="{fr.left + pw:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                   'stroke="#666" stroke-dasharray="5 4"/>')
        out.append(f'<text x="{fr.left + pw - 6:.1f}" y="{y - 5:.1f}" text-anchor="end" class="note">'
                   f'0 % = as good as {ANCHOR}</text>')
    band_top, band_bottom = fr.band_y - fr.band / 2, fr.band_y + fr.band / 2
    out.append(f'<rect class="noband" x="{fr.left}" y="{band_top:.1f}" width="{pw:.1f}" height="{fr.band:.1f}" '
               'fill="#f4f4f4" stroke="#bbb"/>')
    out.append(f'<text class="bandlabel" x="{fr.left - 8}" y="{fr.band_y + 4:.1f}" text-anchor="end">no BD-rate</text>')
    for t in xticks:
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{pb:.1f}" stroke="#f0f0f0"/>')
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{band_bottom:.1f}" y2="{band_bottom + 5:.1f}" stroke="#444"/>')
        out.append(f'<text class="xtick" x="{x:.1f}" y="{band_bottom + 19:.1f}" text-anchor="middle">{_fmt_tick(t)}</text>')
    out.append(f'<text class="axislabel" x="{fr.left + pw / 2:.1f}" y="{fr.height - 8}" text-anchor="middle">'
               f'{escape(x_label)}</text>')
    ymid = (top + pb) / 2
    out.append(f'<text class="axislabel" transform="translate(18 {ymid:.1f}) rotate(-90)" text-anchor="middle">'
               f'BD-rate vs {ANCHOR} (%), lower is better</text>')
    if steps:  # the champion's line: a step function ending at the last x
        pts = []
        for i, (x, bd, _) in enumerate(steps):
            if i:
                pts.append((sx(x), sy(steps[i - 1][1])))
            pts.append((sx(x), sy(bd)))
        pts.append((sx(max([*xs.values(), steps[-1][0]])), sy(steps[-1][1])))  # held until the last attempt
        values_attr = " ".join(f"{s[1]:.4f}" for s in steps)
        out.append(f'<polyline class="champion" data-bd="{values_attr}" fill="none" stroke="#222" '
                   f'stroke-width="2" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}"/>')
    labels, texts = _Labels(), []
    if off_scale:
        note = f"{len(off_scale)} point(s) above the scale, drawn at its top edge (hover for the value)"
        labels.place(fr.left + pw - 6, top + 13, note, "end")
        texts.append(f'<text class="note" x="{fr.left + pw - 6:.1f}" y="{top + 13}" text-anchor="end">{note}</text>')
    if steps and steps[0][2] is None:
        note = f"initial champion {_bd_text(steps[0][1])}"
        if labels.place(sx(0) + 6, sy(steps[0][1]) - 6, note, "start"):
            texts.append(f'<text class="note" x="{sx(0) + 6:.1f}" y="{sy(steps[0][1]) - 6:.1f}">{note}</text>')
    dense = len(records) > 150  # smaller marks, so hundreds of attempts stay readable
    # points: non-adopted first, adopted on top
    ordered_records = sorted(records, key=lambda r: (_outcome(r) == "adopted", r["attempt"]))
    for r in ordered_records:
        outcome, stage = _outcome(r), _stage(r)
        bd = _num(r.get("bd_vs_anchor"))
        x = sx(xs[r["attempt"]])
        xv = xs[r["attempt"]]
        words = f"attempt {r['attempt']}" if x_integer else f"finished {xv:.1f} min after the start"
        if bd is None:
            y, cls = fr.band_y, "pt nobd"
        else:
            y, cls = sy(bd), "pt" + (" offscale" if r["attempt"] in off_scale else "")
        adopted = outcome == "adopted"
        radius = (5.0 if dense else 6.5) if adopted else (3.6 if dense else 4.8)
        stroke, sw = ("#000", 2.0) if adopted else ("#fff", 0.8)
        out.append(f'<g class="{cls} {outcome} stage-{stage}" data-attempt="{r["attempt"]}">'
                   f'<title>{escape(_point_title(r, words))}</title>'
                   + _marker(stage, x, y, radius, COLOURS[outcome], stroke, sw) + "</g>")
        if r["attempt"] in off_scale and len(off_scale) <= 6 and labels.place(x + 8, y + 12, f"↑ {_bd_text(bd)}",
                                                                             "start"):
            texts.append(f'<text class="note" x="{x + 8:.1f}" y="{y + 12:.1f}">↑ {_bd_text(bd)}</text>')
        if adopted and bd is not None and labels.place(x, y - 11, f"#{r['attempt']}"):
            texts.append(f'<text class="adoptlabel" x="{x:.1f}" y="{y - 11:.1f}" text-anchor="middle">'
                         f'#{r["attempt"]}</text>')
    out.extend(texts)
    out.append("</svg>")
    return "\n".join(out)


def _edges(settings: dict, key: str, default: Sequence[float]) -> list[float]:
    value = _cfg(settings, "database", key)
    if isinstance(value, list) and value and all(_num(v) is not None for v in value):
        return sorted(float(v) for v in value)
    return list(default)


def elites(records: Sequence[dict], bd_edges: Sequence[float], cx_edges: Sequence[float]) -> dict[tuple, dict]:
    """The best judged attempt (lowest BD-rate, then cheaper, then older) of each MAP-Elites cell
    (BD-rate bin, encode complexity bin), over the whole run, as the program database bins them."""
    from harness.evolve.database import bin_of

    best: dict[tuple, dict] = {}
    for r in records:
        bd, cx = _num(r.get("bd_vs_anchor")), _num(r.get("encode_complexity"))
        if _outcome(r) not in ("adopted", "rejected") or bd is None:
            continue
        cell = (bin_of(bd, bd_edges), bin_of(cx, cx_edges))
        rank = (bd, cx if cx is not None else math.inf, r["attempt"])
        if cell not in best or rank < best[cell][0]:
            best[cell] = (rank, r)
    return {cell: r for cell, (_, r) in best.items()}


def complexity_svg(data: RunData) -> str | None:
    """BD-rate against encode complexity (log scale) of the judged attempts, over the program
    database's MAP-Elites cells, the elite of each cell ringed; None when no attempt has both."""
    from harness.evolve.database import BD_EDGES, COMPLEXITY_EDGES

    bd_edges = _edges(data.settings, "bd_edges", BD_EDGES)
    cx_edges = _edges(data.settings, "complexity_edges", COMPLEXITY_EDGES)
    points = [(r, bd, cx) for r in data.records
              if _outcome(r) in ("adopted", "rejected") and (bd := _num(r.get("bd_vs_anchor"))) is not None
              and (cx := _num(r.get("encode_complexity"))) is not None and cx > 0]
    if not points:
        return None
    best = {r["attempt"] for r in elites(data.records, bd_edges, cx_edges).values()}
    width, height, left, right, top, bottom = 900.0, 380.0, 78.0, 24.0, 22.0, 52.0
    pw, pb = width - left - right, height - bottom
    lx = [math.log2(cx) for _, _, cx in points]
    a, b = math.floor(min(lx)), math.ceil(max(lx))
    if b - a < 2:
        a, b = a - 1, b + 1
    every = 1 if b - a <= 10 else 2
    yticks, cut = bd_scale([bd for _, bd, _ in points])
    y0, y1 = yticks[0], yticks[-1]
    inset = 12.0

    def sx(log_cx: float) -> float:
        return left + inset + (log_cx - a) / (b - a) * (pw - 2 * inset)

    def sy(y: float) -> float:
        return pb - (min(max(y, y0), y1) - y0) / ((y1 - y0) or 1.0) * (pb - top)

    title = f"BD-rate vs {ANCHOR} against encode complexity"
    out = [(f'<svg class="plot" data-kind="complexity" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'),
           f"<title>{escape(title)}</title>",
           f'<rect x="{left}" y="{top}" width="{pw}" height="{pb - top}" fill="#fff" stroke="#444"/>']
    for e in bd_edges:  # the cells
        if y0 < e < y1:
            out.append(f'<line class="cell" x1="{left}" x2="{left + pw}" y1="{sy(e):.1f}" y2="{sy(e):.1f}" '
                       'stroke="#d9d9d9" stroke-dasharray="2 3"/>')
    for e in cx_edges:
        if a < math.log2(e) < b:
            x = sx(math.log2(e))
            out.append(f'<line class="cell" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{pb}" '
                       'stroke="#d9d9d9" stroke-dasharray="2 3"/>')
    for t in yticks:
        y = sy(t)
        out.append(f'<line x1="{left - 5}" x2="{left}" y1="{y:.1f}" y2="{y:.1f}" stroke="#444"/>')
        out.append(f'<text class="ytick" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{_fmt_tick(t)}</text>')
    for k in range(a, b + 1, every):
        x = sx(k)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{pb}" y2="{pb + 5}" stroke="#444"/>')
        out.append(f'<text class="xtick" x="{x:.1f}" y="{pb + 19}" text-anchor="middle">{2.0 ** k:g}×</text>')
    if y0 <= 0 <= y1:
        out.append(f'<line class="zero" x1="{left}" x2="{left + pw}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" '
                   'stroke="#666" stroke-dasharray="5 4"/>')
    if a <= 0 <= b:
        out.append(f'<line class="zero" x1="{sx(0):.1f}" x2="{sx(0):.1f}" y1="{top}" y2="{pb}" stroke="#666" '
                   'stroke-dasharray="5 4"/>')
        out.append(f'<text class="note" x="{sx(0) + 5:.1f}" y="{top + 13}">{ANCHOR}</text>')
    out.append(f'<text class="axislabel" x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">encode '
               f'complexity: CPU time per pixel relative to {ANCHOR} (log scale)</text>')
    out.append(f'<text class="axislabel" transform="translate(18 {(top + pb) / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">BD-rate vs {ANCHOR} (%), lower is better</text>')
    dense = len(points) > 100
    labels, texts = _Labels(), []
    if cut != math.inf:
        note = f"points above {_fmt_tick(cut)} % drawn at the top edge"
        labels.place(left + pw - 6, top + 13, note, "end")
        texts.append(f'<text class="note" x="{left + pw - 6}" y="{top + 13}" text-anchor="end">{note}</text>')
    if a <= 0 <= b:
        labels.place(sx(0) + 5, top + 13, ANCHOR, "start")
    for r, bd, cx in sorted(points, key=lambda p: (p[0]["attempt"] in best, p[0]["attempt"])):
        outcome, x, y = _outcome(r), sx(math.log2(cx)), sy(bd)
        adopted = outcome == "adopted"
        elite = r["attempt"] in best
        tip = (f"attempt {r['attempt']} {r.get('candidate')}: {outcome}; BD-rate {_bd_text(bd, 2)}; "
               f"encode complexity {cx:.2f}x{'; the elite of its cell' if elite else ''}")
        ring = (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{8 if dense else 10}" fill="none" stroke="#000" stroke-width="1.2" '
                'stroke-dasharray="3 2"/>') if elite else ""
        out.append(f'<g class="cx{" elite" if elite else ""} {outcome}" data-attempt="{r["attempt"]}">'
                   f"<title>{escape(tip)}</title>{ring}"
                   + _marker("verdict", x, y, (4.5 if dense else 6.0) if adopted else (3.6 if dense else 4.8),
                             COLOURS[outcome],
                             "#000" if adopted else "#fff", 2.0 if adopted else 0.8) + "</g>")
        if elite and labels.place(x + 12, y + 4, f"#{r['attempt']}", "start"):
            texts.append(f'<text class="adoptlabel" x="{x + 12:.1f}" y="{y + 4:.1f}">#{r["attempt"]}</text>')
    out.extend(texts)
    out.append("</svg>")
    return "\n".join(out)


def legend_html() -> str:
    """One legend for both BD-rate plots: colour = outcome, shape = stage, the champion's line."""
    items = []
    for outcome in OUTCOMES:
        adopted = outcome == "adopted"
        svg = ('<svg width="18" height="18" viewBox="0 0 18 18">'
               + _marker("verdict", 9, 9, 6 if adopted else 4.5, COLOURS[outcome], "#000" if adopted else "#fff",
                         2.0 if adopted else 0.8) + "</svg>")
        items.append(f'<span class="key">{svg}{escape(outcome)}</span>')
    shapes = []
    for stage in STAGES:
        svg = ('<svg width="18" height="18" viewBox="0 0 18 18">'
               + _marker(stage, 9, 9, 4.5, "#666", "#fff", 0.8) + "</svg>")
        shapes.append(f'<span class="key">{svg}{escape(stage)}</span>')
    line = ('<span class="key"><svg width="30" height="18" viewBox="0 0 30 18"><polyline points="1,5 15,5 15,13 29,13" '
            'fill="none" stroke="#222" stroke-width="2"/></svg>champion (running best of adopted)</span>')
    return (f'<div class="legend"><b>outcome</b> {"".join(items)} {line}</div>'
            f'<div class="legend"><b>stopped at</b> {"".join(shapes)}</div>')


def stage_counts(records: Sequence[dict]) -> list[tuple[str, int, float]]:
    """(stage, attempts stopped there, percent of all attempts) for the cascade's stages in order
    (and "unknown" when some records lack a stage)."""
    counts = Counter(_stage(r) for r in records)
    total = len(records)
    stages = [*STAGES, *(["unknown"] if counts.get("unknown") else [])]
    return [(s, counts.get(s, 0), 100.0 * counts.get(s, 0) / total if total else 0.0) for s in stages]


def stage_bar_svg(records: Sequence[dict]) -> str:
    width, height, left, right = 900, 46, 4, 4
    shares = stage_counts(records)
    total = len(records)
    out = [(f'<svg class="stagebar" viewBox="0 0 {width} {height}" role="img" '
            'aria-label="share of attempts stopped at each cascade stage" xmlns="http://www.w3.org/2000/svg">')]
    x = float(left)
    span = width - left - right
    for stage, count, pct in shares:
        if not count:
            continue
        w = span * count / total
        out.append(f'<g class="seg" data-stage="{stage}" data-count="{count}">'
                   f'<title>{escape(stage)}: {count} of {total} ({pct:.1f} %)</title>'
                   f'<rect x="{x:.1f}" y="4" width="{w:.1f}" height="{height - 8}" fill="{STAGE_COLOURS[stage]}" '
                   'stroke="#fff" stroke-width="1.5"/>')
        label = f"{stage} {count} ({pct:.0f} %)"
        if w > 7.2 * len(label):
            out.append(f'<text x="{x + w / 2:.1f}" y="{height / 2 + 5:.1f}" text-anchor="middle" class="seglabel">'
                       f'{escape(label)}</text>')
        elif w > 24:
            out.append(f'<text x="{x + w / 2:.1f}" y="{height / 2 + 5:.1f}" text-anchor="middle" class="seglabel">'
                       f'{count}</text>')
        out.append("</g>")
        x += w
    out.append("</svg>")
    return "\n".join(out)


def tokens_svg(records: Sequence[dict]) -> str:
    """Tokens per attempt as bars coloured by outcome."""
    width, height, left, right, top, bottom = 900, 200, 78, 24, 12, 44
    recs = sorted(records, key=lambda r: r["attempt"])
    n_max = max(r["attempt"] for r in recs)
    values = [int(_num(r.get("tokens")) or 0) for r in recs]
    yticks = nice_ticks(0.0, max([*values, 1]), 4)
    xticks = nice_ticks(0.0, float(n_max), 8, integer=True)
    pw, ph = width - left - right, height - top - bottom
    slot = pw / (xticks[-1] + 1)
    out = [(f'<svg class="tokens" viewBox="0 0 {width} {height}" role="img" aria-label="tokens per attempt" '
            'xmlns="http://www.w3.org/2000/svg">'),
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#444"/>']
    for t in yticks:
        y = top + ph - t / yticks[-1] * ph
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        out.append(f'<text class="ytick" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{_fmt_tick(t)}</text>')
    for r, v in zip(recs, values):
        h = v / yticks[-1] * ph
        x = left + slot * (r["attempt"] + 0.5) - max(1.0, slot * 0.35)
        out.append(f'<rect class="tokbar {_outcome(r)}" x="{x:.1f}" y="{top + ph - h:.1f}" '
                   f'width="{max(1.0, slot * 0.7):.1f}" height="{h:.1f}" fill="{COLOURS[_outcome(r)]}">'
                   f'<title>attempt {r["attempt"]}: {v:,} tokens</title></rect>')
    for t in xticks:
        x = left + slot * (t + 0.5)
        out.append(f'<text class="xtick" x="{x:.1f}" y="{top + ph + 17}" text-anchor="middle">{_fmt_tick(t)}</text>')
    out.append(f'<text class="axislabel" x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">attempt</text>')
    out.append(f'<text class="axislabel" transform="translate(18 {top + ph / 2}) rotate(-90)" '
               'text-anchor="middle">tokens</text>')
    out.append("</svg>")
    return "\n".join(out)


# ----------------------------------------------------------------------------- the page


CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 24px auto;
       max-width: 1000px; padding: 0 16px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin: 0 0 12px; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 4px 18px; margin: 8px 0; }
.facts div span { color: #666; }
.notes { background: #fff6d6; border: 1px solid #e0c060; padding: 8px 12px; margin: 12px 0; }
.notes li { font-family: ui-monospace, monospace; font-size: 12px; }
.empty { background: #f4f4f4; border: 1px solid #ccc; padding: 24px; font-size: 18px; text-align: center; }
figure { margin: 8px 0 18px; page-break-inside: avoid; break-inside: avoid; }
figcaption { color: #444; font-size: 13px; margin-top: 2px; }
svg.plot, svg.tokens, svg.stagebar { width: 100%; height: auto; display: block; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 12px; fill: #333; }
svg text.axislabel { font-size: 13px; fill: #111; } svg text.note { font-size: 11px; fill: #555; }
svg text.bandlabel { font-size: 11px; fill: #555; } svg text.adoptlabel { font-size: 11px; font-weight: 600; fill: #000; }
svg text.seglabel { font-size: 12px; fill: #000; }
.legend { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 14px; font-size: 13px; margin: 2px 0; }
.legend .key { display: inline-flex; align-items: center; gap: 4px; } .legend svg { vertical-align: middle; }
.lineage { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; }
.step { border: 1px solid #bbb; border-radius: 4px; padding: 4px 8px; background: #fafafa; }
.step.adopted { border-color: #009E73; } .step .bd { font-weight: 600; }
.arrow { color: #888; }
table { border-collapse: collapse; font-size: 12px; width: 100%; }
.scroll { overflow-x: auto; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 3px 5px; text-align: left; white-space: nowrap; }
th { background: #f2f2f2; position: sticky; top: 0; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.adopted td { background: #e9f7f1; } td.cand { max-width: 230px; overflow: hidden; text-overflow: ellipsis; }
.dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin-right: 4px; }
.budget { display: grid; grid-template-columns: 150px 1fr 260px; gap: 6px 12px; align-items: center; margin: 6px 0; }
.meter { height: 12px; background: #eee; border: 1px solid #ccc; } .meter div { height: 100%; background: #0072B2; }
.meter div.over { background: #D55E00; }
@media print { body { margin: 0; max-width: none; font-size: 12px; } h2 { page-break-after: avoid; }
  th { position: static; } table { font-size: 10px; } .scroll { overflow: visible; } }
"""


def _facts(data: RunData) -> str:
    s = data.settings
    initial = _initial(s)
    champion = current_champion(data)
    best = min((b for r in data.records if _outcome(r) in ("adopted", "rejected")
                and (b := _num(r.get("bd_vs_anchor"))) is not None), default=None)
    last = max((t for r in data.records if (t := _time(r.get("finished_utc")))), default=None)
    start = run_start(data)
    elapsed = f"{(last - start).total_seconds() / 60:.1f} min" if last and start else "–"
    facts = [
        ("model", _cfg(s, "model", "name")), ("track", _cfg(s, "suite", "track")),
        ("clips", _cfg(s, "suite", "clips")), ("frames", _cfg(s, "suite", "frames")),
        ("started (UTC)", s.get("started_utc")),
        ("last attempt finished (UTC)", last.strftime("%Y-%m-%dT%H:%M:%SZ") if last else None),
        ("elapsed", elapsed), ("attempts", f"{len(data.records)} of {_cfg(s, 'stop', 'iterations') or '–'}"),
        ("adopted", sum(_outcome(r) == "adopted" for r in data.records)),
        ("initial champion", f"{initial.get('name', '–')} ({_bd_text(_num(initial.get('bd_vs_anchor')))})"),
        ("champion now", f"{champion.get('candidate')} (attempt {champion['attempt']}, "
                         f"{_bd_text(_num(champion.get('bd_vs_anchor')))})" if champion else "the initial champion"),
        ("best judged BD-rate", _bd_text(best)),
    ]
    return '<div class="facts">' + "".join(
        f"<div><span>{escape(k)}:</span> {_e(v)}</div>"
        for k, v in facts
    ) + "</div>"


def _lineage_html(data: RunData) -> str:
    chain = lineage(data)
    parts = []
    prev = None
    for i, step in enumerate(chain):
        bd = step["bd"]
        delta = f" ({bd - prev:+.1f} pt)" if bd is not None and prev is not None else ""
        who = f"attempt {step['attempt']}" if step["attempt"] is not None else (
            "initial champion" if step["verdict"] == "initial" else "from the ledger")
        if i:
            parts.append('<span class="arrow">→</span>')
        parts.append(f'<span class="step {escape(step["verdict"])}" data-attempt="{_e(step["attempt"])}">'
                     f'<b>{_e(step["name"])}</b><br><small>{escape(who)}'
                     f'{"" if step["attempt"] is None else ", " + escape(step["verdict"])}</small><br>'
                     f'<span class="bd">{_bd_text(bd)}</span>{escape(delta)}</span>')
        prev = bd if bd is not None else prev
    return '<div class="lineage">' + "".join(parts) + "</div>"


def _stage_table(records: Sequence[dict]) -> str:
    rows = "".join(
        f'<tr data-stage="{s}"><td><span class="dot" style="background:{STAGE_COLOURS[s]}"></span>{escape(s)}</td>'
        f'<td>{escape(STAGE_WORDS[s])}</td><td class="num">{n}</td><td class="num">{pct:.1f} %</td></tr>'
        for s, n, pct in stage_counts(records)
    )
    return ('<table class="stages"><thead><tr><th>stopped at</th><th>meaning</th><th class="num">attempts</th>'
            f'<th class="num">share</th></tr></thead><tbody>{rows}</tbody></table>')


def _meter(label: str, used: float, limit: float | None, used_text: str, limit_text: str) -> str:
    if not limit:
        return (f'<div class="budget"><span>{escape(label)}</span><span class="meter"></span>'
                f'<span>{escape(used_text)} (no limit)</span></div>')
    frac = used / limit
    return (f'<div class="budget" data-budget="{escape(label)}"><span>{escape(label)}</span>'
            f'<span class="meter"><div class="{"over" if frac > 1 else ""}" style="width:{min(frac, 1) * 100:.1f}%">'
            f'</div></span><span>{escape(used_text)} of {escape(limit_text)} ({frac * 100:.1f} %)</span></div>')


def _cost_section(data: RunData) -> str:
    recs = data.records
    tokens = sum(int(_num(r.get("tokens")) or 0) for r in recs)
    tin = sum(int(_num(_dict(r.get("usage")).get("input_tokens")) or 0) for r in recs)
    tout = sum(int(_num(_dict(r.get("usage")).get("output_tokens")) or 0) for r in recs)
    costs = [_num(r.get("cost_usd")) for r in recs]
    priced = [c for c in costs if c is not None]
    cost = sum(priced)
    unpriced = len(costs) - len(priced)
    max_tokens = _num(_cfg(data.settings, "stop", "max_total_tokens"))
    max_cost = _num(_cfg(data.settings, "stop", "max_cost_usd"))
    iterations = _num(_cfg(data.settings, "stop", "iterations"))
    n = len(recs)
    lines = [
        f'<p class="totals">Total: <b data-total="tokens">{tokens:,}</b> tokens ({tin:,} in, {tout:,} out), '
        f'<b data-total="cost">${cost:.4f}</b>'
        + (f" ({unpriced} attempt(s) without a price)" if unpriced else "")
        + (f"; per attempt {tokens / n:,.0f} tokens, ${cost / n:.4f}" if n else "") + ".</p>",
        _meter("tokens", tokens, max_tokens, f"{tokens:,}", f"{int(max_tokens or 0):,}"),
        _meter("cost", cost, max_cost, f"${cost:.2f}", f"${max_cost or 0:.2f}"),
        _meter("attempts", n, iterations, f"{n}", f"{int(iterations or 0)}"),
    ]
    if recs:
        lines.append('<figure>' + tokens_svg(recs) + '<figcaption>Tokens per attempt (input + output), coloured '
                     'by outcome.</figcaption></figure>')
    return "\n".join(lines)


def _fmt_num(value: object, fmt: str) -> str:
    v = _num(value)
    return "–" if v is None else format(v, fmt)


def _attempts_table(data: RunData) -> str:
    head = [("attempt", True), ("candidate", False), ("parent", False), ("island", True), ("stage", False),
            ("verdict", False), (f"BD vs {ANCHOR}", True), ("enc. cx", True), ("tokens", True), ("cost $", True),
            ("judge s", True), ("node", False)]
    rows = []
    for r in sorted(data.records, key=lambda r: r["attempt"]):
        outcome = _outcome(r)
        parent = r.get("parent")
        if isinstance(r.get("parent_attempt"), int):
            parent = f"{parent} (#{r['parent_attempt']})"
        cells = [
            (str(r["attempt"]), True), (_e(r.get("candidate")), False), (_e(parent), False),
            (_e(r.get("island")), True), (_e(r.get("stage")), False),
            (f'<span class="dot" style="background:{COLOURS[outcome]}"></span>{_e(r.get("verdict"))}', False),
            (_bd_text(_num(r.get("bd_vs_anchor")), 2) if _num(r.get("bd_vs_anchor")) is not None else "–", True),
            (_fmt_num(r.get("encode_complexity"), ".2f"), True), (_fmt_num(r.get("tokens"), ",.0f"), True),
            (_fmt_num(r.get("cost_usd"), ".4f"), True), (_fmt_num(r.get("judge_s"), ".1f"), True),
            (_e(r.get("eval_node")), False),
        ]
        tds = "".join(f'<td class="{"num" if num else ("cand" if i == 1 else "")}">{text}</td>'
                      for i, (text, num) in enumerate(cells))
        rows.append(f'<tr class="{outcome}" data-attempt="{r["attempt"]}">{tds}</tr>')
    ths = "".join(f'<th class="{"num" if num else ""}">{escape(h)}</th>' for h, num in head)
    return (f'<div class="scroll"><table class="attempts"><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}'
            "</tbody></table></div>"
            '<p class="sub">BD-rate in percent against x265 (negative: fewer bits for the same quality, better); '
            'enc. cx: encode CPU time per pixel relative to x265; judge s: seconds from reply to verdict.</p>')


def _programs_section(data: RunData) -> str:
    if not data.has_programs:
        return ""
    islands: dict[object, list[dict]] = {}
    for p in data.programs:
        islands.setdefault(p.get("island"), []).append(p)
    rows = []
    for island in sorted(islands, key=lambda i: (not isinstance(i, int), str(i))):
        progs = islands[island]
        judged = [p for p in progs if _num(p.get("bd_vs_anchor")) is not None
                  and (p.get("attempt") is None or p.get("verdict") in ("adopted", "rejected"))]
        best = min(judged, key=lambda p: _num(p.get("bd_vs_anchor"))) if judged else None  # type: ignore[arg-type, return-value]
        rows.append(
            f'<tr><td class="num">{_e(island)}</td><td class="num">{len(progs)}</td><td class="num">{len(judged)}</td>'
            f'<td>{_e(best.get("candidate")) if best else "–"}</td>'
            f'<td class="num">{_bd_text(_num(best.get("bd_vs_anchor"))) if best else "–"}</td></tr>'
        )
    return ('<h2 id="database">Program database</h2>'
            f'<p>{len(data.programs)} program(s) in programs.jsonl (seeds from the ledger included).</p>'
            '<table class="programs"><thead><tr><th class="num">island</th><th class="num">programs</th>'
            '<th class="num">judged</th><th>best</th><th class="num">its BD-rate</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def render_page(data: RunData, *, now: datetime | None = None) -> str:
    """The whole page as one HTML string (every text from the run's files escaped)."""
    name = data.path.resolve().name if data.path.exists() else data.path.name
    made = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Evolution run {escape(name)}: progress</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Evolution run {escape(name)}</h1>",
        (f'<p class="sub">Progress page written {escape(made)} from {escape(str(data.path))}. '
         f"BD-rate against {ANCHOR} in percent: <b>negative is better</b> (fewer bits for the same quality).</p>"),
    ]
    if data.notes:
        parts.append('<div class="notes"><b>Some lines could not be read:</b><ul>'
                     + "".join(f"<li>{escape(n)}</li>" for n in data.notes) + "</ul></div>")
    parts.append(_facts(data))
    if not data.records:
        parts.append('<div class="empty" id="no-attempts">No attempts yet: attempts.jsonl has no finished attempt. '
                     "Rerun this command as the run goes on.</div>")
        parts.append('<h2 id="lineage">Champion lineage</h2>' + _lineage_html(data))
        parts.append('<h2 id="cost">Tokens and cost</h2>' + _cost_section(data))
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"
    by_attempt = {r["attempt"]: float(r["attempt"]) for r in data.records}
    by_time = {r["attempt"]: m for r in data.records if (m := minutes_since_start(data, r)) is not None}
    untimed = len(data.records) - len(by_time)
    parts.append(f'<h2 id="trend">BD-rate against {ANCHOR}</h2>')
    parts.append(legend_html())
    parts.append('<figure>' + scatter_svg(data, kind="attempts", xs=by_attempt, x_label="attempt", x_integer=True,
                                          title=f"BD-rate vs {ANCHOR} by attempt")
                 + f"<figcaption>Each attempt's BD-rate against {ANCHOR} (PSNR-YUV, percent; lower is better) by "
                 "attempt number; the black steps are the champion (running best of adopted attempts from the "
                 "initial champion, at attempt 0). Attempts that stopped before the full evaluation have no "
                 "BD-rate and sit in the grey band.</figcaption></figure>")
    if by_time:
        parts.append('<figure>' + scatter_svg(data, kind="time", xs=by_time, x_label="minutes since the run started",
                                              x_integer=False, title=f"BD-rate vs {ANCHOR} over time")
                     + "<figcaption>The same attempts by the time each finished (minutes since the run "
                     "started)" + (f"; {untimed} attempt(s) without a finish time are left out" if untimed else "")
                     + ".</figcaption></figure>")
    rc = complexity_svg(data)
    if rc is not None:
        parts.append('<h2 id="complexity">Rate and complexity</h2><figure>' + rc
                     + f"<figcaption>Judged attempts (adopted and rejected) by BD-rate against {ANCHOR} and encode "
                     "complexity; the dotted grid is the program database's MAP-Elites cells, the best attempt of "
                     "each cell (its elite) is ringed and numbered. Down and to the left is better.</figcaption>"
                     "</figure>")
    parts.append('<h2 id="lineage">Champion lineage</h2>' + _lineage_html(data)
                 + '<p class="sub">From the initial champion to the current one, through each adopted attempt\'s '
                 "parent; BD-rate against x265 at each step (change in percentage points).</p>")
    parts.append('<h2 id="stages">Where attempts stopped</h2><figure>' + stage_bar_svg(data.records)
                 + "</figure>" + _stage_table(data.records))
    parts.append('<h2 id="cost">Tokens and cost</h2>' + _cost_section(data))
    parts.append(_programs_section(data))
    parts.append(f'<h2 id="attempts">All attempts ({len(data.records)})</h2>' + _attempts_table(data))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p) + "\n"


def write_progress_page(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run's progress page (default RUN/progress.html, atomically); returns its path."""
    data = load_run(Path(run_dir))
    target = Path(out) if out is not None else Path(run_dir) / "progress.html"
    write_text_atomic(target, render_page(data))
    return target


# ----------------------------------------------------------------------------- the CLI


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evolve-report` subcommand to the harness CLI."""
    p = subparsers.add_parser(
        "evolve-report",
        help="draw an evolution run's progress page (HTML: BD-rate trend, lineage, cascade stages, tokens, cost)",
        description="Write the progress page of an evolution run (python -m harness evolve): BD-rate against x265 "
        "over attempts and time with the champion's line, the champion's lineage, the share of attempts stopped "
        "at each cascade stage, tokens and cost against the budgets, and a table of all attempts. One "
        "self-contained HTML file; may be run while the run is going on.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run's folder (evolve-runs/<run>)")
    p.add_argument("-o", "--output", type=Path, default=None, help="the HTML file (default: RUN_DIR/progress.html)")
    p.set_defaults(func=cli_evolve_report)


def cli_evolve_report(args: argparse.Namespace) -> int:
    print(write_progress_page(args.run_dir, args.output))
    return 0
