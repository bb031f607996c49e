"""pytest plugin: options, parametrization and the per-run JSON result. Hooks and fixtures only.

The options are `harness.suite.SuiteOptions`'s fields; the run (clips, candidates, champion,
sandbox, Judge) is built by `harness.session`. State lives in one `SuiteSession` on the pytest config. Tests report what they judged through
`record(...)`, which travels in the test report's user_properties, so the controller writes
the result file also when pytest-xdist runs the tests elsewhere.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from _pytest.config import print_usage_error

from harness.errors import HarnessError
from harness.judge import Judge
from harness.progress import HEARTBEAT_S, Progress
from harness.report import ResultCollector
from harness.session import add_verdicts, build_judge
from harness.suite import USAGE_EXIT, SuiteOptions  # USAGE_EXIT: 2 (pytest's own usage error is 4)

PROPERTY = "codec_harness"
PARAMS_PROPERTY = "codec_harness_params"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("codec-harness", "codec harness")
    for flag, kwargs in SuiteOptions.option_specs():
        group.addoption(flag, **kwargs)


@dataclass(eq=False)  # registered as a pytest plugin: must stay hashable
class SuiteSession:
    """Everything one run knows; built lazily so that plain `pytest tests/` pays nothing."""

    config: pytest.Config
    collector: ResultCollector = field(default_factory=ResultCollector)
    _judge: Judge | None = None
    usage_error: str | None = None  # found while collecting: refused once collection ends
    progress: Progress | None = None
    _heartbeat_stop: threading.Event = field(default_factory=threading.Event)
    _current_test: str = ""  # the node id whose setup or call runs (heartbeats end their line with it)

    @property
    def options(self) -> SuiteOptions:
        return SuiteOptions.from_config(self.config)

    @property
    def root(self) -> Path:
        return Path(self.config.rootpath)

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            self._judge = self.config.stash.get(_PREBUILT, None)
        if self._judge is None:
            workerinput = getattr(self.config, "workerinput", None)
            run_id = workerinput["testrunuid"] if workerinput else None  # xdist: one id on every worker
            try:
                self._judge, _ = build_judge(self.options, self.root, run_id=run_id)
            except HarnessError as err:
                raise pytest.UsageError(str(err)) from err
        return self._judge

    @property
    def dropped_clips(self) -> dict[str, str]:
        """Clips left out before judging (clip -> problem): a corrupt file, a 10-bit clip, a failed download."""
        judge = self._judge or self.config.stash.get(_PREBUILT, None)  # the controller's, under xdist
        if judge is None:
            return {}
        return dict(judge.run_info.get("settings", {}).get("dropped_clips") or {})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
            return
        props = dict(report.user_properties)
        if self.progress is not None and report.failed and report.nodeid.split("::")[-1].startswith("test_contract["):
            self.progress.block(json.loads(props.get(PARAMS_PROPERTY, "{}")).get("candidate"))
        for name, value in report.user_properties:
            if name == PROPERTY:
                self.collector.add(json.loads(value))
        if PARAMS_PROPERTY in props or report.nodeid.startswith("benchmarks/"):
            params = json.loads(props.get(PARAMS_PROPERTY, "{}"))
            self.collector.add_test(_plain_nodeid(report.nodeid), report.outcome, _reason(report), params=params)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        distributed = bool(getattr(self.config.option, "numprocesses", None)) or hasattr(self.config, "workerinput")
        if reporter is not None and not distributed and self.config.get_verbosity() >= 0:
            # xdist workers cannot print; -q is quiet. CODEC_HARNESS_HEARTBEAT_S: the longest silence.
            heartbeat = float(os.environ.get("CODEC_HARNESS_HEARTBEAT_S") or HEARTBEAT_S)
            capman = self.config.pluginmanager.get_plugin("capturemanager")
            self.progress = Progress(
                partial(_progress_line, reporter),
                heartbeat_s=heartbeat,
                write_in_test=lambda text: _progress_line_in_test(reporter, capman, text, self._current_test),
            )

    @pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup reads the xdist_group marks
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if self.usage_error is not None:  # outside the collector: a one-line error, not a traceback
            _refuse(self.config, self.usage_error)
        if not self.config.getoption("harness_benchmarks"):
            # The harness's own speed benchmarks are opt-in: `pytest benchmarks/` judges codecs.
            skipped = [i for i in items if i.get_closest_marker("harness_benchmark")]
            if skipped:
                self.config.hook.pytest_deselected(items=skipped)
                items[:] = [i for i in items if not i.get_closest_marker("harness_benchmark")]
        for item in items:
            params = getattr(getattr(item, "callspec", None), "params", {})
            if "candidate" in params:
                item.user_properties.append((PARAMS_PROPERTY, json.dumps(params, sort_keys=True)))
                if self.progress is not None:
                    self.progress.expect(item.nodeid, item.originalname, params)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or hasattr(self.config, "workerinput"):
            return
        for clip, problem in self.dropped_clips.items():
            reporter.write_line(f"WARNING: clip {clip} left out, not judged: {problem}", yellow=True, bold=True)
        if self.progress is not None:
            self.progress.begin()
            beat = threading.Thread(target=_heartbeat, args=(self.progress, self._heartbeat_stop), daemon=True)
            beat.start()

    # trylast: inside the capture plugin's wrappers, so heartbeats stop before it suspends capture.
    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_setup(self, item: pytest.Item):
        return (yield from self._running(item))

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_call(self, item: pytest.Item):
        return (yield from self._running(item))

    def _running(self, item: pytest.Item):
        """Heartbeats only inside a test's setup or call: pytest writes its results in between."""
        if self.progress is None:
            return (yield)
        self._current_test = item.nodeid
        self.progress.running(True)
        try:
            return (yield)
        finally:
            self.progress.running(False)

    @pytest.hookimpl(tryfirst=True)  # before the terminal reporter writes the test's id (-v)
    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        if self.progress is not None:
            self.progress.started(nodeid)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._heartbeat_stop.set()
        if hasattr(self.config, "workerinput"):
            return  # an xdist worker: the controller writes the result
        if not self.collector.has_results:
            return
        if self._judge is not None:
            self.collector.settings["anchor_cache"] = {
                **self._judge.cache.stats(),
                "anchor_encodes": self._judge.anchor_encodes,
            }
        options = self.options
        report_dir = options.report_path(self.root)
        self.collector.written = self.collector.write(
            report_dir, root=self.root, enrich=lambda doc: add_verdicts(doc, options, self.root)
        )
        from harness.render import write_renderings

        doc = self.collector.last_document
        write_renderings(doc, self.collector.written)
        write_renderings(doc, report_dir / "latest.json")


