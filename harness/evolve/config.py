"""The evolution loop's settings: fixtures/evolve.toml read and checked (unknown keys are errors)."""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from harness.errors import ConfigError
from harness.evolve.database import BD_EDGES, COMPLEXITY_EDGES
from harness.toolbox import TRACKS

__all__ = [
    "DEFAULT_CONFIG",
    "CascadeSettings",
    "DatabaseSettings",
    "EvolveConfig",
    "ModelSettings",
    "Price",
    "PromptSettings",
    "ScaleSettings",
    "StopSettings",
    "SuiteSettings",
    "default_config_path",
    "load_config",
    "parse_config",
]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = Path("fixtures") / "evolve.toml"

# The SDK refuses a non-streaming request expected to take over 10 minutes (max_tokens > 21,333);
# the reply is streamed, so only the model's own output limit bounds max_tokens.
MAX_TOKENS_LIMIT = 128_000


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    name: str = "claude-opus-5-5"
    max_tokens: int = 32000
    temperature: float | None = None
    max_retries: int = 8
    timeout_s: float = 900.0


@dataclass(frozen=True, kw_only=True)
class PromptSettings:
    char_budget: int = 120_000
    history: int = 6
    failure_chars: int = 2500


@dataclass(frozen=True, kw_only=True)
class StopSettings:
    iterations: int = 10
    max_total_tokens: int = 2_000_000
    max_cost_usd: float = 0.0  # 0 = no limit
    patience: int = 5


@dataclass(frozen=True, kw_only=True)
class SuiteSettings:
    track: str = "native"  # the track the run evolves (harness.toolbox.TRACKS): its champion, its toolbox
    clips: str = "default"
    frames: int = 0  # 0 = the suite's default
    timeout_s: float = 3600.0
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ScaleSettings:
    """Concurrency (harness/evolve/loop.py, harness/evolve/evaluate.py); may be changed on resume.

    requests_in_flight: attempts open at once, from the request to the record, so at most this many
      Messages API requests at once (threads; the SDK client is synchronous); 1 = the sequential loop.
    evaluations_in_flight: suite runs at once, each a Ray task (or a thread with ray_address "none").
    ray_address: "" = an embedded local Ray (ray.init() on this machine, no set-up); "none" = no Ray,
      evaluations in threads of this process; anything else joins that cluster ("auto", "HOST:6379").
    cpus_per_evaluation: the Ray task's num_cpus (a suite run is one pytest process; more with -n N)."""

    requests_in_flight: int = 4
    evaluations_in_flight: int = 2
    ray_address: str = ""
    cpus_per_evaluation: float = 1.0


@dataclass(frozen=True, kw_only=True)
class CascadeSettings:
    """The evaluation cascade (harness/evolve/evaluate.py): a cheap screen before the full suite run.

    enabled: screen every candidate first (the suite's contract, round trip, rate and determinism
      tests on one small clip, stopping at the first failure); only survivors get the full stage.
    clip: the screen's clip, a file path (relative to the project root); "" = the first clip of the
      run's clip set. The screen is skipped when it would not be cheaper than the full stage (the
      run's set is that one clip and its frames are at most `frames`).
    frames: frames of the clip the screen reads."""

    enabled: bool = True
    clip: str = ""
    frames: int = 3


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    """The program database (harness/evolve/database.py): islands, inspirations, MAP-Elites bin edges."""

    islands: int = 2
    inspirations: int = 2  # programs besides the parent shown in each prompt
    seed: int = 0  # parent and inspiration sampling: random.Random(seed * 1_000_003 + attempt)
    bd_edges: tuple[float, ...] = BD_EDGES  # BD-rate vs x265, %
    complexity_edges: tuple[float, ...] = COMPLEXITY_EDGES  # encode CPU per megapixel-frame over x265's


