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

At scale (fixtures/evolve.toml [scale], [cascade]; `Evolution._drive`): up to requests_in_flight
attempts are open at once (the first request of a process goes alone), their requests in threads;
step 4 is an evaluation (harness/evolve/evaluate.py) on Ray or threads, up to
evaluations_in_flight at once: the cascade's screen, then the full suite run. Everything that
writes the ledger, the attempts log and the program database happens in this thread, one attempt
at a time, in the order replies and evaluations come back. A full evaluation that compared with a
champion the ledger has since replaced is stale and runs again against the new champion before its
verdict. Budgets count every reply received; requests in flight when one is reached finish, and the
stop reason says by how much they passed it. Parents come from the program database (RUN/programs.jsonl,
harness/evolve/database.py); every finished attempt is added to it before its record is appended
(adding the same attempt twice is ignored, so a resume keeps it consistent).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import fcntl
import json
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from harness import adoption
from harness.atomic import write_text_atomic
from harness.bdrate import describe
from harness.candidate import CONTRACT_TEXT
from harness.clips import resolve_clip_set
from harness.config import SuiteConfig, load_suite_config
from harness.errors import HarnessError
from harness.evolve.attempt import AttemptJudge, Prepared, ScreenClip
from harness.evolve.client import LLMClient, Reply, require_api_key
from harness.evolve.config import EvolveConfig
from harness.evolve.evaluate import EvalResult, Evaluator, clip_bytes, make_evaluator
from harness.evolve.extract import HEADER_FIRST, strip_header
from harness.evolve.judge import SuiteSetup
from harness.evolve.log import RunDir, RunDirError, utc_stamp
from harness.evolve.prompt import (
    AttemptView,
    ChampionView,
    InspirationView,
    PromptInputs,
    build_prompt,
    describe_parent,
)
from harness.evolve.results import anchor_scores, failure_text, load_doc
from harness.evolve.summary import progress_line, summary_table
from harness.ledger import Ledger, LedgerEntry

