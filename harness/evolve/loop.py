"""The evolution loop: prompt -> model -> candidate file -> suite -> verdict -> ledger + attempts log.

One attempt, in order (each step leaves a file, so a kill at any moment resumes without loss or
duplication, see harness/evolve/log.py):

1. the prompt from the ledger's champion (its code, its scores in the latest report that ran it)
   and the last attempts; saved as prompt.md / request.json;
2. the Messages API call; the reply saved as reply.json (on resume an existing reply is used and
   no request is sent);
3. the first ```python block, checked by reading (harness.candidate); the name and header fixed in
   pending.json, then the module written to the candidates folder (a module that does not pass the
   checks, or repeats an earlier attempt's code, stays in the attempt's folder);
4. the suite on it (a subprocess, the same code path as `pytest benchmarks/`), the verdict by
   harness.adoption, recorded in the ledger (adopted, or rejected with the reason);
5. the attempt's record appended to attempts.jsonl: the last step.

The loop stops on the iteration, token or cost budget, after `patience` attempts in a row without
adoption, or when an attempt's code or results are identical to an earlier one's (it says which).
"""

from __future__ import annotations

import dataclasses
import fcntl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from harness import adoption
from harness.atomic import write_text_atomic
from harness.bdrate import describe
from harness.candidate import CONTRACT_TEXT, discover_candidates
from harness.errors import HarnessError
from harness.evolve.client import LLMClient, Reply, require_api_key
from harness.evolve.config import EvolveConfig
from harness.evolve.extract import add_header, candidate_name, check_module, code_sha256, extract_code
from harness.evolve.judge import SuiteRun, SuiteSetup, record_rejection, record_verdict, run_suite
from harness.evolve.log import RunDir, RunDirError
from harness.evolve.prompt import AttemptView, ChampionView, PromptInputs, build_prompt
from harness.evolve.results import anchor_scores, cut_text, failure_text, load_doc
from harness.ledger import Ledger, LedgerEntry

__all__ = ["Evolution", "RunResult", "RunSettings", "summary_table"]


def _utc(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class RunSettings:
    """What a run directory is bound to (saved in RUN/run.json at the start)."""

    run_dir: Path
    candidates_dir: Path
    ledger: Path
    adoption_config: Path
    config: EvolveConfig
    cache_dir: Path | None = None
    fixtures_dir: Path | None = None
    # Adopt without held-out clips (CODEC_HARNESS_HELDOUT unset): explicit, saved with the run,
    # recorded in each ledger entry's config.
    waive_heldout: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "waive_heldout": self.waive_heldout,
            "candidates_dir": str(self.candidates_dir),
            "ledger": str(self.ledger),
            "adoption_config": str(self.adoption_config),
            "cache_dir": str(self.cache_dir) if self.cache_dir else None,
            "fixtures_dir": str(self.fixtures_dir) if self.fixtures_dir else None,
            "config": self.config.to_json(),
        }

    @classmethod
    def from_json(cls, run_dir: Path, data: dict) -> RunSettings:
        try:
            return cls(
                run_dir=Path(run_dir),
                candidates_dir=Path(data["candidates_dir"]),
                ledger=Path(data["ledger"]),
                adoption_config=Path(data["adoption_config"]),
                config=EvolveConfig.from_json(data["config"], f"{run_dir}/run.json"),
                cache_dir=Path(data["cache_dir"]) if data.get("cache_dir") else None,
                fixtures_dir=Path(data["fixtures_dir"]) if data.get("fixtures_dir") else None,
                waive_heldout=bool(data.get("waive_heldout", False)),
            )
        except (KeyError, TypeError) as err:
            raise RunDirError(f"{run_dir}/run.json: malformed ({err})") from err

    def suite(self) -> SuiteSetup:
        s = self.config.suite
        return SuiteSetup(
            clips=s.clips, frames=s.frames or None, ledger=self.ledger, candidates_dir=self.candidates_dir,
            cache_dir=self.cache_dir, fixtures_dir=self.fixtures_dir, timeout_s=s.timeout_s,
            extra_args=tuple(s.extra_args),
        )


