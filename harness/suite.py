"""The suite's options, declared once, and the one way to run the suite in a subprocess.

`SuiteOptions` holds every option of the pytest plugin (`pytest benchmarks/ --help`): the plugin
declares its command-line options from the dataclass's fields (`option_specs`) and reads them
back with `SuiteOptions.from_config`; `to_pytest_args` turns options into the same flags.

`run_suite` runs `python -m pytest benchmarks/test_codecs.py ...` for the gate and the evolution
loop: in its own process group (killed on timeout or interruption), then finds the report the
run wrote into the report folder and parses it with `harness.results.load_report`.

Where things are (`locate_suite`): the project root (`root`, the working directory by default)
holds the candidates, the ledger and the reports, and its fixtures/ when it has one. The suite
file is `<root>/benchmarks/test_codecs.py`, else the one of the checkout the `harness` package
was imported from (a source checkout or an editable install), else a `SuiteError` says where it
looked. pytest's rootdir is the folder holding benchmarks/ (test ids read
`benchmarks/test_codecs.py::...` either way), so every path of the run is passed explicitly,
resolved against `root`.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness.errors import HarnessError
from harness.results import RunResults, load_report

__all__ = ["SUITE_FILE", "SuiteError", "SuiteOptions", "SuiteRun", "locate_suite", "run_suite"]

SUITE_FILE = Path("benchmarks") / "test_codecs.py"
# The suite's exit status when it refuses its options or clips before judging (one `ERROR:` line).
USAGE_EXIT = 2


class SuiteError(HarnessError):
    """The suite cannot be run: its file is nowhere to be found, or pytest cannot be started."""


def _option(flag: str, help: str, kind: str = "str", choices: tuple[str, ...] = ()) -> dict[str, Any]:
    """A field's metadata that makes it a command-line option of the plugin (`SuiteOptions.option_specs`)."""
    return {"flag": flag, "help": help, "kind": kind, "choices": choices}


