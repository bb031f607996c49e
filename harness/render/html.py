"""The HTML rendering of a report: one self-contained page (inline CSS and PNG plots, no external URL).

Header, leaderboard, rate-distortion plots and tables per clip, failures with their captured
text. Every string from the document is escaped (`esc`).
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.render.plots import rd_png, rdc_png
from harness.render.view import (
    ReportView,
    as_dict,
    as_float,
    as_list,
    bd_class,
    bd_words,
    coverage,
    esc,
    first_line,
    fmt_kbps,
    fmt_num,
    metric_label,
    nodeid_label,
    nodeid_params,
    ratio_words,
    short_date,
)

__all__ = ["CAPTURED_MAX_CHARS", "render_html"]

CAPTURED_MAX_CHARS = 6000

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
.flag{font-size:12px;color:#8a4b00;background:#fff3cd;padding:2px 4px;margin-top:2px}
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


def _meta_rows(view: ReportView) -> list[tuple[str, str]]:
    doc = view.doc
    machine = as_dict(doc.get("machine"))
    versions = as_dict(doc.get("versions"))
    git = as_dict(doc.get("git"))
    libs = as_dict(versions.get("ffmpeg_libraries"))
    commit = git.get("commit")
    dirty = git.get("dirty")
    git_text = (str(commit)[:12] if commit else "n/a") + (" (uncommitted changes)" if dirty else "")
    n_clips = len(view.clip_names())
    clips_text = (
        f"{view.settings.get('clip_set', 'n/a')}: {n_clips} clip{'s' if n_clips != 1 else ''}, "
        f"{fmt_num(view.settings.get('frames'), '.0f')} frames each at most"
        + (f"; {view.profile_text()}" if view.profile_text() else "")
        + "".join(f"; {c}: full range" for c in view.clip_names() if view.full_range(c))
    )
    ladder = ", ".join(fmt_num(v, "g") for v in as_list(view.suite.get("ladder_bpp")))
    rates = f"rate anchor {view.rate_anchor}" + (f"; ladder {ladder} bits/pixel" if ladder else "")
    anchors = ", ".join(str(a) for a in as_list(view.suite.get("compare_anchors"))) or "n/a"
    sandbox = as_dict(view.settings.get("sandbox"))
    cache = as_dict(view.settings.get("anchor_cache"))
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
        ("Run", short_date(doc.get("created_utc"))),
        (
            "Machine",
            (
                f"{machine.get('cpu', 'n/a')}, {machine.get('cores', 'n/a')} cores, "
                f"{machine.get('system', '')} {machine.get('release', '')}, Python {machine.get('python', 'n/a')}"
            ),
        ),
        ("Git commit", git_text),
        *([("Champions", view.champions_text() + " (each candidate vs its own track's)")] if view.champions_text() else []),
        ("Clip set", clips_text),
        *[(f"Left out: {clip}", f"not judged: {why}") for clip, why in view.dropped_clips().items()],
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
    """A BD-rate cell: an overall figure states its coverage ("5/13 clips") and names the clips
    it leaves out; a clip's result without a BD-rate shows its verdict (worse at every rate point,
    BD-quality) instead of a bare "n/a"."""
    bd = slot.get("bd_rate")
    title_parts = []
    clips = as_list(slot.get("clips"))
    excluded = as_dict(slot.get("excluded"))
    found = coverage(slot)
    if clips:
        title_parts.append(f"mean of {len(clips)} clip(s)")
    for clip, why in list(excluded.items())[:5]:
        title_parts.append(f"{clip}: {why}")
    if slot.get("warning"):
        title_parts.append(str(slot["warning"]))
    extra = ""
    if found and (note_excluded or found[2]):
        extra = f' <span class="small">({found[0]}/{found[1]} clips)</span>'
        if found[2]:
            extra += f'<div class="small">left out: {esc(", ".join(found[2]))}</div>'
    elif slot.get("warning") and as_float(bd) is not None:
        extra = ' <span class="small" title="see tooltip">⚠</span>'
    words = bd_words(bd)
    if as_float(bd) is None and (slot.get("dominance") or as_float(slot.get("bd_quality")) is not None):
        words = str(slot.get("summary") or words)
    title = f' title="{esc("; ".join(title_parts))}"' if title_parts else ""
    return f'<td class="{bd_class(bd)}"{title}>{esc(words)}{extra}</td>'


def _leaderboard(view: ReportView) -> str:
    metrics = view.bd_metrics
    champ_any = any(view.champion(n)[1] for n in view.candidates)
    head = ["#", "Candidate", "Verdict"] + [f"{metric_label(m)} vs {view.rate_anchor}" for m in metrics]
    cx_any = any(view.complexity(n) for n in view.candidates)
    if cx_any:
        head += ["Encode CPU vs x265", "Decode CPU vs x265"]
    if champ_any:
        head.append(f"{metric_label(view.primary)} vs champion")
    held_any = any(as_dict(as_dict(view.candidates[n]).get("bd_by_set")) for n in view.candidates)
    if held_any:
        head.append(f"{metric_label(view.primary)} public / held-out")
    head += [f"Worst clip ({metric_label(view.primary)})", "Source"]
    rows = [
        "<table class='leader'><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
    ]
    for rank, name in enumerate(view.order(), 1):
        cand = as_dict(view.candidates[name])
        css, words = view.verdict(name)
        first = view.first_failure(name)
        verdict = f'<span class="badge {css}">{esc(words)}</span>'
        reason = view.verdict_reason(name)
        if reason:
            verdict += f'<div class="small">{esc(reason[:200])}</div>'
        elif first:
            verdict += f'<div class="small">first: {esc(first_line(first[1], 140))}</div>'
        verdict += "".join(f'<div class="flag">⚠ {esc(flag[:300])}</div>' for flag in view.flags(name))
        cells = [f"<td class='n'>{rank}</td>", f"<td><b>{esc(name)}</b> <span class='small'>{esc(view.track_label(name))}</span></td>", f"<td>{verdict}</td>"]
        cells += [_bd_cell(view.overall(name, m)) for m in metrics]
        if cx_any:
            cells += [_ratio_cell(view.complexity(name), axis) for axis in ("encode", "decode")]
        if champ_any:
            champ, results = view.champion(name)
            slot = as_dict(results.get(view.primary))
            cell = _bd_cell(slot, note_excluded=False)
            if champ:
                cell = cell.replace("</td>", f' <span class="small">vs {esc(champ)}</span></td>')
            cells.append(cell)
        if held_any:
            cells.append(_held_out_cell(as_dict(cand.get("bd_by_set"))))
        worst = view.worst_clip(name)
        cells.append(
            f"<td>{esc(worst[0])}: <span class='{bd_class(worst[1])}'>{esc(bd_words(worst[1]))}</span></td>"
            if worst
            else "<td class='na'>n/a</td>"
        )
        sha = cand.get("sha256")
        size = as_float(cand.get("size_bytes"))
        total = as_float(as_dict(cand.get("totals")).get("decoder_inclusive_bytes"))
        src = (f"<code>{esc(str(sha)[:12])}</code>" if sha else "<span class='na'>n/a</span>") + (
            f" <span class='small'>ships {size / 1024:.1f} KiB</span>" if size is not None else ""
        ) + (
            f"<div class='small' title='shipped bytes + every bitstream, as CLIC counts a decoder'>"
            f"with its bitstreams {total / 1024:.1f} KiB</div>" if total is not None else ""
        )
        cells.append(f"<td>{src}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    rows.append("</tbody></table>")
    if not view.candidates:
        return "<p class='na'>No candidate was judged in this run.</p>"
    note = (
        f"<p class='small'>BD-rate: the mean over comparable clips of the bits a candidate needs at equal quality, "
        f"relative to {esc(view.rate_anchor)}; ↓ fewer bits is better, ↑ more bits is worse. "
        "Hover a cell for the clips it covers and why others are left out.</p>"
    )
    return "\n".join(rows) + note


def _ratio_cell(entry: Mapping, axis: str) -> str:
    """A complexity ratio with its place against the Pareto front; the hover names the CPU figure used."""
    text = ratio_words(entry, axis)
    place = as_dict(as_dict(entry.get("front")).get(axis))
    factor = as_float(place.get("complexity_factor"))
    title = f"CPU of the {axis} call per megapixel-frame over x265's, geometric mean over clips"
    if entry.get("cpu_field") == "cpu_s":
        title += " (whole sandboxed process: start-up and imports included)"
    if factor is not None and place.get("on_front") is False:
        title += f"; {factor:.3g} times the complexity of the front at the same or better BD-rate"
    return f"<td title='{esc(title)}'>{esc(text)}</td>"


def _complexity_section(view: ReportView) -> str:
    """The rate-distortion-complexity picture and how far each codec is from the Pareto front."""
    png, notes = rdc_png(view)
    if png is None:
        return f"<p class='na'>{esc('; '.join(notes))}</p>"
    caption = (
        "BD-rate against " + view.rate_anchor + " (primary metric) against each codec's encode and decode CPU time "
        "per megapixel-frame relative to x265 medium and its decoder, measured in this run (log scale). Ringed points "
        "and the step line: the Pareto front (no codec is both cheaper and better)."
    )
    if notes:
        caption += " " + "; ".join(notes)
    alt = "Rate-distortion-complexity: BD-rate against encode and decode complexity, Pareto front marked"
    return (
        f"<figure class='rd' id='rdc'><img alt='{esc(alt)}' src='data:image/png;base64,{png}'>"
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def _held_out_cell(by_set: dict) -> str:
    """Public and held-out BD-rate side by side; a large gap is flagged (tuned to the public clips?)."""
    if not by_set:
        return "<td class='na'>n/a</td>"
    public, held = by_set.get("public"), by_set.get("heldout")
    text = f"{esc(bd_words(public))} / {esc(bd_words(held))}"
    flag = by_set.get("flag")
    if flag:
        return f"<td class='bad' title='{esc(flag)}'>{text} ⚠</td>"
    return f"<td>{text}</td>"


def _clip_section(view: ReportView, clip: str, index: int) -> str:
    info = as_dict(view.clips.get(clip))
    sha = info.get("sha256")
    desc = (
        f"{fmt_num(info.get('width'), '.0f')}×{fmt_num(info.get('height'), '.0f')}, "
        f"{fmt_num(info.get('frames'), '.0f')} frames at {esc(info.get('fps', 'n/a'))} fps"
        + (f", {esc(info.get('codec'))}" if info.get("codec") else "")
        + (", <b>full range</b> (anchors signal it)" if view.full_range(clip) else "")
        + (f", sha256 <code>{esc(str(sha)[:16])}</code>" if sha else "")
    )
    png, notes = rd_png(view, clip)
    parts = [f"<section class='clip' id='clip-{index}'><h3>{esc(clip)}</h3><p class='small'>{desc}</p>"]
    caption = "; ".join(notes)
    if png:
        alt = f"Rate-distortion curves of {clip}: PSNR-YUV, SSIM-Y and VMAF against kbps"
        parts.append(
            f"<figure class='rd'><img alt='{esc(alt)}' src='data:image/png;base64,{png}'>"
            f"<figcaption>Candidates solid, anchors dashed; kbps on a log scale."
            f"{(' ' + esc(caption)) if caption else ''}</figcaption></figure>"
        )
    else:
        parts.append(
            f"<figure class='rd'><p class='na'>No rate-distortion data. {esc(caption)}</p></figure>"
        )
    # BD-rate table for this clip
    names = [n for n in view.order() if as_dict(as_dict(view.candidates[n]).get("bd")).get(clip) is not None]
    if names:
        head = "".join(f"<th>{esc(metric_label(m))} vs {esc(view.rate_anchor)}</th>" for m in view.bd_metrics)
        rows = [f"<table class='bd'><thead><tr><th>Candidate</th>{head}<th>Note</th></tr></thead><tbody>"]
        for name in names:
            slots = [view.clip_bd(name, clip, m) for m in view.bd_metrics]
            full = [
                f"{metric_label(m)}: {s['warning']}"
                for m, s in zip(view.bd_metrics, slots, strict=True)
                if s.get("warning")
            ]
            short = []
            for metric, slot in zip(view.bd_metrics, slots, strict=True):
                warning = str(slot.get("warning") or "")
                overlap = as_float(slot.get("overlap"))
                if "overlap only" in warning and overlap is not None:
                    short.append(f"{metric_label(metric)} quality ranges overlap {overlap:.0%}")
                elif warning:
                    short.append(f"{metric_label(metric)}: {first_line(warning, 90)}")
            note = (
                (f"<span title='{esc('; '.join(full))}'>⚠ {esc('; '.join(short))}</span>") if short else ""
            )
            cells = "".join(_bd_cell(s, note_excluded=False) for s in slots)
            rows.append(f"<tr><td>{esc(name)}</td>{cells}<td class='small'>{note}</td></tr>")
        rows.append("</tbody></table>")
        parts.append("".join(rows))
    parts.append(_points_table(view, clip))
    parts.append("</section>")
    return "\n".join(parts)


def _points_table(view: ReportView, clip: str) -> str:
    rows = []
    for name in view.order():
        points = [
            as_dict(p)
            for p in as_dict(as_dict(view.candidates[name]).get("points")).values()
            if as_dict(p).get("clip") == clip
        ]
        for p in sorted(points, key=lambda p: str(p.get("rung"))):
            m = as_dict(p.get("measurement"))
            metrics = as_dict(m.get("metrics"))
            enc, dec = as_dict(p.get("encode")), as_dict(p.get("decode"))
            rss = max((as_float(x.get("peak_rss_bytes")) or 0) for x in (enc, dec))
            status = (
                f"<span class='bad'>{esc(first_line(p.get('failure'), 120))}</span>"
                if p.get("failure")
                else "<span class='ok'>ok</span>"
            )
            rows.append(
                f"<tr><td>{esc(name)}</td><td>{esc(p.get('rung'))}</td><td class='n'>{fmt_kbps(p.get('target_bps'))}</td>"
                f"<td class='n'>{fmt_kbps(m.get('bitrate_bps'))}</td>"
                + "".join(
                    f"<td class='n'>{fmt_num(metrics.get(k), f)}</td>"
                    for k, f in (("psnr_yuv", ".2f"), ("ssim_y", ".4f"), ("vmaf", ".2f"))
                )
                + _call_cells(enc)
                + _call_cells(dec)
                + f"<td class='n'>{fmt_num(_max_of(enc, dec, 'import_s'), '.2f')}</td>"
                f"<td class='n'>{(f'{rss / 2**20:.0f}' if rss else 'n/a')}</td><td>{status}</td></tr>"
            )
    for anchor, points in as_dict(view.anchors.get(clip)).items():
        for p in as_list(points):
            p = as_dict(p)
            m = as_dict(p.get("measurement"))
            metrics = as_dict(m.get("metrics"))
            rows.append(
                f"<tr class='small'><td>{esc(anchor)} (anchor)</td><td>QP {esc(p.get('qp'))}</td><td class='n'>–</td>"
                f"<td class='n'>{fmt_kbps(m.get('bitrate_bps'))}</td>"
                + "".join(
                    f"<td class='n'>{fmt_num(metrics.get(k), f)}</td>"
                    for k, f in (("psnr_yuv", ".2f"), ("ssim_y", ".4f"), ("vmaf", ".2f"))
                )
                + f"<td class='n'>–</td><td class='n'>{fmt_num(p.get('encode_s'), '.2f')}</td>"
                f"<td class='n'>–</td><td class='n'>{fmt_num(p.get('decode_s'), '.2f')}</td><td class='n'>–</td>"
                f"<td class='n'>n/a</td><td>{'cached' if p.get('cached') else 'encoded'}</td></tr>"
            )
    if not rows:
        return ""
    head = (
        "<tr><th>Codec</th><th>Point</th><th>Target kbps</th><th>kbps</th><th>PSNR-YUV</th><th>SSIM-Y</th>"
        "<th>VMAF</th><th title='CPU seconds of the encode call alone (what the limits budget judges)'>Encode CPU s</th>"
        "<th title='wall seconds of the whole sandboxed process'>Encode wall s</th>"
        "<th title='CPU seconds of the decode call alone'>Decode CPU s</th><th>Decode wall s</th>"
        "<th title='wall seconds of importing the candidate (the larger of encode and decode)'>Import s</th>"
        "<th>Peak MiB</th><th>Status</th></tr>"
    )
    return (
        f"<details><summary>Rate points ({len(rows)})</summary><table class='points'><thead>{head}</thead>"
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )


def _call_cells(call: dict) -> str:
    """A call's own CPU seconds and its process's wall seconds; the call's wall time as a tooltip."""
    title = f"call {fmt_num(call.get('call_s'), '.3f')} s wall, import {fmt_num(call.get('import_s'), '.2f')} s"
    return (
        f"<td class='n' title='{esc(title)}'>{fmt_num(call.get('call_cpu_s'), '.2f')}</td>"
        f"<td class='n'>{fmt_num(call.get('wall_s'), '.2f')}</td>"
    )


