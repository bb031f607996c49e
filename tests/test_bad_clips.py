"""Clips checked before judging (harness.session.check_clips, manifest entries in harness.clips): an
unusable clip among good ones is left out and named; it is never blamed on a candidate."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from harness.clips import resolve_clip_set
from harness.errors import ClipError, HarnessError
from harness.session import build_judge
from harness.suite import SuiteOptions

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "fixtures"
GOOD = SHARED / "svt_park_joy_160x90_10f.y4m"
TEN_BIT = SHARED / "10bit" / "netflix_sparks_480x270_5f_10bit.mkv"


@pytest.fixture
def mixed(tmp_path) -> Path:
    """A folder with one good clip, a 10-bit clip and a corrupt file."""
    if not GOOD.is_file() or not TEN_BIT.is_file():
        pytest.fail(f"development clips missing in {SHARED}", pytrace=False)
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(GOOD, folder / "park_joy.y4m")
    shutil.copy(TEN_BIT, folder / "deep.mkv")
    (folder / "broken.mp4").write_bytes(GOOD.read_bytes()[:64] + bytes(4096))
    return folder


def _options(tmp_path: Path, clips: str) -> SuiteOptions:
    return SuiteOptions(
        clips=clips, frames=2, sandbox="none", ledger=tmp_path / "ledger.jsonl", cache_dir=tmp_path / "cache",
        candidates=("x264_pyav",),
    )


def test_unusable_clips_are_left_out_and_named(tmp_path, mixed):
    judge, info = build_judge(_options(tmp_path, str(mixed)), REPO)
    assert list(judge.clips) == ["park_joy"] and list(judge.clip_sets) == ["park_joy"]
    dropped = info["settings"]["dropped_clips"]
    assert set(dropped) == {"deep", "broken"}
    assert "deep.mkv is yuv420p10le (10-bit)" in dropped["deep"]
    assert "broken.mp4" in dropped["broken"]


def test_a_set_of_unusable_clips_is_refused_naming_each(tmp_path, mixed):
    (mixed / "park_joy.y4m").unlink()
    with pytest.raises(HarnessError, match=r"no usable clip in the clip set 'clips': broken: .*; deep: .*10-bit"):
        build_judge(_options(tmp_path, str(mixed)), REPO)


def test_a_manifest_entry_that_cannot_be_fetched_is_left_out_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # where the run's manifest downloads go
    manifest = tmp_path / "set.toml"
    good_sha = hashlib.sha256(GOOD.read_bytes()).hexdigest()
    manifest.write_text(
        f'[[clip]]\nname = "park_joy"\nurl = "{GOOD.as_uri()}"\nsha256 = "{good_sha}"\n\n'
        f'[[clip]]\nname = "gone"\nurl = "{(tmp_path / "missing.y4m").as_uri()}"\nsha256 = "{"0" * 64}"\n'
    )
    config = REPO / "fixtures" / "clipsets.toml"
    with pytest.raises(ClipError, match="cannot download clip 'gone'"):
        resolve_clip_set(str(manifest), config=config, root=REPO, cache_dir=tmp_path / "c")
    problems: dict[str, str] = {}
    _, clips = resolve_clip_set(str(manifest), config=config, root=REPO, cache_dir=tmp_path / "c", problems=problems)
    assert [c.name for c in clips] == ["park_joy"] and list(problems) == ["gone"]
    judge, info = build_judge(_options(tmp_path, str(manifest)), REPO)
    assert list(judge.clips) == ["park_joy"]
    assert "cannot download clip 'gone'" in info["settings"]["dropped_clips"]["gone"]
