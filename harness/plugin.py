"""pytest plugin: options, parametrization and the per-run JSON result. Hooks and fixtures only.

The options are `harness.suite.SuiteOptions`'s fields; the run (clips, candidates, champion,
sandbox, Judge) is built by `harness.session`. State lives in one `SuiteSession` on the pytest config. Tests report what they judged through
`record(...)`, which travels in the test report's user_properties, so the controller writes
the result file also when pytest-xdist runs the tests elsewhere.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.judge import Judge
from harness.report import ResultCollector
from harness.session import add_verdicts, build_judge
from harness.suite import SuiteOptions

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

    @property
    def options(self) -> SuiteOptions:
        return SuiteOptions.from_config(self.config)

    @property
    def root(self) -> Path:
        return Path(self.config.rootpath)

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            workerinput = getattr(self.config, "workerinput", None)
            run_id = workerinput["testrunuid"] if workerinput else None  # xdist: one id on every worker
            try:
                self._judge, _ = build_judge(self.options, self.root, run_id=run_id)
            except HarnessError as err:
                raise pytest.UsageError(str(err)) from err
        return self._judge

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
            return
        props = dict(report.user_properties)
        for name, value in report.user_properties:
            if name == PROPERTY:
                self.collector.add(json.loads(value))
        if PARAMS_PROPERTY in props or report.nodeid.startswith("benchmarks/"):
            params = json.loads(props.get(PARAMS_PROPERTY, "{}"))
            self.collector.add_test(_plain_nodeid(report.nodeid), report.outcome, _reason(report), params=params)

    @pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup reads the xdist_group marks
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
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

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
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


def _session(config: pytest.Config) -> SuiteSession:
    return config.stash[_KEY]


_KEY = pytest.StashKey[SuiteSession]()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
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
        return
    if getattr(option, "numprocesses", None) and getattr(option, "dist", "no") == "no":
        option.dist = "loadgroup"


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
    judge = _session(metafunc.config).judge
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
