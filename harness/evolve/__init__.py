"""The evolution loop: the Anthropic API writes candidates, the suite judges them (issue 5).

    python -m harness evolve --iterations 10            # needs ANTHROPIC_API_KEY
    python -m harness evolve --run-dir evolve-runs/X    # resume after an interruption

One responsibility per module:

- `config`  fixtures/evolve.toml: model, max_tokens, temperature, retries, prices, budgets.
- `prompt`  the prompt (contract, sandbox, parent code and scores, inspirations, last attempts), bounded, hashed.
- `client`  one Messages API call through the `anthropic` SDK (retries, usage, cost).
- `extract` the first ```python block of a reply, checked by reading, named, given a header.
- `results` scores and failure text of one candidate from a benchmark report.
- `judge`   the suite as a subprocess (`pytest benchmarks/test_codecs.py`), the verdict in the ledger.
- `evaluate` one evaluation (the suite on one candidate) as a self-contained request for a thread or
            a Ray task on any node: LocalEvaluator, RayEvaluator; the cascade's screen and full stages.
- `database` the program database (RUN/programs.jsonl): every judged attempt, islands and MAP-Elites
            cells; the parent and the inspirations of each prompt.
- `log`     the run directory: settings, attempts log (JSON Lines), per-attempt files.
- `attempt` one attempt's candidate: named, checked, written, judged by the suite, recorded.
- `summary` the progress line after each attempt and the summary table at the end.
- `loop`    the loop itself: attempts open at once (requests in threads, evaluations on the
            evaluator), verdicts in completion order, stop rules and budgets, resume.
- `cli`     the `evolve` subcommand (`register(subparsers)`).
- `page`    the run's progress page (RUN/progress.html; `python -m harness evolve-report RUN_DIR`).
"""

from harness.evolve.client import ApiKeyMissing, LLMClient, ModelError, Reply, require_api_key
from harness.evolve.config import EvolveConfig, load_config
from harness.evolve.loop import Evolution, RunResult, RunSettings

__all__ = [
    "ApiKeyMissing",
    "Evolution",
    "EvolveConfig",
    "LLMClient",
    "ModelError",
    "Reply",
    "RunResult",
    "RunSettings",
    "load_config",
    "require_api_key",
]