def _max_of(a: dict, b: dict, key: str) -> float | None:
    values = [v for v in (as_float(a.get(key)), as_float(b.get(key))) if v is not None]
    return max(values) if values else None


def _captured(view: ReportView, nodeid: str, reason: object) -> str:
    """Everything recorded about a failed test: its full reason and the captured text of its call(s)."""
    cand_name, clip, rung = nodeid_params(nodeid)
    cand = as_dict(view.candidates.get(cand_name)) if cand_name else {}
    test = nodeid_label(nodeid).split("[", 1)[0]
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
        point = as_dict(as_dict(cand.get("points")).get(f"{clip}/{rung}"))
        if point.get("failure_details"):
            parts.append(("failure details", str(point["failure_details"])))
        call_parts("encode", as_dict(point.get("encode")))
        call_parts("decode", as_dict(point.get("decode")))
    elif test == "test_contract" or (cand_name and not clip):
        call_parts("check", as_dict(cand.get("check")))
    elif clip and test == "test_determinism":
        det = as_dict(as_dict(cand.get("determinism")).get(clip))
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


def _failures(view: ReportView) -> tuple[str, int]:
    """The failures section and the number of failed tests."""
    by_cand: dict[str | None, list[tuple[str, dict]]] = {}
    for nodeid, test in view.tests.items():
        if as_dict(test).get("outcome") == "failed":
            cand = nodeid_params(nodeid)[0]
            by_cand.setdefault(cand if cand in view.candidates else None, []).append((nodeid, as_dict(test)))
    for name in view.candidates:  # tests recorded only under the candidate
        for nodeid, test in view.candidate_tests(name).items():
            if as_dict(test).get("outcome") == "failed" and nodeid not in view.tests:
                by_cand.setdefault(name, []).append((nodeid, as_dict(test)))
    total = sum(len(v) for v in by_cand.values())
    if not total:
        return "<p class='ok'>No test failed.</p>", 0
    order = [n for n in view.order() if n in by_cand] + ([None] if None in by_cand else [])
    html_parts = []
    shown: dict[str, str] = {}
    anchor_id = 0
    for name in order:
        failures = by_cand[name]
        title = esc(name) if name else "Other tests"
        html_parts.append(
            f"<h3>{title} <span class='small'>{len(failures)} failed</span></h3><ul class='fails'>"
        )
        groups: dict[str, list[tuple[str, dict]]] = {}
        for nodeid, test in failures:
            groups.setdefault(str(test.get("reason") or ""), []).append((nodeid, test))
        for reason, members in groups.items():
            anchor_id += 1
            ids = ", ".join(f"<code>{esc(nodeid_label(n))}</code>" for n, _ in members)
            line = esc(first_line(reason, 300)) or "<span class='na'>no reason recorded</span>"
            text = _captured(view, members[0][0], reason)
            if text in shown:
                details = f"<div class='small'>captured text as for <a href='#{shown[text]}'>the failure above</a></div>"
            else:
                shown[text] = f"fail-{anchor_id}"
                details = f"<details><summary>captured text</summary><pre>{esc(text)}</pre></details>"
            html_parts.append(f"<li id='fail-{anchor_id}'>{ids}<br>{line}{details}</li>")
        html_parts.append("</ul>")
    return "\n".join(html_parts), total


