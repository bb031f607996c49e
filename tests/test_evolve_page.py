"""The progress page of an evolution run (harness/evolve/page.py): its content from a synthetic run, the
CLI, and the page in headless Chromium (DOM and a screenshot that is not blank)."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.__main__ import main
from harness.evolve.database import BD_EDGES, COMPLEXITY_EDGES, Program, ProgramDatabase
from harness.evolve.page import champion_steps, elites, lineage, load_run, nice_ticks, write_progress_page

HOSTILE = "<script>alert(1)</script>"
START = datetime(2026, 12, 6, 6, 0, 0, tzinfo=UTC)
INITIAL_BD = 273.17
PRICE_IN, PRICE_OUT = 3.0, 15.0  # dollars per million tokens

# attempt: (verdict, stage, BD-rate vs x265 or None, parent attempt or None (the initial champion), minutes)
PLAN: dict[int, tuple[str, str, float | None, int | None, float]] = {
    1: ("adopted", "verdict", 180.0, None, 4.0),
    2: ("failed", "screen", None, 1, 4.5),
    3: ("rejected", "verdict", 240.0, 1, 8.0),
    4: ("invalid", "extract", None, 1, 8.2),
    5: ("adopted", "verdict", 120.5, 1, 12.0),
    6: ("failed", "screen", None, 5, 11.0),  # finished before attempt 5 (concurrent evaluations)
    7: ("rejected", "identical", None, 5, 12.5),
    8: ("rejected", "verdict", 300.0, 5, 16.0),
    9: ("failed", "suite", None, 5, 17.0),
    10: ("adopted", "verdict", 60.25, 5, 20.0),
    11: ("failed", "screen", None, 10, 20.5),
    12: ("invalid", "check", None, 10, 21.0),
    13: ("rejected", "verdict", 75.0, 10, 24.0),
    14: ("failed", "screen", None, 10, 24.5),
    15: ("rejected", "verdict", 130.0, 5, 28.0),
    16: ("adopted", "verdict", 44.8, 13, 32.0),  # a parent from the database that was not adopted
    17: ("failed", "screen", None, 16, 32.5),
    18: ("rejected", "verdict", 50.0, 16, 36.0),
    19: ("failed", "screen", None, 16, 36.5),
    20: ("rejected", "verdict", 61.0, 16, 41.0),  # the time axis runs on to 45 min
}
# encode complexity (CPU per pixel relative to x265) of the fully judged attempts
COMPLEXITY = {1: 2.1, 3: 3.5, 5: 4.2, 8: 0.8, 10: 6.5, 13: 1.3, 15: 9.0, 16: 7.8, 18: 14.0, 20: 5.1}
STAGE_COUNTS = {"extract": 1, "identical": 1, "check": 1, "screen": 6, "suite": 1, "verdict": 10}


def stamp(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def name_of(n: int) -> str:
    return HOSTILE if n == 20 else f"evo_20261206_06{n:02d}00_{n}"


def make_record(n: int) -> dict:
    verdict, stage, bd, parent_attempt, minutes = PLAN[n]
    tin, tout = 9000 + 250 * n, 3000 + 100 * n
    full = stage in ("suite", "verdict")
    record = {
        "attempt": n, "candidate": name_of(n),
        "parent": "jpeg_planes" if parent_attempt is None else name_of(parent_attempt),
        "parent_attempt": parent_attempt, "island": n % 2, "inspirations": [],
        "verdict": verdict, "decision": "adopted" if verdict == "adopted" else "rejected", "stage": stage,
        "bd_vs_anchor": bd, "encode_complexity": COMPLEXITY.get(n),
        "decode_complexity": None, "usage": {"input_tokens": tin, "output_tokens": tout},
        "tokens": tin + tout, "cost_usd": (tin * PRICE_IN + tout * PRICE_OUT) / 1e6,
        "started_utc": stamp(START + timedelta(minutes=minutes - 3)),
        "finished_utc": stamp(START + timedelta(minutes=minutes)),
        "judge_s": 95.0 if full else 4.0, "screen_s": 3.5 if stage not in ("extract", "identical", "check") else None,
        "suite_s": 90.0 if full else None, "eval_node": "node-a" if n % 2 else "node-b",
    }
    if n <= 3:  # records written before issue 17: no island, node, screen time or parent attempt
        for key in ("island", "eval_node", "screen_s", "parent_attempt", "inspirations"):
            del record[key]
    return record


def make_run(root: Path, *, attempts: bool = True, extra_lines: str = "") -> Path:
    run = root / "run"
    (run / "attempts").mkdir(parents=True)
    settings = {
        "started_utc": stamp(START),
        "config": {"model": {"name": "claude-test-model"},
                   "suite": {"track": "native", "clips": "small", "frames": 3},
                   "stop": {"iterations": 40, "max_total_tokens": 1_000_000, "max_cost_usd": 5.0, "patience": 10}},
        "initial_champion": {"name": "jpeg_planes", "seq": 1, "bd_vs_anchor": INITIAL_BD},
    }
    (run / "run.json").write_text(json.dumps(settings), encoding="utf-8")
    if attempts:
        order = sorted(PLAN, key=lambda n: PLAN[n][4])  # completion order
        lines = [json.dumps(make_record(n)) for n in order]
        (run / "attempts.jsonl").write_text("\n".join(lines) + "\n" + extra_lines, encoding="utf-8")
        seeds = [Program(None, "jpeg_planes", "0" * 64, "/nowhere/jpeg_planes.py", None, None, island, "verdict",
                         "adopted", INITIAL_BD, None, stamp(START)) for island in (0, 1)]
        programs = seeds + [
            Program(n, name_of(n), f"{n:064x}", f"/nowhere/{n}.py", make_record(n)["parent"], PLAN[n][3], n % 2,
                    PLAN[n][1], PLAN[n][0], PLAN[n][2], COMPLEXITY.get(n), make_record(n)["finished_utc"])
            for n in order
        ]
        (run / "programs.jsonl").write_text("".join(json.dumps(p.to_json()) + "\n" for p in programs),
                                            encoding="utf-8")
    return run


@pytest.fixture
def run(tmp_path) -> Path:
    return make_run(tmp_path)


@pytest.fixture
def page(run) -> str:
    return write_progress_page(run).read_text(encoding="utf-8")


def svg_of(page: str, kind: str) -> str:
    match = re.search(rf'<svg class="plot" data-kind="{kind}".*?</svg>', page, flags=re.DOTALL)
    assert match, f"no {kind} plot"
    return match.group(0)


def expected_total_tokens() -> int:
    return sum(make_record(n)["tokens"] for n in PLAN)


# ----------------------------------------------------------------------------- content


def test_every_attempt_is_a_point_in_both_plots(page):
    for kind in ("attempts", "time"):
        svg = svg_of(page, kind)
        points = re.findall(r'<g class="pt( nobd)?( offscale)? (\w+) stage-(\w+)" data-attempt="(\d+)"', svg)
        assert sorted(int(p[4]) for p in points) == list(range(1, 21))
        for nobd, _, outcome, stage, n in points:
            verdict, want_stage, bd, _, _ = PLAN[int(n)]
            assert (outcome, stage) == (verdict, want_stage)
            assert (nobd == " nobd") == (bd is None), n
        assert sum(p[0] == " nobd" for p in points) == 10
        assert len(re.findall(r'class="adoptlabel"', svg)) == 4  # the adopted ones are numbered
        assert "no BD-rate" in svg and "lower is better" in svg
    assert ">attempt</text>" in svg_of(page, "attempts")
    assert ">minutes since the run started</text>" in svg_of(page, "time")
    assert "negative is better" in page


def test_points_sit_at_their_bd_rate_on_the_axis(page):
    """The y position of each judged point is linear in its BD-rate (the scale is the axis's)."""
    svg = svg_of(page, "attempts")
    ys = {}
    for n in (1, 5, 10, 16):  # adopted: circles
        m = re.search(rf'data-attempt="{n}"><title>[^<]*</title><circle cx="([\d.]+)" cy="([\d.]+)"', svg)
        assert m, n
        ys[n] = float(m.group(2))
    slope = (ys[16] - ys[1]) / (44.8 - 180.0)
    assert slope < 0  # lower BD-rate drawn higher up
    assert ys[5] == pytest.approx(ys[1] + slope * (120.5 - 180.0), abs=0.15)
    assert ys[10] == pytest.approx(ys[1] + slope * (60.25 - 180.0), abs=0.15)
    ticks = [float(t.replace(",", "")) for t in re.findall(r'class="ytick"[^>]*>([-\d.,]+)<', svg)]
    assert ticks[0] <= 44.8 and ticks[-1] >= 300.0


def test_champion_line_steps_at_each_adoption(page, run):
    for kind in ("attempts", "time"):
        m = re.search(r'<polyline class="champion" data-bd="([^"]+)"', svg_of(page, kind))
        assert m
        assert [float(v) for v in m.group(1).split()] == [INITIAL_BD, 180.0, 120.5, 60.25, 44.8]
        # the line holds the champion's value until the last attempt (20, the last to finish), not beyond
        line = re.search(r'<polyline class="champion"[^>]* points="([^"]+)"', svg_of(page, kind)).group(1)
        last = re.search(r'data-attempt="20"><title>[^<]*</title><circle cx="([\d.]+)"', svg_of(page, kind))
        assert line.split()[-1].split(",")[0] == last.group(1)
    records = load_run(run).records
    steps = champion_steps(INITIAL_BD, records, lambda r: float(r["attempt"]))
    assert [(x, bd) for x, bd, _ in steps] == [(0.0, INITIAL_BD), (1.0, 180.0), (5.0, 120.5), (10.0, 60.25),
                                               (16.0, 44.8)]


def test_a_run_shorter_than_a_minute(run):
    """Seconds-long runs (scripted tests): the axis is a fraction of a minute, the line ends at the last point."""
    records = [json.loads(line) for line in (run / "attempts.jsonl").read_text(encoding="utf-8").splitlines()]
    for r in records:
        r["finished_utc"] = stamp(START + timedelta(seconds=PLAN[r["attempt"]][4]))  # "minutes" as seconds
    (run / "attempts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    svg = svg_of(write_progress_page(run).read_text(encoding="utf-8"), "time")
    ticks = re.findall(r'class="xtick"[^>]*>([^<]+)<', svg)
    assert ticks == ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
    line = re.search(r'<polyline class="champion"[^>]* points="([^"]+)"', svg).group(1)
    last = re.search(r'data-attempt="20"><title>[^<]*</title><circle cx="([\d.]+)"', svg).group(1)
    assert line.split()[-1].split(",")[0] == last


def test_time_axis_is_minutes_since_the_start(run):
    steps = champion_steps(INITIAL_BD, load_run(run).records,
                           lambda r: (datetime.fromisoformat(r["finished_utc"]) - START).total_seconds() / 60)
    assert [x for x, _, _ in steps] == [0.0, 4.0, 12.0, 20.0, 32.0]


def test_rate_complexity_plot_rings_the_elite_of_each_cell(page, run):
    # the page's elites are the program database's (same cells, same order of merit)
    mine = elites(load_run(run).records, BD_EDGES, COMPLEXITY_EDGES)
    cells = ProgramDatabase(run / "programs.jsonl").cells()
    assert len(mine) == 9 and {c: r["attempt"] for c, r in mine.items()} == {
        c: p.attempt for c, p in cells.items() if p.attempt is not None}
    svg = svg_of(page, "complexity")
    points = dict(re.findall(r'<g class="cx( elite)? \w+" data-attempt="(\d+)"', svg)[i][::-1]
                  for i in range(len(COMPLEXITY)))
    assert sorted(int(n) for n in points) == sorted(COMPLEXITY)
    # attempt 20 shares its cell (BD [50, 100) %, complexity [4, 8)x) with attempt 10, which is better
    assert {int(n) for n, elite in points.items() if elite} == set(COMPLEXITY) - {20}
    assert [t for t in re.findall(r'class="xtick"[^>]*>([^<]+)<', svg)] == ["0.5×", "1×", "2×", "4×", "8×", "16×"]
    x = {int(n): float(cx) for n, cx in re.findall(r'data-attempt="(\d+)"><title>[^<]*</title>'
                                                     r'(?:<circle[^>]*fill="none"[^>]*/>)?<circle cx="([\d.]+)"', svg)}
    octave = (x[5] - x[1]) / math.log2(4.2 / 2.1)  # a log scale: the same width per doubling
    assert x[18] - x[13] == pytest.approx(octave * math.log2(14.0 / 1.3), abs=0.2)


def test_stage_shares_counts_and_percentages(page):
    table = page[page.index('<table class="stages">'):]
    table = table[: table.index("</table>")]
    for stage, count in STAGE_COUNTS.items():
        row = re.search(rf'<tr data-stage="{stage}">.*?</tr>', table).group(0)
        cells = re.findall(r'<td class="num">([^<]+)</td>', row)
        assert cells == [str(count), f"{100 * count / 20:.1f} %"], stage
    bar = re.search(r'<svg class="stagebar".*?</svg>', page, flags=re.DOTALL).group(0)
    segs = dict(re.findall(r'data-stage="(\w+)" data-count="(\d+)"', bar))
    assert {k: int(v) for k, v in segs.items()} == STAGE_COUNTS
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="4" width="([\d.]+)"', bar)]
    assert sum(widths) == pytest.approx(892, abs=0.5) and max(widths) == pytest.approx(892 / 2, abs=0.1)


def test_tokens_and_cost_totals_and_budgets(page):
    tokens = expected_total_tokens()
    cost = sum(make_record(n)["cost_usd"] for n in PLAN)
    assert tokens == 12000 * 20 + 350 * 210
    assert f'<b data-total="tokens">{tokens:,}</b>' in page
    assert f'<b data-total="cost">${cost:.4f}</b>' in page
    assert f"{tokens:,} of 1,000,000 ({tokens / 1e4:.1f} %)" in page
    assert f"${cost:.2f} of $5.00 ({cost / 5 * 100:.1f} %)" in page
    assert "20 of 40 (50.0 %)" in page
    bars = re.findall(r'<rect class="tokbar (\w+)"', page)
    assert len(bars) == 20 and bars.count("adopted") == 4


def test_lineage_goes_from_the_initial_champion_to_the_current_one(run, page):
    chain = lineage(load_run(run))
    assert [s["attempt"] for s in chain] == [None, 1, 5, 10, 13, 16]
    assert [s["bd"] for s in chain] == [INITIAL_BD, 180.0, 120.5, 60.25, 75.0, 44.8]
    assert chain[0]["name"] == "jpeg_planes" and chain[0]["verdict"] == "initial"
    assert [s["verdict"] for s in chain[1:]] == ["adopted", "adopted", "adopted", "rejected", "adopted"]
    block = page[page.index('<div class="lineage">'):]
    block = block[: block.index("</div>")]
    assert re.findall(r'data-attempt="([^"]+)"', block) == ["–", "1", "5", "10", "13", "16"]
    assert "+273.2 %" in block and "+44.8 %" in block and "(-30.2 pt)" in block  # 44.8 - 75.0


def test_attempts_table_has_every_attempt_and_old_records_show_dashes(page):
    table = page[page.index('<table class="attempts">'):]
    rows = re.findall(r'<tr class="(\w+)" data-attempt="(\d+)">(.*?)</tr>', table)
    assert [int(n) for _, n, _ in rows] == list(range(1, 21))
    cells = {int(n): re.findall(r"<td[^>]*>(.*?)</td>", body) for _, n, body in rows}
    assert cells[16][3] == "0" and cells[16][11] == "node-b" and cells[16][6] == "+44.80 %"
    assert cells[16][2] == "evo_20261206_061300_13 (#13)"
    assert cells[2][3] == "–" and cells[2][11] == "–" and cells[2][6] == "–"  # an old record
    assert cells[16][8] == f"{make_record(16)['tokens']:,}" and cells[16][10] == "95.0"


def test_hostile_names_are_escaped(page):
    assert HOSTILE not in page and "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_program_database_section(page):
    table = page[page.index('<table class="programs">'):]
    rows = re.findall(r"<tr><td class=\"num\">(\d)</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>"
                      r"<td>([^<]*)</td>", table)
    # every attempt by parity and the seed on each island; judged: the seed, and adopted or rejected with a
    # BD-rate (even: 8 10 16 18 20, odd: 1 3 5 13 15)
    assert rows == [("0", "11", "6", "evo_20261206_061600_16"), ("1", "11", "6", "evo_20261206_061300_13")]


def test_empty_run_says_no_attempts_yet(tmp_path):
    run = make_run(tmp_path, attempts=False)
    page = write_progress_page(run).read_text(encoding="utf-8")
    assert 'id="no-attempts"' in page and "No attempts yet" in page
    assert '<svg class="plot"' not in page
    assert "jpeg_planes" in page and "+273.2 %" in page and "0 of 1,000,000 (0.0 %)" in page


def test_malformed_lines_are_noted_not_fatal(tmp_path):
    run = make_run(tmp_path, extra_lines='not json at all\n["a list"]\n{"attempt": 21, "candidate": "torn')
    page = write_progress_page(run, tmp_path / "out" / "p.html").read_text(encoding="utf-8")
    notes = page[page.index('<div class="notes">'):]
    assert "attempts.jsonl line 21: not JSON" in notes
    assert "attempts.jsonl line 22: not an attempt record; skipped" in notes
    assert "attempts.jsonl line 23: incomplete last line" in notes
    assert len(re.findall(r'<tr class="\w+" data-attempt=', page)) == 20


def test_hundreds_of_attempts_keep_labels_apart(tmp_path):
    """300 attempts, 60 adopted: the adopted ones are numbered only where a label has room."""
    run = make_run(tmp_path, attempts=False)
    records, best = [], INITIAL_BD
    for n in range(1, 301):
        adopted = n % 5 == 0
        best = best * 0.98 if adopted else best
        bd = best if adopted else (best * (1 + (n % 7) / 5) if n % 3 else None)  # 80 without a BD-rate
        records.append({"attempt": n, "candidate": f"evo_{n}", "verdict": "adopted" if adopted else "rejected",
                        "stage": "verdict" if bd is not None else "screen", "bd_vs_anchor": bd,
                        "encode_complexity": 0.5 + (n % 11), "finished_utc": stamp(START + timedelta(minutes=n))})
    (run / "attempts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    page = write_progress_page(run).read_text(encoding="utf-8")
    for kind in ("attempts", "time", "complexity"):
        svg = svg_of(page, kind)
        assert len(re.findall(r'<g class="(?:pt|cx)', svg)) == (300 if kind != "complexity" else 300 - 80)
        labels = [(float(x), float(y), text) for x, y, text in
                  re.findall(r'<text class="adoptlabel" x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]+)<', svg)]
        assert 5 < len(labels) < 60, kind
        for i, (x1, y1, t1) in enumerate(labels):
            for x2, y2, t2 in labels[i + 1:]:
                apart = abs(x1 - x2) >= 0.31 * 11 * (len(t1) + len(t2)) or abs(y1 - y2) >= 11
                assert apart, (kind, t1, t2)


def test_records_of_any_shape_do_not_break_the_page(tmp_path):
    """Fields of unexpected types or values are shown as they are or as "–", never a crash."""
    run = make_run(tmp_path, attempts=False)
    odd = [["x"], {"a": 1}, "text", True, None, -1, 1e300, float("nan"), float("inf"), "2026-99-99T00:00:00Z"]
    keys = ["candidate", "parent", "parent_attempt", "island", "verdict", "stage", "bd_vs_anchor", "encode_complexity",
            "tokens", "cost_usd", "usage", "started_utc", "finished_utc", "judge_s", "eval_node"]
    records = [{"attempt": i + 1, **{k: odd[(i + j) % len(odd)] for j, k in enumerate(keys)}} for i in range(len(odd))]
    records.append({"attempt": 11, "bd_vs_anchor": 1e17, "verdict": "adopted", "finished_utc": "2026-12-06T06:01:00Z"})
    records.append({"attempt": 12, "bd_vs_anchor": 1e17 + 16, "verdict": "rejected", "encode_complexity": 1e-300})
    (run / "attempts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    settings = json.loads((run / "run.json").read_text(encoding="utf-8"))
    (run / "run.json").write_text(json.dumps({**settings, "config": ["not", "a", "dict"], "initial_champion": 3}),
                                  encoding="utf-8")
    page = write_progress_page(run).read_text(encoding="utf-8")
    assert len(re.findall(r'<tr class="\w+" data-attempt=', page)) == 12
    assert "&lt;script" not in page and page.rstrip().endswith("</html>")


def test_nice_ticks():
    assert nice_ticks(0, 20, 10, integer=True) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert nice_ticks(0, 21, 8, integer=True) == [0, 5, 10, 15, 20, 25]
    assert nice_ticks(0, 3, 10, integer=True) == [0, 1, 2, 3]  # never a fractional attempt
    assert nice_ticks(44.8, 300, 6) == [0, 50, 100, 150, 200, 250, 300]
    assert nice_ticks(-35, -12, 6) == [-35, -30, -25, -20, -15, -10]
    assert nice_ticks(0, 40, 10) == [0, 5, 10, 15, 20, 25, 30, 35, 40]
    assert nice_ticks(5, 5, 6) == [4.4, 4.6, 4.8, 5.0, 5.2, 5.4, 5.6]  # one value: a span around it
    assert nice_ticks(0, 0, 6) == [-1, -0.5, 0, 0.5, 1]
    for lo, hi in ((1e17, 1e17 + 16), (1e17, 1e17 + 1), (-1e308, 1e308), (0, 1e-300)):
        ticks = nice_ticks(lo, hi, 6)  # ends, at whatever magnitude
        assert 2 <= len(ticks) <= 30 and ticks == sorted(set(ticks)), (lo, hi, ticks)


# ----------------------------------------------------------------------------- the CLI


def test_cli_writes_the_page_and_prints_its_path(run, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["evolve-report", str(run), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert main(["evolve-report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "progress.html") and (run / "progress.html").is_file()


def test_cli_usage_errors_are_one_line_and_status_2(tmp_path, capsys):
    assert main(["evolve-report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "evolve-report: error:" in err and "is not a folder" in err
    assert main(["evolve-report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no run.json" in err


# ----------------------------------------------------------------------------- a real browser


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    if shutil.which("chromium") is None:
        pytest.fail("chromium is not installed; the progress page is checked in a real browser: "
                    "apt-get install -y chromium")
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def test_page_displays_in_headless_chromium(run, tmp_path):
    import cv2
    import numpy as np

    html = write_progress_page(run)
    url = html.resolve().as_uri()
    dom = chromium("--dump-dom", url, profile=tmp_path / "profile1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert text.count('<svg class="plot"') == 3 and text.count('<polyline class="champion"') == 2
    assert len(re.findall(r'<g class="pt', text)) == 40
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>" not in text
    shot = tmp_path / "shot.png"
    result = chromium(f"--screenshot={shot}", "--window-size=1100,2600", url, profile=tmp_path / "profile2")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2600, 1100)
    colours = np.unique(image.reshape(-1, 3) // 8, axis=0)
    assert len(colours) > 200, f"only {len(colours)} distinct colours: blank page?"
    # the outcome colours are drawn (BGR): adopted green, failed orange, rejected blue
    for bgr in ((0x73, 0x9E, 0x00), (0x00, 0x9F, 0xE6), (0xB2, 0x72, 0x00)):
        close = np.all(np.abs(image.astype(int) - np.array(bgr)) <= 6, axis=2)
        assert close.sum() > 40, f"colour {bgr} hardly on the page"
    white = np.all(image >= 250, axis=2).mean()
    assert white < 0.95, "the page is nearly all white"
