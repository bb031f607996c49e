"""The prompt: contract, sandbox, the parent's code and scores, inspirations, the last attempts and their failures.

The parent is the champion unless the program database (harness/evolve/database.py) sampled another
program of the run: then `PromptInputs.champion` holds that parent, `parent_label` says whose it is
(`describe_parent`) and `champion_name` names the champion to beat. Inspirations (other programs of
the run, each with why it was chosen and its code) follow the parent.

`build_prompt(inputs, char_budget=...)` is a pure function: the same inputs give the same text (no
clock, no randomness, everything sorted), and `Prompt.sha256` (over system and user text) is the
prompt hash recorded with each attempt and in the candidate's header. The text is kept within
`char_budget` characters by cutting, in this order: the inspirations (largest first), failure text
per attempt, the champion's rate points, the oldest attempts but the newest, the middle of the
champion's source, the newest attempt; the prompt says what was cut.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.bdrate import describe
from harness.evolve.results import ClipScores, cut_text
from harness.toolbox import load_toolbox

__all__ = [
    "LIBRARIES",
    "SYSTEM_TEXT",
    "AttemptView",
    "ChampionView",
    "InspirationView",
    "Prompt",
    "PromptInputs",
    "build_prompt",
    "describe_parent",
]

# What a native candidate may import, from fixtures/toolbox.toml (the sandbox shows only these).
LIBRARIES = ("the Python standard library", *(load_toolbox().catalogue[m].label for m in load_toolbox().modules("native")))

SYSTEM_TEXT = """\
You write lossy video codecs as single Python modules for a benchmark harness. Each module you
write is run, exactly as written, by a test suite in a sandbox: it encodes real clips at given
bitrates, the harness decodes the bitstream alone in a fresh process and measures the quality of
the decoded frames against the source. The score is BD-rate against x265 (HEVC) and against the
current champion: negative BD-rate means fewer bits at equal quality, which is better. Nothing
you say is taken on trust; only the measured results count. Answer with one complete module."""


@dataclass(frozen=True)
class ChampionView:
    name: str
    source: str
    source_sha256: str
    ledger_seq: int | None
    overall_vs_anchor: dict[str, float | None]
    clips: list[ClipScores]
    scores_from: str  # where the per-clip numbers come from (a report, its clips and frames)


@dataclass(frozen=True)
class AttemptView:
    attempt: int
    candidate: str
    parent: str | None
    verdict: str  # adopted | rejected | failed | invalid
    reason: str
    bd_vs_anchor: float | None = None
    bd_vs_anchor_per_clip: dict[str, float | None] = field(default_factory=dict)
    bd_vs_champion: float | None = None
    champion: str | None = None
    failure: str = ""


@dataclass(frozen=True)
class InspirationView:
    """Another program of the run shown for its ideas (harness.evolve.database: ProgramDatabase.inspirations)."""

    name: str
    source: str
    bd_vs_anchor: float | None  # BD-rate in % against the anchor; negative means fewer bits
    why: str  # why it was chosen: "best overall: -12.3 % vs x265", "elite of cell ..."


def describe_parent(
    candidate: str, attempt: int | None, island: int | None, champion: str, champion_bd: float | None, anchor: str = "x265"
) -> str:
    """`PromptInputs.parent_label` for a parent that is not the champion, e.g. "attempt 7's candidate `x`
    (island 1), not the champion; the champion is `y` at +12.3 % vs x265"."""
    whose = f"attempt {attempt}'s candidate `{candidate}`" if attempt is not None else f"`{candidate}`"
    where = f" (island {island})" if island is not None else ""
    score = f" at {champion_bd:+.1f} % vs {anchor}" if champion_bd is not None else ""
    return f"{whose}{where}, not the champion; the champion is `{champion}`{score}"


