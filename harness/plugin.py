"""pytest plugin: options, parametrization and the per-run JSON result. Hooks and fixtures only.

State lives in one `SuiteSession` on the pytest config. Tests report what they judged through
`record(...)`, which travels in the test report's user_properties, so the controller writes
the result file also when pytest-xdist runs the tests elsewhere.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.anchors import load_anchor_specs
from harness.cache import ResultCache
from harness.candidate import discover_candidates, select_candidates
from harness.clips import default_cache_dir, resolve_clip_set
from harness.config import load_suite_config
from harness.errors import HarnessError
from harness.judge import Judge
from harness.ledger import Ledger
from harness.report import ResultCollector
from harness.runner import Runner
from harness.sandbox import Sandbox

PROPERTY = "codec_harness"
PARAMS_PROPERTY = "codec_harness_params"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("codec-harness", "codec harness")
    group.addoption("--clips", default="default", help="clip set name, folder or manifest .toml (default: default)")
    group.addoption(
        "--heldout", default=None,
        help="a held-out clip set (name, folder or manifest) judged beside --clips and reported side by side",
    )
    group.addoption("--frames", type=int, default=None, help="frames per clip (default: fixtures/suite.toml)")
    group.addoption("--candidates", default=None, help="comma-separated candidate names (default: all)")
    group.addoption("--candidates-dir", default=None, help="folder of candidates (default: <rootdir>/candidates)")
    group.addoption("--fixtures-dir", default=None, help="folder of clip sets and suite config")
    group.addoption(
        "--sandbox", choices=("bwrap", "none"), default="bwrap",
        help="bwrap (default) or none: no isolation, for trusted code only, reported loudly",
    )
    group.addoption("--sandbox-gpu", action="store_true", help="pass NVIDIA devices into the sandbox")
    group.addoption("--report-dir", default=None, help="where the JSON result goes (default: <rootdir>/reports)")
    group.addoption(
        "--cache-dir", default=None, help="anchor result cache (default: ~/.cache/codec-harness)"
    )
    group.addoption("--refresh-anchors", action="store_true", help="re-encode anchors, ignoring the cache")
    group.addoption(
        "--rerun", action="store_true",
        help="judge every candidate afresh instead of reusing passing results of the same source and input",
    )
    group.addoption(
        "--ledger", default=None, help="adoption ledger whose champion is compared with (default: <rootdir>/ledger.jsonl)"
    )


@dataclass(eq=False)  # registered as a pytest plugin: must stay hashable
class SuiteSession:
    """Everything one run knows; built lazily so that plain `pytest tests/` pays nothing."""

    config: pytest.Config
    collector: ResultCollector = field(default_factory=ResultCollector)
    # What tests record once per run (settings, champion): travels with reports, so xdist works.
    run_info: dict[str, object] = field(default_factory=dict)
    _judge: Judge | None = None

    def option(self, name: str):
        return self.config.getoption(name)

    @property
    def root(self) -> Path:
        return Path(self.config.rootpath)

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            self._judge = self._build()
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
        report_dir = Path(self.option("report_dir") or self.root / "reports")
        self.collector.written = self.collector.write(report_dir, root=self.root, enrich=self._verdicts)
        from harness.render import write_renderings

        doc = self.collector.last_document
        write_renderings(doc, self.collector.written)
        write_renderings(doc, report_dir / "latest.json")

    def _verdicts(self, doc: dict) -> None:
        """Each candidate's adoption verdict (adopted / rejected / failed) against the ledger."""
        from harness.adoption import decide_all, load_adoption_config

        fixtures = Path(self.option("fixtures_dir") or self.root / "fixtures")
        try:
            config = load_adoption_config(fixtures / "adoption.toml")
            ledger = Ledger(self.option("ledger") or self.root / "ledger.jsonl")
            verdicts = decide_all(doc, config=config, ledger=ledger)
        except HarnessError as err:
            for cand in doc["candidates"].values():
                cand["verdict"] = {"decision": "unknown", "reason": f"no verdict: {err}"}
            return
        champion = (doc.get("champion") or {}).get("name")
        for name, verdict in verdicts.items():
            if name == champion:
                doc["candidates"][name]["verdict"] = {
                    "decision": "champion", "adoptable": False, "reason": verdict.reason, "judged": True,
                }
                continue
            doc["candidates"][name]["verdict"] = {
                "decision": verdict.decision,
                "adoptable": verdict.adoptable,
                "reason": verdict.reason,
                "identical_to": verdict.identical_to,
                "judged": verdict.judged,
            }

    def _champion(self, found, candidates) -> str | None:
        """The ledger's champion, added to the run so every other candidate is compared with it."""
        ledger = Ledger(self.option("ledger") or self.root / "ledger.jsonl")
        entry = ledger.champion()
        if entry is None:
            self.run_info["champion"] = None
            return None
        info: dict[str, object] = {"name": entry.candidate, "sha256": entry.source_sha256, "ledger_seq": entry.seq}
        source = next((c for c in found if c.name == entry.candidate), None)
        if source is None:
            info["warning"] = f"the champion {entry.candidate} is not in the candidates folder; no comparison"
            self.run_info["champion"] = info
            return None
        if source.sha256 != entry.source_sha256:
            info["warning"] = (
                f"{entry.candidate}'s source changed since its adoption (ledger {entry.source_sha256[:12]}, "
                f"now {source.sha256[:12]}): compared with the current file"
            )
        if source not in candidates:
            candidates.append(source)
        self.run_info["champion"] = info
        return entry.candidate

    def _build(self) -> Judge:
        fixtures = Path(self.option("fixtures_dir") or self.root / "fixtures")
        try:
            suite = load_suite_config(fixtures / "suite.toml")
            set_name, clips = resolve_clip_set(
                self.option("clips"), config=fixtures / "clipsets.toml", root=self.root
            )
            clip_sets = {c.name: "public" for c in clips}
            if self.option("heldout"):
                held_name, held = resolve_clip_set(
                    self.option("heldout"), config=fixtures / "clipsets.toml", root=self.root
                )
                held = [dataclasses.replace(c, name=f"heldout-{c.name}") for c in held]
                clip_sets.update({c.name: "heldout" for c in held})
                clips = clips + held
                set_name = f"{set_name} + held-out {held_name}"
            found = discover_candidates(self.option("candidates_dir") or self.root / "candidates")
            names = [n.strip() for n in (self.option("candidates") or "").split(",") if n.strip()]
            candidates = select_candidates(found, names or None)
            champion = self._champion(found, candidates)
            anchors = load_anchor_specs(fixtures / "anchors.toml")
            missing = [a for a in suite.compare_anchors if a not in anchors]
            if missing:
                raise HarnessError(f"suite.toml names anchors {missing} that anchors.toml lacks: {sorted(anchors)}")
            sandbox = Sandbox(
                mode=self.option("sandbox"),
                gpu=self.option("sandbox_gpu"),
                hide=tuple(str(c.path) for c in clips),
            )
        except HarnessError as err:
            raise pytest.UsageError(str(err)) from err
        frames = self.option("frames") or suite.default_frames
        if frames < 1:
            raise pytest.UsageError(f"--frames must be at least 1, got {frames}")
        judge = Judge(
            runner=Runner(sandbox=sandbox, limits=suite.limits),
            config=suite,
            clips=clips,
            candidates=candidates,
            champion=champion,
            max_frames=frames,
            anchors={name: anchors[name] for name in suite.compare_anchors},
            cache=ResultCache(
                Path(self.option("cache_dir") or default_cache_dir()),
                refresh=self.option("refresh_anchors"),
            ),
        )
        judge.run_info = self.run_info
        judge.reuse_results = not self.option("rerun")
        workerinput = getattr(self.config, "workerinput", None)
        if workerinput:  # xdist: the same id on every worker of this run
            judge.run_id = workerinput["testrunuid"]
        judge.clip_sets = clip_sets
        self.run_info["settings"] = dict(
            clip_set=set_name,
            frames=frames,
            suite=suite.to_json(),
            sandbox=sandbox.describe(),
            candidates_dir=str(self.option("candidates_dir") or self.root / "candidates"),
        )
        return judge


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
        terminalreporter.write_sep("-", f"codec harness result: {state.collector.written}")
