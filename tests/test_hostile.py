"""Hostile candidates (tests/hostile/) through the real Judge and Runner in bubblewrap: each fails as EXPECTED.toml says.

Every trick a generated codec could play (synthesized or stored frames, side channels, peeking
at the source, network, resource bombs, writes outside, malformed output, nondeterminism,
escaping the sandbox) runs on a small real clip; the first failure's stage, kind and text are
compared with the table. A well-behaved lossless control is judged by the same Judge and must
pass beside them. Candidates run only inside the sandbox: nothing here imports them.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import os
import platform
import re
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from harness.cache import ResultCache
from harness.candidate import discover_candidates
from harness.clips import Clip, resolve_clip_set
from harness.config import load_suite_config
from harness.judge import Judge
from harness.runner import Runner
from harness.sandbox import SANDBOX_UID, Limits, Sandbox
from harness.video import read_video

pytestmark = pytest.mark.sandbox

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
HOSTILE = TESTS / "hostile"
CONTROLS = TESTS / "candidates_ok"
SHARED = Path(__file__).resolve().parents[2] / "shared"
CLIP_FILE = SHARED / "fixtures" / "svt_park_joy_160x90_10f.y4m"
CLIP = "park_joy"
FRAMES = 3
EXPECTED = tomllib.loads((HOSTILE / "EXPECTED.toml").read_text(encoding="utf-8"))
LIMITS = Limits(
    wall_s=6, cpu_s=30, memory_bytes=1 << 30, processes=32, file_bytes=256 << 20,
    tmp_bytes=32 << 20, flood_bytes=1 << 20,
)
KILL_MARKER = "codec-sandbox/candidate/kill_parent.py"  # the daemon's command line (tests/hostile/kill_parent.py)


def _clip_file() -> Path:
    if not CLIP_FILE.is_file():
        pytest.fail(f"development clip {CLIP_FILE} not found: clone the project beside ../shared", pytrace=False)
    return CLIP_FILE


def ladder_config():
    """The suite's config in rate-ladder mode: no anchors to encode for these tests."""
    config = load_suite_config(REPO / "fixtures" / "suite.toml")
    if getattr(config, "rate_mode", "ladder") != "ladder":
        config = dataclasses.replace(config, rate_mode="ladder")
    return config


def make_judge(*, sandbox: Sandbox, limits: Limits, clips: list[Clip], candidates, scratch: Path) -> Judge:
    kwargs: dict[str, object] = {
        "runner": Runner(sandbox=sandbox, limits=limits), "config": ladder_config(), "clips": clips,
        "candidates": candidates, "max_frames": FRAMES, "anchors": {}, "cache": ResultCache(scratch / "cache"),
    }
    return Judge(**kwargs)


def verdict(judge: Judge, name: str, clip: str = CLIP) -> tuple[str, str | None, str]:
    """(stage, kind, text) of the first failure of a candidate, or ("pass", "ok", summary).

    The policy is the suite's own (harness.gates, through the Judge); this only names the stage."""
    contract = judge.gate("contract", name)
    if not contract.passed:
        return "check", judge.check(name).kind, contract.message
    rung = judge.determinism_rung(clip)
    point = judge.point(name, clip, rung)
    for outcome in (point.encode, point.decode):
        if outcome is not None and not outcome.ok:
            return outcome.stage, outcome.kind, point.failure_details
    if point.failure:
        return "decode", "format", point.failure_details
    quality = judge.gate("quality", name, clip, rung)
    if not quality.passed:
        return "quality", None, quality.message
    det = judge.gate("determinism", name, clip)
    if not det.passed:
        return "determinism", None, det.message
    details = judge.determinism(name, clip).details
    return "pass", "ok", f"PSNR-Y {point.measurement.mean['psnr_y']:.2f} dB, {point.measurement.bytes} bytes; determinism: {details}"


def purge_sandbox_keys() -> list[str]:
    """Invalidate kernel keys that sandboxed candidates left behind (uids from SANDBOX_UID up)."""
    try:
        lines = Path("/proc/keys").read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return []
    keyctl = {"x86_64": 250, "aarch64": 219}.get(platform.machine())
    libc = ctypes.CDLL(None, use_errno=True)
    left = []
    for line in lines:
        fields = line.split()
        if len(fields) < 9 or fields[7] != "user" or not fields[5].isdigit() or int(fields[5]) < SANDBOX_UID:
            continue
        if keyctl is not None:
            libc.syscall(keyctl, 21, ctypes.c_long(int(fields[0], 16)))  # KEYCTL_INVALIDATE
        left.append(line)
    return left


@pytest.fixture(scope="module")
def candidates():
    found = discover_candidates(HOSTILE) + discover_candidates(CONTROLS)
    names = [c.name for c in found]
    assert len(names) == len(set(names)), f"a control and a hostile candidate share a name: {names}"
    return {c.name: c for c in found}