def render_html(doc: Mapping) -> str:
    """One self-contained HTML page (inline CSS and PNG plots, no external URL) for a report document."""
    view = ReportView(doc if isinstance(doc, Mapping) else {})
    clips = view.clip_names()
    summary = as_dict(doc.get("summary")) if isinstance(doc, Mapping) else {}
    totals = ", ".join(f"{fmt_num(v, '.0f')} {esc(k)}" for k, v in summary.items()) or "no tests recorded"
    failures_html, n_failed = _failures(view)
    date = short_date(view.doc.get("created_utc"))
    meta = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in _meta_rows(view))
    nav_clips = " ".join(f"<a href='#clip-{i}'>{esc(c)}</a>" for i, c in enumerate(clips))
    clip_html = (
        "\n".join(_clip_section(view, clip, i) for i, clip in enumerate(clips))
        or "<p class='na'>No clips.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Codec harness report – {esc(date)}</title>
<style>{_CSS}</style></head>
<body>
<header>
<h1>Codec harness report</h1>
<p class="sub">{len(view.candidates)} candidate{"s" if len(view.candidates) != 1 else ""} on {len(clips)} clip{"s" if len(clips) != 1 else ""}; tests: {totals}</p>
<dl class="meta">{meta}</dl>
<nav><a href="#leaderboard">Leaderboard</a> <a href="#complexity">Complexity</a> <a href="#failures">Failures ({n_failed})</a> · clips: {nav_clips}</nav>
</header>
<section id="leaderboard"><h2>Leaderboard</h2>
{_leaderboard(view)}
</section>
<section id="complexity"><h2>Rate, distortion and complexity</h2>
{_complexity_section(view)}
</section>
<section id="clips"><h2>Rate-distortion per clip</h2>
{clip_html}
</section>
<section id="failures"><h2>Failures ({n_failed})</h2>
{failures_html}
</section>
<footer>Report schema version {esc(view.doc.get("schema_version", "n/a"))}; rendered by the codec harness from the JSON report alone.</footer>
</body></html>
"""
