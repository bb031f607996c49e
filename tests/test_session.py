"""harness.session: a run built from its options (clip sets, held-out merge, champion, Judge, run info),
and the plugin's wrapping of its errors as pytest usage errors. Nothing is encoded here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.candidate import discover_candidates
from harness.errors import HarnessError
from harness.ledger import Ledger, LedgerEntry
from harness.plugin import SuiteSession
from harness.session import build_judge
from harness.suite import SuiteOptions

REPO = Path(__file__).resolve().parents[1]

pytest_plugins = ["pytester"]


def options(tmp_path: Path, **kw) -> SuiteOptions:
    return SuiteOptions(**{"sandbox": "none", "ledger": tmp_path / "ledger.jsonl", "cache_dir": tmp_path / "c", **kw})


def test_a_plain_run(tmp_path):
    judge, info = build_judge(options(tmp_path, candidates=("dct_inter",)), REPO, run_id="shared-id")
    assert list(judge.candidates) == ["dct_inter"] and judge.champion is None
    assert list(judge.clips) == ["bigbuckbunny", "bikes", "carphone"]
    assert set(judge.clip_sets.values()) == {"public"}
    assert judge.run_info is info and info["champion"] is None
    settings = info["settings"]
    assert settings["clip_set"] == "default" and settings["frames"] == judge.max_frames == 10
    assert settings["candidates_dir"] == str(REPO / "candidates")
    assert settings["sandbox"]["mode"] == "none"
    assert judge.run_id == "shared-id" and judge.reuse_results
    assert list(judge.anchor_specs) == list(judge.config.compare_anchors)


def test_heldout_clips_are_renamed_and_tagged(tmp_path):
    judge, info = build_judge(options(tmp_path, heldout="default", frames=2, rerun=True), REPO)
    assert list(judge.clips) == [
        "bigbuckbunny", "bikes", "carphone", "heldout-bigbuckbunny", "heldout-bikes", "heldout-carphone",
    ]
    assert judge.clip_sets["bikes"] == "public" and judge.clip_sets["heldout-bikes"] == "heldout"
    assert info["settings"]["clip_set"] == "default + held-out default" and info["settings"]["frames"] == 2
    assert not judge.reuse_results


def test_the_champion_joins_the_run(tmp_path):
    found = {c.name: c for c in discover_candidates(REPO / "candidates")}
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append(LedgerEntry(candidate="dct_inter", source_sha256=found["dct_inter"].sha256, decision="adopted",
                              reason="test"))
    judge, info = build_judge(options(tmp_path, candidates=("x264_pyav",)), REPO)
    assert list(judge.candidates) == ["x264_pyav", "dct_inter"] and judge.champion == "dct_inter"
    assert info["champion"] == {
        "name": "dct_inter", "sha256": found["dct_inter"].sha256, "ledger_seq": 1, "track": "native"
    }
    assert info["champions"] == {"native": info["champion"], "open": None}
    assert judge.champions == {"native": "dct_inter"}

    # a changed source is compared all the same, with a warning; a missing one is not compared
    cands = tmp_path / "cands"
    shutil.copytree(REPO / "candidates", cands)
    (cands / "dct_inter.py").write_text((cands / "dct_inter.py").read_text() + "\n# changed\n")
    judge, info = build_judge(options(tmp_path, candidates_dir=cands), REPO)
    assert judge.champion == "dct_inter" and "source changed since its adoption" in info["champion"]["warning"]
    (cands / "dct_inter.py").unlink()
    judge, info = build_judge(options(tmp_path, candidates_dir=cands), REPO)
    assert judge.champion is None and "not in the candidates folder" in info["champion"]["warning"]


def test_user_errors_raise_harness_errors(tmp_path):
    with pytest.raises(HarnessError, match="--frames must be at least 1, got -1"):
        build_judge(options(tmp_path, frames=-1), REPO)
    with pytest.raises(HarnessError, match="--frames must be at least 1, got 0"):  # not "the default"
        build_judge(options(tmp_path, frames=0), REPO)
    with pytest.raises(HarnessError, match="nope"):
        build_judge(options(tmp_path, candidates=("nope",)), REPO)
    with pytest.raises(HarnessError):
        build_judge(options(tmp_path, clips="no-such-set"), REPO)
    fixtures = tmp_path / "fixtures"
    shutil.copytree(REPO / "fixtures", fixtures)
    anchors = (fixtures / "anchors.toml").read_text()
    (fixtures / "anchors.toml").write_text(anchors[: anchors.index("[svtav1]")])  # suite.toml compares with it
    with pytest.raises(HarnessError, match="that anchors.toml lacks"):
        build_judge(options(tmp_path, fixtures_dir=fixtures), REPO)


def test_the_plugin_turns_them_into_usage_errors(pytester, tmp_path):
    config = pytester.parseconfig("-p", "harness.plugin", "--frames", "-1", "--sandbox", "none",
                                  "--ledger", str(tmp_path / "ledger.jsonl"), "--fixtures-dir", str(REPO / "fixtures"),
                                  "--candidates-dir", str(REPO / "candidates"))
    with pytest.raises(pytest.UsageError, match="--frames must be at least 1, got -1"):
        _ = SuiteSession(config).judge
