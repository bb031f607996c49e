"""HTML and Markdown renderings of a report, the comparison of two reports, the CLI, and a real browser."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.compare import compare_reports
from harness.markdown import md_code, md_escape
from harness.render import render_html, render_markdown, validate_report, write_renderings

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(__file__).parent / "data" / "report_small.json"
HOSTILE = "<script>alert(1)</script>"
BUS = "derf_bus_352x288_17f"


@pytest.fixture(scope="module")
def sample() -> dict:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


@pytest.fixture
def doc(sample) -> dict:
    return copy.deepcopy(sample)


@pytest.fixture(scope="module")
def sample_html(sample) -> str:
    return render_html(sample)


def rename_candidate(doc: dict, old: str, new: str) -> None:
    """Rename a candidate everywhere it appears: its entry, points, tests and node ids."""
    cand = doc["candidates"].pop(old)
    doc["candidates"][new] = cand
    for point in cand["points"].values():
        point["candidate"] = new
    tests = {}
    for nodeid, test in doc["tests"].items():
        tests[nodeid.replace(f"[{old}-", f"[{new}-").replace(f"[{old}]", f"[{new}]")] = test
    doc["tests"] = tests
    cand["tests"] = {
        k.replace(f"[{old}-", f"[{new}-").replace(f"[{old}]", f"[{new}]"): v for k, v in cand["tests"].items()
    }


def many_clips(sample: dict, n_clips: int = 13, names=("dct_inter", "x264_pyav")) -> dict:
    """The sample with `n_clips` clips (copies of its two) and only the candidates `names`."""
    doc = copy.deepcopy(sample)
    base = list(sample["clips"])
    doc["candidates"] = {n: doc["candidates"][n] for n in names}
    doc["tests"] = {
        k: v for k, v in doc["tests"].items() if any(f"[{n}-" in k or f"[{n}]" in k for n in names)
    }
    clips, anchors = {}, {}
    for i in range(n_clips):
        src = base[i % len(base)]
        name = f"clip{i:02d}_{src}"
        clips[name] = {**sample["clips"][src], "name": name}
        anchors[name] = copy.deepcopy(sample["anchors"][src])
    doc["clips"], doc["anchors"] = clips, anchors
    for cname in names:
        cand = doc["candidates"][cname]
        src_cand = sample["candidates"][cname]
        cand["points"], cand["bd"], cand["determinism"] = {}, {}, {}
        for i, name in enumerate(clips):
            src = base[i % len(base)]
            for point in src_cand["points"].values():
                if point["clip"] == src:
                    cand["points"][f"{name}/{point['rung']}"] = {**copy.deepcopy(point), "clip": name}
            cand["bd"][name] = copy.deepcopy(src_cand["bd"][src])
            cand["determinism"][name] = {**src_cand["determinism"][src], "clip": name}
    return doc


# ----------------------------------------------------------------------------- HTML


def test_html_is_self_contained(sample_html):
    assert sample_html.startswith("<!DOCTYPE html>")
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", sample_html, flags=re.IGNORECASE)
    assert refs, "expected the plots and anchors as src/href"
    for ref in refs:
        assert ref.startswith(("data:image/png;base64,", "#")), ref[:80]
    assert "http://" not in sample_html and "https://" not in sample_html
    assert "<script" not in sample_html.lower() and "<link" not in sample_html.lower()


def test_html_names_every_candidate_and_clip(sample, sample_html):
    for name in sample["candidates"]:
        assert f"<b>{name}</b>" in sample_html
    for clip in sample["clips"]:
        assert f"<h3>{clip}</h3>" in sample_html
    failed = sum(t["outcome"] == "failed" for t in sample["tests"].values())
    assert failed > 10 and "Leaderboard" in sample_html and f"Failures ({failed})" in sample_html
    assert sample["git"]["commit"][:12] in sample_html and sample["machine"]["cpu"] in sample_html
    assert f"PyAV {sample['versions']['av']}" in sample_html


def test_html_has_one_rate_distortion_plot_per_clip(sample, sample_html):
    figures = re.findall(
        r"<figure class='rd'><img alt='([^']*)' src='data:image/png;base64,([^']+)'>", sample_html
    )
    assert len(figures) == len(sample["clips"]) == 2
    for alt, data in figures:
        assert "PSNR-YUV, SSIM-Y and VMAF against kbps" in alt
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def bd_text(value: float) -> str:
    """A BD-rate as the report words it: negative = fewer bits = better."""
    return f"↓ {-value:.1f} % fewer bits" if value < 0 else f"↑ {value:.1f} % more bits"


def test_html_shows_bd_rate_with_arrows_and_words(sample, sample_html):
    cands = sample["candidates"]
    dct = cands["dct_inter"]["bd_overall"]["x265"]["psnr_yuv"]["bd_rate"]  # mean of 2 clips
    assert dct > 0 and bd_text(dct) in sample_html
    vs_champion = cands["x264_pyav"]["bd_vs_champion"]["overall"]["psnr_yuv"]["bd_rate"]
    assert vs_champion < 0 and bd_text(vs_champion) in sample_html
    assert '<span class="badge bad">failed</span>' in sample_html  # verdicts replace the counts
    failed = cands["zlib_lossless"]["summary"]["failed"]
    total = sum(cands["zlib_lossless"]["summary"].values())
    plain = copy.deepcopy(sample)
    for cand in plain["candidates"].values():
        cand.pop("verdict")
    page = render_html(plain)
    assert failed == 10 and f"failed {failed} of {total} tests" in page and "passed all 37 tests" in page


def test_html_lists_failures_with_captured_text(sample, sample_html):
    failures = sample_html[sample_html.index('<section id="failures">') :]
    nodeid = f"test_rate[zlib_lossless-{BUS}-r0]"
    assert nodeid in failures
    reason = sample["tests"][f"benchmarks/test_codecs.py::{nodeid}"]["reason"]
    assert re.search(r"\d+\.\d kbps is \d+\.\d\d x the target 550\.8 kbps", reason)
    assert reason.split("Failed: ")[-1] in failures
    assert failures.count("<details><summary>captured text</summary><pre>") >= 5
    assert "ValueError: cannot reach 550752 bit/s" in failures  # coarse's encoder at its lowest rate


def test_hostile_names_and_reasons_are_escaped(doc):
    rename_candidate(doc, "coarse", HOSTILE)
    nodeid = next(k for k in doc["tests"] if f"[{HOSTILE}-" in k)
    doc["tests"][nodeid]["reason"] = "<img src=x onerror=alert(2)> & </pre></details><b>owned</b>"
    doc["candidates"][HOSTILE]["tests"][nodeid] = doc["tests"][nodeid]
    point = next(iter(doc["candidates"][HOSTILE]["points"].values()))
    point["encode"]["stderr"] = "</pre><iframe src=javascript:alert(3)>"
    doc["clips"][BUS]["codec"] = "<svg onload=alert(4)>"
    validate_report(doc)
    page = render_html(doc)
    for raw in (HOSTILE, "<img src=x", "<iframe", "<svg", "<b>owned</b>"):
        assert raw not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    markdown = render_markdown(doc)
    assert "<script>" not in markdown and "<img" not in markdown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown


MD_HOSTILE = "a|b `c` *d* _e_ [f](http://x) <i>g</i> @h\n# i ~~j~~ \\"


def test_md_escape_keeps_a_table_row_whole_and_inert():
    cell = md_escape(MD_HOSTILE)
    row = f"| {cell} | x |"
    assert "\n" not in cell and re.sub(r"\\.", "", row).count("|") == 3  # only the row's own pipes
    for raw in ("`c`", "*d*", "_e_", "[f](", "<i>", "@h", "~~j"):
        assert raw not in cell, raw
    assert "&lt;i&gt;" in cell and "@\u200bh" in cell
    assert md_escape("x" * 300, 50) == "x" * 49 + "…"  # cut before escaping: never half an escape
    assert md_escape(None) == "" and md_escape("# h").startswith("\\#") and md_escape("- a").startswith("\\-")
    assert md_escape("1. a").startswith("1\\.") and md_escape("---").startswith("\\")


def test_md_code_is_a_code_span_unless_unsafe():
    assert md_code("test_rate[a-b-r0]") == "`test_rate[a-b-r0]`"
    assert md_code("a`b") == "`a'b`"  # a backtick cannot end the span early
    for unsafe in ("a|b", "<b>", "@x", "a&b"):
        out = md_code(unsafe)
        assert not out.startswith("`") and out == md_escape(unsafe.replace("`", "'"))
    assert md_code("x" * 120, 10) == "`" + "x" * 9 + "…`" and md_code("x" * 120, None) == f"`{'x' * 120}`"


def test_missing_and_nan_values_show_as_na(doc):
    doc["candidates"]["dct_inter"]["bd_overall"]["x265"]["psnr_yuv"]["bd_rate"] = None
    doc["candidates"]["dct_inter"]["bd_overall"]["x265"]["ssim_y"]["bd_rate"] = float("nan")
    point = doc["candidates"]["dct_inter"]["points"][f"{BUS}/r0"]
    point["measurement"]["metrics"]["psnr_yuv"] = None
    point["measurement"]["metrics"]["vmaf"] = float("inf")
    point["encode"]["wall_s"] = None
    del doc["candidates"]["x264_pyav"]["bd_overall"]["x265"]
    page, markdown = render_html(doc), render_markdown(doc)
    row = markdown.splitlines()[next(i for i, ln in enumerate(markdown.splitlines()) if "dct\\_inter" in ln)]
    assert row.count("n/a") >= 2
    text = re.sub(r"data:image/png;base64,[^']+", "", page)
    assert not re.search(r"\b(nan|inf|None)\b", text, flags=re.IGNORECASE)
    assert "n/a" in text


@pytest.mark.parametrize(
    "doc_in", [{}, {"schema_version": 1}, {"candidates": {"x": {}}, "clips": {"c": {}}}, []]
)
def test_partial_documents_never_crash(doc_in):
    assert "<!DOCTYPE html>" in render_html(doc_in)
    assert render_markdown(doc_in).startswith("### Codec harness")


# ----------------------------------------------------------------------------- Markdown


def test_markdown_for_2_candidates_and_13_clips_fits_a_comment(sample):
    doc = many_clips(sample)
    validate_report(doc)
    markdown = render_markdown(doc)
    lines = markdown.splitlines()
    assert len(lines) < 60, markdown
    assert "2 candidates on 13 clips" in lines[0]
    assert all(len(line) < 600 for line in lines)


def test_markdown_shows_arrows_words_verdicts_and_worst_clip(doc):
    for cand in doc["candidates"].values():
        cand.pop("verdict", None)  # without verdicts the counts show
    overall = doc["candidates"]["dct_inter"]["bd_overall"]["x265"]["psnr_yuv"]
    overall["bd_rate"] = -12.34
    markdown = render_markdown(doc)
    row = next(line for line in markdown.splitlines() if line.startswith("| **dct\\_inter**"))
    assert "✅ passed all 37 tests" in row
    assert "↓ 12.3 % fewer bits" in row
    worst = overall["worst_clip"]
    assert worst == BUS and overall["values"][BUS] > overall["values"]["svt_park_joy_160x90_10f"]
    assert f"derf\\_bus\\_352x288\\_17f: {bd_text(overall['values'][BUS])}" in row  # worst clip, its BD-rate
    zlib = next(line for line in markdown.splitlines() if "**zlib\\_lossless** first failure" in line)
    reason = doc["tests"][f"benchmarks/test_codecs.py::test_rate[zlib_lossless-{BUS}-r0]"]["reason"]
    assert reason.split("Failed: ")[-1] in zlib
    assert "❌ failed 10 of 37 tests" in markdown


def test_markdown_shows_bd_rate_against_the_champion_when_present(sample, doc):
    recorded = sample["candidates"]["x264_pyav"]["bd_vs_champion"]["overall"]["psnr_yuv"]["bd_rate"]
    assert f"{bd_text(recorded)} (vs dct\\_inter)" in render_markdown(sample)
    doc["champion"] = None
    for cand in doc["candidates"].values():
        cand.pop("bd_vs_champion", None)
        cand.pop("verdict", None)
    assert "champion" not in render_markdown(doc)
    per_clip = copy.deepcopy(doc["candidates"]["x264_pyav"]["bd"][BUS]["x265"])
    doc["candidates"]["x264_pyav"]["bd_vs_champion"] = {  # the shape harness/report.py writes
        "champion": "dct_inter",
        "per_clip": {BUS: per_clip},
        "overall": {
            m: {"bd_rate": -40.0, "clips": [BUS], "excluded": {}, "values": {BUS: -40.0}, "worst_clip": BUS}
            for m in per_clip
        },
        "champion_sha256": doc["candidates"]["dct_inter"]["sha256"],
    }
    validate_report(doc)
    markdown = render_markdown(doc)
    assert "PSNR-YUV vs champion" in markdown
    assert "↓ 40.0 % fewer bits (vs dct\\_inter)" in markdown
    assert "PSNR-YUV vs champion" in render_html(doc)


def test_an_adoption_verdict_replaces_the_counts_when_present(doc):
    doc["candidates"]["x264_pyav"]["verdict"] = {
        "decision": "rejected",
        "reason": "BD-rate vs champion +8.2 %",
    }
    doc["candidates"]["dct_inter"]["verdict"] = "adopted"
    markdown = render_markdown(doc)
    # The sample predates tracks: both read as native (no library codecs recorded).
    assert "| **dct\\_inter** (native) | ✅ adopted |" in markdown
    assert "| **x264\\_pyav** (native) | ❌ rejected |" in markdown
    assert "- **x264\\_pyav** rejected: BD-rate vs champion +8.2 %" in markdown
    page = render_html(doc)
    assert (
        '<span class="badge bad">rejected</span><div class="small">BD-rate vs champion +8.2 %</div>' in page
    )


def test_markdown_caps_long_candidate_lists(doc):
    base = doc["candidates"]["dct_inter"]
    for i in range(30):
        doc["candidates"][f"gen{i:02d}"] = copy.deepcopy(base)
    markdown = render_markdown(doc)
    assert len(markdown.splitlines()) < 60
    assert re.search(r"… and \d+ more candidates", markdown)


# ----------------------------------------------------------------------------- compare


def test_compare_flags_flipped_tests_and_bd_rate_direction(sample):
    old, new = copy.deepcopy(sample), copy.deepcopy(sample)
    nodeid = f"benchmarks/test_codecs.py::test_rate[dct_inter-{BUS}-r0]"
    new["tests"][nodeid] = {"outcome": "failed", "reason": "AssertionError: 700.0 kbps is 1.27 x the target"}
    new["candidates"]["dct_inter"]["tests"][nodeid] = new["tests"][nodeid]
    flipped_back = "benchmarks/test_codecs.py::test_determinism[x264_pyav-svt_park_joy_160x90_10f]"
    assert new["tests"][flipped_back]["outcome"] == "passed"
    old["tests"][flipped_back] = {"outcome": "failed", "reason": "Failed: two encodes gave different bytes"}
    old["candidates"]["x264_pyav"]["tests"][flipped_back] = old["tests"][flipped_back]
    # The overall figure is derived from the clips' (harness.results.mean_bd): move every clip's.
    moved = []
    for clip, per_anchor in new["candidates"]["dct_inter"]["bd"].items():
        slot = per_anchor["x265"]["psnr_yuv"]
        if slot["comparable"]:
            slot["bd_rate"] -= 13.9  # better
            moved.append(clip)
    vmaf_was = old["candidates"]["dct_inter"]["bd"][BUS]["x265"]["vmaf"]["bd_rate"]
    new["candidates"]["dct_inter"]["bd"][BUS]["x265"]["vmaf"]["bd_rate"] = vmaf_was + 5.2  # worse
    new["candidates"]["dct_inter"]["points"][f"{BUS}/r1"]["measurement"]["metrics"]["psnr_yuv"] -= 0.5
    new["candidates"]["x264_pyav"]["points"][f"{BUS}/r2"].update(
        failure="decode failed (timeout)", measurement=None
    )

    cmp = compare_reports(old, new)
    assert cmp.comparable and not cmp.new_candidates and not cmp.removed_candidates
    by_what = {(c.candidate, c.clip, c.what): c for c in cmp.changes}
    flip = by_what[("dct_inter", BUS, f"test_rate[dct_inter-{BUS}-r0]")]
    assert (flip.old, flip.new, flip.direction) == ("passed", "failed", "worse")
    back = by_what[
        ("x264_pyav", "svt_park_joy_160x90_10f", "test_determinism[x264_pyav-svt_park_joy_160x90_10f]")
    ]
    assert back.direction == "better"
    overall = by_what[("dct_inter", None, "BD-rate vs x265, PSNR-YUV")]
    assert overall.direction == "better" and overall.delta == "-13.9 pp"
    vmaf = by_what[("dct_inter", BUS, "BD-rate vs x265, VMAF")]
    assert vmaf.direction == "worse" and vmaf.delta == "+5.2 pp"
    psnr = by_what[("dct_inter", BUS, "r1 PSNR-YUV")]
    assert psnr.direction == "worse" and psnr.delta == "-0.50 dB"
    broken = by_what[("x264_pyav", BUS, "r2: round trip")]
    assert (broken.old, broken.new, broken.direction) == ("ok", "failed", "worse")
    assert {c.candidate for c in cmp.changes} == {"dct_inter", "x264_pyav"}

    markdown = cmp.to_markdown()
    # better: the overall PSNR-YUV and each moved clip; worse: the flipped test, the clip's VMAF, the
    # overall VMAF it moves (derived, +5.2 / clips), and r1's PSNR-YUV
    assert f"#### dct\\_inter: {1 + len(moved)} better, 4 worse" in markdown
    assert "❌ worse (+5.2 pp)" in markdown and "✅ better (-13.9 pp)" in markdown
    text = cmp.to_text()
    assert f"WORSE   {BUS}: test_rate[dct_inter-{BUS}-r0]: passed -> failed" in text


def test_compare_same_report_has_no_changes(sample):
    cmp = compare_reports(sample, copy.deepcopy(sample))
    assert cmp.changes == [] and cmp.comparable
    assert "No change" in cmp.to_markdown()


def test_compare_warns_when_not_like_for_like(sample):
    old, new = copy.deepcopy(sample), copy.deepcopy(sample)
    new["clips"][BUS]["sha256"] = "0" * 64
    for point in new["anchors"]["svt_park_joy_160x90_10f"]["x265"]:
        point["anchor_id"] = "x265-slow-0000000000000000"
    rename_candidate(new, "coarse", "coarse2")
    cmp = compare_reports(old, new)
    assert not cmp.comparable
    assert any(f"clip {BUS}: source differs" in w for w in cmp.warnings)
    assert any("anchor x265 on svt_park_joy_160x90_10f: anchor id differs" in w for w in cmp.warnings)
    assert cmp.new_candidates == ["coarse2"] and cmp.removed_candidates == ["coarse"]
    assert "Not comparable like for like" in cmp.to_markdown()


def test_compare_flags_a_changed_source_with_identical_bitstreams(sample):
    new = copy.deepcopy(sample)
    new["candidates"]["dct_inter"]["sha256"] = "f" * 64
    cmp = compare_reports(sample, new)
    assert any(
        "dct_inter: the source changed but all 8 bitstreams are byte-identical" in w for w in cmp.warnings
    )


# ----------------------------------------------------------------------------- files and CLI


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_write_renderings_beside_the_report(tmp_path, sample):
    html_path, md_path = write_renderings(sample, tmp_path / "run-1.json")
    assert html_path == tmp_path / "run-1.html" and md_path == tmp_path / "run-1.md"
    assert html_path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert md_path.read_text(encoding="utf-8").startswith("### Codec harness")
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_render_writes_html_and_markdown(tmp_path):
    report = tmp_path / "latest.json"
    shutil.copy(SAMPLE, report)
    result = run_cli("render", str(report))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "latest.html").read_text(encoding="utf-8").count("<figure class='rd'>") == 2
    assert "dct\\_inter" in (tmp_path / "latest.md").read_text(encoding="utf-8")
    assert "wrote" in result.stderr

    result = run_cli("render", str(report), "--html", str(tmp_path / "x" / "page.html"), "--markdown", "-")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x" / "page.html").exists()
    assert result.stdout.startswith("### Codec harness")


def test_cli_errors_are_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    doc = json.loads(SAMPLE.read_text(encoding="utf-8"))
    doc["candidates"]["zlib_lossless"]["points"][f"{BUS}/r0"]["measurement"]["bitrate_bps"] = "fast"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    for args in (
        ("render", str(bad)),
        ("compare", str(SAMPLE), str(bad)),
        ("render", str(tmp_path / "none.json")),
    ):
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert "measurement.bitrate_bps: 'fast' is not of type 'number'" in run_cli("render", str(bad)).stderr
    assert not (tmp_path / "bad.html").exists()
    result = run_cli("render", str(bad), "--no-validate")
    assert result.returncode == 0, result.stderr
    assert "<h3>derf_bus_352x288_17f</h3>" in (tmp_path / "bad.html").read_text(encoding="utf-8")
    assert run_cli().returncode == 2  # no command: usage error


def test_cli_compare(tmp_path):
    new = json.loads(SAMPLE.read_text(encoding="utf-8"))
    # The overall figure is derived (harness.results.mean_bd): move every clip's by 5 points.
    for per_anchor in new["candidates"]["x264_pyav"]["bd"].values():
        per_anchor["x265"]["psnr_yuv"]["bd_rate"] += 5.0
    (tmp_path / "new.json").write_text(json.dumps(new), encoding="utf-8")
    result = run_cli("compare", str(SAMPLE), str(tmp_path / "new.json"))
    assert result.returncode == 0, result.stderr
    assert "### Report comparison" in result.stdout and "❌ worse (+5.0 pp)" in result.stdout
    result = run_cli(
        "compare", str(SAMPLE), str(tmp_path / "new.json"), "--format", "text", "--fail-on-worse"
    )
    assert result.returncode == 1
    assert "WORSE   all clips: BD-rate vs x265, PSNR-YUV" in result.stdout
    result = run_cli("compare", str(SAMPLE), str(SAMPLE), "--fail-on-worse", "-o", str(tmp_path / "same.md"))
    assert result.returncode == 0 and "No change" in (tmp_path / "same.md").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- a real browser


def test_report_displays_in_headless_chromium(tmp_path):
    """scripts/screenshot_report renders the sample and screenshots it; the picture is not blank."""
    if shutil.which("chromium") is None:
        pytest.fail(
            "chromium is not installed; the HTML report is checked in a real browser: apt-get install -y chromium"
        )
    from PIL import Image

    report = tmp_path / "report.json"
    shutil.copy(SAMPLE, report)
    out = tmp_path / "shot.png"
    env = {**os.environ, "PYTHON": sys.executable, "WINDOW": "1400,2000"}
    result = subprocess.run(
        [str(REPO / "scripts" / "screenshot_report"), str(report), str(out)],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert out.exists() and (tmp_path / "shot.html").exists()
    with Image.open(out) as image:
        assert image.size == (1400, 2000)
        small = image.convert("RGB").resize((350, 500))
    colours = small.getcolors(maxcolors=1 << 20)
    assert len(colours) > 500, f"only {len(colours)} distinct colours: blank page?"
    commonest = max(count for count, _ in colours)
    assert commonest < 0.9 * 350 * 500, "one colour covers over 90 % of the page"
