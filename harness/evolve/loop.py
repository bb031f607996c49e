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

Steps 1, 2 and 5 are here; 3 and 4 are harness/evolve/attempt.py (`AttemptJudge`), the progress
line and the summary harness/evolve/summary.py.

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
from harness.candidate import CONTRACT_TEXT
from harness.config import SuiteConfig, load_suite_config
from harness.errors import HarnessError
from harness.evolve.attempt import AttemptJudge
from harness.evolve.client import LLMClient, Reply, require_api_key
from harness.evolve.config import EvolveConfig
from harness.evolve.extract import HEADER_FIRST, strip_header
from harness.evolve.judge import SuiteSetup
from harness.evolve.log import RunDir, RunDirError, utc_stamp
from harness.evolve.prompt import AttemptView, ChampionView, PromptInputs, build_prompt
from harness.evolve.results import anchor_scores, load_doc
from harness.evolve.summary import progress_line, summary_table
from harness.ledger import Ledger, LedgerEntry

__all__ = ["HEADER_FIRST", "Evolution", "RunResult", "RunSettings", "progress_line", "strip_header", "summary_table"]


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
        self.judging = AttemptJudge(settings, self.rundir, self.ledger, self.adoption, self.say, self.clock)

    # ------------------------------------------------------------------ plumbing

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    @property
    def track(self) -> str:
        """The track the run evolves (fixtures/evolve.toml [suite] track, --track): its champion, its toolbox."""
        return self.config.suite.track

    @property
    def client(self) -> LLMClient:
        if self._client is None:
            self._client = LLMClient(
                self.config.model, api_key=self.api_key, price=self.config.price(),
                http_client=self._http_client, on_retry=lambda text: self.say(f"evolve: {text}"),
            )
        return self._client

    def _start(self) -> None:
        if self.rundir.exists():
            return
        if not self.settings.candidates_dir.is_dir():
            raise HarnessError(f"the candidates folder {self.settings.candidates_dir} does not exist")
        champion = self.ledger.champion(self.track)
        if champion is None:
            raise HarnessError(
                f"the ledger {self.settings.ledger} has no {self.track} champion to build on; seed it: "
                f"pytest benchmarks/ && python -m harness adopt reports/latest.json --best --track {self.track}"
            )
        data = self.settings.to_json()
        data["started_utc"] = utc_stamp(self.clock())
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
        champion = self.ledger.champion(self.track)
        if champion is None:
            raise HarnessError(f"the ledger {self.settings.ledger} has no {self.track} champion")
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
            f"evolve: run {self.rundir.path} — {self.track} track, champion {champion.candidate} "
            f"(ledger seq {champion.seq}, "
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
        summary = summary_table(
            records, reason, self._initial(), self.anchor, self.ledger.champion(self.track), self.settings.ledger
        )
        write_text_atomic(self.rundir.path / "summary.md", summary + "\n")
        self.say(summary)
        champ = self.ledger.champion(self.track)
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
            request, reply = self._ask(n, adir, records)
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
        record = self.judging.judge(n, adir, reply, request, records, base)
        record["judge_s"] = round(time.monotonic() - start, 3)
        record["finished_utc"] = utc_stamp(self.clock())
        return record

    def _ask(self, n: int, adir: Path, records: list[dict]) -> tuple[dict, Reply]:
        """Steps 1 and 2: the prompt and the request saved, the model asked, its reply saved."""
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
            "started_utc": utc_stamp(self.clock()),
        }
        write_text_atomic(adir / "prompt.md", prompt.as_markdown())
        self.rundir.write_json(adir / "request.json", request)
        self.say(
            f"attempt {n}: asking {self.config.model.name} (prompt {prompt.chars:,} characters, "
            f"sha256 {prompt.sha256[:12]}{', cut: ' + '; '.join(prompt.cut) if prompt.cut else ''})"
        )
        reply = self.client.complete(prompt.system, prompt.user)
        self.rundir.write_json(adir / "reply.json", reply.to_json())
        write_text_atomic(adir / "reply.md", reply.text)
        return request, reply

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

    def suite_config(self) -> SuiteConfig:
        """The suite.toml the run's suite judges with (its --fixtures-dir, else the project's)."""
        setup = self.settings.suite()
        return load_suite_config((setup.fixtures_dir or Path(setup.root) / "fixtures") / "suite.toml")

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
            + ", quality" + (
                f" (mean PSNR-Y at least {min_psnr:g} dB"
                + (f" and at most {suite['max_psnr_y_below_anchor_db']:g} dB under x265's at the same rate point"
                   if isinstance(suite.get("max_psnr_y_below_anchor_db"), (int, float)) else "")
                + (f"; decoded luma correlated with the source by at least {suite['min_luma_correlation']:g}"
                   if isinstance(suite.get("min_luma_correlation"), (int, float)) else "")
                + ")"
                if isinstance(min_psnr, (int, float)) else ""
            )
            + ", determinism, limits (time, memory) and BD-rate",
            (f"its overall BD-rate on {label} against the champion is at most -{cfg.margin_percent:g} % "
             f"(at least {cfg.margin_percent:g} % fewer bits at equal quality)"),
            f"no clip needs more than {cfg.max_clip_regression_percent:g} % more bits than the champion on {label}",
            "its BD-rate against the champion on "
            + " and ".join("/".join(adoption.metric_label(m) for m in g) for g in cfg.secondary_metrics)
            + f" is at most +{cfg.max_secondary_regression_percent:g} %",
            "its bitstreams and scores are not identical to an earlier candidate's",
            (
                "it is a native-track candidate (no TRACK declaration): the codec is its own, no library codec"
                if self.track == "native" else
                'it declares the open track (`TRACK = "open"`); every library codec it calls is reported'
            ),
        ]
        limit_text = self.suite_config().limits_text()
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
            track=self.track,
        )
