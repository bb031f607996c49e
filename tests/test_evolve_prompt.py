"""The prompt (harness/evolve/prompt.py): deterministic, hashed, bounded, saying what was cut."""

from __future__ import annotations

import hashlib

import pytest

from harness.candidate import CONTRACT_TEXT
from harness.evolve.prompt import AttemptView, ChampionView, PromptInputs, build_prompt

pytestmark = pytest.mark.sandbox


def _inputs(attempts: int = 6, failure: str = "Traceback (most recent call last):\n" + "  frame\n" * 400) -> PromptInputs:
    champion = ChampionView(
        name="champ", source='"""A codec."""\n' + "x = 1\n" * 3000, source_sha256="ab" * 32, ledger_seq=3,
        overall_vs_anchor={"psnr_yuv": 12.5}, clips=[], scores_from="test",
    )
    views = [
        AttemptView(attempt=i, candidate=f"evo_{i}", parent="champ", verdict="failed", reason=f"reason {i}",
                    bd_vs_anchor=5.0 + i, bd_vs_anchor_per_clip={"clip": 5.0 + i}, failure=failure)
        for i in range(1, attempts + 1)
    ]
    return PromptInputs(contract=CONTRACT_TEXT, champion=champion, attempts=views, rules=["beat it"])


def test_prompt_is_deterministic_and_bounded():
    a = build_prompt(_inputs(), char_budget=200_000)
    b = build_prompt(_inputs(), char_budget=200_000)
    assert a == b and a.sha256 == hashlib.sha256((a.system + "\0" + a.user).encode()).hexdigest()
    assert "shortened to 2500 characters" in a.cut[0] and "characters cut" in a.user
    assert "Clips that lost to x265: clip +6.0 % (↑ 6.0 % more bits)" in a.user

    small = build_prompt(_inputs(), char_budget=20_000)
    assert small.chars <= 20_000 and small.sha256 != a.sha256
    assert "## What was left out" in small.user
    cut = "\n".join(small.cut)
    assert "600 characters" in cut and "the oldest" in cut and "the middle of the champion's source" in cut
    for line in small.cut:
        assert f"- {line}" in small.user
    assert "### Attempt 6:" in small.user and "### Attempt 1:" not in small.user  # the newest are kept