@dataclass(frozen=True)
class PromptInputs:
    contract: str
    champion: ChampionView  # the code the new candidate builds on: the champion, or the parent of parent_label
    attempts: Sequence[AttemptView]  # oldest first
    libraries: Sequence[str] = LIBRARIES
    track: str = "native"  # whose toolbox the sandbox section shows (fixtures/toolbox.toml)
    anchor: str = "x265"
    metric: str = "psnr_yuv"
    metric_label: str = "PSNR-YUV"
    rules: Sequence[str] = ()  # what adoption requires, one line each
    limits: str = ""  # the limits in words: SuiteConfig.limits_text() of the config the gates judge with
    inspirations: tuple[InspirationView, ...] = ()  # shown after the parent, cut first when over budget
    parent_label: str = ""  # set when `champion` is a parent other than the champion: describe_parent(...)
    champion_name: str = ""  # the champion to beat when `champion` is another program (default: its name)

    @property
    def champion_to_beat(self) -> str:
        return self.champion_name or self.champion.name


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str
    sha256: str
    cut: list[str]

    @property
    def chars(self) -> int:
        return len(self.system) + len(self.user)

    def as_markdown(self) -> str:
        return f"<!-- system -->\n{self.system}\n\n<!-- user -->\n{self.user}"


def _pct(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.1f} % ({describe(value)})"


def _kbps(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1000:.1f}"