@pytest.fixture(scope="module")
def judges(candidates, tmp_path_factory):
    """Judges by limits override (most entries share one); a Judge remembers what it judged."""
    clip = Clip(name=CLIP, path=_clip_file())
    made: dict[tuple, Judge] = {}

    def get(overrides: dict | None = None) -> Judge:
        key = tuple(sorted((overrides or {}).items()))
        if key not in made:
            made[key] = make_judge(
                sandbox=Sandbox(mode="bwrap"), limits=dataclasses.replace(LIMITS, **dict(key)),
                clips=[clip], candidates=list(candidates.values()),
                scratch=tmp_path_factory.mktemp("judge"),
            )
        return made[key]

    yield get
    purge_sandbox_keys()


def test_corpus_and_table_agree(candidates):
    """Every hostile module has a row, every row a module, and each module says what it does."""
    hostile = {n for n, c in candidates.items() if c.path.parent == HOSTILE}
    assert hostile == set(EXPECTED), (
        f"modules without a row: {sorted(hostile - set(EXPECTED))}; rows without a module: "
        f"{sorted(set(EXPECTED) - hostile)}"
    )
    for name in sorted(hostile - {"syntax_error"}):
        assert candidates[name].summary, f"{name}.py has no docstring first line"
    for name, row in EXPECTED.items():
        assert {"stage", "match"} <= set(row), f"{name}: a row needs stage and match"
        re.compile(row["match"])


def _outside_state() -> dict[str, str]:
    """Hashes of what a candidate must never change: the ledger, the candidates, the harness."""
    files = [REPO / "ledger.jsonl", *sorted((REPO / "candidates").glob("*.py")), *sorted((REPO / "harness").glob("*.py"))]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def _case(name: str):
    row = EXPECTED[name]
    applies = "xfail" in row and (row.get("xfail_when") != "root" or os.geteuid() == 0)
    marks = [pytest.mark.xfail(strict=True, reason=" ".join(row["xfail"].split()))] if applies else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_case(n) for n in EXPECTED])
def test_hostile_candidate_fails_as_expected(name, judges):
    row = EXPECTED[name]
    judge = judges(row.get("limits"))
    before = _outside_state()
    start = time.perf_counter()
    stage, kind, text = verdict(judge, name)
    elapsed = time.perf_counter() - start
    assert _outside_state() == before, f"{name} changed files outside its sandbox"
    stages = [row["stage"]] if isinstance(row["stage"], str) else row["stage"]
    shown = f"{name}: got stage={stage} kind={kind}:\n{text[:3000]}"
    assert stage in stages, shown
    if "kind" in row:
        assert kind == row["kind"], shown
    assert re.search(row["match"], text, re.DOTALL), f"no match for {row['match']!r} in\n{shown}"
    if "forbid" in row:
        assert not re.search(row["forbid"], text), f"forbidden {row['forbid']!r} in\n{shown}"
    if kind == "timeout":
        limit = judge.runner.limits.wall_s
        outcome = judge.point(name, CLIP, judge.determinism_rung(CLIP)).encode
        assert outcome.wall_s < limit + 3, f"killed after {outcome.wall_s:.1f} s, limit {limit} s"
        assert elapsed < limit + 3, f"the timed-out call took {elapsed:.1f} s of the test, limit {limit} s"


def test_control_passes_beside_the_hostile_corpus(judges, candidates):
    """The lossless control, judged by the same Judge after every hostile entry, passes everything but the rate."""
    judge = judges()
    for name in EXPECTED:
        if "limits" not in EXPECTED[name]:
            verdict(judge, name)  # remembered: free when the parametrized tests already ran
    stage, kind, text = verdict(judge, "zlib_lossless")
    assert (stage, kind) == ("pass", "ok"), text
    source = judge.source(CLIP).video
    for rung in range(len(judge.rate_points(CLIP))):
        point = judge.point("zlib_lossless", CLIP, rung)
        assert point.ok, point.failure_details
        assert point.decoded_format["frames"] == source.frames == FRAMES
        assert point.measurement.decoded_sha256 == source.sha256(), "lossless control is not lossless"
        assert point.measurement.bytes > 0 and point.measurement.bitrate_bps > 0


def _host_processes() -> str:
    return subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout


