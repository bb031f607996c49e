"""The CI gate end to end on a temporary git repository, and its parts.

The repository holds a copy of this project's harness, suite and fixtures with the two reference
candidates (dct_inter, native; x264_pyav, a libx264 wrapper in the open track) and jpeg_planes (an
honest but weak intra-only codec, tests/data/honest), and a ledger whose native champion is
jpeg_planes; the open track has no champion. The suite runs for real (sandboxed) on one small clip,
3 frames, with an anchor cache shared by the runs of this module:

1. a pull request adding `dct_copy` (dct_inter under another docstring) passes the gate: it beats
   jpeg_planes by far more than the margin; only the native track runs (the open track has no
   champion, but the change touches none of its candidates); dct_copy is adopted after the merge;
2. a pull request adding `dct_again` (another copy) and `broken` (a decoder returning black
   frames) fails the gate: dct_again's bitstreams are identical to the champion's ledger entry
   (the seeds' failure: the same code judged again under a new name), broken fails test_quality.
   The same pull request edits ledger.jsonl to crown `broken`: the gate judges against the base
   branch's ledger, says so, and never writes the ledger itself.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import gate
from harness.__main__ import main as harness_main
from harness.adoption import AdoptionConfig, Verdict, adopt, load_adoption_config
from harness.candidate import discover_candidates
from harness.ledger import Ledger, LedgerEntry
from harness.results import RunResults
from harness.suite import SuiteRun

REPO = Path(__file__).resolve().parents[1]
CLIP = "svt_park_joy_160x90_10f.y4m"

BROKEN = '''"""Broken on purpose: stores only the clip's shape and decodes black frames."""

import struct
from fractions import Fraction

import numpy as np

from harness.video import Video


def encode(video, target_bitrate):
    return struct.pack("<5I", video.width, video.height, video.frames, video.fps.numerator, video.fps.denominator)


