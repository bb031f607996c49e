"""Profiles (`--profile quick|standard`): data in fixtures/suite.toml, the clip sets they read, the run
they give (clips, frames, what the report records), the gate's and adoption's profile, and the
reports' naming of the profile and of full-range clips."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness.adoption import AdoptionError
from harness.adoption.recording import check_profile
from harness.clips import ClipStore, resolve_clip_set
from harness.config import load_suite_config
from harness.errors import ClipError, ConfigError
from harness.gate import decision_profile
from harness.render import render_html, render_markdown
from harness.session import apply_profile, build_judge
from harness.suite import SuiteOptions

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "fixtures" / "suite.toml"
CLIPSETS = REPO / "fixtures" / "clipsets.toml"

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def suite():
    return load_suite_config(SUITE)


def test_shipped_profiles(suite):
    assert suite.default_profile == "quick" and suite.decision_profile == "standard"
    quick, standard = suite.profile("quick"), suite.profile("standard")
    assert suite.profile(None) == quick
    assert quick.clips == "default" and quick.frames is None  # [frames] default: today's quick run
    assert standard.clips == "standard" and standard.frames >= 120  # the default clips at full length
    assert suite.to_json()["profiles"]["standard"]["clips"] == "standard"
    with pytest.raises(ConfigError, match="unknown profile 'fast'; .*defines: quick, standard"):
        suite.profile("fast")


def test_the_profile_fills_in_what_was_not_given(suite):
    options, profile, over = apply_profile(SuiteOptions(), suite)
    assert (profile.name, options.clips, options.frames, over) == ("quick", "default", 10, [])
    options, profile, over = apply_profile(SuiteOptions(profile="standard"), suite)
    assert (profile.name, options.clips, options.frames, over) == ("standard", "standard", 300, [])
    options, _, over = apply_profile(SuiteOptions(profile="standard", clips="shared", frames=4), suite)
    assert (options.clips, options.frames, over) == ("shared", 4, ["clips", "frames"])


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ('clips = "standard"\n', 'clips = "standard"\nframe = 3\n', r"unknown key\(s\) \['frame'\] in \[profiles.standard\]"),
        ("frames = 300", "frames = 0", r"`profiles.standard.frames` = 0 must be a whole number >= 1"),
        ('decisions = "standard"', 'decisions = "full"', r"`profiles.decisions` = 'full' is not one of the profiles"),
        ('clips = "default"\n', "", r"missing `profiles.quick.clips`"),
    ],
)
def test_profile_errors_name_the_key(tmp_path, old, new, error):
    text = SUITE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "suite.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=error):
        load_suite_config(path)


def test_the_standard_clip_set():
    """The default clips whole, and 50-60 frames of the shared 540p-1080p clips."""
    name, clips = resolve_clip_set("standard", config=CLIPSETS, root=REPO)
    by_name = {c.name: c for c in clips}
    assert name == "standard" and list(by_name)[:3] == ["bigbuckbunny", "bikes", "carphone"]
    assert all(by_name[c].frames is None for c in ("bigbuckbunny", "bikes", "carphone"))
    shared = [c for c in clips if c.frames is not None]
    assert len(shared) >= 2 and all(30 <= c.frames <= 60 for c in shared)
    assert all(c.path.is_file() and c.path.parent == (REPO.parent / "shared" / "fixtures").resolve() for c in shared)
    # a clip's frame cap is what the run reads of it, whatever the profile's frames
    store = ClipStore()
    flower = by_name["mdn_flower_960x540_150f"]
    video = store.get(flower, 300).video
    assert (video.width, video.height, video.frames) == (960, 540, 60)
    assert store.get(flower, 5).video.frames == 5


@pytest.mark.parametrize(
    ("entry", "error", "kind"),
    [
        ('{ name = "a", file = "x.mkv" }', "give either `package` or `folder`", ConfigError),
        ('{ name = "a", folder = ".", package = "p", file = "x.mkv" }', "give either `package` or `folder`", ConfigError),
        ('{ name = "a", folder = ".", file = "x.mkv", frames = 0 }', r"frames = 0 is not a whole number >= 1", ConfigError),
        ('{ name = "a", file = 3, folder = "." }', "each clip needs a `name` and a `file`", ConfigError),
        ('{ name = "a", folder = ".", file = "missing.mkv" }', r"clip 'a' reads .*missing.mkv, which does not exist", ClipError),
        ('{ name = "a", package = "no-such-wheel-xyz", file = "x.mkv" }', "'no-such-wheel-xyz' wheel, which is not installed", ClipError),
    ],
)
def test_listed_clip_errors_name_the_set_and_clip(tmp_path, entry, error, kind):
    config = tmp_path / "clipsets.toml"
    config.write_text(f"[sets.mine]\ndescription = 'test'\nclips = [{entry}]\n", encoding="utf-8")
    with pytest.raises(kind, match=error):
        resolve_clip_set("mine", config=config, root=tmp_path)


def test_a_run_records_its_profile(tmp_path):
    common = {"sandbox": "none", "ledger": tmp_path / "ledger.jsonl", "cache_dir": tmp_path / "c", "candidates": ("dct_inter",)}
    judge, info = build_judge(SuiteOptions(profile="standard", frames=2, **common), REPO)
    settings = info["settings"]
    assert settings["profile"] == "standard" and settings["profile_overrides"] == ["frames"]
    assert settings["clip_set"] == "standard" and settings["frames"] == judge.max_frames == 2
    assert list(judge.clips)[:3] == ["bigbuckbunny", "bikes", "carphone"] and len(judge.clips) >= 5
    judge, info = build_judge(SuiteOptions(**common), REPO)
    assert info["settings"]["profile"] == "quick" and "profile_overrides" not in info["settings"]
    assert info["settings"]["clip_set"] == "default" and judge.max_frames == 10
    with pytest.raises(ConfigError, match="unknown profile 'slow'"):
        build_judge(SuiteOptions(profile="slow", **common), REPO)


def test_the_plugin_takes_the_profile(pytester):
    config = pytester.parseconfig("-p", "harness.plugin", "--profile", "standard", "--frames", "30")
    options = SuiteOptions.from_config(config)
    assert options.profile == "standard" and options.clips is None and options.frames == 30
    assert options.to_pytest_args() == ["--profile", "standard", "--frames", "30"]
    assert SuiteOptions.from_config(pytester.parseconfig("-p", "harness.plugin")).profile is None  # quick


def test_gate_and_adoption_decide_on_the_standard_profile(tmp_path):
    assert decision_profile(REPO) == "standard"
    assert decision_profile(tmp_path) == "standard"  # a project without fixtures/: the harness's own
    report = Path("run.json")
    check_profile({"settings": {"profile": "standard"}}, "standard", report)
    for settings, said in [
        ({"profile": "quick"}, "judged on the quick profile; adoption decisions use the standard profile"),
        ({"profile": "standard", "profile_overrides": ["clips"]}, "the standard profile with clips given over it"),
        ({}, "no profile"),
    ]:
        with pytest.raises(AdoptionError, match=said):
            check_profile({"settings": settings}, "standard", report)


def test_gate_cli_runs_the_standard_profile(tmp_path, monkeypatch):
    """The gate's suite options: the decisions profile unless --profile is given, --clips over it."""
    from harness import gate

    seen = []

    def fake_run(options, repo, pytest_args, python, result):
        seen.append(options)
        raise gate.GateError("stop here")

    monkeypatch.setattr(gate, "_run_the_suite", fake_run)
    monkeypatch.setattr(gate, "changed_candidates", lambda repo, base: (["x"], []))
    monkeypatch.setattr(gate, "_gate_ledger", lambda repo, base, given, tmp, notes: tmp_path / "ledger.jsonl")
    monkeypatch.setattr(gate, "_gate_config", lambda *a, **k: None)
    monkeypatch.setattr(gate, "_note_judge_changes", lambda *a, **k: None)
    monkeypatch.setattr(gate, "_suite_candidates", lambda *a, **k: ["x"])
    (tmp_path / "ledger.jsonl").write_text("")
    for kwargs, expect in [({}, ("standard", None)), ({"profile": "quick", "clips": "shared"}, ("quick", "shared"))]:
        with pytest.raises(gate.GateError, match="stop here"):
            gate.run_gate(REPO, **kwargs)
        assert (seen[-1].profile, seen[-1].clips) == expect