@dataclass
class RunResult:
    records: list[dict]
    stop_reason: str
    champion: str | None
    summary: str = ""
    new_records: list[dict] = field(default_factory=list)


class Evolution:
    """A run of the loop in `settings.run_dir`, new or resumed.

    `api_key` defaults to ANTHROPIC_API_KEY (missing: `ApiKeyMissing` before anything is done);
    `http_client` replaces the SDK's transport (tests); `out` receives the progress lines.
    """

    def __init__(
        self,
        settings: RunSettings,
        *,
        api_key: str | None = None,
        http_client: object | None = None,
        out: TextIO | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.api_key = api_key if api_key is not None else require_api_key()
        self.settings = settings
        self.config = settings.config
        self.rundir = RunDir(settings.run_dir)
        self.ledger = Ledger(settings.ledger)
        self.adoption = adoption.load_adoption_config(settings.adoption_config)
        if settings.waive_heldout:
            self.adoption = dataclasses.replace(self.adoption, require_heldout=False)
        self.anchor = self.adoption.bootstrap_anchor
        self.metric = self.adoption.primary_metric
        self.out = out if out is not None else sys.stdout
        self.clock = clock or (lambda: datetime.now(UTC))
        self._http_client = http_client
        self._client: LLMClient | None = None

    # ------------------------------------------------------------------ plumbing

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    @property
    def client(self) -> LLMClient:
        if self._client is None:
            self._client = LLMClient(
                self.config.model, api_key=self.api_key, price=self.config.price(),
                http_client=self._http_client,
            )
        return self._client

    def _start(self) -> None:
        if self.rundir.exists():
            return
        if not self.settings.candidates_dir.is_dir():
            raise HarnessError(f"the candidates folder {self.settings.candidates_dir} does not exist")
        champion = self.ledger.champion()
        if champion is None:
            raise HarnessError(
                f"the ledger {self.settings.ledger} has no champion to build on; seed it: "
                "pytest benchmarks/ && python -m harness adopt reports/latest.json --best"
            )
        data = self.settings.to_json()
        data["started_utc"] = _utc(self.clock())
        data["initial_champion"] = {
            "name": champion.candidate, "seq": champion.seq, "source_sha256": champion.source_sha256,
            "bd_vs_anchor": self._entry_bd(champion),
        }
        self.rundir.path.mkdir(parents=True, exist_ok=True)
        self.rundir.save_settings(data)

    def _entry_bd(self, entry: LedgerEntry) -> float | None:
        value = ((entry.scores.get("vs_anchor") or {}).get(self.anchor) or {}).get(self.metric)  # type: ignore[union-attr]
        return float(value) if isinstance(value, (int, float)) else None

    def _champion(self) -> LedgerEntry:
        champion = self.ledger.champion()
        if champion is None:
            raise HarnessError(f"the ledger {self.settings.ledger} has no champion")
        return champion

    # ------------------------------------------------------------------ the loop

    def run(self) -> RunResult:
        self._start()
        with open(self.rundir.path / "run.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise HarnessError(f"another evolve process is working in {self.rundir.path}") from None
            return self._run()

    def _run(self) -> RunResult:
        torn = self.rundir.log.repair()
        if torn is not None:
            self.say(f"evolve: removed an incomplete last line of {self.rundir.log.path}; that attempt is finished again")
        records = self.rundir.log.records()
        champion = self._champion()
        stop = self.config.stop
        self.say(
            f"evolve: run {self.rundir.path} — champion {champion.candidate} (ledger seq {champion.seq}, "
            f"vs {self.anchor} {describe(self._entry_bd(champion))}), model {self.config.model.name}; "
            f"budget {stop.iterations} attempts, {stop.max_total_tokens:,} tokens"
            + (f", ${stop.max_cost_usd:.2f}" if stop.max_cost_usd else "")
            + f", patience {stop.patience}"
            + (f"; resuming after attempt {len(records)}" if records else "")
        )
        new: list[dict] = []
        while True:
            n = len(records) + 1
            pending = (self.rundir.attempt_dir(n) / "reply.json").exists()
            reason = None if pending else self.stop_reason(records)
            if reason:
                break
            record = self.attempt(n, records)
            self.rundir.log.append(record)
            records.append(record)
            new.append(record)
            self.say(progress_line(record, self.config.stop.iterations, self.anchor))
        summary = summary_table(records, reason, self._initial(), self.anchor, self.ledger.champion())
        write_text_atomic(self.rundir.path / "summary.md", summary + "\n")
        self.say(summary)
        champ = self.ledger.champion()
        return RunResult(records, reason, champ.candidate if champ else None, summary, new)

    def _initial(self) -> dict:
        return dict(self.rundir.load_settings().get("initial_champion") or {})

    def stop_reason(self, records: list[dict]) -> str | None:
        stop = self.config.stop
        if records and records[-1].get("identical_to"):
            last = records[-1]
            which = last.get("identical_attempt")
            what = f"attempt {which} ({last.get('identical_to')})" if which else f"{last.get('identical_to')}"
            return (f"attempt {last['attempt']} ({last['candidate']}) is identical to {what}: "
                    f"{last.get('identical_kind') or 'identical results'}")
        trailing = 0
        for r in reversed(records):
            if r.get("verdict") == "adopted":
                break
            trailing += 1
        if trailing >= stop.patience:
            return f"{trailing} attempts in a row without improvement (patience {stop.patience})"
        if len(records) >= stop.iterations:
            return f"iteration budget reached ({len(records)} of {stop.iterations} attempts)"
        tokens = sum(int(r.get("tokens") or 0) for r in records)
        if tokens >= stop.max_total_tokens:
            return f"token budget reached ({tokens:,} of {stop.max_total_tokens:,} tokens)"
        cost = sum(float(r.get("cost_usd") or 0.0) for r in records)
        if stop.max_cost_usd and cost >= stop.max_cost_usd:
            return f"cost budget reached (${cost:.2f} of ${stop.max_cost_usd:.2f})"
        return None

    # ------------------------------------------------------------------ one attempt

    def attempt(self, n: int, records: list[dict]) -> dict:
        adir = self.rundir.attempt_dir(n)
        adir.mkdir(parents=True, exist_ok=True)
        reply_path, request_path = adir / "reply.json", adir / "request.json"
        resumed = reply_path.exists()
        request = self.rundir.read_json(request_path) if resumed else None
        if resumed and request is not None:
            reply = Reply.from_json(self.rundir.read_json(reply_path) or {})
            self.say(f"attempt {n}: the reply is already on disk ({reply_path}); no new request")
        else:
            champion = self._champion()
            prompt = build_prompt(
                self.prompt_inputs(records, champion),
                char_budget=self.config.prompt.char_budget,
                failure_chars=self.config.prompt.failure_chars,
            )
            request = {
                "attempt": n,
                "prompt_sha256": prompt.sha256,
                "prompt_chars": prompt.chars,
                "prompt_cut": prompt.cut,
                "parent": champion.candidate,
                "parent_sha256": champion.source_sha256,
                "parent_seq": champion.seq,
                "model": self.config.model.name,
                "max_tokens": self.config.model.max_tokens,
                "temperature": self.config.model.temperature,
                "started_utc": _utc(self.clock()),
            }
            write_text_atomic(adir / "prompt.md", prompt.as_markdown())
            self.rundir.write_json(request_path, request)
            self.say(
                f"attempt {n}: asking {self.config.model.name} (prompt {prompt.chars:,} characters, "
                f"sha256 {prompt.sha256[:12]}{', cut: ' + '; '.join(prompt.cut) if prompt.cut else ''})"
            )
            reply = self.client.complete(prompt.system, prompt.user)
            self.rundir.write_json(reply_path, reply.to_json())
            write_text_atomic(adir / "reply.md", reply.text)
        base = {
            "attempt": n,
            "parent": request["parent"],
            "parent_sha256": request.get("parent_sha256"),
            "prompt_sha256": request["prompt_sha256"],
            "prompt_chars": request.get("prompt_chars"),
            "prompt_cut": request.get("prompt_cut") or [],
            "model": reply.model,
            "requested_model": request.get("model"),
            "stop_reason": reply.stop_reason,
            "usage": reply.usage,
            "tokens": reply.total_tokens,
            "cost_usd": reply.cost_usd,
            "started_utc": request.get("started_utc"),
            "resumed": resumed,
            "attempt_dir": str(adir),
        }
        start = time.monotonic()
        record = self._judge(n, adir, reply, request, records, base)
        record["judge_s"] = round(time.monotonic() - start, 3)
        record["finished_utc"] = _utc(self.clock())
        return record

    def _pending(self, n: int, adir: Path, reply: Reply, records: list[dict]) -> dict:
        path = adir / "pending.json"
        pending = self.rundir.read_json(path)
        if pending is not None:
            return pending
        when = self.clock()
        taken = {c.name for c in discover_candidates(self.settings.candidates_dir)}
        taken |= {e.candidate for e in self.ledger.entries()} | {str(r.get("candidate")) for r in records}
        pending = {"candidate": candidate_name(when, n, taken), "created_utc": _utc(when)}
        self.rundir.write_json(path, pending)
        return pending

    def _judge(self, n: int, adir: Path, reply: Reply, request: dict, records: list[dict], base: dict) -> dict:
        pending = self._pending(n, adir, reply, records)
        name = pending["candidate"]
        parent = request["parent"]
        evo = {"evolve": {"run": str(self.rundir.path), "attempt": n, "model": reply.model,
                          "prompt_sha256": request["prompt_sha256"]}}
        record = {**base, "candidate": name, "candidate_path": None, "report": None, "failure": "",
                  "identical_to": None, "identical_attempt": None, "identical_kind": None}

        extracted = extract_code(reply.text, stop_reason=reply.stop_reason)
        if extracted.code is None:
            why = extracted.problem or "reply has no code"
            entry = record_rejection(
                self.ledger, name, code_sha256(reply.text), why, parent=parent,
                extra={**evo, "stage": "extract", "source": "the reply (no module)"},
            )
            return {**record, "stage": "extract", "verdict": "invalid", "decision": entry.decision,
                    "reason": why, "failure": why, "ledger_seq": entry.seq, "code_sha256": None,
                    "source_sha256": entry.source_sha256}

        code = extracted.code
        digest = code_sha256(code)
        staged = adir / "candidate" / f"{name}.py"
        if not staged.exists():
            write_text_atomic(staged, code)
        record.update(code_sha256=digest)
        twin = next((r for r in records if r.get("code_sha256") == digest), None)
        checked = check_module(staged)
        if twin is not None:
            why = (f"identical source to attempt {twin['attempt']} ({twin['candidate']}): the model returned the "
                   "same module; not judged again")
            entry = record_rejection(
                self.ledger, name, checked.sha256, why, parent=parent, identical_to=twin["candidate"],
                extra={**evo, "stage": "identical"},
            )
            return {**record, "stage": "identical", "verdict": "rejected", "decision": entry.decision,
                    "reason": why, "ledger_seq": entry.seq, "source_sha256": entry.source_sha256,
                    "candidate_path": str(staged), "identical_to": twin["candidate"],
                    "identical_attempt": twin["attempt"], "identical_kind": "the same source code"}
        if checked.problem:
            why = f"the module does not meet the contract: {checked.problem}"
            return self._invalid(record, why, checked.sha256, staged, parent, evo)

        target = self.settings.candidates_dir / f"{name}.py"
        header = [
            HEADER_FIRST.removeprefix("# ") + f" (python -m harness evolve), attempt {n}",
            f"parent: {parent} (source sha256 {str(request.get('parent_sha256'))[:12]})",
            f"model: {reply.model}",
            f"prompt sha256: {request['prompt_sha256']}",
            f"time (UTC): {pending['created_utc']}",
            f"run: {self.rundir.path}",
        ]
        try:
            text = add_header(code, header)
        except (SyntaxError, ValueError) as err:
            why = f"the module cannot carry the loop's header comment: {err}"
            return self._invalid(record, why, checked.sha256, staged, parent, evo)
        if target.exists():
            if target.read_text(encoding="utf-8") != text:
                raise HarnessError(
                    f"{target} exists with other content than attempt {n} wrote; move it away and resume"
                )
        else:
            write_text_atomic(target, text)
        record["candidate_path"] = str(target)

        suite = self._recorded_report(name, adir)
        if suite is None:
            self.say(f"attempt {n}: judging {name} with the suite ...")
            suite = run_suite(self.settings.suite(), name, adir / "report", adir / "suite.log")
        else:
            self.say(f"attempt {n}: {name} was judged and recorded before the interruption; finishing its record")
        record["suite_s"] = round(suite.wall_s, 3)
        if suite.report is None:
            why = suite.problem or "the suite failed"
            sha = next(c.sha256 for c in discover_candidates(self.settings.candidates_dir) if c.name == name)
            entry = record_rejection(self.ledger, name, sha, cut_text(why, 2000), parent=parent,
                                     extra={**evo, "stage": "suite"})
            return {**record, "stage": "suite", "verdict": "failed", "decision": entry.decision,
                    "reason": cut_text(why, 400), "failure": cut_text(why, self.config.prompt.failure_chars * 2),
                    "ledger_seq": entry.seq, "source_sha256": entry.source_sha256}
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
        failure = failure_text(doc, name, limit=self.config.prompt.failure_chars * 2) if v.decision == "failed" else ""
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
            "bd_vs_anchor_per_clip": {c.clip: c.bd_vs_anchor for c in clips},
            "bd_vs_champion": vs_champ if isinstance(vs_champ, (int, float)) else None,
            "bd_vs_champion_per_clip": scores.get("vs_champion_per_clip") or {},
            "scores": scores,
            "fingerprint": v.fingerprint,
            "identical_to": v.identical_to,
            "identical_attempt": identical_attempt,
            "identical_kind": (v.reasons[0] if v.identical_to and v.reasons else None),
        }

    def _invalid(self, record: dict, why: str, sha: str, staged: Path, parent: str, evo: dict) -> dict:
        """A module that does not pass the static checks: kept in the attempt's folder, recorded as rejected."""
        entry = record_rejection(self.ledger, record["candidate"], sha, why, parent=parent,
                                 extra={**evo, "stage": "check"})
        return {**record, "stage": "check", "verdict": "invalid", "decision": entry.decision, "reason": why,
                "failure": why, "ledger_seq": entry.seq, "source_sha256": entry.source_sha256,
                "candidate_path": str(staged)}

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

    # ------------------------------------------------------------------ the prompt's inputs

    def champion_view(self, champion: LedgerEntry, records: list[dict]) -> tuple[ChampionView, dict]:
        cdir = self.settings.candidates_dir
        single, package = cdir / f"{champion.candidate}.py", cdir / champion.candidate
        if single.is_file():
            source = single.read_text(encoding="utf-8", errors="replace")
        elif package.is_dir():
            files = sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
            source = "\n".join(
                f"# ---- file {f.relative_to(cdir)} ----\n" + f.read_text(encoding="utf-8", errors="replace")
                for f in files
            )
        else:
            raise HarnessError(f"the champion {champion.candidate} is not in {cdir}: its source is needed")
        source = strip_header(source)
        doc, where = None, "no report of it on this run's clips yet; they come with the first attempt's report"
        for r in reversed(records):
            d = load_doc(r["report"]) if r.get("report") else None
            cand = (d or {}).get("candidates", {}).get(champion.candidate)
            if cand and cand.get("sha256") == champion.source_sha256:
                doc, where = d, f"the suite run of attempt {r['attempt']}"
                break
        if doc is None and champion.report:
            for base in (Path.cwd(), self.settings.ledger.parent):
                d = load_doc(base / champion.report)
                cand = (d or {}).get("candidates", {}).get(champion.candidate)
                if cand and cand.get("sha256") == champion.source_sha256:
                    doc, where = d, "the report it was adopted from"
                    break
        clips = []
        if doc is not None:
            _, clips = anchor_scores(doc, champion.candidate, anchor=self.anchor, metric=self.metric)
            settings = doc.get("settings") or {}
            where += f": {len(clips)} clip(s), {settings.get('frames') or 'default'} frames each"
        vs_anchor = ((champion.scores.get("vs_anchor") or {}).get(self.anchor) or {})  # type: ignore[union-attr]
        view = ChampionView(
            name=champion.candidate,
            source=source,
            source_sha256=champion.source_sha256,
            ledger_seq=champion.seq,
            overall_vs_anchor={k: v for k, v in sorted(vs_anchor.items()) if isinstance(v, (int, float))},
            clips=clips,
            scores_from=where,
        )
        return view, (doc or {})

    def prompt_inputs(self, records: list[dict], champion: LedgerEntry) -> PromptInputs:
        view, doc = self.champion_view(champion, records)
        suite = (doc.get("settings") or {}).get("suite") or {}
        cfg = self.adoption
        label = adoption.metric_label(self.metric)
        overshoot = suite.get("max_overshoot")
        min_psnr = suite.get("min_psnr_y")
        rules = [
            "it passes every test of the suite: contract, round trip (decode from the bitstream alone), rate "
            + (f"(bitrate at most {overshoot:.2f} x the target)" if isinstance(overshoot, (int, float)) else "")
            + ", quality" + (f" (mean PSNR-Y at least {min_psnr:g} dB)" if isinstance(min_psnr, (int, float)) else "")
            + ", determinism, limits (time, memory) and BD-rate",
            (f"its overall BD-rate on {label} against the champion is at most -{cfg.margin_percent:g} % "
             f"(at least {cfg.margin_percent:g} % fewer bits at equal quality)"),
            f"no clip needs more than {cfg.max_clip_regression_percent:g} % more bits than the champion on {label}",
            "its BD-rate against the champion on "
            + " and ".join("/".join(adoption.metric_label(m) for m in g) for g in cfg.secondary_metrics)
            + f" is at most +{cfg.max_secondary_regression_percent:g} %",
            "its bitstreams and scores are not identical to an earlier candidate's",
        ]
        limits = suite.get("limits") or {}
        limit_text = ""
        if isinstance(limits.get("wall_s"), (int, float)) and isinstance(limits.get("memory_bytes"), int):
            limit_text = (
                f"Each encode or decode call gets at most {limits['wall_s']:g} s and "
                f"{limits['memory_bytes'] / 2**30:.1f} GiB of memory."
            )
        k = self.config.prompt.history
        shown = records[-k:] if k else []
        attempts = [
            AttemptView(
                attempt=r["attempt"],
                candidate=str(r.get("candidate")),
                parent=r.get("parent"),
                verdict=str(r.get("verdict")),
                reason="; ".join(map(str, r.get("reasons") or [])) or str(r.get("reason") or ""),
                bd_vs_anchor=r.get("bd_vs_anchor"),
                bd_vs_anchor_per_clip=dict(r.get("bd_vs_anchor_per_clip") or {}),
                bd_vs_champion=r.get("bd_vs_champion"),
                champion=r.get("champion"),
                failure="" if r.get("failure") == r.get("reason") else str(r.get("failure") or ""),
            )
            for r in shown
        ]
        return PromptInputs(
            contract=CONTRACT_TEXT,
            champion=view,
            attempts=attempts,
            anchor=self.anchor,
            metric=self.metric,
            metric_label=label,
            rules=rules,
            limits=limit_text,
        )


HEADER_FIRST = "# evolve: written by the evolution loop"


def strip_header(source: str) -> str:
    """The module without the loop's header comment (shown to the model: it gets a fresh one)."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(HEADER_FIRST):
            j = i
            while j < len(lines) and lines[j].startswith("#"):
                j += 1
            return "\n".join(lines[:i] + lines[j:])
    return source


# ---------------------------------------------------------------------- progress and summary


def _words(value: object) -> str:
    return describe(value) if isinstance(value, (int, float)) else "n/a"


def progress_line(record: dict, iterations: int, anchor: str = "x265") -> str:
    head = f"attempt {record['attempt']}/{iterations} {record['candidate']}: {str(record['verdict']).upper()}"
    parts = []
    if record.get("bd_vs_anchor") is not None or record.get("stage") == "verdict":
        parts.append(f"vs {anchor} {_words(record.get('bd_vs_anchor'))}")
    if record.get("bd_vs_champion") is not None:
        parts.append(f"vs champion {record.get('champion')} {_words(record.get('bd_vs_champion'))}")
    reason = _short(record.get("reason"), 300)
    usage = record.get("usage") or {}
    cost = record.get("cost_usd")
    tokens = f"tokens {int(usage.get('input_tokens') or 0):,} in + {int(usage.get('output_tokens') or 0):,} out" + (
        f", ${cost:.4f}" if isinstance(cost, (int, float)) else ""
    )
    return f"{head} — " + "; ".join(parts + [reason]) + f" [{tokens}]"


def summary_table(
    records: list[dict], stop_reason: str | None, initial: dict, anchor: str, champion: LedgerEntry | None
) -> str:
    head = ("#", "candidate", "verdict", f"vs {anchor}", "vs champion", "tokens", "cost", "reason")
    rows = []
    for r in records:
        cost = r.get("cost_usd")
        rows.append((
            str(r["attempt"]), str(r.get("candidate")), str(r.get("verdict")),
            _fmt(r.get("bd_vs_anchor")), _fmt(r.get("bd_vs_champion")), f"{int(r.get('tokens') or 0):,}",
            f"${cost:.4f}" if isinstance(cost, (int, float)) else "n/a",
            _short(r.get("reason"), 90),
        ))
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head) - 1)]
    lines = [f"evolution run: {len(records)} attempt(s); stopped: {stop_reason or 'not stopped'}"]
    for row in [head, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1])
    passed = [r for r in records if r.get("verdict") in ("adopted", "rejected") and r.get("bd_vs_anchor") is not None]
    if passed:
        best = min(passed, key=lambda r: r["bd_vs_anchor"])
        lines.append(
            f"best attempt: {best['attempt']} {best['candidate']} ({best['verdict']}): vs {anchor} "
            f"{describe(best['bd_vs_anchor'])}"
        )
    else:
        lines.append("best attempt: none passed the suite")
    trend = [f"{_fmt(initial.get('bd_vs_anchor'))} ({initial.get('name', '?')})"]
    for r in records:
        if r.get("verdict") == "adopted":
            trend.append(f"{_fmt(r.get('bd_vs_anchor'))} (attempt {r['attempt']})")
    lines.append(f"champion vs {anchor}, trend: " + " -> ".join(trend))
    if champion is not None:
        lines.append(f"champion now: {champion.candidate} (ledger seq {champion.seq})")
    counts = {v: sum(1 for r in records if r.get("verdict") == v) for v in ("adopted", "rejected", "failed", "invalid")}
    tin = sum(int((r.get("usage") or {}).get("input_tokens") or 0) for r in records)
    tout = sum(int((r.get("usage") or {}).get("output_tokens") or 0) for r in records)
    costs = [r.get("cost_usd") for r in records]
    priced = [c for c in costs if isinstance(c, (int, float))]
    cost_text = "n/a (no price for the model in the config)" if records and not priced else f"${sum(priced):.4f}" + (
        " (some attempts unpriced)" if len(priced) < len(costs) else ""
    )
    lines.append(
        ", ".join(f"{k} {v}" for k, v in counts.items()) + f"; tokens {tin:,} in / {tout:,} out; cost {cost_text}"
    )
    return "\n".join(lines)


def _short(text: object, limit: int) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _fmt(value: object) -> str:
    return f"{value:+.1f} %" if isinstance(value, (int, float)) else "n/a"