def decode(bitstream):
    width, height, frames, num, den = struct.unpack("<5I", bitstream)
    y = np.zeros((frames, height, width), np.uint8)
    u = np.zeros((frames, (height + 1) // 2, (width + 1) // 2), np.uint8)
    return Video(y, u, u.copy(), Fraction(num, den))
'''


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=gate test", "-c", "user.email=gate@test", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, f"git {' '.join(args)}: {out.stderr}"
    return out.stdout


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    return path


def renamed_copy(source: Path, target: Path, first_line: str) -> None:
    text = source.read_text()
    assert text.startswith('"""')
    rest = text[3:].split("\n", 1)[1]
    target.write_text(f'"""{first_line}\n{rest}')


@pytest.fixture(scope="module")
def shared_clip(shared_fixtures) -> Path:
    return shared_fixtures / CLIP


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, shared_clip) -> dict[str, Path]:
    """A project repository on branch main (native champion jpeg_planes in its ledger), clips and a cache."""
    top = tmp_path_factory.mktemp("gate")
    clips = top / "clips"
    clips.mkdir()
    shutil.copy(shared_clip, clips / "park.y4m")
    heldout = top / "heldout"  # outside the repository, as CODEC_HARNESS_HELDOUT would name it
    heldout.mkdir()
    shutil.copy(shared_clip.parent / "cisco_vt2people_320x192_9f.mkv", heldout / "people.mkv")
    repo = init_repo(top / "project")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("harness", "benchmarks", "fixtures"):
        shutil.copytree(REPO / folder, repo / folder, ignore=ignore)
    for name in ("conftest.py", "pyproject.toml", ".gitignore"):
        shutil.copy(REPO / name, repo / name)
    (repo / "candidates").mkdir()
    for name in ("dct_inter.py", "x264_pyav.py"):
        shutil.copy(REPO / "candidates" / name, repo / "candidates" / name)
    shutil.copy(REPO / "tests" / "data" / "honest" / "jpeg_planes.py", repo / "candidates" / "jpeg_planes.py")
    found = {c.name: c for c in discover_candidates(repo / "candidates")}
    assert {n: c.track for n, c in found.items()} == {
        "dct_inter": "native", "jpeg_planes": "native", "x264_pyav": "open"
    }
    Ledger(repo / "ledger.jsonl").append(
        LedgerEntry(
            candidate="jpeg_planes",
            track="native",
            source_sha256=found["jpeg_planes"].sha256,
            decision="adopted",
            reason="seeded by the gate test",
        )
    )
    (repo / "ledger.jsonl.lock").unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "project with three candidates; native champion jpeg_planes")
    return {
        "top": top, "repo": repo, "clips": clips, "heldout": heldout, "cache": top / "cache",
        "reports": top / "reports",
    }


def run_gate_cli(ws: dict[str, Path], summary: Path, *extra: str) -> int:
    return harness_main(
        [
            "gate",
            "--repo",
            str(ws["repo"]),
            "--base",
            "main",
            "--clips",
            str(ws["clips"]),
            "--frames",
            "3",
            "--cache-dir",
            str(ws["cache"]),
            "--report-dir",
            str(ws["reports"]),
            "--summary",
            str(summary),
            "--heldout",
            str(ws["heldout"]),
            *extra,
        ]
    )


@pytest.mark.sandbox
def test_gate_end_to_end_good_then_bad_change(workspace, capsys):
    ws, repo = workspace, workspace["repo"]
    config = load_adoption_config(repo / "fixtures" / "adoption.toml")

    # 1. A good change: a new native candidate that beats the native champion.
    git(repo, "checkout", "-qb", "add-dct-copy")
    renamed_copy(
        repo / "candidates" / "dct_inter.py",
        repo / "candidates" / "dct_copy.py",
        "Copy of the native DCT reference codec under another name.",
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "dct_copy")
    summary = ws["top"] / "gate-good.md"
    assert run_gate_cli(ws, summary) == 0
    text = summary.read_text()
    out = capsys.readouterr().out
    assert text in out  # printed as well
    assert text.startswith(gate.MARKER)
    assert "## Candidate gate: ✅ adoptable" in text
    assert "Changed vs `main`: `dct_copy`; native champion `jpeg_planes` (ledger seq 1)." in text
    row = next(line for line in text.splitlines() if line.startswith("| `dct_copy`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "native" and cells[2] == "✅ adoptable"
    assert cells[4].startswith("↓ ") and cells[4].endswith("% fewer bits")  # vs the champion
    assert float(cells[4].split()[1]) > 10 * config.margin_percent  # by far more than the margin
    assert "- **`dct_copy`** — adoptable: beats native champion jpeg\\_planes (seq 1) on PSNR-YUV: ↓ " in text
    assert "The gate does not write the ledger" in text
    reports = sorted(ws["reports"].glob("run-*.json"))
    assert len(reports) == 1
    doc = json.loads(reports[0].read_text())
    # the changed one and the native champion; not the open track's x264_pyav (the change has no open candidate)
    assert set(doc["candidates"]) == {"dct_copy", "jpeg_planes"}
    assert doc["candidates"]["jpeg_planes"]["passed_all"] and doc["candidates"]["dct_copy"]["passed_all"]
    assert [e.candidate for e in Ledger(repo / "ledger.jsonl").entries()] == ["jpeg_planes"]

    # After the merge, adoption is its own step (from the gate's report: the sources are the same).
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--ff-only", "add-dct-copy")
    entry = adopt(
        reports[0],
        "dct_copy",
        ledger=Ledger(repo / "ledger.jsonl"),
        candidates_dir=repo / "candidates",
        config=config,
        parent="dct_inter",
    )
    assert (entry.decision, entry.seq, entry.parent, entry.track) == ("adopted", 2, "dct_inter", "native")
    (repo / "ledger.jsonl.lock").unlink()
    git(repo, "commit", "-qam", "adopt dct_copy")
    ledger_before = (repo / "ledger.jsonl").read_bytes()

    # 2. A bad change: another copy (identical bitstreams) and a broken candidate, and a forged ledger.
    git(repo, "checkout", "-qb", "bad-change")
    renamed_copy(
        repo / "candidates" / "dct_inter.py",
        repo / "candidates" / "dct_again.py",
        "Yet another name for the native DCT reference codec.",
    )
    (repo / "candidates" / "broken.py").write_text(BROKEN)
    broken_sha = {c.name: c.sha256 for c in discover_candidates(repo / "candidates")}["broken"]
    forged = LedgerEntry(
        candidate="broken", source_sha256=broken_sha, decision="adopted", reason="trust me", seq=3
    )
    with open(repo / "ledger.jsonl", "a") as f:
        f.write(json.dumps(forged.to_json()) + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two more candidates")
    summary = ws["top"] / "gate-bad.md"
    assert run_gate_cli(ws, summary) == 1
    capsys.readouterr()
    text = summary.read_text()
    assert "## Candidate gate: ❌ not adoptable" in text
    assert "Changed vs `main`: `broken`, `dct_again`; native champion `dct_copy` (ledger seq 2)." in text
    assert (
        "- **`dct_again`** — rejected: identical results to dct\\_copy (seq 2): the same bitstreams — "
        "is this the same codec?"
    ) in text
    broken_line = next(line for line in text.splitlines() if line.startswith("- **`broken`**"))
    assert broken_line.startswith("- **`broken`** — failed: quality on park r0 failed: PSNR-Y ")
    assert "do not reproduce the source" in broken_line
    assert "this change edits ledger.jsonl; the gate judged against main's ledger" in text
    assert "this change also edits how candidates are judged (ledger.jsonl)" in text
    newest = max(ws["reports"].glob("run-*.json"), key=lambda p: p.stat().st_mtime_ns)
    doc = json.loads(newest.read_text())
    assert set(doc["candidates"]) == {"broken", "dct_again", "dct_copy"}
    assert doc["champion"]["name"] == "dct_copy"
    # The gate never writes the ledger (the committed forged line stays the pull request's own).
    git(repo, "checkout", "-q", "main")
    assert (repo / "ledger.jsonl").read_bytes() == ledger_before


def test_no_candidate_changed_passes_without_running_the_suite(workspace, tmp_path, monkeypatch, capsys):
    summary = tmp_path / "gate.md"
    before = set(workspace["reports"].glob("run-*.json")) if workspace["reports"].exists() else set()
    suite_runs = []

    def no_suite(*args, **kwargs):
        suite_runs.append((args, kwargs))
        pytest.fail("the gate ran a suite with no candidate changed")

    monkeypatch.setattr(gate, "run_suite", no_suite)
    # a branch of main (whatever branch the workspace repository was left on) that does not touch candidates/
    repo = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-b", "main", str(workspace["repo"]), str(repo)], check=True)
    (repo / "README.md").write_text("notes\n")
    assert harness_main(["gate", "--repo", str(repo), "--base", "origin/main", "--summary", str(summary)]) == 0
    assert suite_runs == []
    text = summary.read_text()
    assert "## Candidate gate: no candidate changed" in text
    assert "nothing to judge" in text
    assert (
        set(workspace["reports"].glob("run-*.json")) if workspace["reports"].exists() else set()
    ) == before


def test_usage_errors_exit_2(workspace, tmp_path, capsys):
    assert harness_main(["gate", "--repo", str(workspace["repo"]), "--base", "no-such-branch"]) == 2
    assert "unknown base 'no-such-branch'" in capsys.readouterr().err
    plain = tmp_path / "plain"
    plain.mkdir()
    assert harness_main(["gate", "--repo", str(plain)]) == 2
    assert "is not a git repository" in capsys.readouterr().err
    assert harness_main(["gate", "--repo", str(workspace["repo"]), "--frames", "0"]) == 2
    assert "--frames must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        harness_main(["gate", "--no-such-option"])
    assert stop.value.code == 2


def test_changed_candidates_from_commits_worktree_and_untracked_files(tmp_path):
    repo = init_repo(tmp_path / "r")
    cands = repo / "candidates"
    (cands / "pkg").mkdir(parents=True)
    for name in ("a", "gone", "same"):
        (cands / f"{name}.py").write_text(f'"""{name}."""\ndef encode(v, r): ...\ndef decode(b): ...\n')
    (cands / "pkg" / "__init__.py").write_text('"""pkg."""\nfrom .impl import encode, decode\n')
    (cands / "pkg" / "impl.py").write_text("def encode(v, r): ...\ndef decode(b): ...\n")
    (cands / "README.md").write_text("what goes here\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "work")
    (cands / "pkg" / "impl.py").write_text("def encode(v, r): return b''\ndef decode(b): ...\n")  # committed
    (cands / "gone.py").unlink()
    (cands / "README.md").write_text("changed notes\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    (cands / "a.py").write_text(
        '"""a, edited."""\ndef encode(v, r): ...\ndef decode(b): ...\n'
    )  # uncommitted
    (cands / "staged.py").write_text('"""s."""\ndef encode(v, r): ...\ndef decode(b): ...\n')
    git(repo, "add", "candidates/staged.py")
    (cands / "new.py").write_text('"""n."""\ndef encode(v, r): ...\ndef decode(b): ...\n')  # untracked
    (cands / "__pycache__").mkdir()
    (cands / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert gate.changed_candidates(repo, "main") == (["a", "new", "pkg", "staged"], ["gone"])
    (repo / ".gitignore").write_text("*.bin\n")
    (cands / "pkg" / "weights.bin").write_bytes(b"\1")  # read by the suite, never in a clone
    notes = gate.working_tree_notes(repo)
    assert notes == [
        "candidates/new.py is untracked (not in any commit): judged from the working tree, but not part of the branch",
        "candidates/a.py, candidates/staged.py are changed since the last commit: judged as they are now, "
        "not as committed",
        "candidates/pkg/weights.bin is ignored by git: read by the suite, absent from a clone of the branch",
    ], notes
    git(repo, "checkout", "-q", "-f", "main")
    git(repo, "clean", "-qfdx")
    assert gate.changed_candidates(repo, "main") == ([], [])


def test_suite_candidates_add_only_the_tracks_of_changed_candidates_without_a_champion(tmp_path):
    repo = init_repo(tmp_path / "r")
    cands = repo / "candidates"
    cands.mkdir()
    shutil.copy(REPO / "candidates" / "dct_inter.py", cands / "dct_inter.py")
    renamed_copy(REPO / "candidates" / "dct_inter.py", cands / "dct_copy.py", "Another native DCT codec.")
    shutil.copy(REPO / "candidates" / "x264_pyav.py", cands / "x264_pyav.py")
    renamed_copy(REPO / "candidates" / "x264_pyav.py", cands / "x264_copy.py", "Another libx264 wrapper.")
    (cands / "bad.py").write_text("def encode(v, r): ...\n")  # a problem (no docstring): never added
    tracks = {c.name: c.track for c in discover_candidates(cands)}
    assert tracks == {
        "bad": "native", "dct_copy": "native", "dct_inter": "native", "x264_copy": "open", "x264_pyav": "open"
    }
    none = {"native": None, "open": None}
    native_champ = {"native": LedgerEntry(candidate="dct_inter", track="native", source_sha256="0" * 64,
                                          decision="adopted", reason="seed", seq=1), "open": None}
    run = gate._suite_candidates
    # a native-only change: every native candidate when native has no champion, never the open track's
    assert run(repo, ["dct_copy"], none) == ["dct_copy", "dct_inter"]
    assert run(repo, ["dct_copy"], native_champ) == ["dct_copy"]  # the plugin adds the champion
    # an open-only change: every open candidate, never the native track's
    assert run(repo, ["x264_copy"], none) == ["x264_copy", "x264_pyav"]
    assert run(repo, ["x264_copy"], native_champ) == ["x264_copy", "x264_pyav"]
    # both tracks changed: each championless track runs whole
    assert run(repo, ["dct_copy", "x264_copy"], none) == ["dct_copy", "x264_copy", "dct_inter", "x264_pyav"]
    assert run(repo, ["dct_copy", "x264_copy"], native_champ) == ["dct_copy", "x264_copy", "x264_pyav"]
    assert run(repo, ["gone"], none) == ["gone"]  # a name the folder lacks adds no track


def test_summary_escapes_untrusted_text():
    config = AdoptionConfig()
    v = Verdict(
        candidate="evil",
        decision="failed",
        adoptable=False,
        scores={},
        reasons=[
            "test_contract[evil] failed: <script>alert(1)</script> | @maintainer [click](http://x) `rm`\nline2"
        ],
    )
    text = gate.render_summary(
        base="main",
        changed=["evil"],
        removed=[],
        verdicts={"evil": v},
        config=config,
        champion=None,
        report_label=None,
        doc=None,
        exit_code=1,
    )
    line = next(x for x in text.splitlines() if x.startswith("- **`evil`**"))
    assert "<script>" not in line and "&lt;script&gt;" in line
    assert "\\|" in line and "@\u200bmaintainer" in line and "[click](http" not in line and "`rm`" not in line
    assert "line2" in line  # one line


def test_summary_table_survives_a_hostile_candidate_name():
    name = "ev|l`x`*y*<b>@z\nq"
    v = Verdict(candidate=name, decision="rejected", adoptable=False, scores={}, reasons=["no | pipes"])
    text = gate.render_summary(
        base="main",
        changed=[name],
        removed=[],
        verdicts={name: v},
        config=AdoptionConfig(),
        champion=None,
        report_label=None,
        doc={"clips": {"c|lip<x>": {}}},
        exit_code=1,
    )
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "Candidate" not in ln]
    assert len(rows) == 1 and "\n" not in rows[0]
    assert re.sub(r"\\.", "", rows[0]).count("|") == 8  # seven cells: no pipe of the name splits one
    for raw in ("<b>", "`x`", "*y*", "@z", "c|lip"):
        assert raw not in text, raw


def test_without_a_champion_every_candidate_runs_and_the_best_reference_wins(tmp_path, monkeypatch, capsys):
    """Bootstrap in the gate, with the suite replaced by a recorded report (no sandbox, instant)."""
    repo = init_repo(tmp_path / "r")
    shutil.copytree(REPO / "fixtures", repo / "fixtures")
    (repo / "candidates").mkdir()
    # The recorded report predates tracks (both of its candidates native): x264_pyav without its
    # TRACK line stands in for a native reference; the real wrapper (open track) must not run.
    wrapper = (REPO / "candidates" / "x264_pyav.py").read_text()
    assert 'TRACK = "open"' in wrapper
    (repo / "candidates" / "x264_pyav.py").write_text(wrapper.replace('TRACK = "open"', 'TRACK = "native"'))
    shutil.copy(REPO / "candidates" / "x264_pyav.py", repo / "candidates" / "x264_open.py")
    (repo / "ledger.jsonl").write_text("")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "pr")
    shutil.copy(REPO / "candidates" / "dct_inter.py", repo / "candidates" / "dct_inter.py")

    recorded = json.loads((REPO / "tests" / "data" / "adoption_report.json").read_text())
    for test in recorded["candidates"]["x264_pyav"]["tests"].values():
        test.update(outcome="passed", reason=None)
    for result in recorded["candidates"]["x264_pyav"]["gates"].values():
        result.update(passed=True, message="")
    recorded["candidates"]["x264_pyav"]["passed_all"] = True
    calls = []

    def fake_run_suite(options, candidates=None, **kwargs):
        calls.append((options, kwargs))
        out = options.report_dir
        out.mkdir(parents=True, exist_ok=True)
        (out / "run-fake.json").write_text(json.dumps(recorded))
        results = RunResults.from_json(recorded, validate=False)
        return SuiteRun(1, out / "run-fake.json", None, 0.0, ["python", "-m", "pytest"], results=results)

    monkeypatch.setattr(gate, "run_suite", fake_run_suite)
    summary = tmp_path / "gate.md"
    assert (
        harness_main(
            ["gate", "--repo", str(repo), "--report-dir", str(tmp_path / "rep"), "--summary", str(summary),
             "--waive-heldout"]
        )
        == 1
    )
    ((options, kwargs),) = calls
    assert options.candidates == ("dct_inter", "x264_pyav") and Path(kwargs["root"]) == repo.resolve()
    assert options.ledger.parent != repo  # the base branch's ledger, copied
    text = summary.read_text()
    assert "the held-out check was waived: the verdicts rest on the public clips alone" in text
    assert (
        "no native champion yet: the best passing native candidate becomes the first (every native candidate ran)"
        in text
    )
    assert (
        "- **`dct_inter`** — rejected: not the best reference candidate for the native track's first champion: "
        "x264\\_pyav" in text
    )

    # pytest itself failing (e.g. a usage error) is the gate's error, exit 2
    monkeypatch.setattr(gate, "run_suite", lambda options, *a, **k: SuiteRun(4, None, "no report", 0.0, []))
    assert harness_main(["gate", "--repo", str(repo), "--report-dir", str(tmp_path / "rep2")]) == 2
    assert "pytest benchmarks/ exited with status 4 and wrote no report" in capsys.readouterr().err


def test_the_workflow_runs_the_gate_on_candidate_pull_requests():
    path = REPO / ".github" / "workflows" / "candidate-gate.yml"
    text = path.read_text()
    for needle in (
        "pull_request:",
        '"candidates/**"',
        "runs-on: ubuntu-24.04",
        "fetch-depth: 0",
        'python-version: "3.11"',
        "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
        "scripts/bootstrap",
        "path: ~/.cache/codec-harness",
        "hashFiles('fixtures/anchors.toml', 'fixtures/suite.toml')",
        '.venv/bin/python -m harness gate --base "origin/${BASE_REF}" --summary gate.md --report-dir reports',
        "actions/upload-artifact@v4",
        "reports/*.json",
        "reports/*.html",
        "pull-requests: write",
        gate.MARKER,
        "steps.gate.outputs.status != '0'",
        "CODEC_HARNESS_HELDOUT: ${{ vars.CODEC_HARNESS_HELDOUT }}",
    ):
        assert needle in text, needle
    try:
        import yaml
    except ImportError:  # PyYAML is not a dependency; the text checks above still ran
        return
    flow = yaml.safe_load(text)
    steps = flow["jobs"]["gate"]["steps"]
    names = [s.get("name") or s.get("uses") for s in steps]
    assert names.index("Allow unprivileged user namespaces (bubblewrap)") < names.index("Gate")
    assert steps[-1]["if"] == "steps.gate.outputs.status != '0'"
    assert flow[True]["pull_request"]["paths"] == ["candidates/**"]  # YAML 1.1 reads `on` as True