# An evaluation the evaluator loses (its Ray worker or node died, the task could not be run) runs
# again this many times before the run stops with the evaluator's error.
EVALUATION_RETRIES = 2

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
        self.db = None  # the program database (harness/evolve/database.py), opened by run()
        self.screen: ScreenClip | None = None  # the cascade's screen clip, None: no screen
        self._evaluation: Evaluator | None = None
        self._used: dict[int, tuple[int, float]] = {}  # attempt -> (tokens, dollars) of its reply
        self._page_failed = False

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
        scale = self.config.scale
        self.db = self._database(champion)
        self.screen = self._screen_clip()
        self.say(
            f"evolve: run {self.rundir.path} — {self.track} track, champion {champion.candidate} "
            f"(ledger seq {champion.seq}, "
            f"vs {self.anchor} {describe(self._entry_bd(champion))}), model {self.config.model.name}; "
            f"budget {stop.iterations} attempts, {stop.max_total_tokens:,} tokens"
            + (f", ${stop.max_cost_usd:.2f}" if stop.max_cost_usd else "")
            + f", patience {stop.patience}; {scale.requests_in_flight} request(s) and "
            f"{scale.evaluations_in_flight} evaluation(s) in flight"
            + (f"; screen: {self.screen.path.name} at {self.screen.frames} frames" if self.screen else "; no screen")
            + (f"; resuming after {len(records)} finished attempt(s)" if records else "")
        )
        new: list[dict] = []
        try:
            reason = self._drive(records, new)
        except BaseException:
            # Requests still in flight end on their own (their replies land on disk for the resume);
            # evaluations still running are abandoned (Ray's are stopped with the embedded Ray).
            if self._evaluation is not None:
                self._evaluation.close(wait=False)
                self._evaluation = None
            raise
        if self._evaluation is not None:
            self._evaluation.close()
            self._evaluation = None
        summary = summary_table(
            records, reason, self._initial(), self.anchor, self.ledger.champion(self.track), self.settings.ledger
        )
        write_text_atomic(self.rundir.path / "summary.md", summary + "\n")
        self._write_page(final=True)
        self.say(summary)
        self.say(f"evolve: stopped: {reason}")
        champ = self.ledger.champion(self.track)
        return RunResult(records, reason, champ.candidate if champ else None, summary, new)

    # ------------------------------------------------------------------ concurrency

    def _drive(self, records: list[dict], new: list[dict]) -> str:
        """Requests, evaluations and verdicts until a stop rule holds and nothing is in flight; the stop reason.

        Up to scale.requests_in_flight attempts are open at once (asked and not yet recorded: their
        requests run in threads) and up to scale.evaluations_in_flight evaluations on the evaluator; everything else (prompts, the checks, the verdicts, the logs) is
        done here, one attempt at a time, in the order replies and evaluations come back. Attempt
        numbers are given when a request starts. On resume, an attempt with a reply and no record is
        judged, one with a request and no reply is asked again (if the budgets allow)."""
        scale = self.config.scale
        done_numbers = {int(r["attempt"]) for r in records}
        folders = sorted(int(d.name) for d in (self.rundir.path / "attempts").glob("*") if d.name.isdigit())
        ready: list[tuple[int, dict, Reply, bool]] = []
        reask: list[int] = []
        for n in folders:
            if n in done_numbers:
                continue
            adir = self.rundir.attempt_dir(n)
            request, reply = self.rundir.read_json(adir / "request.json"), self.rundir.read_json(adir / "reply.json")
            if request is not None and reply is not None:
                self.say(f"attempt {n}: the reply is already on disk ({adir / 'reply.json'}); no new request")
                ready.append((n, request, Reply.from_json(reply), True))
            else:
                reask.append(n)
        next_n = max([0, *folders, *done_numbers]) + 1
        self._used = {int(r["attempt"]): (int(r.get("tokens") or 0), float(r.get("cost_usd") or 0.0)) for r in records}
        for n, _, reply, _ in ready:
            self._used[n] = (reply.total_tokens, float(reply.cost_usd or 0.0))
        started = len(done_numbers) + len(ready)
        asks: dict[concurrent.futures.Future, int] = {}
        evals: dict[concurrent.futures.Future, tuple[Prepared, str]] = {}
        queue: deque[tuple[Prepared, str]] = deque()
        stop: tuple[str, str] | None = None  # (kind, text), the first stop rule that held
        in_flight_at_stop = 0
        replied = False  # a reply came back in this process (see the first request below)
        lost: dict[int, int] = {}  # attempt -> evaluations the evaluator lost (not the candidate's fault)
        pool = concurrent.futures.ThreadPoolExecutor(scale.requests_in_flight, thread_name_prefix="evolve-request")
        try:
            while True:
                while ready:  # the replies that came, judged up to their evaluation
                    n, request, reply, resumed = ready.pop(0)
                    waiting = [p.record for p, _ in queue] + [p.record for p, _ in evals.values()]
                    out = self._prepare(n, request, reply, resumed, records + waiting)
                    if isinstance(out, dict):
                        self._finished(out, records, new)
                    elif out.recorded is not None:
                        self._finished(self._complete(out, self.judging.finish(out, None, records)), records, new)
                    else:
                        queue.append((out, "screen" if self.screen is not None else "full"))
                if stop is None:
                    stop = self._stop_rule(records, started)
                    in_flight_at_stop = len(asks) if stop else 0
                # An attempt is open from its request to its record; at most requests_in_flight are open,
                # so no more requests than that run at once and no backlog of candidates builds up
                # behind the evaluations (1: the sequential loop, each attempt sees the one before).
                # Until one reply came back in this process, one request goes alone: a wrong key, model or
                # endpoint costs one failed request, not requests_in_flight of them.
                limit = scale.requests_in_flight if replied else 1
                while stop is None and len(asks) + len(evals) + len(queue) + len(ready) < limit:
                    if reask:
                        n = reask.pop(0)
                    else:
                        n, next_n = next_n, next_n + 1
                    asks[self._ask_async(pool, n, records)] = n
                    started += 1
                    stop = self._stop_rule(records, started)
                    in_flight_at_stop = len(asks) if stop else 0
                while queue and len(evals) < scale.evaluations_in_flight:
                    prep, stage = queue.popleft()
                    if stage == "full":
                        self.say(f"attempt {prep.n}: judging {prep.name} with the suite ...")
                    else:
                        self.say(f"attempt {prep.n}: screening {prep.name} ({self.screen.path.name}, "  # type: ignore[union-attr]
                                 f"{self.screen.frames} frames) ...")  # type: ignore[union-attr]
                    request = self.judging.eval_request(prep, stage, self.screen)
                    evals[self.evaluator().submit(request)] = (prep, stage)
                if not (asks or evals or queue or ready):
                    break
                done, _ = concurrent.futures.wait([*asks, *evals], return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: asks.get(f, 0) or evals.get(f, (None, ""))[0].n):  # type: ignore[union-attr]
                    if fut in asks:
                        n = asks.pop(fut)
                        request, reply = fut.result()  # a ModelError ends the run here (resume asks again)
                        self._used[n] = (reply.total_tokens, float(reply.cost_usd or 0.0))
                        ready.append((n, request, reply, False))
                        replied = True
                        continue
                    prep, stage = evals.pop(fut)
                    try:
                        result: EvalResult = fut.result()
                    except Exception as err:  # the evaluator lost it (a node or worker died), not the candidate
                        lost[prep.n] = lost.get(prep.n, 0) + 1
                        if lost[prep.n] > EVALUATION_RETRIES:
                            raise HarnessError(
                                f"attempt {prep.n}: its {stage} evaluation was lost {lost[prep.n]} times on "
                                f"{self.evaluator().describe()}: {type(err).__name__}: {str(err)[:500]}"
                            ) from err
                        self.say(f"attempt {prep.n}: its {stage} evaluation was lost ({type(err).__name__}: "
                                 f"{str(err)[:200]}); it runs again")
                        queue.appendleft((prep, stage))
                        continue
                    if stage == "screen":
                        failed = self.judging.screen_failure(prep, result)
                        if failed is not None:
                            self._finished(self._complete(prep, failed), records, new)
                        else:
                            queue.appendleft((prep, "full"))  # survivors go first
                        continue
                    champion = self._champion()
                    if result.champion_sha256 != champion.source_sha256 and _passed(result):
                        # Stale: the champion changed while it was evaluated. Its comparison is made
                        # again against the new one (the champion's and the candidate's passing
                        # results come from the result cache, so mostly the comparison is redone).
                        prep.reruns += 1
                        prep.record["suite_s"] = round(float(prep.record.get("suite_s") or 0.0) + result.wall_s, 3)
                        self.say(f"attempt {prep.n}: the champion is now {champion.candidate}; "
                                 f"{prep.name} is judged again against it")
                        queue.appendleft((prep, "full"))
                        continue
                    self._finished(self._complete(prep, self.judging.finish(prep, result, records)), records, new)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        # The reason as things stand once nothing is in flight (an identical last attempt comes first,
        # as in the sequential loop), else the rule that stopped the requests.
        final = self._stop_rule(records, started) or stop
        assert final is not None
        return self._stop_text(final, records, in_flight_at_stop)

    def evaluator(self) -> Evaluator:
        """The run's evaluator, started on first use: Ray (embedded, or the cluster at scale.ray_address)
        unless scale.ray_address is "none"."""
        if self._evaluation is None:
            scale = self.config.scale
            address = scale.ray_address.strip()
            self._evaluation = make_evaluator(
                use_ray=address.lower() != "none", address=address or None,
                slots=scale.evaluations_in_flight, cpus_per_evaluation=scale.cpus_per_evaluation,
            )
            self.say(f"evolve: evaluations on {self._evaluation.describe()}")
        return self._evaluation

    def _prepare(self, n: int, request: dict, reply: Reply, resumed: bool, records: list[dict]) -> dict | Prepared:
        adir = self.rundir.attempt_dir(n)
        base = {
            "attempt": n,
            "parent": request["parent"],
            "parent_attempt": request.get("parent_attempt"),
            "parent_sha256": request.get("parent_sha256"),
            "island": request.get("island"),
            "inspirations": list(request.get("inspirations") or []),
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
            "screen_s": None,
            "suite_s": None,
            "eval_node": None,
            "_start": time.monotonic(),
        }
        out = self.judging.prepare(n, adir, reply, request, records, base)
        return self._complete(None, out) if isinstance(out, dict) else out

    def _complete(self, prep: Prepared | None, record: dict) -> dict:
        start = record.pop("_start", None)
        record["judge_s"] = round(time.monotonic() - start, 3) if isinstance(start, float) else None
        record["finished_utc"] = utc_stamp(self.clock())
        return record

    def _finished(self, record: dict, records: list[dict], new: list[dict]) -> None:
        """The attempt's last steps: its program in the database, its record in attempts.jsonl, the page."""
        record.pop("_start", None)
        if self.db is not None:
            self.db.add(self._program(record))
        self.rundir.log.append(record)
        records.append(record)
        new.append(record)
        self.say(progress_line(record, self.config.stop.iterations, self.anchor))
        self._write_page(final=False)

    def _program(self, record: dict):
        from harness.evolve.database import Program

        island = record.get("island")
        return Program(
            attempt=int(record["attempt"]), candidate=str(record.get("candidate")),
            code_sha256=str(record.get("code_sha256") or record.get("source_sha256") or ""),
            code_path=str(record.get("candidate_path") or ""),
            parent=record.get("parent"), parent_attempt=record.get("parent_attempt"),
            island=int(island) if isinstance(island, int) else self.db.island_of(int(record["attempt"])),  # type: ignore[union-attr]
            stage=str(record.get("stage")), verdict=str(record.get("verdict")),
            bd_vs_anchor=record.get("bd_vs_anchor") if record.get("stage") == "verdict" else None,
            encode_complexity=record.get("encode_complexity"), added_utc=str(record.get("finished_utc")),
        )

    def _write_page(self, *, final: bool) -> None:
        """RUN/progress.html (harness/evolve/page.py) when that module is there; a failure is said, not raised."""
        try:
            from harness.evolve.page import write_progress_page
        except ImportError:
            return
        try:
            write_progress_page(self.rundir.path)
        except Exception as err:  # noqa: BLE001 - the page must never stop the run
            if final or not self._page_failed:
                self.say(f"evolve: the progress page was not written: {type(err).__name__}: {err}")
            self._page_failed = True

    # ------------------------------------------------------------------ the database and the screen

    def _database(self, champion: LedgerEntry):
        """RUN/programs.jsonl (harness/evolve/database.py), seeded with the track's champion; None without it."""
        try:
            from harness.evolve.database import Program, ProgramDatabase
        except ImportError:
            return None
        db = ProgramDatabase.from_settings(self.rundir.path / "programs.jsonl", self.config.database)
        path = self._source_path(champion.candidate)
        cx = (champion.scores.get("complexity") or {}) if isinstance(champion.scores.get("complexity"), dict) else {}
        db.seed(Program(
            attempt=None, candidate=champion.candidate, code_sha256=champion.source_sha256,
            code_path=str(path) if path else "", parent=champion.parent, parent_attempt=None, island=0,
            stage="verdict", verdict="adopted", bd_vs_anchor=self._entry_bd(champion),
            encode_complexity=cx.get("encode_ratio") if isinstance(cx.get("encode_ratio"), (int, float)) else None,
            added_utc=utc_stamp(self.clock()),
        ))
        return db

    def _source_path(self, name: str) -> Path | None:
        cdir = self.settings.candidates_dir
        for path in (cdir / f"{name}.py", cdir / name):
            if path.exists():
                return path.resolve()
        return None

    def _screen_clip(self) -> ScreenClip | None:
        """The cascade's screen clip ([cascade]), None when the cascade is off or would not be cheaper."""
        cascade, suite = self.config.cascade, self.config.suite
        if not cascade.enabled:
            return None
        setup = self.settings.suite()
        clips: list = []
        set_name = "screen"
        try:
            config = (setup.fixtures_dir or Path(setup.root) / "fixtures") / "clipsets.toml"
            set_name, clips = resolve_clip_set(suite.clips, config=config, root=Path(setup.root),
                                               cache_dir=setup.cache_dir)
        except (HarnessError, OSError):
            clips = []  # the node resolves it (or the full stage says why it cannot)
        if cascade.clip:
            path = Path(cascade.clip).expanduser()
            path = path if path.is_absolute() else Path(setup.root) / path
            if not path.is_file():
                raise HarnessError(f"the screen's clip {path} ([cascade] clip) is not a file")
        elif clips:
            path = Path(clips[0].path)
        else:
            self.say(f"evolve: no screen (the clip set {suite.clips!r} does not resolve on this machine)")
            return None
        if len(clips) == 1 and Path(clips[0].path).name == path.name and 0 < suite.frames <= cascade.frames:
            return None  # the full stage is the screen's clip at no more frames: screening first saves nothing
        return ScreenClip(path=path.resolve(), set_name=set_name, frames=cascade.frames, data=clip_bytes(path))

    # ------------------------------------------------------------------ stop rules

    def _initial(self) -> dict:
        return dict(self.rundir.load_settings().get("initial_champion") or {})

    def stop_reason(self, records: list[dict], started: int | None = None) -> str | None:
        """Why no new request may start (None: one may); `started`: attempts numbered so far."""
        rule = self._stop_rule(records, started)
        return rule[1] if rule else None

    def _used_totals(self, records: list[dict]) -> tuple[int, float]:
        """Tokens and dollars of every reply received (recorded or still being judged)."""
        used = dict(self._used)
        for r in records:
            used.setdefault(int(r["attempt"]), (int(r.get("tokens") or 0), float(r.get("cost_usd") or 0.0)))
        return sum(t for t, _ in used.values()), sum(c for _, c in used.values())

    def _stop_rule(self, records: list[dict], started: int | None = None) -> tuple[str, str] | None:
        stop = self.config.stop
        if records and records[-1].get("identical_to"):
            last = records[-1]
            which = last.get("identical_attempt")
            what = f"attempt {which} ({last.get('identical_to')})" if which else f"{last.get('identical_to')}"
            text = (f"attempt {last['attempt']} ({last['candidate']}) is identical to {what}: "
                    f"{last.get('identical_kind') or 'identical results'}")
            return ("identical", text)
        trailing = 0
        for r in reversed(records):
            if r.get("verdict") == "adopted":
                break
            trailing += 1
        if trailing >= stop.patience:
            return ("patience", f"{trailing} attempts in a row without improvement (patience {stop.patience})")
        count = max(len(records), started or 0)
        if count >= stop.iterations:
            return ("iterations", f"iteration budget reached ({count} of {stop.iterations} attempts)")
        tokens, cost = self._used_totals(records)
        if tokens >= stop.max_total_tokens:
            return ("tokens", f"token budget reached ({tokens:,} of {stop.max_total_tokens:,} tokens)")
        if stop.max_cost_usd and cost >= stop.max_cost_usd:
            return ("cost", f"cost budget reached (${cost:.2f} of ${stop.max_cost_usd:.2f})")
        return None

    def _stop_text(self, stop: tuple[str, str], records: list[dict], in_flight: int) -> str:
        """The stop reason as the run ends: a budget's says what the requests in flight added past it."""
        kind, text = stop
        budget = self.config.stop
        tokens, cost = self._used_totals(records)
        flight = f"{in_flight} request(s) were in flight when it was reached"
        if kind == "tokens":
            over = tokens - budget.max_total_tokens
            return (f"token budget reached ({tokens:,} of {budget.max_total_tokens:,} tokens; passed by "
                    f"{max(over, 0):,} tokens; {flight})")
        if kind == "cost":
            over = cost - budget.max_cost_usd
            return (f"cost budget reached (${cost:.4f} of ${budget.max_cost_usd:.2f}; passed by ${max(over, 0):.4f}; "
                    f"{flight})")
        return text

    # ------------------------------------------------------------------ one request

    def _ask_async(self, pool: concurrent.futures.ThreadPoolExecutor, n: int,
                   records: list[dict]) -> concurrent.futures.Future:
        """Step 1 here (the prompt and the request saved), step 2 in a thread of `pool` (the model asked,
        its reply saved); the future's result is (request, reply)."""
        adir = self.rundir.attempt_dir(n)
        adir.mkdir(parents=True, exist_ok=True)
        request, prompt = self._request(n, adir, records)

        def ask() -> tuple[dict, Reply]:
            reply = self.client.complete(prompt.system, prompt.user)
            self.rundir.write_json(adir / "reply.json", reply.to_json())
            write_text_atomic(adir / "reply.md", reply.text)
            return request, reply

        return pool.submit(ask)

    def _parent(self, n: int, champion: LedgerEntry):
        """(parent program, None for the ledger champion; inspirations [(program, why)]) of attempt n."""
        if self.db is None:
            return None, []
        parent = self.db.sample_parent(n)
        if parent.candidate == champion.candidate or not parent.code_path or not Path(parent.code_path).exists():
            parent = None
        ref = parent or next((p for p in self.db.programs() if p.candidate == champion.candidate), None)
        inspirations = self.db.inspirations(ref, n) if ref is not None else []
        return parent, inspirations

    def _request(self, n: int, adir: Path, records: list[dict]):
        """Step 1: the prompt (from the parent the database samples, else the champion) and the request saved."""
        champion = self._champion()
        parent, inspirations = self._parent(n, champion)
        prompt = build_prompt(
            self.prompt_inputs(records, champion, parent=parent, inspirations=inspirations),
            char_budget=self.config.prompt.char_budget,
            failure_chars=self.config.prompt.failure_chars,
        )
        request = {
            "attempt": n,
            "prompt_sha256": prompt.sha256,
            "prompt_chars": prompt.chars,
            "prompt_cut": prompt.cut,
            "parent": parent.candidate if parent else champion.candidate,
            "parent_sha256": parent.code_sha256 if parent else champion.source_sha256,
            "parent_seq": None if parent else champion.seq,
            "parent_attempt": parent.attempt if parent else self._attempt_of(champion.candidate, records),
            "island": self.db.island_of(n) if self.db is not None else None,
            "inspirations": [p.candidate for p, _ in inspirations],
            "model": self.config.model.name,
            "max_tokens": self.config.model.max_tokens,
            "temperature": self.config.model.temperature,
            "started_utc": utc_stamp(self.clock()),
        }
        write_text_atomic(adir / "prompt.md", prompt.as_markdown())
        self.rundir.write_json(adir / "request.json", request)
        self.say(
            f"attempt {n}: asking {self.config.model.name} (parent {request['parent']}, prompt {prompt.chars:,} "
            f"characters, sha256 {prompt.sha256[:12]}{', cut: ' + '; '.join(prompt.cut) if prompt.cut else ''})"
        )
        return request, prompt

    @staticmethod
    def _attempt_of(name: str, records: list[dict]) -> int | None:
        return next((int(r["attempt"]) for r in records if r.get("candidate") == name), None)

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

    def program_view(self, parent, records: list[dict]) -> tuple[ChampionView, dict]:
        """The view of a parent from the program database that is not the ledger's champion: its judged
        code and its scores in its own attempt's report."""
        source = strip_header(Path(parent.code_path).read_text(encoding="utf-8", errors="replace"))
        record = next((r for r in records if r.get("attempt") == parent.attempt), {})
        doc = load_doc(record["report"]) if record.get("report") else None
        clips, where = [], f"attempt {parent.attempt}'s suite run (not adopted: the champion is another program)"
        if doc is not None:
            _, clips = anchor_scores(doc, parent.candidate, anchor=self.anchor, metric=self.metric)
            where += f": {len(clips)} clip(s), {(doc.get('settings') or {}).get('frames') or 'default'} frames each"
        view = ChampionView(
            name=parent.candidate, source=source, source_sha256=str(record.get("source_sha256") or parent.code_sha256),
            ledger_seq=None,
            overall_vs_anchor={self.metric: parent.bd_vs_anchor} if parent.bd_vs_anchor is not None else {},
            clips=clips, scores_from=where,
        )
        return view, (doc or {})

    def prompt_inputs(self, records: list[dict], champion: LedgerEntry, *, parent=None,
                      inspirations: list | tuple = ()) -> PromptInputs:
        """The prompt's inputs: the parent's code and scores (a program from the database, by default the
        ledger's champion), the rules against the champion, the last attempts, the inspirations."""
        view, doc = self.program_view(parent, records) if parent is not None else self.champion_view(champion, records)
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
            inspirations=tuple(
                InspirationView(name=prog.candidate, source=strip_header(text), bd_vs_anchor=prog.bd_vs_anchor, why=why)
                for prog, why in inspirations if (text := prog.read_source()) is not None
            ),
            parent_label=describe_parent(parent.candidate, parent.attempt, parent.island, champion.candidate,
                                         self._entry_bd(champion), self.anchor) if parent is not None else "",
            champion_name=champion.candidate if parent is not None else "",
        )


def _passed(result: EvalResult) -> bool:
    """Whether a full evaluation's report shows its candidate passing (only then is its comparison with
    the champion part of the verdict)."""
    if result.report_text is None:
        return False
    try:
        doc = json.loads(result.report_text)
    except ValueError:
        return False
    return bool(doc.get("candidates", {}).get(result.candidate)) and not failure_text(doc, result.candidate)