def _heartbeat(progress: Progress, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        progress.tick()


def _progress_line(reporter, text: str) -> None:
    """A progress line on a line of its own, left open: the next test's result (or id, -v) ends it."""
    reporter.ensure_newline()
    reporter.write(text, cyan=True)


def _progress_line_in_test(reporter, capman, text: str, nodeid: str) -> None:
    """The same while a test runs: pytest captures the output then, so capture pauses for the line,
    and without -v the test's file name is written again for its result letter to follow."""
    with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
        _progress_line(reporter, text)
        if reporter.verbosity <= 0 and nodeid:
            reporter.write_fspath_result(nodeid, "")


def _session(config: pytest.Config) -> SuiteSession:
    return config.stash[_KEY]


_KEY = pytest.StashKey[SuiteSession]()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """`-n N` alone means --dist loadgroup here: one worker per candidate x clip (see xdist_group).

    An xdist worker parses the command line again (where `--dist` was not given), so the
    controller's choice reaches it through workerinput; without it the workers would not tag
    their items with the group and loadgroup would quietly deal out tests like `load`.
    """
    option = config.option
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        if workerinput.get(_DIST_KEY) == "loadgroup":
            option.loadgroup = True
        return None
    if getattr(option, "numprocesses", None) and getattr(option, "dist", "no") == "no":
        option.dist = "loadgroup"
    return _check_run(config)


def _check_run(config: pytest.Config) -> int | None:
    """Build the run before pytest starts when it judges codecs: a bad --clips, --candidates or
    fixture file, or a clip set with no usable clip, is pytest's one-line `ERROR: ...` and exit
    status 2, not a collection error with a traceback. The Judge built is the one the run uses."""
    if any(getattr(config.option, flag, False) for flag in _INFO_FLAGS) or not _judges_codecs(config):
        return None
    try:
        judge, _ = build_judge(SuiteOptions.from_config(config), Path(config.rootpath))
    except HarnessError as err:
        print_usage_error(pytest.UsageError(str(err)), sys.stderr)
        return USAGE_EXIT
    config.stash[_PREBUILT] = judge
    return None


_INFO_FLAGS = ("help", "version", "markers", "showfixtures", "show_fixtures_per_test")
_PREBUILT = pytest.StashKey[Judge]()


def _judges_codecs(config: pytest.Config) -> bool:
    """Whether the run collects the suite (a test_codecs.py, or a folder holding one or its benchmarks/)."""
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0])
        if path.is_file() and path.name == "test_codecs.py":
            return True
        if path.is_dir() and any((path / sub).is_file() for sub in ("test_codecs.py", "benchmarks/test_codecs.py")):
            return True
    return False