@dataclass(frozen=True)
class SuiteOptions:
    """Every option of `pytest benchmarks/`; None / False / the default means "not given"."""

    profile: str | None = field(default=None, metadata=_option(
        "--profile",
        "quick (the default: the default clips, 10 frames) or standard (longer and larger clips: what the gate and "
        "adoption judge on); profiles are fixtures/suite.toml [profiles]; --clips and --frames override them",
    ))
    clips: str | None = field(
        default=None, metadata=_option("--clips", "clip set name, folder or manifest .toml (default: the profile's)")
    )
    heldout: str | None = field(default=None, metadata=_option(
        "--heldout", "a held-out clip set (name, folder or manifest) judged beside --clips and reported side by side"
    ))
    frames: int | None = field(
        default=None, metadata=_option("--frames", "frames per clip, at most (default: the profile's)", "int")
    )
    candidates: tuple[str, ...] | None = field(
        default=None, metadata=_option("--candidates", "comma-separated candidate names (default: all)", "names")
    )
    candidates_dir: Path | None = field(default=None, metadata=_option(
        "--candidates-dir", "folder of candidates (default: <rootdir>/candidates)", "path"
    ))
    fixtures_dir: Path | None = field(
        default=None, metadata=_option("--fixtures-dir", "folder of clip sets and suite config", "path")
    )
    sandbox: str = field(default="bwrap", metadata=_option(
        "--sandbox", "bwrap (default) or none: no isolation, for trusted code only, reported loudly",
        "choice", ("bwrap", "none"),
    ))
    sandbox_gpu: bool = field(
        default=False, metadata=_option("--sandbox-gpu", "pass NVIDIA devices into the sandbox", "flag")
    )
    report_dir: Path | None = field(default=None, metadata=_option(
        "--report-dir", "where the JSON result goes (default: <rootdir>/reports)", "path"
    ))
    cache_dir: Path | None = field(default=None, metadata=_option(
        "--cache-dir", "anchor result cache (default: ~/.cache/codec-harness)", "path"
    ))
    refresh_anchors: bool = field(
        default=False, metadata=_option("--refresh-anchors", "re-encode anchors, ignoring the cache", "flag")
    )
    rerun: bool = field(default=False, metadata=_option(
        "--rerun",
        "judge every candidate afresh instead of reusing passing results of the same source and input",
        "flag",
    ))
    ledger: Path | None = field(default=None, metadata=_option(
        "--ledger", "adoption ledger whose champion is compared with (default: <rootdir>/ledger.jsonl)", "path"
    ))
    harness_benchmarks: bool = field(default=False, metadata=_option(
        "--harness-benchmarks",
        "also run the harness's own speed benchmarks (metric kernels, sandbox overhead, per-call timing: for "
        "the harness's developers; judging codecs does not need them)",
        "flag",
    ))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), f.metadata["kind"]
            if kind == "path":
                value = Path(value) if value not in (None, "") else None
            elif kind == "names":
                if isinstance(value, str):
                    value = value.split(",")
                value = tuple(n.strip() for n in value or () if n.strip()) or None
            elif kind == "flag":
                value = bool(value)
            elif kind == "int" and value is not None:
                value = int(value)
            object.__setattr__(self, f.name, value)

    # ------------------------------------------------------------------ pytest's side

    @classmethod
    def option_specs(cls) -> Iterator[tuple[str, dict[str, Any]]]:
        """(flag, keyword arguments of `parser.addoption`) for each option, in declaration order."""
        for f in dataclasses.fields(cls):
            meta = f.metadata
            kwargs: dict[str, Any] = {"help": meta["help"]}
            if meta["kind"] == "flag":
                kwargs["action"] = "store_true"
            else:
                kwargs["default"] = f.default
                if meta["kind"] == "int":
                    kwargs["type"] = int
                if meta["choices"]:
                    kwargs["choices"] = meta["choices"]
            yield meta["flag"], kwargs

    @classmethod
    def from_config(cls, config: Any) -> SuiteOptions:
        """The options of a pytest run (`config.getoption`)."""
        return cls(**{f.name: config.getoption(f.name) for f in dataclasses.fields(cls)})

    def to_pytest_args(self) -> list[str]:
        """The flags that give these options (those left at their default are left out)."""
        args: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            flag = f.metadata["flag"]
            if f.metadata["kind"] == "flag":
                args.append(flag)
                continue
            text = ",".join(value) if f.metadata["kind"] == "names" else str(value)
            args += [f"{flag}={text}"] if text.startswith("-") else [flag, text]
        return args

    def to_json(self) -> dict[str, Any]:
        """Every option as the report records it (`settings.options`): folders as given, which
        `harness.reproduce` never needs (it finds candidates and clips by their hashes)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    # ------------------------------------------------------------------ where things are

    def candidates_path(self, root: Path) -> Path:
        return self.candidates_dir or Path(root) / "candidates"

    def fixtures_path(self, root: Path) -> Path:
        return self.fixtures_dir or Path(root) / "fixtures"

    def ledger_path(self, root: Path) -> Path:
        return self.ledger or Path(root) / "ledger.jsonl"

    def report_path(self, root: Path) -> Path:
        return self.report_dir or Path(root) / "reports"

    def for_project(self, root: Path) -> SuiteOptions:
        """These options with every folder made absolute against the project root `root`, and the
        root's candidates, ledger, reports (and fixtures when it has them) filled in."""
        root = Path(root).resolve()

        def at(path: Path | None) -> Path | None:
            return None if path is None else (root / path).resolve()

        fixtures = self.fixtures_dir or (Path("fixtures") if (root / "fixtures").is_dir() else None)
        return dataclasses.replace(
            self,
            candidates_dir=at(self.candidates_path(Path("."))),
            fixtures_dir=at(fixtures),
            report_dir=at(self.report_path(Path("."))),
            cache_dir=at(self.cache_dir),
            ledger=at(self.ledger_path(Path("."))),
        )


def locate_suite(root: str | os.PathLike[str] | None = None) -> Path:
    """benchmarks/test_codecs.py under the project root, else in the checkout `harness` came from."""
    root = Path(root if root is not None else Path.cwd()).resolve()
    checkout = Path(harness.__file__).resolve().parent.parent
    looked = [root / SUITE_FILE, checkout / SUITE_FILE]
    for path in looked:
        if path.is_file():
            return path
    raise SuiteError(
        f"cannot find the suite {SUITE_FILE.as_posix()}: not in the project root {root} nor beside the harness "
        f"package ({checkout}); run from the project's checkout (the folder with benchmarks/, candidates/ and "
        "fixtures/) or name it (--repo / the run's root)"
    )