def _report(raw: dict, **settings) -> dict:
    doc = copy.deepcopy(raw)
    doc["settings"].update(settings)
    return doc


def test_reports_name_the_profile_and_full_range_clips():
    raw = json.loads((REPO / "tests" / "data" / "report_small.json").read_text())
    clip = next(iter(raw["clips"]))
    plain = _report(raw, profile="standard")
    assert "full range" not in render_html(plain) and "full range" not in render_markdown(plain)
    assert "profile standard" in render_markdown(plain) and "profile standard" in render_html(plain)
    full = _report(raw, profile="quick", profile_overrides=["frames"])
    full["clips"][clip]["color_range"] = "pc"
    md, page = render_markdown(full), render_html(full)
    assert f"clip `{clip}` is **full range**" in md and "profile quick (frames given over it)" in md
    assert "<b>full range</b>" in page and f"{clip}: full range" in page


def test_a_listed_clip_that_is_not_there_is_left_out_and_named(tmp_path):
    """A checkout without ../shared (e.g. CI on GitHub) runs the standard profile's other clips and says
    which were left out (settings.dropped_clips, shown in every report)."""
    config = tmp_path / "clipsets.toml"
    shared = (REPO.parent / "shared" / "fixtures").resolve()
    config.write_text(
        "[sets.mine]\ndescription = 'test'\nclips = [\n"
        f"  {{ name = 'park', folder = '{shared}', file = 'svt_park_joy_160x90_10f.y4m', frames = 3 }},\n"
        "  { name = 'gone', folder = 'nowhere', file = 'gone.mkv' },\n]\n",
        encoding="utf-8",
    )
    problems: dict[str, str] = {}
    _, clips = resolve_clip_set("mine", config=config, root=tmp_path, problems=problems)
    assert [c.name for c in clips] == ["park"] and list(problems) == ["gone"]
    assert "gone.mkv, which does not exist here" in problems["gone"]
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    for name in ("suite.toml", "anchors.toml", "adoption.toml", "complexity.toml"):
        if (REPO / "fixtures" / name).exists():
            (fixtures / name).write_text((REPO / "fixtures" / name).read_text())
    config.rename(fixtures / "clipsets.toml")
    options = SuiteOptions(clips="mine", fixtures_dir=fixtures, sandbox="none", candidates=("dct_inter",),
                           ledger=tmp_path / "ledger.jsonl", cache_dir=tmp_path / "c", candidates_dir=REPO / "candidates")
    judge, info = build_judge(options, tmp_path)
    assert list(judge.clips) == ["park"] and judge.max_frames == 10
    assert "gone.mkv, which does not exist here" in info["settings"]["dropped_clips"]["gone"]


