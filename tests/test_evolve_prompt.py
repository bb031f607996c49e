"""The prompt (harness/evolve/prompt.py): deterministic, hashed, bounded, saying what was cut."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from harness.candidate import CONTRACT_TEXT
from harness.evolve.prompt import (
    AttemptView,
    ChampionView,
    InspirationView,
    PromptInputs,
    build_prompt,
    describe_parent,
)

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


def _with_parent_and_inspirations(**kw) -> PromptInputs:
    base = _inputs(attempts=2, failure="")
    parent = ChampionView(
        name="evo_7", source='"""The parent."""\nparent_marker = 7\n', source_sha256="cd" * 32, ledger_seq=None,
        overall_vs_anchor={"psnr_yuv": 20.0}, clips=[], scores_from="attempt 7's report",
    )
    inspirations = (
        InspirationView(name="evo_3", source='"""Best."""\n' + "best = 1\n" * 400, bd_vs_anchor=-12.3,
                        why="best overall: -12.3 % vs x265"),
        InspirationView(name="evo_5", source='"""Fast."""\n' + "fast = 1\n" * 100, bd_vs_anchor=40.0,
                        why="elite of cell BD [25, 50) %, complexity [0.25, 0.5)x, island 0"),
    )
    label = describe_parent("evo_7", 7, 1, "champ", 12.5)
    return replace(base, champion=parent, inspirations=inspirations, parent_label=label, champion_name="champ", **kw)


def test_parent_that_is_not_the_champion_and_inspirations():
    assert describe_parent("evo_7", 7, 1, "champ", 12.5) == (
        "attempt 7's candidate `evo_7` (island 1), not the champion; the champion is `champ` at +12.5 % vs x265"
    )
    assert describe_parent("seed", None, None, "champ", None) == "`seed`, not the champion; the champion is `champ`"
    p = build_prompt(_with_parent_and_inspirations(), char_budget=200_000)
    user = p.user
    assert "beats the current champion `champ`, building on the parent below" in user
    assert "## The parent: attempt 7's candidate `evo_7` (island 1), not the champion; the champion is `champ`" in user
    assert "## The current champion" not in user and "parent_marker = 7" in user
    assert "Overall BD-rate against x265 when it was judged: psnr_yuv: +20.0 %" in user
    # inspirations come after the parent's code, before the attempts, each with its reason and code
    parent_at, insp_at, attempts_at = user.index("parent_marker"), user.index("## Inspirations: 2"), user.index("## The last 2")
    assert parent_at < insp_at < attempts_at
    assert "### Inspiration 1: `evo_3` (best overall: -12.3 % vs x265)" in user
    assert "### Inspiration 2: `evo_5` (elite of cell BD [25, 50) %, complexity [0.25, 0.5)x, island 0)" in user
    assert "BD-rate on PSNR-YUV against x265: -12.3 %" in user and "fast = 1" in user
    assert p.cut == []
    plain = build_prompt(_inputs(attempts=2, failure=""), char_budget=200_000)
    assert "## Inspirations" not in plain.user and "## The current champion: `champ`" in plain.user
    assert "It is adopted (and becomes the champion the next attempt builds on) only when:" in plain.user


def test_inspirations_are_cut_first_largest_first():
    full = build_prompt(_with_parent_and_inspirations(), char_budget=200_000)
    big = len('"""Best."""\n' + "best = 1\n" * 400)
    # just over budget: only the largest inspiration goes
    one = build_prompt(_with_parent_and_inspirations(), char_budget=full.chars - 100)
    assert one.cut == [f"inspiration `evo_3` (best overall: -12.3 % vs x265; {big} characters of source)"]
    assert "best = 1" not in one.user and "fast = 1" in one.user and one.chars <= full.chars - 100
    assert f"- {one.cut[0]}" in one.user
    assert "### Inspiration 1: `evo_5`" in one.user
    # far over: both go before anything else is touched, then the usual cuts
    both = build_prompt(_with_parent_and_inspirations(), char_budget=full.chars - big - 100)
    assert [c.split(" (")[0] for c in both.cut] == ["inspiration `evo_3`", "inspiration `evo_5`"]
    assert "(all left out for length)" in both.user and "parent_marker = 7" in both.user
    assert both.chars <= full.chars - big - 100 and "### Attempt 1:" in both.user
    tiny = build_prompt(_with_parent_and_inspirations(), char_budget=both.chars - 20)
    assert tiny.cut[:2] == both.cut and tiny.cut[2].startswith("the oldest 1 of the last 2 attempts")
    assert "### Attempt 1:" not in tiny.user and "### Attempt 2:" in tiny.user