def _q(value: float | None, metric: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if metric.startswith(("ssim", "ms_ssim")) else f"{value:.2f}"


@dataclass
class _Plan:
    failure_chars: int
    points: bool = True
    max_clips: int | None = None
    first_attempt: int = 0  # index into attempts: older ones are left out
    source_chars: int | None = None
    dropped: frozenset[int] = frozenset()  # indices of inspirations left out


def _champion_section(inp: PromptInputs, plan: _Plan) -> str:
    c = inp.champion
    seq = f", ledger seq {c.ledger_seq}" if c.ledger_seq is not None else ""
    if inp.parent_label:
        out = [f"## The parent: {inp.parent_label}", "", f"Source sha256 {c.source_sha256[:12]}{seq}."]
    else:
        out = [f"## The current champion: `{c.name}` (source sha256 {c.source_sha256[:12]}{seq})", ""]
    overall = c.overall_vs_anchor
    if overall:
        parts = [f"{m}: {_pct(v)}" for m, v in sorted(overall.items())]
        when = "when it was judged" if inp.parent_label else "when it was adopted"
        out.append(f"Overall BD-rate against {inp.anchor} {when}: " + "; ".join(parts) + ".")
    if c.clips:
        out.append(f"Per clip ({c.scores_from}); BD-rate on {inp.metric_label} against {inp.anchor}:")
        out.append("")
        clips = c.clips if plan.max_clips is None else c.clips[: plan.max_clips]
        for clip in clips:
            warn = f" ({clip.bd_vs_anchor_warning})" if clip.bd_vs_anchor_warning else ""
            out.append(f"- {clip.clip}: {_pct(clip.bd_vs_anchor)}{warn}")
            if plan.points and clip.points:
                out.append(
                    f"  | rung | target kbps | kbps | PSNR-YUV | SSIM-Y | VMAF | {inp.anchor} QP | "
                    f"{inp.anchor} kbps | {inp.anchor} PSNR-YUV | {inp.anchor} SSIM-Y | {inp.anchor} VMAF |"
                )
                out.append("  |---|---|---|---|---|---|---|---|---|---|---|")
                for p in clip.points:
                    q, a = p.quality, p.anchor_quality
                    fail = f" FAILED: {cut_text(p.failure, 160)}" if p.failure else ""
                    out.append(
                        f"  | {p.rung} | {_kbps(p.target_bps)} | {_kbps(p.bitrate_bps)} | "
                        f"{_q(q.get('psnr_yuv'), 'psnr')} | {_q(q.get('ssim_y'), 'ssim')} | {_q(q.get('vmaf'), 'vmaf')} | "
                        f"{p.anchor_qp if p.anchor_qp is not None else 'n/a'} | {_kbps(p.anchor_bps)} | "
                        f"{_q(a.get('psnr_yuv'), 'psnr')} | {_q(a.get('ssim_y'), 'ssim')} | {_q(a.get('vmaf'), 'vmaf')} |{fail}"
                    )
        if len(clips) < len(c.clips):
            out.append(f"- ... {len(c.clips) - len(clips)} more clip(s) left out")
    else:
        out.append(f"Per-clip scores: none available yet ({c.scores_from}).")
    source = c.source
    if plan.source_chars is not None:
        source = cut_text(source, plan.source_chars)
    where = f"`{c.name}.py`" if inp.parent_label else f"`candidates/{c.name}.py`"
    out += ["", f"Its source ({where}):", "", "```python", source.rstrip(), "```"]
    return "\n".join(out)


def _inspirations_section(inp: PromptInputs, plan: _Plan) -> list[str]:
    if not inp.inspirations:
        return []
    shown = [v for i, v in enumerate(inp.inspirations) if i not in plan.dropped]
    out = [
        f"## Inspirations: {len(inp.inspirations)} other program(s) of this run",
        "",
        ("Ideas to borrow, not code to copy whole: these programs were judged in this run and kept for "
         "their score or for a different trade-off between bits and encode time."),
        "",
    ]
    if not shown:
        out += ["(all left out for length)", ""]
    for n, v in enumerate(shown, 1):
        out += [
            f"### Inspiration {n}: `{v.name}` ({v.why})",
            "",
            f"BD-rate on {inp.metric_label} against {inp.anchor}: {_pct(v.bd_vs_anchor)}",
            "",
            "```python",
            v.source.rstrip(),
            "```",
            "",
        ]
    return out


def _attempt_section(a: AttemptView, inp: PromptInputs, failure_chars: int) -> str:
    parent = f", built on `{a.parent}`" if a.parent else ""
    out = [f"### Attempt {a.attempt}: `{a.candidate}`{parent}: {a.verdict.upper()}", "", f"Verdict: {a.reason}"]
    if a.bd_vs_anchor is not None:
        out.append(f"BD-rate on {inp.metric_label} against {inp.anchor}: {_pct(a.bd_vs_anchor)}")
    if a.bd_vs_champion is not None:
        out.append(f"Against the champion then (`{a.champion}`): {_pct(a.bd_vs_champion)}")
    lost = [(clip, v) for clip, v in sorted(a.bd_vs_anchor_per_clip.items()) if v is not None and v > 0]
    if lost:
        out.append(f"Clips that lost to {inp.anchor}: " + "; ".join(f"{clip} {_pct(v)}" for clip, v in lost))
    if a.failure:
        out += ["Failure:", "```text", cut_text(a.failure.strip(), failure_chars), "```"]
    return "\n".join(out)


def _render(inp: PromptInputs, plan: _Plan, cut: list[str]) -> str:
    rules = "\n".join(f"- {r}" for r in inp.rules)
    libs = ", ".join(inp.libraries)
    parts = [
        "## Task",
        "",
        (f"Write a new candidate codec that beats the current champion `{inp.champion_to_beat}`. It is adopted "
         "(and becomes the champion the next attempt builds on) only when:"
         if not inp.parent_label else
         f"Write a new candidate codec that beats the current champion `{inp.champion_to_beat}`, building on "
         f"the parent below (a program of this run drawn for diversity, not the champion). It is adopted "
         "(and becomes the champion) only when:"),
        rules or "- it passes every test and needs fewer bits than the champion at equal quality",
        "",
        "## The candidate contract",
        "",
        inp.contract.rstrip(),
        "",
        "## The sandbox",
        "",
        f"{load_toolbox().available_text(inp.track)} Nothing else is importable: the sandbox holds only "
        f"these packages ({libs}); no network, no files "
        "outside a private empty /tmp, no environment variables, no state shared between encode and decode."
        + (f" {inp.limits}" if inp.limits else ""),
        "",
        _champion_section(inp, plan),
        "",
        *_inspirations_section(inp, plan),
    ]
    shown = list(inp.attempts)[plan.first_attempt:]
    if inp.attempts:
        parts += [f"## The last {len(shown)} attempt(s), oldest first", ""]
        if not shown:
            parts.append("(all left out for length)")
        for a in shown:
            parts += [_attempt_section(a, inp, plan.failure_chars), ""]
    else:
        parts += ["## Earlier attempts", "", "None yet: this is the first attempt of this run.", ""]
    parts += ["## What was left out", ""]
    parts += [f"- {c}" for c in cut] if cut else ["Nothing was left out."]
    parts += [
        "",
        "## Your answer",
        "",
        ("Think about why the champion loses bits (see the scores and the failures above), then reply with a "
         "short plan (a few lines) followed by exactly ONE ```python block holding the complete new module: "
         "its docstring's first line says what the codec does, it defines `encode` and `decode` as in the "
         "contract, and it imports only what the sandbox has. The whole module must be in that one block; "
         "a second block is ignored."),
    ]
    return "\n".join(parts) + "\n"


def build_prompt(inputs: PromptInputs, *, char_budget: int, failure_chars: int = 2500) -> Prompt:
    """The prompt within `char_budget` characters (when the fixed parts allow it), saying what was cut."""
    plan = _Plan(failure_chars=failure_chars)
    cut: list[str] = []
    long_failures = [a.attempt for a in inputs.attempts if len(a.failure.strip()) > failure_chars]
    if long_failures:
        cut.append(
            f"failure text of attempt(s) {', '.join(map(str, long_failures))} shortened to {failure_chars} "
            "characters each (the middle is marked)"
        )

    def size() -> int:
        return len(SYSTEM_TEXT) + len(_render(inputs, plan, cut))

    by_size = sorted(range(len(inputs.inspirations)), key=lambda i: (-len(inputs.inspirations[i].source), i))
    for i in by_size:
        if size() <= char_budget:
            break
        plan.dropped = plan.dropped | {i}
        v = inputs.inspirations[i]
        cut.append(f"inspiration `{v.name}` ({v.why}; {len(v.source)} characters of source)")
    if size() > char_budget:
        plan.failure_chars = min(plan.failure_chars, 600)
        if any(len(a.failure.strip()) > 600 for a in inputs.attempts):
            cut[:] = [c for c in cut if not c.startswith("failure text")]
            cut.append("failure text of every attempt shortened to 600 characters each (the middle is marked)")
    if size() > char_budget and any(c.points for c in inputs.champion.clips):
        plan.points = False
        cut.append("the champion's rate points per clip (only its BD-rate per clip is shown)")
    clips = len(inputs.champion.clips)
    if size() > char_budget and clips > 10:
        plan.max_clips = 10
        cut.append(f"the champion's scores on {clips - 10} of {clips} clips")
    n = len(inputs.attempts)

    def drop_oldest(keep: int) -> None:
        while size() > char_budget and plan.first_attempt < n - keep:
            plan.first_attempt += 1
            cut[:] = [c for c in cut if not c.startswith("the oldest")]
            left = inputs.attempts[plan.first_attempt - 1].attempt
            first = inputs.attempts[0].attempt
            span = f"{first}" if first == left else f"{first}-{left}"
            cut.append(f"the oldest {plan.first_attempt} of the last {n} attempts (attempt(s) {span})")

    drop_oldest(keep=1)  # the newest attempt stays as long as the champion's source can be shortened
    if size() > char_budget:
        over = size() - char_budget
        total = len(inputs.champion.source)
        keep = max(total - over - 300, 2000)
        if keep < total:
            plan.source_chars = keep
            cut.append(
                f"the middle of the {'parent' if inputs.parent_label else 'champion'}'s source "
                f"({total - keep} of {total} characters; the module shown "
                "is incomplete: write a complete module)"
            )
    drop_oldest(keep=0)
    if size() > char_budget:
        cut.append(f"nothing more can be cut: the prompt is {size() - char_budget} characters over its budget")
    user = _render(inputs, plan, cut)
    digest = hashlib.sha256((SYSTEM_TEXT + "\0" + user).encode("utf-8")).hexdigest()
    return Prompt(system=SYSTEM_TEXT, user=user, sha256=digest, cut=list(cut))