def _refuse(config: pytest.Config, message: str) -> None:
    """Stop the run with the one-line usage error (found after pytest started: collection)."""
    print_usage_error(pytest.UsageError(message), sys.stderr)
    pytest.exit(message, returncode=USAGE_EXIT)


_DIST_KEY = "codec_harness_dist"
_GROUP_SUFFIX = re.compile(r"(?<=\])@[^\[\]/]+$")


def _plain_nodeid(nodeid: str) -> str:
    """The test id without the `@group` xdist's loadgroup appends, so ids do not depend on -n."""
    return _GROUP_SUFFIX.sub("", nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist, on the controller: tell each worker the distribution mode in force."""
    node.workerinput[_DIST_KEY] = node.config.getoption("dist", "no")


def pytest_configure(config: pytest.Config) -> None:
    state = SuiteSession(config)
    config.stash[_KEY] = state
    config.pluginmanager.register(state, "codec-harness-session")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = set(metafunc.fixturenames)
    if "candidate" not in names:
        return
    state = _session(metafunc.config)
    try:
        judge = state.judge
    except pytest.UsageError as err:  # raised here it would be a collection error with a traceback
        state.usage_error = str(err)
        metafunc.parametrize("candidate", [])
        return
    cands = list(judge.candidates)
    clips = list(judge.clips)
    # With pytest-xdist --dist loadgroup, all tests of one candidate x clip run on one worker,
    # so each encode/decode happens once (the Judge remembers it per process).
    def param(values: tuple, ident: str, group: str):
        return pytest.param(*values, id=ident, marks=pytest.mark.xdist_group(group))

    if "rung" in names:
        combos = itertools.product(cands, clips, range(judge.rung_count))
        params = [param((c, k, r), f"{c}-{k}-r{r}", f"{c}-{k}") for c, k, r in combos]
        metafunc.parametrize(("candidate", "clip", "rung"), params)
    elif "clip" in names:
        params = [param((c, k), f"{c}-{k}", f"{c}-{k}") for c, k in itertools.product(cands, clips)]
        metafunc.parametrize(("candidate", "clip"), params)
    else:
        metafunc.parametrize("candidate", [param((c,), c, c) for c in cands])


@pytest.fixture(scope="session")
def judge(request: pytest.FixtureRequest) -> Judge:
    """The run's `Judge`: sandboxed calls and measurements, each done once and remembered."""
    return _session(request.config).judge


@pytest.fixture
def record(request: pytest.FixtureRequest):
    """record(kind, **data): attach judged data to this test's report for the JSON result."""

    def add(kind: str, **data: object) -> None:
        request.node.user_properties.append((PROPERTY, json.dumps({"kind": kind, **data}, default=str)))

    return add


def _reason(report: pytest.TestReport) -> str | None:
    if report.passed:
        return None
    if report.skipped and isinstance(report.longrepr, tuple):  # (file, line, "Skipped: why")
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(report.longrepr, "reprcrash", None)
    return crash.message if crash is not None else str(report.longrepr)[-2000:]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = _session(config)
    if config.getoption("sandbox") == "none" and state._judge is not None:
        terminalreporter.section("codec harness: NO SANDBOX", sep="!", red=True, bold=True)
        terminalreporter.write_line(
            "--sandbox=none: candidate code ran WITHOUT isolation. Use it for trusted code only.", red=True
        )
    if state.collector.written:
        from harness.render.terminal import leaderboard_lines

        terminalreporter.write_sep("-", "codec harness leaderboard")
        for line in leaderboard_lines(state.collector.last_document or {}, state.collector.written):
            terminalreporter.write_line(line, yellow=line.startswith("WARNING"), bold=line.startswith("WARNING"))
        terminalreporter.write_sep("-", f"codec harness result: {state.collector.written}")
