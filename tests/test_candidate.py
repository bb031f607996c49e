"""Candidates are found by reading files; the contract text is the README's; config is validated."""

from __future__ import annotations

import json
import re

import pytest

from harness.candidate import CONTRACT_TEXT, discover_candidates, select_candidates
from harness.config import load_suite_config
from harness.errors import CandidateError, ConfigError
from harness.report import write_json_atomic
from tests.conftest import REPO

GOOD = '"""Does nothing useful."""\n\ndef encode(video, target_bitrate):\n    return b""\n\ndef decode(bitstream):\n    pass\n'


def test_readme_states_the_same_contract():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- contract:start -->\n```text\n(.*?)```\n<!-- contract:end -->", readme, re.S)
    assert block, "README lacks the contract block"
    assert block.group(1) == CONTRACT_TEXT


def test_discovery_reads_files_without_importing(tmp_path):
    (tmp_path / "good.py").write_text(GOOD)
    # Importing this would raise; discovery must only parse it.
    (tmp_path / "boom.py").write_text('"""Raises at import."""\nraise SystemExit(3)\ndef encode(v, r): pass\ndef decode(b): pass\n')
    (tmp_path / "broken.py").write_text('"""Bad."""\ndef encode(:\n')
    (tmp_path / "nodoc.py").write_text("def encode(v, r): pass\ndef decode(b): pass\n")
    (tmp_path / "nodecode.py").write_text('"""Half a codec."""\ndef encode(v, r): pass\n')
    (tmp_path / "conftest.py").write_text(GOOD)
    (tmp_path / "_private.py").write_text(GOOD)
    pkg = tmp_path / "pkgcodec"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""A package codec."""\nfrom .impl import encode, decode\n')
    (pkg / "impl.py").write_text("def encode(v, r): pass\ndef decode(b): pass\n")
    (pkg / "weights.bin").write_bytes(b"\0" * 1000)
    found = {c.name: c for c in discover_candidates(tmp_path)}
    assert sorted(found) == ["boom", "broken", "conftest", "good", "nodecode", "nodoc", "pkgcodec"]
    assert found["good"].problem is None and found["good"].summary == "Does nothing useful."
    assert found["boom"].problem is None  # only the sandbox finds out it raises
    assert found["broken"].problem.startswith("syntax error in broken.py line 2")
    assert "no docstring" in found["nodoc"].problem
    assert found["nodecode"].problem == "the module defines no `decode` function"
    assert "conftest.py is not a candidate" in found["conftest"].problem
    assert found["pkgcodec"].is_package and found["pkgcodec"].problem is None
    assert found["pkgcodec"].size_bytes > 1000  # data files count towards what a candidate ships
    before = found["pkgcodec"].sha256
    (pkg / "weights.bin").write_bytes(b"\1" * 1000)
    assert discover_candidates(tmp_path)[-1].sha256 != before


def test_select_names_and_unknown_names(tmp_path):
    (tmp_path / "a.py").write_text(GOOD)
    (tmp_path / "b.py").write_text(GOOD)
    found = discover_candidates(tmp_path)
    assert [c.name for c in select_candidates(found, ["b"])] == ["b"]
    with pytest.raises(CandidateError, match="unknown candidate.*zz; known: a, b"):
        select_candidates(found, ["zz"])
    with pytest.raises(CandidateError, match="does not exist"):
        discover_candidates(tmp_path / "nope")


def test_suite_config_is_validated(tmp_path):
    config = load_suite_config(REPO / "fixtures" / "suite.toml")
    assert config.ladder_bpp == (0.02, 0.05, 0.1, 0.2)
    assert config.max_overshoot == pytest.approx(1.10)
    bad = re.sub(r"(?m)^min_psnr_y = .*$", 'min_psnr_y = "high"', (REPO / "fixtures" / "suite.toml").read_text())
    (tmp_path / "suite.toml").write_text(bad)
    with pytest.raises(ConfigError, match="quality.min_psnr_y"):
        load_suite_config(tmp_path / "suite.toml")
    (tmp_path / "suite.toml").write_text("[rate]\nladder_bpp = []\n")
    with pytest.raises(ConfigError, match="ladder_bpp"):
        load_suite_config(tmp_path / "suite.toml")


def test_json_writes_are_atomic(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"a": float("nan")})  # NaN is refused, and the old file survives
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