@dataclass(frozen=True)
class SuiteRun:
    """How one suite run ended: its exit status, the report it wrote, and that report parsed."""

    returncode: int | None  # None: killed on timeout (or never finished)
    report: Path | None  # the run-*.json it wrote (None: none; `problem` says why)
    problem: str | None  # why there is no usable report (no report, or one that cannot be read)
    wall_s: float
    command: list[str]
    results: RunResults | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.results is not None


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The child's environment: it imports the same `harness` as this process (unless the project
    root, its working directory, holds its own harness/, which comes first on its sys.path)."""
    out = dict(os.environ if env is None else env)
    parent = Path(harness.__file__).resolve().parent.parent
    if parent.name not in ("site-packages", "dist-packages"):
        out["PYTHONPATH"] = os.pathsep.join([str(parent), *filter(None, [out.get("PYTHONPATH")])])
    return out


def _our_report(report_dir: Path, before: set[Path], pid: int) -> Path | None:
    """The run-*.json the run wrote: named with its pid (run-<time>-<pid>.json), else the newest new one."""
    fresh = [p for p in report_dir.glob("run-*.json") if p not in before]
    mine = [p for p in fresh if p.stem.endswith(f"-{pid}")]
    pick = mine or fresh
    return max(pick, key=lambda p: p.stat().st_mtime_ns) if pick else None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def log_tail(path: Path | None, chars: int = 1500) -> str:
    """The end of a run's log, for an error message."""
    if path is None:
        return "(see its output above)"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return text[-chars:].strip() or "(no output)"


def run_suite(
    options: SuiteOptions,
    candidates: Sequence[str] | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    log: str | os.PathLike[str] | None = None,
    pytest_args: Sequence[str] = (),
    suite: str | os.PathLike[str] | None = None,
    python: str = sys.executable,
) -> SuiteRun:
    """Run the suite on `candidates` (None: `options.candidates`, or all) in a subprocess.

    `root` is the project root (default: the working directory; the child runs there); its
    candidates/, ledger.jsonl and reports/ are the defaults (see `SuiteOptions.for_project`).
    `log`: a file that receives the command line and the run's output (default: this
    process's stdout and stderr). `pytest_args`: pytest's own arguments (-n 2, -k ...).
    `suite`: the suite file (default: `locate_suite(root)`). Never raises for what the run
    did: a timeout, a run that wrote no report or an unreadable one end in `problem`.
    """
    root = Path(root if root is not None else Path.cwd()).resolve()
    suite_file = Path(suite).resolve() if suite is not None else locate_suite(root)
    opts = options.for_project(root)
    if candidates is not None:
        opts = dataclasses.replace(opts, candidates=tuple(candidates))
    report_dir = opts.report_path(root)
    report_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        python, "-m", "pytest", str(suite_file),
        "--rootdir", str(suite_file.parent.parent),
        "-p", "harness.plugin", "-p", "no:cacheprovider",
        *opts.to_pytest_args(),
        *pytest_args,
    ]
    log_path = Path(log) if log is not None else None
    before = set(report_dir.glob("run-*.json"))
    start = time.monotonic()
    out = None
    try:
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            out = open(log_path, "wb")  # noqa: SIM115 - closed below, after the child is gone
            out.write(("$ " + " ".join(cmd) + "\n").encode())
            out.flush()
        else:
            print("suite: " + " ".join(cmd), file=sys.stderr, flush=True)
        try:
            proc = subprocess.Popen(
                cmd, cwd=root, env=_child_env(env), stdin=subprocess.DEVNULL, start_new_session=True,
                stdout=out, stderr=subprocess.STDOUT if out is not None else None,
            )
        except OSError as err:
            raise SuiteError(f"cannot run pytest ({python}): {err}") from err
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            why = f"the suite did not finish within {timeout:.0f} s and was killed"
            return SuiteRun(None, None, why, time.monotonic() - start, cmd, timed_out=True)
        except BaseException:
            _kill_group(proc)
            raise
    finally:
        if out is not None:
            out.close()
    wall = time.monotonic() - start
    report = _our_report(report_dir, before, proc.pid)
    if report is None:
        return SuiteRun(rc, None, f"the suite wrote no report (exit status {rc}): {log_tail(log_path)}", wall, cmd)
    try:
        results = load_report(report)
    except HarnessError as err:
        return SuiteRun(rc, report, f"cannot read the suite's report {report}: {err}", wall, cmd)
    return SuiteRun(rc, report, None, wall, cmd, results=results)