@dataclass(frozen=True, kw_only=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_write: float | None = None
    cache_read: float | None = None

    def cost(self, usage: dict[str, int | None]) -> float:
        per = 1e-6
        write = self.cache_write if self.cache_write is not None else 1.25 * self.input
        read = self.cache_read if self.cache_read is not None else 0.1 * self.input
        return per * (
            (usage.get("input_tokens") or 0) * self.input
            + (usage.get("output_tokens") or 0) * self.output
            + (usage.get("cache_creation_input_tokens") or 0) * write
            + (usage.get("cache_read_input_tokens") or 0) * read
        )


@dataclass(frozen=True, kw_only=True)
class EvolveConfig:
    model: ModelSettings = field(default_factory=ModelSettings)
    prompt: PromptSettings = field(default_factory=PromptSettings)
    stop: StopSettings = field(default_factory=StopSettings)
    suite: SuiteSettings = field(default_factory=SuiteSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    scale: ScaleSettings = field(default_factory=ScaleSettings)
    cascade: CascadeSettings = field(default_factory=CascadeSettings)
    prices: dict[str, Price] = field(default_factory=dict)
    source: str | None = None

    def price(self, model: str | None = None) -> Price | None:
        return self.prices.get(model or self.model.name)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["suite"]["extra_args"] = list(self.suite.extra_args)
        data["database"] = {k: list(v) if isinstance(v, tuple) else v for k, v in data["database"].items()}
        return data

    @classmethod
    def from_json(cls, data: dict, where: str = "run settings") -> EvolveConfig:
        try:
            suite = dict(data["suite"])
            suite["extra_args"] = tuple(suite.get("extra_args") or ())
            return cls(
                model=ModelSettings(**data["model"]),
                prompt=PromptSettings(**data["prompt"]),
                stop=StopSettings(**data["stop"]),
                suite=SuiteSettings(**suite),
                database=_database_from_json(data.get("database")),
                # run directories started before these sections existed: the defaults
                scale=ScaleSettings(**(data.get("scale") or {})),
                cascade=CascadeSettings(**(data.get("cascade") or {})),
                prices={k: Price(**v) for k, v in (data.get("prices") or {}).items()},
                source=data.get("source"),
            )
        except (KeyError, TypeError) as err:
            raise ConfigError(f"{where}: malformed evolve settings ({err})") from err

    def with_overrides(self, **sections: dict[str, object]) -> EvolveConfig:
        """A copy with some fields replaced, e.g. with_overrides(stop={"iterations": 3}); None values are ignored."""
        out = self
        for name, values in sections.items():
            values = {k: v for k, v in values.items() if v is not None}
            if values:
                out = replace(out, **{name: replace(getattr(out, name), **values)})
        check(out, "command-line options")
        return out


_TABLES = {
    "model": {"name": str, "max_tokens": int, "temperature": (int, float), "max_retries": int, "timeout_s": (int, float)},
    "prompt": {"char_budget": int, "history": int, "failure_chars": int},
    "stop": {"iterations": int, "max_total_tokens": int, "max_cost_usd": (int, float), "patience": int},
    "suite": {"track": str, "clips": str, "frames": int, "timeout_s": (int, float), "extra_args": list},
    "scale": {"requests_in_flight": int, "evaluations_in_flight": int, "ray_address": str,
              "cpus_per_evaluation": (int, float)},
    "cascade": {"enabled": bool, "clip": str, "frames": int},
    "database": {"islands": int, "inspirations": int, "seed": int, "bd_edges": list, "complexity_edges": list},
}


def _database_from_json(data: dict | None) -> DatabaseSettings:
    """A run directory started before the database existed has no [database]: the defaults."""
    values = dict(data or {})
    for key in ("bd_edges", "complexity_edges"):
        if key in values:
            values[key] = tuple(float(v) for v in values[key])
    return DatabaseSettings(**values)


_PRICE_KEYS = {"input", "output", "cache_write", "cache_read"}


def default_config_path(root: str | os.PathLike[str] | None = None) -> Path:
    """fixtures/evolve.toml under `root` (or the working directory), else beside this package."""
    here = Path(root or ".") / DEFAULT_CONFIG
    return here if here.exists() else ROOT / DEFAULT_CONFIG


def load_config(path: str | os.PathLike[str]) -> EvolveConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read the evolve config {path}: {err}") from err
    return parse_config(text, str(path))


def parse_config(text: str, where: str = "evolve config") -> EvolveConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{where} is not valid TOML: {err}") from err
    unknown = [f"[{t}]" for t in data if t not in _TABLES and t != "prices"]
    unknown += [f"{t}.{k}" for t, keys in _TABLES.items() for k in data.get(t, {}) if k not in keys]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    sections: dict[str, dict[str, object]] = {}
    for table, keys in _TABLES.items():
        values = data.get(table, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: [{table}] must be a table")
        for key, value in values.items():
            kind = keys[key]
            if (kind is bool) != isinstance(value, bool) or not isinstance(value, kind):
                raise ConfigError(f"{where}: {table}.{key} = {value!r} has the wrong type")
        sections[table] = dict(values)
    if "extra_args" in sections["suite"]:
        args = sections["suite"]["extra_args"]
        if not all(isinstance(a, str) for a in args):  # type: ignore[union-attr]
            raise ConfigError(f"{where}: suite.extra_args must be a list of strings")
        sections["suite"]["extra_args"] = tuple(args)  # type: ignore[arg-type]
    for key in ("bd_edges", "complexity_edges"):
        if key in sections["database"]:
            edges = sections["database"][key]
            if not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in edges):  # type: ignore[union-attr]
                raise ConfigError(f"{where}: database.{key} must be a list of numbers")
            sections["database"][key] = tuple(float(e) for e in edges)  # type: ignore[union-attr]
    prices: dict[str, Price] = {}
    for model, table in (data.get("prices") or {}).items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: prices.{model} must be a table")
        extra = set(table) - _PRICE_KEYS
        if extra or not {"input", "output"} <= set(table):
            raise ConfigError(
                f"{where}: prices.\"{model}\" needs input and output (and optionally cache_write, cache_read); "
                f"got {', '.join(sorted(table))}"
            )
        for key, value in table.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
                raise ConfigError(f"{where}: prices.\"{model}\".{key} = {value!r} must be a number >= 0")
        prices[model] = Price(**{k: float(v) for k, v in table.items()})
    config = EvolveConfig(
        model=ModelSettings(**sections["model"]),
        prompt=PromptSettings(**sections["prompt"]),
        stop=StopSettings(**sections["stop"]),
        suite=SuiteSettings(**sections["suite"]),
        database=DatabaseSettings(**sections["database"]),
        scale=ScaleSettings(**sections["scale"]),
        cascade=CascadeSettings(**sections["cascade"]),
        prices=prices,
        source=where,
    )
    check(config, where)
    return config


def check(config: EvolveConfig, where: str) -> None:
    """Range checks; raises ConfigError naming the key."""
    m, p, s, u = config.model, config.prompt, config.stop, config.suite
    problems = []
    if not m.name.strip():
        problems.append("model.name is empty")
    if not 1 <= m.max_tokens <= MAX_TOKENS_LIMIT:
        problems.append(f"model.max_tokens = {m.max_tokens} must be 1..{MAX_TOKENS_LIMIT}")
    if m.temperature is not None and not 0.0 <= m.temperature <= 1.0:
        problems.append(f"model.temperature = {m.temperature} must be 0..1")
    if m.max_retries < 0:
        problems.append("model.max_retries must be >= 0")
    if m.timeout_s <= 0:
        problems.append("model.timeout_s must be > 0")
    if p.char_budget < 4000:
        problems.append(f"prompt.char_budget = {p.char_budget} must be at least 4000")
    if p.history < 0 or p.failure_chars < 200:
        problems.append("prompt.history must be >= 0 and prompt.failure_chars >= 200")
    if s.iterations < 1 or s.max_total_tokens < 1 or s.patience < 1 or s.max_cost_usd < 0:
        problems.append("stop.iterations, stop.max_total_tokens and stop.patience must be >= 1, stop.max_cost_usd >= 0")
    if u.frames < 0 or u.timeout_s <= 0:
        problems.append("suite.frames must be >= 0 and suite.timeout_s > 0")
    sc, ca = config.scale, config.cascade
    if sc.requests_in_flight < 1 or sc.evaluations_in_flight < 1 or not sc.cpus_per_evaluation > 0:
        problems.append("scale.requests_in_flight and scale.evaluations_in_flight must be >= 1, "
                        "scale.cpus_per_evaluation > 0")
    if ca.frames < 1:
        problems.append(f"cascade.frames = {ca.frames} must be >= 1")
    d = config.database
    if d.islands < 1 or d.inspirations < 0:
        problems.append(f"database.islands = {d.islands} must be >= 1 and database.inspirations = {d.inspirations} >= 0")
    for key in ("bd_edges", "complexity_edges"):
        edges = getattr(d, key)
        if not edges or not all(math.isfinite(e) for e in edges) or sorted(set(edges)) != list(edges):
            problems.append(f"database.{key} = {list(edges)} must be finite numbers in strictly increasing order")
    if u.track not in TRACKS:
        problems.append(f"suite.track = {u.track!r} must be one of {', '.join(TRACKS)}")
    if problems:
        raise ConfigError(f"{where}: {'; '.join(problems)}")
