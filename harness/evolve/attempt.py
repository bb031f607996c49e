"""Steps 3 and 4 of an attempt: from the model's reply to a recorded verdict (see harness/evolve/loop.py).

`AttemptJudge.judge` takes the reply and returns the attempt's record (what attempts.jsonl gets),
one step at a time:

- the candidate's name, fixed in pending.json before anything else is written;
- the first ```python block of the reply (none: recorded as invalid, stage "extract");
- the module staged in the attempt's folder and checked by reading (the same code as an earlier
  attempt of this run or of another run beside it, or as a module in the candidates folder:
  rejected before judging, stage "identical", naming which; a module that does not meet the
  contract: invalid, stage "check"), then written to the candidates folder with the loop's header;
- the evaluation (harness/evolve/evaluate.py, run by the loop on threads or Ray, maybe on another
  node): first the cascade's screen (cheap tests on one small clip; a failure is recorded with stage
  "screen" and its failure text, RUN/attempts/N/screen/ keeps its report and log), then the full
  suite run (or, after a kill, the report a finished run left), its failure recorded (stage "suite")
  or the adoption verdict recorded (stage "verdict"); report and log come back as text and are
  written to the attempt's folder (report/, suite.log);
- a module that was not adopted leaves the candidates folder for the attempt's folder
  (candidate/NAME.py, as judged): only adopted code stays among the candidates.

Every outcome is exactly one ledger entry (harness/evolve/judge.py).

`prepare` (the steps up to the installed module), `screen_failure` and `finish` (the verdict from a
full evaluation's result) are what the concurrent loop calls, one attempt at a time in the driver;
`judge` runs them in order in this thread (one attempt, no loop).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from harness.adoption import AdoptionConfig
from harness.atomic import write_text_atomic
from harness.candidate import discover_candidates
from harness.errors import HarnessError
from harness.evolve.client import Reply
from harness.evolve.evaluate import SCREEN_TESTS, EvalRequest, EvalResult, evaluate, source_files
from harness.evolve.extract import (
    HEADER_FIRST,
    Extracted,
    add_header,
    candidate_name,
    check_module,
    code_sha256,
    extract_code,
    strip_header,
)
from harness.evolve.judge import SuiteRun, record_rejection, record_verdict
from harness.evolve.log import RunDir, utc_stamp
from harness.evolve.results import anchor_scores, cut_text, failure_text, load_doc
from harness.ledger import Ledger
from harness.suite import USAGE_EXIT, log_tail

if TYPE_CHECKING:
    from harness.evolve.loop import RunSettings

__all__ = ["AttemptJudge", "Prepared", "ScreenClip"]


@dataclass(frozen=True)
class ScreenClip:
    """The cascade's screen: one clip (its file, shipped with each request) in a folder named `set_name`."""

    path: Path
    set_name: str
    frames: int
    data: bytes = field(repr=False, default=b"")


@dataclass
class Prepared:
    """An attempt whose module is installed and waits for its evaluation (what `finish` needs)."""

    n: int
    adir: Path
    name: str
    parent: str
    evo: dict
    record: dict
    recorded: SuiteRun | None = None  # the report a killed run already judged and recorded
    reruns: int = 0  # full evaluations repeated because the champion changed meanwhile

_TRACK_HINT = {
    "native": "remove the TRACK declaration; the codec must be the candidate's own",
    "open": 'declare TRACK = "open"',
}