def test_kill_parent_reaches_nothing_and_leaves_no_process(judges):
    """The daemon it forks dies with the sandbox; its SIGKILLs at pid 1 and its parent are refused."""
    judge = judges()
    assert KILL_MARKER not in _host_processes()
    point = judge.point("kill_parent", CLIP, judge.determinism_rung(CLIP))
    encode = point.encode
    assert encode is not None and encode.ok, point.failure_details
    assert "daemon listening" in encode.stderr, f"the daemon never started, nothing was tested:\n{encode.stderr}"
    # As root the worker runs as another uid than bwrap: EPERM. As an ordinary user both share
    # a uid, and pid 1 (its parent, too, in the sandbox's PID namespace) is bwrap's init, which
    # the kernel shields from signals sent inside its namespace: kill() "succeeds" and nothing
    # dies, as the encode finishing shows.
    refused = r"\[Errno (1|3)\]" if os.geteuid() == 0 else r"(\[Errno (1|3)\]|sent)"
    for attempt in ("kill pid 1", "kill parent"):
        assert re.search(rf"{attempt}: {refused}", encode.stderr), encode.stderr
    # killpg may reach processes of the sandbox's own group; the encode surviving shows it reached no further.
    assert re.search(r"killpg parent group: (sent|\[Errno \d+\])", encode.stderr), encode.stderr
    deadline = time.monotonic() + 3
    while KILL_MARKER in (listing := _host_processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    stray = [line for line in listing.splitlines() if KILL_MARKER in line]
    assert not stray, f"processes left behind on the host: {stray}"


def test_write_outside_changed_nothing(judges):
    """Its writes to its own source, the harness and the Python installation all failed on the host too."""
    watched = [HOSTILE / "write_outside.py", REPO / "harness" / "measure.py"]
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in watched}
    judge = judges()
    stage, _, text = verdict(judge, "write_outside")
    assert stage == "encode", text
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in watched} == before
    assert not (HOSTILE / "write_outside.tables").exists()


def _default_clip() -> Clip:
    _, clips = resolve_clip_set("default", config=REPO / "fixtures" / "clipsets.toml", root=REPO)
    return next(c for c in clips if c.name == "bigbuckbunny")


def _peek(sandbox: Sandbox, clip: Clip, candidates, scratch: Path):
    judge = make_judge(
        sandbox=sandbox, limits=dataclasses.replace(LIMITS, wall_s=20), clips=[clip],
        candidates=[candidates["peek_source"]], scratch=scratch,
    )
    return judge.point("peek_source", clip.name, 0)


def test_peek_source_cannot_read_the_default_clip_as_the_suite_runs_it(candidates, tmp_path):
    """With the plugin's sandbox (clip files hidden), a decoder cannot decode bigbuckbunny.mp4 from site-packages."""
    clip = _default_clip()
    point = _peek(Sandbox(mode="bwrap", hide=(str(clip.path),)), clip, candidates, tmp_path)
    assert not point.ok, f"the decoder read the source: PSNR-Y {point.measurement.mean['psnr_y']:.1f} dB"
    assert "CHEAT" not in point.failure_details
    assert re.search(r"FileNotFoundError: source clip \(1280x720, 3 frames\) not visible", point.failure_details)


def test_peek_source_cannot_read_the_default_clip_in_a_plain_sandbox(candidates, tmp_path):
    """The sandbox itself, not each caller, keeps the packaged default clips away from candidates."""
    clip = _default_clip()
    point = _peek(Sandbox(mode="bwrap"), clip, candidates, tmp_path)
    assert not point.ok, (
        f"the decoder read the source: PSNR-Y {point.measurement.mean['psnr_y']:.1f} dB from a "
        f"{point.measurement.bytes}-byte bitstream; {point.decode.stderr.strip()}"
    )


def test_an_anchor_after_a_hostile_run_equals_a_clean_one(candidates, tmp_path):
    """flatten_source tries to overwrite the clip it was handed; the parent's source, and an
    x265 anchor encoded from it afterwards in the same run, equal those of a clean run."""
    from harness.anchors import load_anchor_specs

    x265 = {"x265": load_anchor_specs()["x265"]}
    clip = Clip(name=CLIP, path=_clip_file())

    def judge_of(names: list[str], scratch: Path) -> Judge:
        judge = make_judge(
            sandbox=Sandbox(mode="bwrap"), limits=LIMITS, clips=[clip],
            candidates=[candidates[n] for n in names], scratch=scratch,
        )
        judge.anchor_specs = x265
        return judge

    hostile = judge_of(["flatten_source"], tmp_path / "hostile")
    for rung in range(hostile.rung_count):
        point = hostile.point("flatten_source", CLIP, rung)
        assert not point.ok and "the source is read-only" in point.failure_details, point.failure_details
    after = hostile.anchor_curve(CLIP, "x265")
    clean = judge_of([], tmp_path / "clean").anchor_curve(CLIP, "x265")
    assert hostile.source(CLIP).video.sha256() == read_video(clip.path, max_frames=FRAMES)[0].sha256()
    assert [p.cached for p in after + clean] == [False] * (len(after) + len(clean)), "separate caches"
    assert [p.measurement.to_json() for p in after] == [p.measurement.to_json() for p in clean]