def test_calibration_script_reads_x264_against_x265_from_a_report(tmp_path):
    """scripts/calibration REPORT: x264's BD-rate against x265 per clip and the mean, as bd_rate computes it."""
    import subprocess
    import sys

    from harness.bdrate import bd_rate

    report = REPO / "tests" / "data" / "report_small.json"
    out = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "calibration"), str(report), "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=True,
    )
    figures = json.loads(out.read_text())
    doc = json.loads(report.read_text())
    expected = []
    for clip, anchors in doc["anchors"].items():
        pairs = {
            a: [(p["measurement"]["bitrate_bps"], p["measurement"]["metrics"]["psnr_yuv"]) for p in anchors[a]]
            for a in ("x265", "x264")
        }
        want = bd_rate(pairs["x265"], pairs["x264"]).bd_rate
        assert figures["clips"][clip]["x264"]["psnr_yuv"] == pytest.approx(want, abs=1e-9)
        assert f"| {clip} |" in run.stdout and f"{want:+.1f} %" in run.stdout
        expected.append(want)
    overall = figures["overall"]["x264"]["psnr_yuv"]
    assert overall["mean"] == pytest.approx(sum(expected) / len(expected)) and overall["clips"] == len(expected)
    assert "OUTSIDE the plausible band +15..+70 %" in run.stdout  # 5 frames: x264 close to x265
    empty = copy.deepcopy(doc)
    empty["anchors"] = {}
    (tmp_path / "empty.json").write_text(json.dumps(empty))
    none = subprocess.run([sys.executable, str(REPO / "scripts" / "calibration"), str(tmp_path / "empty.json")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert none.returncode == 2 and "holds no anchor curves" in none.stderr