@dataclass
class AttemptJudge:
    """Judges and records the candidate of each reply of a run (the state it needs, nothing more)."""

    settings: RunSettings
    rundir: RunDir
    ledger: Ledger
    adoption: AdoptionConfig
    say: Callable[[str], None]
    clock: Callable[[], datetime]

    @property
    def anchor(self) -> str:
        return self.adoption.bootstrap_anchor

    @property
    def metric(self) -> str:
        return self.adoption.primary_metric

    @property
    def track(self) -> str:
        """The track the run evolves: what a module must declare, whose champion it is judged against."""
        return self.settings.config.suite.track

    @property
    def failure_chars(self) -> int:
        return self.settings.config.prompt.failure_chars

    # ------------------------------------------------------------------ the steps

    def judge(self, n: int, adir: Path, reply: Reply, request: dict, records: list[dict], base: dict,
              screen: ScreenClip | None = None) -> dict:
        """The record of attempt `n` (`base`: what the loop knows of the request and the reply), judged in
        this thread: `prepare`, the screen (when `screen` is given), the full evaluation, `finish`."""
        prep = self.prepare(n, adir, reply, request, records, base)
        if isinstance(prep, dict):
            return prep
        if prep.recorded is None and screen is not None:
            failed = self.screen_failure(prep, evaluate(self.eval_request(prep, "screen", screen)))
            if failed is not None:
                return failed
        result = None if prep.recorded is not None else evaluate(self.eval_request(prep, "full"))
        return self.finish(prep, result, records)

    def prepare(self, n: int, adir: Path, reply: Reply, request: dict, records: list[dict],
                base: dict) -> dict | Prepared:
        """The steps before the evaluation: the attempt's record when it ends there (no code, identical,
        invalid), else the installed module's `Prepared` (`records`: every attempt to compare code with)."""
        pending = self.pending(n, adir, records)
        name = pending["candidate"]
        parent = request["parent"]
        evo = {"evolve": {"run": str(self.rundir.path), "attempt": n, "model": reply.model,
                          "prompt_sha256": request["prompt_sha256"]}}
        record = {**base, "candidate": name, "candidate_path": None, "report": None, "failure": "",
                  "identical_to": None, "identical_attempt": None, "identical_kind": None}

        extracted = extract_code(reply.text, stop_reason=reply.stop_reason)
        if extracted.code is None:
            return self._no_code(record, reply, extracted, parent, evo)
        code = extracted.code
        digest = code_sha256(code)
        staged = adir / "candidate" / f"{name}.py"
        if not staged.exists():
            write_text_atomic(staged, code)
        record.update(code_sha256=digest)
        twin = self.twin(digest, records, name)
        checked = check_module(staged)
        if twin is not None:
            return self._identical_source(record, twin, checked.sha256, staged, parent, evo)
        if checked.problem:
            why = f"the module does not meet the contract: {checked.problem}"
            return self._invalid(record, why, checked.sha256, staged, parent, evo)
        track = self.track
        if checked.track != track:
            why = (f"the module declares the {checked.track} track; this run evolves the {track} track "
                   f"(its champion, its toolbox): {_TRACK_HINT[track]}")
            return self._invalid(record, why, checked.sha256, staged, parent, evo)
        why = self._install(n, name, code, request, reply, pending, record)
        if why is not None:
            return self._invalid(record, why, checked.sha256, staged, parent, evo)

        recorded = self._recorded_report(name, adir)
        if recorded is not None:
            self.say(f"attempt {n}: {name} was judged and recorded before the interruption; finishing its record")
        return Prepared(n, adir, name, parent, evo, record, recorded)

    # ------------------------------------------------------------------ the evaluation

    def eval_request(self, prep: Prepared, stage: str, screen: ScreenClip | None = None) -> EvalRequest:
        """The self-contained request of `prep`'s evaluation: its module and the champion's as they are now."""
        cands = self.settings.candidates_dir
        files = dict(source_files(cands, prep.name))
        champion = self.ledger.champion(self.track)
        if champion is not None:
            try:
                files.update(source_files(cands, champion.candidate))
            except HarnessError:
                pass  # the suite says the champion is missing, as it always did
        s = self.settings.config.suite
        common = {
            "attempt": prep.n, "stage": stage, "candidate": prep.name, "files": files,
            "ledger_text": self.ledger.path.read_text(encoding="utf-8") if self.ledger.path.exists() else "",
            "champion": champion.candidate if champion else None,
            "champion_sha256": champion.source_sha256 if champion else None,
            "cache_dir": str(self.settings.cache_dir) if self.settings.cache_dir else None,
            "fixtures_dir": str(self.settings.fixtures_dir) if self.settings.fixtures_dir else None,
            "root": str(self.settings.suite().root), "timeout_s": s.timeout_s,
        }
        if stage == "screen":
            assert screen is not None
            return EvalRequest(**common, clip_name=screen.path.name, clip_set=screen.set_name,
                               clip_data=screen.data or screen.path.read_bytes(), frames=screen.frames,
                               pytest_args=(*s.extra_args, "-x", "-k", SCREEN_TESTS))
        return EvalRequest(**common, clips=s.clips, frames=s.frames or None, pytest_args=tuple(s.extra_args))

    def _refused(self, result: EvalResult, log: Path) -> None:
        """The suite refused its options or clips (exit status 2, no report): the run's fault, not the
        candidate's. Nothing is recorded; the attempt is judged again on resume."""
        if result.report_text is None and result.returncode == USAGE_EXIT:
            text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
            why = next((ln for ln in text.splitlines() if ln.startswith("ERROR: ")), None) or log_tail(log, 600)
            raise HarnessError(f"the suite refused to run (exit status 2; {log}): {why}")

    def _keep(self, result: EvalResult, folder: Path, log: Path) -> Path | None:
        """Write an evaluation's log and report into the attempt's folder; the report's path (None: none)."""
        log.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(log, result.log_text)
        if result.report_text is None:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        report = folder / (result.report_name or "run.json")
        write_text_atomic(report, result.report_text)
        shutil.copyfile(report, folder / "latest.json")
        return folder / "latest.json"

    def screen_failure(self, prep: Prepared, result: EvalResult) -> dict | None:
        """The record of an attempt that failed the screen (stage "screen"), None when it passed."""
        sdir = prep.adir / "screen"
        log = sdir / "suite.log"
        report = self._keep(result, sdir, log)
        self._refused(result, log)
        prep.record["screen_s"] = round(result.wall_s, 3)
        prep.record["eval_node"] = result.node
        if report is not None:
            why = failure_text(load_doc(report) or {}, prep.name, limit=self.failure_chars * 2)
            if not why:
                return None
            reason = why.splitlines()[0] + " " + "; ".join(ln.strip("- ") for ln in why.splitlines()[1:3])
        else:
            why = reason = result.problem or "the screen failed"
        name = prep.name
        sha = next(c.sha256 for c in discover_candidates(self.settings.candidates_dir) if c.name == name)
        entry = record_rejection(self.ledger, name, sha, cut_text(f"failed the screen: {reason}", 2000),
                                 parent=prep.parent, track=self.track, extra={**prep.evo, "stage": "screen"})
        record = {**prep.record, "stage": "screen", "verdict": "failed", "decision": entry.decision,
                  "reason": cut_text(f"failed the screen: {reason}", 400),
                  "failure": cut_text(why, self.failure_chars * 2), "ledger_seq": entry.seq,
                  "source_sha256": entry.source_sha256, "screen_report": str(report) if report else None}
        return self._set_aside(record, prep.adir)

    def finish(self, prep: Prepared, result: EvalResult | None, records: list[dict]) -> dict:
        """The record from the full evaluation's `result` (or the report a killed run recorded)."""
        record, name = prep.record, prep.name
        if prep.recorded is not None:
            suite = prep.recorded
        else:
            assert result is not None
            log = prep.adir / "suite.log"
            report = self._keep(result, prep.adir / "report", log)
            self._refused(result, log)
            suite = SuiteRun(returncode=result.returncode, report=report, problem=result.problem,
                             wall_s=result.wall_s, command=[], timed_out=result.timed_out)
            # a stale comparison's run (see Prepared.reruns) counts too
            record["suite_s"] = round(float(record.get("suite_s") or 0.0) + result.wall_s, 3)
            record["eval_node"] = result.node
            if prep.reruns:
                record["reruns"] = prep.reruns
        if suite.report is None:
            return self._set_aside(self._suite_failed(record, name, suite, prep.parent, prep.evo), prep.adir)
        return self._set_aside(self._verdict(record, records, name, suite, prep.parent, prep.evo), prep.adir)

    def twin(self, digest: str, records: list[dict], name: str) -> dict | None:
        """An earlier module with the same code: an attempt of this run, of another run in the same
        folder (their attempts.jsonl), or a module in the candidates folder (header stripped) other
        than `name`, this attempt's own (installed before a kill).
        The record-like dict has `candidate`, `attempt` (None for a module) and `where`."""
        for r in records:
            if r.get("code_sha256") == digest:
                return {**r, "where": f"attempt {r['attempt']} ({r['candidate']})"}
        for log in sorted(self.rundir.path.parent.glob("*/attempts.jsonl")):
            if log.parent == self.rundir.path:
                continue
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a torn last line of a killed run
                if isinstance(r, dict) and r.get("code_sha256") == digest:
                    where = f"attempt {r.get('attempt')} ({r.get('candidate')}) of run {log.parent}"
                    return {"candidate": r.get("candidate"), "attempt": None, "where": where}
        for cand in discover_candidates(self.settings.candidates_dir):
            if cand.name != name and cand.path.is_file():
                text = cand.path.read_text(encoding="utf-8", errors="replace")
                if digest in (code_sha256(text), code_sha256(strip_header(text))):
                    return {"candidate": cand.name, "attempt": None, "where": f"{cand.name} in {cand.path.parent}"}
        return None

    def _set_aside(self, record: dict, adir: Path) -> dict:
        """A module not adopted moves from the candidates folder to the attempt's, as it was judged."""
        target = self.settings.candidates_dir / f"{record['candidate']}.py"
        if record.get("decision") == "adopted" or not target.is_file():
            return record
        kept = adir / "candidate" / target.name
        kept.parent.mkdir(parents=True, exist_ok=True)
        os.replace(target, kept)
        return {**record, "candidate_path": str(kept)}

    def pending(self, n: int, adir: Path, records: list[dict]) -> dict:
        """The attempt's candidate name and creation time, fixed in pending.json (kept on resume)."""
        path = adir / "pending.json"
        pending = self.rundir.read_json(path)
        if pending is not None:
            return pending
        when = self.clock()
        taken = {c.name for c in discover_candidates(self.settings.candidates_dir)}
        taken |= {e.candidate for e in self.ledger.entries()} | {str(r.get("candidate")) for r in records}
        pending = {"candidate": candidate_name(when, n, taken), "created_utc": utc_stamp(when)}
        self.rundir.write_json(path, pending)
        return pending

    def _install(
        self, n: int, name: str, code: str, request: dict, reply: Reply, pending: dict, record: dict
    ) -> str | None:
        """Write the module, with the loop's header, to the candidates folder; why not, if it cannot carry it."""
        target = self.settings.candidates_dir / f"{name}.py"
        header = [
            HEADER_FIRST.removeprefix("# ") + f" (python -m harness evolve), attempt {n}",
            f"parent: {request['parent']} (source sha256 {str(request.get('parent_sha256'))[:12]})",
            f"model: {reply.model}",
            f"prompt sha256: {request['prompt_sha256']}",
            f"time (UTC): {pending['created_utc']}",
            f"run: {self.rundir.path}",
        ]
        try:
            text = add_header(code, header)
        except (SyntaxError, ValueError) as err:
            return f"the module cannot carry the loop's header comment: {err}"
        if target.exists():
            if target.read_text(encoding="utf-8") != text:
                raise HarnessError(
                    f"{target} exists with other content than attempt {n} wrote; move it away and resume"
                )
        else:
            write_text_atomic(target, text)
        record["candidate_path"] = str(target)
        return None

    def _recorded_report(self, name: str, adir: Path) -> SuiteRun | None:
        """The attempt's report when a killed run already recorded its verdict (no need to judge again)."""
        latest = adir / "report" / "latest.json"
        doc = load_doc(latest)
        sha = ((doc or {}).get("candidates", {}).get(name) or {}).get("sha256")
        on_disk = next((c.sha256 for c in discover_candidates(self.settings.candidates_dir) if c.name == name), None)
        if not sha or sha != on_disk:
            return None
        if not any(e.candidate == name and e.source_sha256 == sha for e in self.ledger.entries()):
            return None
        return SuiteRun(returncode=None, report=latest, problem=None, wall_s=0.0, command=[])

    # ------------------------------------------------------------------ the outcomes

    def _no_code(self, record: dict, reply: Reply, extracted: Extracted, parent: str, evo: dict) -> dict:
        """A reply without a usable module: recorded as invalid (the ledger gets the reply's hash)."""
        why = extracted.problem or "reply has no code"
        entry = record_rejection(
            self.ledger, record["candidate"], code_sha256(reply.text), why, parent=parent, track=self.track,
            extra={**evo, "stage": "extract", "source": "the reply (no module)"},
        )
        return {**record, "stage": "extract", "verdict": "invalid", "decision": entry.decision,
                "reason": why, "failure": why, "ledger_seq": entry.seq, "code_sha256": None,
                "source_sha256": entry.source_sha256}

    def _identical_source(self, record: dict, twin: dict, sha: str, staged: Path, parent: str, evo: dict) -> dict:
        """The same module as an earlier attempt's: rejected without judging it again."""
        why = f"identical source to {twin['where']}: the model returned the same module; not judged"
        entry = record_rejection(
            self.ledger, record["candidate"], sha, why, parent=parent, identical_to=twin["candidate"],
            track=self.track, extra={**evo, "stage": "identical"},
        )
        return {**record, "stage": "identical", "verdict": "rejected", "decision": entry.decision,
                "reason": why, "ledger_seq": entry.seq, "source_sha256": entry.source_sha256,
                "candidate_path": str(staged), "identical_to": twin["candidate"],
                "identical_attempt": twin["attempt"], "identical_kind": f"the same source code as {twin['where']}"}

    def _invalid(self, record: dict, why: str, sha: str, staged: Path, parent: str, evo: dict) -> dict:
        """A module that does not pass the static checks: kept in the attempt's folder, recorded as rejected."""
        entry = record_rejection(self.ledger, record["candidate"], sha, why, parent=parent, track=self.track,
                                 extra={**evo, "stage": "check"})
        return {**record, "stage": "check", "verdict": "invalid", "decision": entry.decision, "reason": why,
                "failure": why, "ledger_seq": entry.seq, "source_sha256": entry.source_sha256,
                "candidate_path": str(staged)}

    def _suite_failed(self, record: dict, name: str, suite: SuiteRun, parent: str, evo: dict) -> dict:
        """The suite wrote no report that judged `name`: recorded as failed, with why."""
        why = suite.problem or "the suite failed"
        sha = next(c.sha256 for c in discover_candidates(self.settings.candidates_dir) if c.name == name)
        entry = record_rejection(self.ledger, name, sha, cut_text(why, 2000), parent=parent, track=self.track,
                                 extra={**evo, "stage": "suite"})
        return {**record, "stage": "suite", "verdict": "failed", "decision": entry.decision,
                "reason": cut_text(why, 400), "failure": cut_text(why, self.failure_chars * 2),
                "ledger_seq": entry.seq, "source_sha256": entry.source_sha256}

    def _verdict(self, record: dict, records: list[dict], name: str, suite: SuiteRun, parent: str,
                 evo: dict) -> dict:
        """The adoption verdict from the suite's report, recorded; the record carries its scores."""
        assert suite.report is not None
        doc = load_doc(suite.report) or {}
        v, entry = record_verdict(
            doc, suite.report, name, ledger=self.ledger, candidates_dir=self.settings.candidates_dir,
            config=self.adoption, parent=parent, extra={**evo, "stage": "verdict"},
        )
        overall, clips = anchor_scores(doc, name, anchor=self.anchor, metric=self.metric)
        verdict = "adopted" if entry.decision == "adopted" else ("failed" if v.decision == "failed" else "rejected")
        scores = v.scores
        vs_champ = (scores.get("vs_champion") or {}).get(self.metric) if isinstance(scores.get("vs_champion"), dict) else None
        identical_attempt = None
        if v.identical_to:
            twin_name = v.identical_to.split(" (")[0]
            identical_attempt = next((r["attempt"] for r in records if r.get("candidate") == twin_name), None)
        failure = failure_text(doc, name, limit=self.failure_chars * 2) if v.decision == "failed" else ""
        return {
            **record,
            "stage": "verdict",
            "verdict": verdict,
            "decision": entry.decision,
            "reason": entry.reason if entry.decision == "adopted" else (v.reason or entry.reason),
            "reasons": list(v.reasons),
            "failure": failure,
            "ledger_seq": entry.seq,
            "source_sha256": entry.source_sha256,
            "report": str(suite.report),
            "suite_returncode": suite.returncode,
            "summary": doc.get("candidates", {}).get(name, {}).get("summary"),
            "champion": scores.get("champion"),
            "bd_vs_anchor": overall,
            "encode_complexity": _ratio(doc, name, "encode_ratio"),
            "decode_complexity": _ratio(doc, name, "decode_ratio"),
            "bd_vs_anchor_per_clip": {c.clip: c.bd_vs_anchor for c in clips},
            "bd_vs_champion": vs_champ if isinstance(vs_champ, (int, float)) else None,
            "bd_vs_champion_per_clip": scores.get("vs_champion_per_clip") or {},
            "scores": scores,
            "fingerprint": v.fingerprint,
            "identical_to": v.identical_to,
            "identical_attempt": identical_attempt,
            "identical_kind": (v.reasons[0] if v.identical_to and v.reasons else None),
        }


def _ratio(doc: dict, name: str, key: str) -> float | None:
    """The candidate's CPU per megapixel-frame over x265's from the report's complexity section."""
    value = (((doc.get("candidates") or {}).get(name) or {}).get("complexity") or {}).get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
